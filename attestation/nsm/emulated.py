"""The emulated NSM: answers the device's CBOR requests in-process, signing with the emulated CA.

It is a pure request -> response object (:class:`~attestation.nsm.raw.RawNsm`): no sockets, no
threads of its own. In the emulated cluster it runs on the host side (the emulated "hypervisor"),
and an enclave reaches it over a socket carrying the same bytes it would hand to ``/dev/nsm``; so
an enclave cannot touch its PCRs or its signing keys except through the NSM protocol.

Behaviour, matching the real NSM:

- PCR0-15 are fixed at construction (the measured image, see :mod:`attestation.measure`) and locked;
  PCR16-31 start at zero, are extended as ``PCR = SHA384(PCR || data)`` and can be locked.
  Extending a locked PCR answers ``ReadOnlyIndex``; an index >= 32 answers ``InvalidIndex``.
- Debug mode reports PCR0, 1, 2 and 8 as zero, as real debug enclaves do.
- Attestation documents carry the 9 payload fields in NSM order, ``digest`` "SHA384", PCR0-15
  (48 bytes each), a fresh leaf certificate (about 3 hours) under the emulated CA's
  root/regional/zonal/instance chain, and the caller's ``user_data`` / ``nonce`` (at most 512 bytes)
  and ``public_key`` (at most 1024 bytes); larger inputs answer ``InputTooLarge``.
- ``module_id`` has the real format ``i-<17 hex>-enc<16 hex>``: the emulated parent instance id and
  an enclave id made, like AWS's, of the start time in milliseconds (12 hex) and 4 random hex digits.
- Malformed or non-canonical requests answer ``InvalidArgument``; the emulator never raises on
  enclave input.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping

from attestation.codec import encode_document
from attestation.document import (
    DEBUG_PCR_INDICES,
    DIGEST_SHA384,
    MAX_NONCE_SIZE,
    MAX_PUBLIC_KEY_SIZE,
    MAX_USER_DATA_SIZE,
    AttestationPayload,
)
from attestation.emulated_ca import Clock, EmulatedCa, system_clock
from attestation.nsm.errors import NsmMessageError
from attestation.nsm.messages import (
    Attestation,
    AttestationResponse,
    DescribeNsm,
    DescribePcr,
    DescribePcrResponse,
    Digest,
    ErrorCode,
    ErrorResponse,
    ExtendPcr,
    ExtendPcrResponse,
    GetRandom,
    GetRandomResponse,
    LockPcr,
    LockPcrResponse,
    LockPcrs,
    LockPcrsResponse,
    NsmDescription,
    Request,
    Response,
    decode_request,
    encode_response,
)

__all__ = ["EMULATED_NSM_VERSION", "PCR_COUNT", "PCR_SIZE", "RANDOM_SIZE", "EmulatedNsm"]

PCR_COUNT = 32
#: PCRs reported in documents and fixed at boot (the image, kernel, application, role, instance...).
BOOT_PCR_COUNT = 16
PCR_SIZE = 48
#: Bytes of entropy per GetRandom answer.
RANDOM_SIZE = 256
#: The (major, minor, patch) the emulated module reports in DescribeNSM.
EMULATED_NSM_VERSION = (1, 0, 0)
_ZERO_PCR = bytes(PCR_SIZE)

RandomSource = Callable[[int], bytes]


def _module_id(instance_id: str, started_ms: int, random: RandomSource) -> str:
    return f"{instance_id}-enc{started_ms & 0xFFFF_FFFF_FFFF:012x}{random(2).hex()}"


class EmulatedNsm:
    """An in-process NSM for one enclave. Thread-safe; every call is one atomic transition."""

    def __init__(
        self,
        ca: EmulatedCa,
        boot_pcrs: Mapping[int, bytes],
        *,
        debug: bool = False,
        clock: Clock = system_clock,
        random: RandomSource = os.urandom,
    ) -> None:
        """``boot_pcrs`` must give PCR0-15, 48 bytes each (see :func:`attestation.measure.pcr_map`).

        In ``debug`` mode PCR0, 1, 2 and 8 read as zero whatever was measured.
        """
        if sorted(boot_pcrs) != list(range(BOOT_PCR_COUNT)):
            raise ValueError("boot_pcrs must hold exactly PCR0..PCR15")
        if any(type(v) is not bytes or len(v) != PCR_SIZE for v in boot_pcrs.values()):
            raise ValueError("every boot PCR must be 48 bytes")
        self._ca = ca
        self._clock = clock
        self._random = random
        self._debug = debug
        self._lock = threading.Lock()
        self._pcrs = [boot_pcrs[i] for i in range(BOOT_PCR_COUNT)]
        self._pcrs += [_ZERO_PCR] * (PCR_COUNT - BOOT_PCR_COUNT)
        if debug:
            for index in DEBUG_PCR_INDICES:
                self._pcrs[index] = _ZERO_PCR
        self._locked = set(range(BOOT_PCR_COUNT))
        started_ms = int(clock().timestamp() * 1000)
        self.module_id = _module_id(ca.instance_id, started_ms, random)

    @property
    def debug(self) -> bool:
        """Whether this module reports a debug-mode enclave."""
        return self._debug

    def call(self, request: bytes) -> bytes:
        """Answer one CBOR request with one CBOR response (the :class:`RawNsm` seam)."""
        try:
            decoded = decode_request(request)
        except NsmMessageError:
            return encode_response(ErrorResponse(ErrorCode.INVALID_ARGUMENT))
        return encode_response(self.handle(decoded))

    def handle(self, request: Request) -> Response:  # noqa: PLR0911 - one arm per variant
        """Answer one typed request."""
        match request:
            case DescribePcr(index=index):
                return self._describe_pcr(index)
            case ExtendPcr(index=index, data=data):
                return self._extend_pcr(index, data)
            case LockPcr(index=index):
                return self._lock_pcrs(range(index, index + 1), LockPcrResponse())
            case LockPcrs(count=count):
                return self._lock_pcrs(range(count), LockPcrsResponse())
            case DescribeNsm():
                return self._describe_nsm()
            case Attestation():
                return self._attest(request)
            case GetRandom():
                return GetRandomResponse(self._random(RANDOM_SIZE))

    def _describe_pcr(self, index: int) -> Response:
        if index >= PCR_COUNT:
            return ErrorResponse(ErrorCode.INVALID_INDEX)
        with self._lock:
            return DescribePcrResponse(lock=index in self._locked, data=self._pcrs[index])

    def _extend_pcr(self, index: int, data: bytes) -> Response:
        if index >= PCR_COUNT:
            return ErrorResponse(ErrorCode.INVALID_INDEX)
        with self._lock:
            if index in self._locked:
                return ErrorResponse(ErrorCode.READ_ONLY_INDEX)
            value = hashlib.sha384(self._pcrs[index] + data).digest()
            self._pcrs[index] = value
        return ExtendPcrResponse(value)

    def _lock_pcrs(self, indices: range, done: Response) -> Response:
        if indices.stop > PCR_COUNT:
            return ErrorResponse(ErrorCode.INVALID_INDEX)
        with self._lock:
            self._locked.update(indices)
        return done

    def _describe_nsm(self) -> Response:
        major, minor, patch = EMULATED_NSM_VERSION
        with self._lock:
            locked = frozenset(self._locked)
        return NsmDescription(
            version_major=major,
            version_minor=minor,
            version_patch=patch,
            module_id=self.module_id,
            max_pcrs=PCR_COUNT,
            locked_pcrs=locked,
            digest=Digest.SHA384,
        )

    def _attest(self, request: Attestation) -> Response:
        limits = (
            (request.user_data, MAX_USER_DATA_SIZE),
            (request.nonce, MAX_NONCE_SIZE),
            (request.public_key, MAX_PUBLIC_KEY_SIZE),
        )
        if any(value is not None and len(value) > limit for value, limit in limits):
            return ErrorResponse(ErrorCode.INPUT_TOO_LARGE)
        now = self._clock()
        leaf, cabundle = self._ca.issue_leaf(self.module_id, now)
        with self._lock:
            pcrs = {index: self._pcrs[index] for index in range(BOOT_PCR_COUNT)}
        payload = AttestationPayload(
            module_id=self.module_id,
            digest=DIGEST_SHA384,
            timestamp_ms=int(now.timestamp() * 1000),
            pcrs=pcrs,
            certificate=leaf.certificate_der,
            cabundle=cabundle,
            public_key=request.public_key,
            user_data=request.user_data,
            nonce=request.nonce,
        )
        return AttestationResponse(encode_document(payload, leaf.key))
