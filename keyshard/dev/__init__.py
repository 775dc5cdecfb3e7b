"""The emulated environment: the KMS-compatible endpoint, the emulated hypervisor and the local cluster.

Nothing here runs in real mode. Emulation is for development and tests, not a security boundary: every
process runs as the same user on one machine, and the emulated hypervisor holds the emulated CA key.
"""
