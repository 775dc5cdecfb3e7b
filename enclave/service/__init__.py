"""The node service: the MPC protocols run between enclaves, driven by an attested client.

Modules, one concern each: :mod:`errors`, :mod:`messages` (framed strict CBOR requests/replies),
:mod:`binding` (what an attestation document binds: TLS key, box key, node id; checking a peer),
:mod:`envelope` (enclave-to-enclave payloads sealed with crypto_box), :mod:`identity` (the per-boot
TLS and box keys), :mod:`keystore` (key shares in the sealed store), :mod:`dkg` (one key creation
per session), :mod:`signing` (FROST nonces, single use) and :mod:`server` (the TLS listener).
"""
