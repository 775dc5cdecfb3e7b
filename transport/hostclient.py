"""The enclave's side of host services: one request per connection, typed results.

A connection per request keeps the client stateless across parent restarts (the parent may be
restarted at will; the next request simply reconnects). Requests are rare — boot, seal, credential
refresh — so the extra connect costs nothing that matters.
"""

from __future__ import annotations

from typing import TypeVar

from transport.address import PARENT_CID, VsockAddress
from transport.base import Transport
from transport.errors import HostServiceError, MalformedMessageError
from transport.framing import FramedStream
from transport.hostproto import (
    HOST_SERVICES_PORT,
    MAX_MESSAGE,
    Blob,
    BlobNames,
    Credentials,
    Error,
    GetBlob,
    GetCredentials,
    GetLaunch,
    Launch,
    ListBlobs,
    Ok,
    PutAudit,
    PutBlob,
    PutLogs,
    Request,
    Response,
    decode_response,
    encode_request,
)

_R = TypeVar("_R", Ok, Blob, BlobNames, Credentials, Launch)

HOST_SERVICES = VsockAddress(PARENT_CID, HOST_SERVICES_PORT)


class HostClient:
    """Calls the parent's host services over a :class:`transport.base.Transport`."""

    def __init__(self, transport: Transport, addr: VsockAddress = HOST_SERVICES) -> None:
        self._transport = transport
        self._addr = addr

    async def call(self, request: Request) -> Response:
        """Send one request, return the parent's response (``Error`` included, not raised)."""
        reader, writer = await self._transport.connect(self._addr)
        stream = FramedStream(reader, writer, MAX_MESSAGE)
        try:
            await stream.send(encode_request(request))
            return decode_response(await stream.recv())
        finally:
            await stream.close()

    async def _expect(self, request: Request, kind: type[_R]) -> _R:
        response = await self.call(request)
        if isinstance(response, Error):
            raise HostServiceError(response.code.value, response.message)
        if not isinstance(response, kind):
            raise MalformedMessageError(
                "type",
                f"expected {kind.__name__} for {type(request).__name__}, "
                f"got {type(response).__name__}",
            )
        return response

    async def put_blob(self, name: str, data: bytes) -> None:
        """Store an opaque (already sealed) blob; raises :class:`HostServiceError` if refused."""
        await self._expect(PutBlob(name, data), Ok)

    async def get_blob(self, name: str) -> bytes | None:
        """The blob stored under ``name``, or ``None``. Its content is untrusted until unsealed."""
        return (await self._expect(GetBlob(name), Blob)).data

    async def list_blobs(self) -> tuple[str, ...]:
        return (await self._expect(ListBlobs(), BlobNames)).names

    async def get_credentials(self) -> Credentials:
        return await self._expect(GetCredentials(), Credentials)

    async def get_launch(self) -> str:
        """The node id the parent claims this enclave runs as (the caller checks it)."""
        return (await self._expect(GetLaunch(), Launch)).node_id

    async def put_logs(self, lines: tuple[str, ...], dropped: int = 0) -> None:
        """Hand the parent a batch of log lines (the enclave's log channel)."""
        await self._expect(PutLogs(lines, dropped), Ok)

    async def put_audit(
        self, bodies: tuple[bytes, ...], signatures: tuple[bytes, ...], document: bytes = b""
    ) -> None:
        """Hand the parent a batch of audit records for append-only storage."""
        await self._expect(PutAudit(bodies, signatures, document), Ok)
