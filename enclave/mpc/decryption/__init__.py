"""Threshold decryption: ECIES to a group key, partial decryptions with Chaum-Pedersen proofs,
made non-malleable (CCA-secure) as TDH2.

* ``ecies`` — anyone encrypts to the group public key; the ciphertext format and size limit.
* ``pok`` — the encryptor's proof of knowledge of the ephemeral exponent, bound to the key, the
  body and the context, that every node checks before it answers.
* ``partial`` — a node's ``x_i·E`` with a DLEQ proof against its verification share.
* ``combine`` — the client checks every proof, names bad nodes, interpolates and decrypts.
"""

from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import MAX_PLAINTEXT, Ciphertext, encrypt, verify_ciphertext
from enclave.mpc.decryption.partial import PartialDecryption, partial_decrypt, verify_partial

__all__ = [
    "MAX_PLAINTEXT",
    "Ciphertext",
    "PartialDecryption",
    "combine",
    "encrypt",
    "partial_decrypt",
    "verify_ciphertext",
    "verify_partial",
]
