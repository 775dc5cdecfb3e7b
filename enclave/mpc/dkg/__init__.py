"""Pedersen distributed key generation with Feldman commitments (as ZF ``keys/dkg``).

* ``params``   — the session's public parameters (group, threshold, party set, session id).
* ``pop``      — Schnorr proofs of possession of each dealer's constant term.
* ``messages`` — the frozen, validated wire messages of every round.
* ``round1``   — sample the polynomial, commit to it, prove possession (broadcast).
* ``round2``   — check every dealer's commitment and proof, deal the shares (private).
* ``round3``   — check every share, derive the key, hash the transcript (broadcast); then
  ``finalize`` compares all parties' transcript hashes before the key may be used.
* ``complaints`` — a public complaint against a dealer whose share did not verify.
* ``session``  — one participant's run behind a phase-checked, fail-for-good interface.
"""
