"""FROST threshold Schnorr signatures (RFC 9591) and BIP-340 output per BIP-445.

Modules follow the protocol, as the Zcash Foundation ``frost`` crates do:

* ``ciphersuite`` — FROST(Ed25519, SHA-512) and FROST(secp256k1, SHA-256): hashes H1..H5,
  signature encoding and verification; a suite is a few lines. Plus ZF's
  FROST(secp256k1, SHA-256)-TR (BIP-340 output through three small hooks).
* ``round1`` — hedged nonce generation and the public commitments (single-use nonces).
* ``binding`` — binding factors, group commitment and challenge (shared by round2/aggregate).
* ``round2`` — the signing package and each signer's signature share.
* ``aggregate`` — combine shares, verify the signature, identify cheaters on failure.
* ``bip340`` — the BIP-445 protocol (x-only keys, even-y handling, plain / x-only tweaks).
"""
