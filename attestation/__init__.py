"""Nitro attestation documents: codec, verifier, policy, NSM interface, KMS recipient envelope."""
