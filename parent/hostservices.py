"""Serves ``transport.hostproto`` to the enclave, backed by a BlobStore and a credentials provider.

Trust: the enclave is the client and the parent is untrusted *by the enclave*, but the parent still
protects itself — every request is decoded strictly (closed types, canonical CBOR, frame limit), and
any malformed request is answered ``Error(bad_request)`` and the connection closed. Blob contents
are never looked at or logged (only names and sizes). Store and IMDS calls are blocking, so they run
in a worker thread and never stall the proxy sharing this event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from parent.auditstore import AuditBatchError, AuditStore
from parent.blobstore import BlobStore
from parent.credentials import CredentialsProvider
from parent.enclavelogs import EnclaveLogRelay
from parent.errors import BlobNameError, BlobStoreError, CredentialsError
from transport.address import ANY_CID, VsockAddress
from transport.base import Transport
from transport.errors import FramingError, HostProtoError
from transport.framing import FramedStream
from transport.hostproto import (
    HOST_SERVICES_PORT,
    MAX_MESSAGE,
    Blob,
    BlobNames,
    Error,
    ErrorCode,
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
    decode_request,
    encode_response,
)

log = logging.getLogger(__name__)

LISTEN_ADDR = VsockAddress(ANY_CID, HOST_SERVICES_PORT)
"""Where the parent serves host services: its own CID, port 9000."""


class HostServices:
    """The parent's host-services endpoint (one instance per enclave)."""

    def __init__(
        self,
        store: BlobStore,
        credentials: CredentialsProvider | None,
        *,
        node_id: str | None = None,
        tap: Callable[[str, str, bytes], None] | None = None,
    ) -> None:
        """``tap("hostservices", "in"|"out", payload)`` sees every request and response frame.

        ``node_id`` answers ``GetLaunch``: which node of the cluster table the enclave runs as. The
        parent is free to lie here; the enclave admits only ids its measured table lists and uses
        the table's key for them (see ``enclave.config.ImageConfig``)."""
        self._tap = tap
        self._node_id = node_id
        self._store = store
        self._credentials = credentials
        self._tasks: set[asyncio.Task[None]] = set()
        self.logs = EnclaveLogRelay()
        self.audit = AuditStore(store)
        self.requests: dict[tuple[str, str], int] = {}
        """Requests served, by (request type, result): exported as metrics."""
        self._server: asyncio.AbstractServer | None = None

    async def serve(
        self, transport: Transport, addr: VsockAddress = LISTEN_ADDR
    ) -> asyncio.AbstractServer:
        self._server = await transport.listen(addr, self.handle)
        return self._server

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests on one connection until the enclave closes it or misbehaves."""
        task = asyncio.current_task()
        assert task is not None  # a connection handler always runs in its own task
        self._tasks.add(task)
        stream = FramedStream(reader, writer, MAX_MESSAGE)
        try:
            while True:
                try:
                    payload = await stream.recv()  # closes the stream itself on framing errors
                except FramingError:
                    return
                if self._tap is not None:
                    self._tap("hostservices", "in", payload)
                try:
                    request = decode_request(payload)
                except HostProtoError as exc:
                    log.warning(
                        "host request refused",
                        extra={
                            "fields": {"event": "host_request_refused", "error": type(exc).__name__}
                        },
                    )
                    await stream.send(encode_response(Error(ErrorCode.BAD_REQUEST, str(exc))))
                    return
                encoded = encode_response(await self.dispatch(request))
                if self._tap is not None:
                    self._tap("hostservices", "out", encoded)
                await stream.send(encoded)
        except (ConnectionError, OSError):
            return
        finally:
            await stream.close()
            self._tasks.discard(task)

    async def dispatch(self, request: Request) -> Response:
        """The response to one request; failures become ``Error`` responses with a public reason."""
        if isinstance(request, PutLogs):  # the log channel: re-emitted here, never stored
            self.logs.relay(request.lines, request.dropped)
            self._count(request, "Ok")
            return Ok()
        try:
            if isinstance(request, PutAudit):  # stored append-only, never replacing a blob
                response = await asyncio.to_thread(self._put_audit, request)
            else:
                response = await asyncio.to_thread(self._dispatch_blocking, request)
        except BlobNameError as exc:
            response = Error(ErrorCode.BAD_NAME, exc.reason)
        except AuditBatchError as exc:
            response = Error(ErrorCode.BAD_REQUEST, f"audit batch refused: {exc}")
        except BlobStoreError as exc:
            response = Error(ErrorCode.STORAGE_FAILED, f"{exc.operation} failed: {exc.reason}")
        except CredentialsError as exc:
            response = Error(ErrorCode.CREDENTIALS_UNAVAILABLE, str(exc))
        except Exception as exc:  # process boundary: never let one request kill the server
            log.exception(
                "host request failed",
                extra={"fields": {"event": "host_request_failed", "type": type(request).__name__}},
            )
            response = Error(ErrorCode.INTERNAL, type(exc).__name__)
        result = (
            type(response).__name__
            if not isinstance(response, Error)
            else f"Error:{response.code.value}"
        )
        self._count(request, result)
        # Every sealed write, audit batch and log batch is a host request: successes are counted
        # (/metrics) and logged at DEBUG only, so the hot path does not pay a log line each.
        log.log(
            logging.INFO if isinstance(response, Error) else logging.DEBUG,
            "host request",
            extra={
                "fields": {
                    "event": "host_request",
                    "type": type(request).__name__,
                    "name": getattr(request, "name", None),
                    "size": len(request.data) if isinstance(request, PutBlob) else None,
                    "result": result,
                }
            },
        )
        return response

    def _count(self, request: Request, result: str) -> None:
        key = (type(request).__name__, result)
        self.requests[key] = self.requests.get(key, 0) + 1

    def _put_audit(self, request: PutAudit) -> Response:
        self.audit.append(request.bodies, request.signatures, request.document)
        return Ok()

    def _dispatch_blocking(self, request: Request) -> Response:
        match request:
            case PutBlob(name=name, data=data):
                self._store.put(name, data)
                return Ok()
            case GetBlob(name=name):
                return Blob(self._store.get(name))
            case ListBlobs():
                return BlobNames(tuple(self._store.names()))
            case GetCredentials():
                if self._credentials is None:
                    raise CredentialsError("this parent relays no credentials")
                return self._credentials.get()
            case GetLaunch():
                if self._node_id is None:
                    return Error(ErrorCode.LAUNCH_UNAVAILABLE, "this parent names no node id")
                return Launch(self._node_id)
            case PutLogs() | PutAudit():
                raise AssertionError("answered by dispatch itself")
        raise AssertionError(f"unhandled request type {type(request).__name__}")  # closed set
