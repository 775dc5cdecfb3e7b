"""Honest-majority threshold ECDSA over secp256k1 (Damgård, Jakobsen, Nielsen, Pagter,
Østergaard, "Fast Threshold ECDSA with Honest Majority", SCN 2020 / ePrint 2019/889).

Flow, for a key shared with degree ``t`` among ``n >= 2t + 1`` parties:

1. presign (three rounds, exactly ``2t + 1`` parties): :class:`PresignContext`, then per party a
   :class:`PresignSession` (or the round functions in :mod:`.presign`) -> a single-use
   :class:`Presignature` each, all with the same :class:`PresignatureInfo`;
2. sign (one round): the coordinator sends one :class:`SigningRequest` (message hash, optional
   BIP-32 tweak, fresh entropy); each of the same ``2t + 1`` parties calls :func:`sign`;
3. :func:`combine` interpolates, verifies with libsecp256k1, low-S normalises and returns an
   :class:`EcdsaSignature` with its recovery id — or raises a terminal :class:`ProtocolAbort`.
"""

from enclave.mpc.ecdsa.combine import EcdsaSignature, combine
from enclave.mpc.ecdsa.context import PresignContext
from enclave.mpc.ecdsa.messages import DealMessage, MaskOpening, NonceOpening, SignatureShare
from enclave.mpc.ecdsa.pool import PresignaturePool
from enclave.mpc.ecdsa.presignature import Presignature, PresignatureInfo
from enclave.mpc.ecdsa.session import Phase, PresignSession
from enclave.mpc.ecdsa.sign import SigningRequest, sign

__all__ = [
    "DealMessage",
    "EcdsaSignature",
    "MaskOpening",
    "NonceOpening",
    "Phase",
    "PresignContext",
    "PresignSession",
    "Presignature",
    "PresignatureInfo",
    "PresignaturePool",
    "SignatureShare",
    "SigningRequest",
    "combine",
    "sign",
]
