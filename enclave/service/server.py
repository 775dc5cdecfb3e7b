"""The node service's listener: TLS 1.3 with client certificates, then framed requests.

One connection: accept on the transport (the parent forwards TCP to vsock port
:data:`SERVICE_PORT`, seeing only TLS records), ``start_tls`` with the pinned-client context (an
unlisted client fails the handshake), then the client's first request must be ``Hello``; the answer
is a fresh NSM document echoing its nonce and binding this boot's TLS key and box key
(:mod:`enclave.service.binding`). After that the connection carries any number of requests, each
answered by exactly one reply; a refused request gets an ``error`` reply naming the error type, and
the connection stays usable. Malformed frames close the connection.

Approval policies (:mod:`enclave.service.policy`) are enforced here, by each node on its own,
before it contributes anything: before committing signing nonces, again before a signature share
(whose package must sign the committed message), and before a partial decryption. The clock is the
enclave's own (a constructor parameter for tests).

Threshold ECDSA (suite ``ecdsa-secp256k1``): ``presign_start``/``presign_step`` run DJNPO20
presigning among 2t+1 holders over envelopes (:mod:`enclave.service.presigning`); each finished
presignature goes into this key's in-memory :class:`~enclave.mpc.ecdsa.PresignaturePool` — never
sealed, used at most once (``ecdsa_sign`` takes it out of the pool before signing), and all of
them are lost on restart, which is safe: the client simply presigns again. ECDSA keys only sign
with ECDSA (FROST and threshold decryption are refused for them: one key, one scheme).

Refresh/reshare are not served yet (the MPC core has them; their network drivers are future work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from attestation.errors import AttestationError
from attestation.nsm.client import NsmClient
from attestation.nsm.raw import RawNsm
from enclave.errors import EnclaveError
from enclave.mpc.decryption.ecies import Ciphertext
from enclave.mpc.decryption.partial import partial_decrypt
from enclave.mpc.ecdsa import Presignature, PresignaturePool, SigningRequest
from enclave.mpc.ecdsa import sign as ecdsa_sign
from enclave.mpc.errors import MpcError
from enclave.mpc.keys import KeyShare
from enclave.service.binding import PeerVerifier
from enclave.service.derivation import derive
from enclave.service.dkg import KeyCreation, KeyCreationPhase
from enclave.service.errors import (
    KeyExistsError,
    PeerRefusedError,
    ServiceError,
    SessionError,
    UnexpectedMessageError,
)
from enclave.service.identity import ServiceIdentity
from enclave.service.keystore import (
    ECDSA_SUITE,
    FROST_SUITES,
    GROUPS,
    KeyStore,
    SealedBlobs,
    StoredKey,
)
from enclave.service.messages import (
    MAX_FRAME,
    Commitments,
    DecryptPartial,
    DkgOutbox,
    DkgStep,
    EcdsaSign,
    ErrorReply,
    Hello,
    HelloReply,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyInfoReply,
    Message,
    Partial,
    Presigned,
    PresignStart,
    PresignStep,
    SignatureShareReply,
    SignCommit,
    SignShare,
    decode,
    encode,
)
from enclave.service.policy import (
    ApprovalPolicy,
    Operation,
    check_approvals,
    decryption_digest,
    message_digest,
)
from enclave.service.presigning import Presigning
from enclave.service.signing import SigningSessions
from transport.errors import FramingError, StreamClosedError
from transport.framing import FramedStream

__all__ = ["SERVICE_PORT", "NodeService", "OsRandom"]

log = logging.getLogger("enclave.service")

#: The vsock port of the node service (the status protocol keeps port 5000).
SERVICE_PORT = 5001
HANDSHAKE_TIMEOUT = 10.0
#: A key creation not finished after this long is abandoned: a new KeyCreate may replace it.
CREATION_TIMEOUT = 120.0
#: At most this many key creations run at once on a node.
MAX_CREATIONS = 32
#: At most this many presigning runs are pending on a node (the oldest is dropped first).
MAX_PRESIGNING = 64
#: At most this many unused presignatures are kept per key (memory is the only store).
MAX_PRESIGNATURES = 256


class OsRandom:
    """The enclave's randomness for the MPC core (the kernel's CSPRNG; NSM-seeded on Nitro)."""

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


class NodeService:
    def __init__(
        self,
        *,
        identity: ServiceIdentity,
        authorized_clients: Sequence[bytes],
        nsm: RawNsm,
        store: SealedBlobs,
        peers: PeerVerifier,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._identity = identity
        self._node_id = identity.node_id
        self._context = identity.server_context(authorized_clients)
        self._nsm = NsmClient(nsm)
        self._keys = KeyStore(store)
        self._peers = peers
        self._rng = OsRandom()
        self._creations: dict[str, tuple[float, KeyCreation]] = {}
        self._signing = SigningSessions()
        self._clock = clock
        self._presigning: dict[tuple[str, bytes], Presigning] = {}
        self._pools: dict[str, PresignaturePool] = {}

    # -- connections --------------------------------------------------------------------

    def protocol(self) -> asyncio.Protocol:
        """A protocol factory for ``Transport.listen_protocol``: one per accepted connection."""
        return _TlsAcceptor(self)

    async def accept(self, raw: asyncio.BaseTransport) -> None:
        """Upgrade an accepted connection (reading paused since accept) to TLS, then serve it.

        Reading must stay paused from the moment of accept: bytes of the client's ClientHello
        read into a plain stream before the upgrade would be lost to the TLS layer.
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_FRAME + 4)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            tls = await loop.start_tls(
                raw,  # type: ignore[arg-type]
                protocol,
                self._context,
                server_side=True,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
            )
        except (ssl.SSLError, OSError, TimeoutError, EOFError) as error:
            log.info(
                "handshake refused",
                extra={"fields": {"event": "tls_refused", "error": type(error).__name__}},
            )
            raw.close()
            return
        except Exception as error:  # process boundary of one connection: the type only
            log.error(
                "handshake failed",
                extra={"fields": {"event": "tls_failed", "error": type(error).__name__}},
            )
            raw.close()
            return
        if tls is None:  # pragma: no cover -- the peer vanished during the handshake
            raw.close()
            return
        protocol.connection_made(tls)
        await self.handle(reader, asyncio.StreamWriter(tls, protocol, reader, loop))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on an established TLS connection (``Hello`` first)."""
        stream = FramedStream(reader, writer, MAX_FRAME)
        try:
            first = decode(await stream.recv())
            if not isinstance(first, Hello):
                refusal = UnexpectedMessageError("the first request must be hello")
                await stream.send(encode(ErrorReply(refusal.code, str(refusal))))
                return
            await stream.send(encode(HelloReply(await self._document(first.nonce))))
            while True:
                try:
                    payload = await stream.recv()
                except StreamClosedError:
                    return
                await stream.send(encode(await self._reply(payload)))
        except (FramingError, ConnectionError, ssl.SSLError, ServiceError) as error:
            log.info(
                "connection closed",
                extra={"fields": {"event": "connection_error", "error": type(error).__name__}},
            )
        finally:
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await stream.close()

    async def _document(self, nonce: bytes) -> bytes:
        binding = self._identity.binding().encode()
        return await asyncio.to_thread(self._nsm.get_attestation_document, binding, nonce, None)

    async def _reply(self, payload: bytes) -> Message:
        request = decode(payload)  # malformed: ServiceError closes the connection
        try:
            return await self.dispatch(request)
        except (ServiceError, MpcError, AttestationError, EnclaveError) as error:
            log.info(
                "request refused",
                extra={
                    "fields": {
                        "event": "request_refused",
                        "op": request.OP,
                        "error": type(error).__name__,
                    }
                },
            )
            return ErrorReply(type(error).__name__, str(error)[:2000])
        except Exception as error:  # process boundary of one request: the type only
            log.error(
                "request failed",
                extra={"fields": {"event": "request_failed", "error": type(error).__name__}},
            )
            return ErrorReply("InternalError", type(error).__name__)

    # -- requests -----------------------------------------------------------------------

    async def dispatch(self, request: Message) -> Message:
        """Serve one request (the one table of request types this service answers)."""
        handlers: dict[type[Message], Callable[[Any], Awaitable[Message]]] = {
            KeyCreate: self._key_create,
            DkgStep: self._dkg_step,
            KeyInfo: self._key_info,
            SignCommit: self._sign_commit,
            SignShare: self._sign_share,
            DecryptPartial: self._decrypt_partial,
            PresignStart: self._presign_start,
            PresignStep: self._presign_step,
            EcdsaSign: self._ecdsa_sign,
        }
        handler = handlers.get(type(request))
        if handler is None:
            raise UnexpectedMessageError(f"{request.OP} is not a request")
        return await handler(request)

    async def _key_info(self, request: KeyInfo) -> Message:
        key = await self._keys.stored(request.key_name)
        return KeyInfoReply(
            key.suite,
            int(key.share.identifier),
            key.share.public.to_bytes(),
            b"" if key.policy is None else key.policy.encode(),
        )

    async def _sign_commit(self, request: SignCommit) -> Message:
        key = await self._frost_key(request.key_name)
        await self._approve(
            request.key_name, key, Operation.SIGN, request.message_digest, request.approvals
        )
        return Commitments(
            self._signing.commit(
                request.key_name,
                FROST_SUITES[key.suite],
                key.share,
                request.session_id,
                self._rng,
                message_digest=request.message_digest,
            )
        )

    async def _sign_share(self, request: SignShare) -> Message:
        session = self._signing.take(request.session_id)  # single use from here on
        key = await self._keys.stored(session.key_name)
        await self._approve(
            session.key_name, key, Operation.SIGN, session.message_digest, request.approvals
        )
        return SignatureShareReply(session.sign(request.package))

    async def _decrypt_partial(self, request: DecryptPartial) -> Message:
        key = await self._frost_key(request.key_name)
        digest = decryption_digest(request.ciphertext, request.context)
        await self._approve(request.key_name, key, Operation.DECRYPT, digest, request.approvals)
        ciphertext = Ciphertext.from_bytes(request.ciphertext, key.share.group)
        partial = partial_decrypt(key.share, ciphertext, request.session_id, self._rng)
        return Partial(partial.to_bytes())

    async def _frost_key(self, name: str) -> StoredKey:
        key = await self._keys.stored(name)
        if key.suite not in FROST_SUITES:
            raise SessionError(f"key {name!r} is a {key.suite} key: it signs with ECDSA only")
        return key

    async def _ecdsa_key(self, name: str) -> StoredKey:
        key = await self._keys.stored(name)
        if key.suite != ECDSA_SUITE:
            raise SessionError(f"key {name!r} is a {key.suite} key, not {ECDSA_SUITE}")
        return key

    async def _approve(
        self,
        key_name: str,
        key: StoredKey,
        operation: Operation,
        digest: bytes,
        approvals: Sequence[bytes],
        *,
        group_public_key: bytes | None = None,
    ) -> None:
        """Refuse (typed :class:`ApprovalError`) unless the key's sealed policy is satisfied.

        ``group_public_key``: the key that signs when it is not the key itself (a BIP-32 child).
        """
        if group_public_key is None:
            group_public_key = key.share.public.group_public_key.to_bytes()
        check_approvals(
            key.policy,
            approvals,
            key_name=key_name,
            group_public_key=group_public_key,
            operation=operation,
            digest=digest,
            now=int(self._clock()),
        )

    async def _key_create(self, request: KeyCreate) -> Message:
        name = request.key_name
        now = time.monotonic()
        for other, (started, creation) in list(self._creations.items()):
            if creation.phase is KeyCreationPhase.FAILED or now - started > CREATION_TIMEOUT:
                del self._creations[other]  # failed for good, or abandoned by its coordinator
        if name in self._creations:
            raise SessionError(f"key creation {name!r} is already running")
        if len(self._creations) >= MAX_CREATIONS:
            raise SessionError(f"{MAX_CREATIONS} key creations are already running")
        if await self._keys.exists(name):
            raise KeyExistsError(name)
        peer_box_keys = self._peer_box_keys(request.participants)
        creation = KeyCreation(
            key_name=name,
            suite=request.suite,
            group=GROUPS[request.suite],
            threshold=request.threshold,
            session_id=request.session_id,
            me=self._node_id,
            box_key=self._identity.box_key,
            peer_box_keys=peer_box_keys,
            policy=request.policy,
        )
        self._creations[name] = (now, creation)
        log.info(
            "key creation started",
            extra={"fields": {"event": "dkg_start", "key": name, "n": len(peer_box_keys) + 1}},
        )
        return DkgOutbox(creation.start(self._rng))

    async def _dkg_step(self, request: DkgStep) -> Message:
        running = self._creations.get(request.key_name)
        if running is None:
            raise SessionError(f"no key creation {request.key_name!r} on this node")
        creation = running[1]
        result = creation.step(request.inbox)
        if isinstance(result, KeyShare):
            policy = ApprovalPolicy.decode(creation.policy) if creation.policy else None
            # sealed (share and policy together) before success is reported
            stored = StoredKey(result, policy, creation.suite, creation.nodes)
            await self._keys.save(request.key_name, stored)
            del self._creations[request.key_name]
            log.info(
                "key created", extra={"fields": {"event": "dkg_done", "key": request.key_name}}
            )
            return KeyCreated(result.public.to_bytes())
        return DkgOutbox(result)

    def _peer_box_keys(self, participants: Mapping[str, bytes]) -> dict[str, bytes]:
        """Verify every participant's document; their box keys (this node excluded)."""
        if self._node_id not in participants:
            raise PeerRefusedError(self._node_id, "this node is not among the participants")
        bindings = {
            node_id: self._peers.verify(node_id, document)
            for node_id, document in sorted(participants.items())
        }
        if bindings[self._node_id].box_public_key != bytes(self._identity.box_key.public_key):
            raise PeerRefusedError(self._node_id, "this node's document is from another boot")
        return {
            node_id: binding.box_public_key
            for node_id, binding in bindings.items()
            if node_id != self._node_id
        }

    # -- threshold ECDSA ----------------------------------------------------------------

    async def _presign_start(self, request: PresignStart) -> Message:
        key = await self._ecdsa_key(request.key_name)
        pool = self._pools.get(request.key_name)
        if pool is not None and len(pool) >= MAX_PRESIGNATURES:
            raise SessionError(f"{MAX_PRESIGNATURES} unused presignatures are already kept")
        slot = (request.key_name, request.session_id)
        if slot in self._presigning:
            raise SessionError("a presigning run with this id is pending")
        presigning = Presigning(
            key_name=request.key_name,
            session_id=request.session_id,
            me=self._node_id,
            key=key,
            box_key=self._identity.box_key,
            peer_box_keys=self._peer_box_keys(request.participants),
        )
        outbox = presigning.start(self._rng)
        self._presigning[slot] = presigning
        while len(self._presigning) > MAX_PRESIGNING:
            del self._presigning[next(iter(self._presigning))]
        return DkgOutbox(outbox)

    async def _presign_step(self, request: PresignStep) -> Message:
        slot = (request.key_name, request.session_id)
        presigning = self._presigning.pop(slot, None)  # any error forgets the run for good
        if presigning is None:
            raise SessionError("no pending presigning run with this id")
        result = presigning.step(request.inbox)
        if isinstance(result, Presignature):
            self._pools.setdefault(request.key_name, PresignaturePool()).add(result)
            log.info(
                "presignature stored",
                extra={"fields": {"event": "presigned", "key": request.key_name}},
            )
            return Presigned(result.info.presignature_id, result.info.big_r.to_bytes())
        self._presigning[slot] = presigning
        return DkgOutbox(result)

    async def _ecdsa_sign(self, request: EcdsaSign) -> Message:
        key = await self._ecdsa_key(request.key_name)
        digest = message_digest(request.message)
        tweak, signing_key = derive(key.share.public.group_public_key, request.path)
        await self._approve(
            request.key_name,
            key,
            Operation.SIGN,
            digest,
            request.approvals,
            group_public_key=signing_key.to_bytes(),
        )
        pool = self._pools.setdefault(request.key_name, PresignaturePool())
        presignature = pool.take(request.presignature_id)  # out of the pool: never used twice
        signing = SigningRequest(request.presignature_id, digest, request.entropy, tweak)
        return SignatureShareReply(ecdsa_sign(presignature, signing).to_bytes())


class _TlsAcceptor(asyncio.Protocol):
    """Pauses reading at accept and hands the raw transport to :meth:`NodeService.accept`."""

    def __init__(self, service: NodeService) -> None:
        self._service = service
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]
        self._task = asyncio.get_running_loop().create_task(self._service.accept(transport))
