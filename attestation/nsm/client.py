"""Typed NSM operations over any :class:`~attestation.nsm.raw.RawNsm`.

The same client drives the real device, the emulated NSM, or a socket to the emulated NSM: it
encodes a typed request, decodes the typed response strictly, turns ``Error(code)`` into
:class:`~attestation.nsm.errors.NsmRefusedError` carrying the code, and refuses a response of the
wrong variant. It never interprets documents: verifying one is :mod:`attestation.verifier`'s job.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from attestation.nsm.errors import NsmRefusedError, NsmUnexpectedResponseError
from attestation.nsm.messages import (
    Attestation,
    AttestationResponse,
    DescribeNsm,
    DescribePcr,
    DescribePcrResponse,
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
    decode_response,
    encode_request,
)
from attestation.nsm.raw import RawNsm

__all__ = ["NsmClient", "PcrState"]

_R = TypeVar("_R", bound=Response)


class PcrState(NamedTuple):
    """A PCR as DescribePCR reports it."""

    locked: bool
    value: bytes


class NsmClient:
    """The NSM operations an enclave uses, with typed results and typed errors."""

    def __init__(self, raw: RawNsm) -> None:
        self._raw = raw

    def _call(self, request: Request, expected: type[_R]) -> _R:
        response = decode_response(self._raw.call(encode_request(request)))
        if isinstance(response, ErrorResponse):
            raise NsmRefusedError(request.TAG, response.code)
        if not isinstance(response, expected):
            raise NsmUnexpectedResponseError(request.TAG, response.TAG)
        return response

    def get_attestation_document(
        self,
        user_data: bytes | None = None,
        nonce: bytes | None = None,
        public_key: bytes | None = None,
    ) -> bytes:
        """A signed attestation document (COSE_Sign1 bytes) binding the given optional fields."""
        request = Attestation(user_data=user_data, nonce=nonce, public_key=public_key)
        return self._call(request, AttestationResponse).document

    def describe_pcr(self, index: int) -> PcrState:
        """Whether PCR ``index`` is locked, and its value."""
        response = self._call(DescribePcr(index), DescribePcrResponse)
        return PcrState(locked=response.lock, value=response.data)

    def extend_pcr(self, index: int, data: bytes) -> bytes:
        """Extend PCR ``index`` with ``data``; return the new value."""
        return self._call(ExtendPcr(index, data), ExtendPcrResponse).data

    def lock_pcr(self, index: int) -> None:
        """Make PCR ``index`` read-only."""
        self._call(LockPcr(index), LockPcrResponse)

    def lock_pcrs(self, count: int) -> None:
        """Make PCRs ``[0, count)`` read-only (the API's ``range``)."""
        self._call(LockPcrs(count), LockPcrsResponse)

    def get_random(self) -> bytes:
        """Entropy from the NSM's RNG."""
        return self._call(GetRandom(), GetRandomResponse).random

    def describe_nsm(self) -> NsmDescription:
        """Module version, id, PCR bank size, locked PCRs and digest."""
        return self._call(DescribeNsm(), NsmDescription)
