"""Threshold decryption: ECIES to a group key, partial decryptions with Chaum-Pedersen proofs.

* ``ecies`` — anyone encrypts to the group public key; the ciphertext format.
* ``partial`` — a node's ``x_i·E`` with a DLEQ proof against its verification share.
* ``combine`` — the client checks every proof, names bad nodes, interpolates and decrypts.
"""

from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import Ciphertext, encrypt
from enclave.mpc.decryption.partial import PartialDecryption, partial_decrypt, verify_partial

__all__ = [
    "Ciphertext",
    "PartialDecryption",
    "combine",
    "encrypt",
    "partial_decrypt",
    "verify_partial",
]
