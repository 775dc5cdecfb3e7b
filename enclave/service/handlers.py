"""The node service's request handlers: one request in, one reply out, no sockets.

:meth:`NodeService.dispatch` is the one table of requests this node answers. Handlers touch the
outside only through the seams they are given — the sealed store (through the parent), the NSM,
the clock and the randomness — so tests drive the real service in memory, and the TLS connection
module (:mod:`enclave.service.server`) is the only place that reads and writes bytes. Session
state lives in its own tables: key creations (:mod:`enclave.service.dkg`), preprocessed FROST
nonces (:mod:`enclave.service.nonces`), presigning runs (:mod:`enclave.service.presigning`) and
per-key presignature pools.

Approval policies (:mod:`enclave.service.policy`) are enforced here, by each node on its own,
before it contributes anything: before a FROST signature share (for the exact message of the
package), before an ECDSA share (for the message, under the child key of the path) and before a
partial decryption. A refused request answers an ``error`` reply with the error's wire code
(:func:`error_reply`); the connection stays usable.

Threshold ECDSA (suite ``ecdsa-secp256k1``): ``presign_start``/``presign_step`` run DJNPO20
presigning among 2t+1 holders over envelopes, in batches; each finished presignature goes into
this key's in-memory :class:`~enclave.mpc.ecdsa.PresignaturePool` — never sealed, used at most
once (``ecdsa_sign`` takes it out of the pool before signing), all lost on restart, which is
safe: the client presigns again. One key, one scheme: the suite registry says what a key serves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Any

from attestation.errors import AttestationError
from attestation.nsm.client import NsmClient
from attestation.nsm.raw import RawNsm
from enclave.errors import EnclaveError
from enclave.mpc.bip32 import derive_keyshard_path
from enclave.mpc.decryption.ecies import Ciphertext
from enclave.mpc.decryption.partial import partial_decrypt
from enclave.mpc.ecdsa import SigningRequest
from enclave.mpc.ecdsa import sign as ecdsa_sign
from enclave.mpc.errors import EncodingError, InvalidParameters, MisuseError, MpcError
from enclave.mpc.frost.round2 import SigningPackage
from enclave.mpc.frost.round2 import sign as frost_sign
from enclave.mpc.keys import KeyShare
from enclave.mpc.suites import KeySuite, Scheme, key_suite
from enclave.service.binding import PeerVerifier
from enclave.service.dkg import KeyCreation
from enclave.service.errors import (
    KeyExistsError,
    PeerRefusedError,
    ServiceError,
    SessionError,
    UnexpectedMessageError,
    UnsupportedError,
    WrongSchemeError,
)
from enclave.service.identity import ServiceIdentity
from enclave.service.keystore import KeyStore, SealedBlobs, StoredKey
from enclave.service.metrics import ServiceMetrics
from enclave.service.nonces import NONCE_CHUNK, FrostNonces
from enclave.service.policy import SpentApprovals, check_approvals
from enclave.service.presigning import Presigning
from enclave.service.sessions import KeyCreations, PresignaturePools, PresigningRuns
from wire.approvals import ApprovalPolicy, Operation, decryption_digest, message_digest
from wire.errors import ErrorCode, WireError
from wire.messages import (
    DecryptPartial,
    DkgOutbox,
    DkgStep,
    EcdsaSign,
    ErrorReply,
    FrostSign,
    Hello,
    HelloReply,
    KeyCommit,
    KeyCommitted,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyInfoReply,
    KeyList,
    KeyListReply,
    NonceCommit,
    NonceCommitments,
    Partial,
    Presigned,
    PresignStart,
    PresignStep,
    Reply,
    Request,
    SignatureShares,
)

__all__ = ["ANONYMOUS", "NodeService", "OsRandom", "error_reply"]

#: The client id of requests that reach the service without a TLS identity (in-process tests).
ANONYMOUS = b""

log = logging.getLogger("enclave.service")


class OsRandom:
    """The enclave's randomness for the MPC core (the kernel's CSPRNG; NSM-seeded on Nitro)."""

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


def _code(error: Exception) -> ErrorCode:
    if isinstance(error, ServiceError | WireError):
        return error.code
    if isinstance(error, EncodingError | InvalidParameters):
        return ErrorCode.MALFORMED  # the caller's bytes or parameters, before any protocol step
    if isinstance(error, MisuseError):
        return ErrorCode.NONCE_UNKNOWN  # a nonce or presignature already used
    if isinstance(error, MpcError):
        return ErrorCode.PROTOCOL
    if isinstance(error, AttestationError):
        return ErrorCode.ATTESTATION
    return ErrorCode.INTERNAL


def error_reply(request: Request, error: Exception) -> ErrorReply:
    """The ``error`` reply refusing ``request``; logs the refusal (public facts only)."""
    code = _code(error)
    log.info(
        "request refused",
        extra={"fields": {"event": "request_refused", "op": request.OP, "code": code.value}},
    )
    return ErrorReply(code, str(error)[:2000])


class NodeService:
    def __init__(
        self,
        *,
        identity: ServiceIdentity,
        nsm: RawNsm,
        store: SealedBlobs,
        peers: PeerVerifier,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self._node_id = identity.node_id
        self._nsm = NsmClient(nsm)
        self._keys = KeyStore(store)
        self._peers = peers
        self._rng = OsRandom()
        self._clock = clock
        self._creations = KeyCreations()
        self._nonces = FrostNonces()
        self._presigning = PresigningRuns()
        self._pools = PresignaturePools()
        self._spent_approvals = SpentApprovals()  # decrypt approvals are single use
        self.metrics = ServiceMetrics(self._keys, self._nonces, self._pools)

    async def hello(self, request: Hello) -> HelloReply:
        """A fresh NSM document echoing the nonce and binding this boot's TLS and box keys."""
        binding = self.identity.binding().encode()
        document = await asyncio.to_thread(
            self._nsm.get_attestation_document, binding, request.nonce, None
        )
        return HelloReply(document)

    async def answer(self, request: Request, client: bytes = ANONYMOUS) -> Reply:
        """Serve one request of ``client`` (the SHA-256 of its TLS certificate); any refusal
        becomes an ``error`` reply (never an exception). Counted in :attr:`metrics`."""
        started = self.metrics.clock()
        reply = await self._answer(request, client)
        self.metrics.observe(request.OP, reply, self.metrics.clock() - started)
        return reply

    async def _answer(self, request: Request, client: bytes) -> Reply:
        try:
            return await self.dispatch(request, client)
        except (ServiceError, WireError, MpcError, AttestationError, EnclaveError) as error:
            return error_reply(request, error)
        except Exception as error:  # process boundary of one request: the type only
            log.error(
                "request failed",
                extra={"fields": {"event": "request_failed", "error": type(error).__name__}},
            )
            return ErrorReply(ErrorCode.INTERNAL, type(error).__name__)

    async def dispatch(self, request: Request, client: bytes = ANONYMOUS) -> Reply:
        """Serve one request (the one table of request types this service answers). What a
        client owns (its presignatures) is kept per ``client``."""
        handlers: Mapping[type[Request], Callable[[Any], Awaitable[Reply]]] = {
            KeyCreate: self._key_create,
            DkgStep: self._dkg_step,
            KeyCommit: self._key_commit,
            KeyInfo: self._key_info,
            KeyList: self._key_list,
            NonceCommit: self._nonce_commit,
            FrostSign: self._frost_sign,
            DecryptPartial: self._decrypt_partial,
            PresignStart: partial(self._presign_start, client=client),
            PresignStep: partial(self._presign_step, client=client),
            EcdsaSign: partial(self._ecdsa_sign, client=client),
        }
        handler = handlers.get(type(request))
        if handler is None:
            raise UnexpectedMessageError(f"{request.OP} is not served here")
        return await handler(request)

    # -- keys ---------------------------------------------------------------------------

    async def _key_info(self, request: KeyInfo) -> Reply:
        key = await self._keys.active(request.key_name)
        return KeyInfoReply(
            key.suite.name,
            int(key.share.identifier),
            key.share.public.to_bytes(),
            b"" if key.policy is None else key.policy.encode(),
            key.nodes,
            key.epoch,
        )

    async def _key_list(self, request: KeyList) -> Reply:
        return KeyListReply(tuple(await self._keys.names()))

    async def _key(self, name: str, scheme: Scheme) -> StoredKey:
        """The committed key ``name`` if it serves ``scheme`` (a pending key serves nothing)."""
        key = await self._keys.active(name)
        if key.suite.scheme is not scheme:
            raise WrongSchemeError(f"key {name!r} is a {key.suite.name} key: no {scheme.value}")
        return key

    def _approve(
        self,
        key_name: str,
        key: StoredKey,
        operation: Operation,
        digest: bytes,
        approvals: Sequence[bytes],
        *,
        group_public_key: bytes | None = None,
    ) -> None:
        """Refuse (typed :class:`ApprovalError`) unless the key's sealed policy is satisfied;
        approvals of a decryption are then spent (single use on this node). Nothing awaits
        between the check and the spending, so two concurrent requests cannot both spend one.

        ``group_public_key``: the key that signs when it is not the key itself (a BIP-32 child).
        """
        if group_public_key is None:
            group_public_key = key.share.public.group_public_key.to_bytes()
        now = int(self._clock())
        accepted = check_approvals(
            key.policy,
            approvals,
            key_name=key_name,
            group_public_key=group_public_key,
            operation=operation,
            digest=digest,
            now=now,
        )
        if operation is Operation.DECRYPT:
            self._spent_approvals.spend(accepted, now)

    # -- key creation -------------------------------------------------------------------

    async def _key_create(self, request: KeyCreate) -> Reply:
        name = request.key_name
        suite = self._suite(request.suite)
        suite.check_committee(request.threshold, len(request.participants))
        self._creations.reserve(name)  # before the first await
        try:
            if await self._keys.exists(name, now=int(self._clock())):
                raise KeyExistsError(name)
            peer_box_keys = self._peer_box_keys(request.participants)
        except BaseException:
            self._creations.release(name)
            raise
        creation = KeyCreation(
            key_name=name,
            suite=suite.name,
            group=suite.group,
            threshold=request.threshold,
            session_id=request.session_id,
            me=self._node_id,
            box_key=self.identity.box_key,
            peer_box_keys=peer_box_keys,
            policy=request.policy,
        )
        self._creations.start(name, creation)
        log.info(
            "key creation started",
            extra={"fields": {"event": "dkg_start", "key": name, "n": len(peer_box_keys) + 1}},
        )
        return DkgOutbox(creation.start(self._rng))

    @staticmethod
    def _suite(name: str) -> KeySuite:
        try:
            return key_suite(name)
        except MpcError as error:
            raise UnsupportedError(str(error)) from None

    async def _dkg_step(self, request: DkgStep) -> Reply:
        creation = self._creations.get(request.key_name)
        result = creation.step(request.inbox)
        if isinstance(result, KeyShare):
            policy = ApprovalPolicy.decode(creation.policy) if creation.policy else None
            now = int(self._clock())
            # sealed (share and policy together, pending) before success is reported
            stored = StoredKey(
                result, policy, key_suite(creation.suite), creation.nodes, pending=True, created=now
            )
            await self._keys.save(request.key_name, stored, now=now)
            package = result.public.to_bytes()
            log.info(
                "key sealed, pending",
                extra={"fields": {"event": "dkg_sealed", "key": request.key_name}},
            )
            return KeyCreated(package, creation.acknowledge(package))
        return DkgOutbox(result)

    async def _key_commit(self, request: KeyCommit) -> Reply:
        """Every peer acknowledged sealing the same key: commit it (reseal, then answer)."""
        creation = self._creations.get(request.key_name)
        creation.commit(request.inbox)
        await self._keys.activate(request.key_name)
        self._creations.finish(request.key_name)
        log.info("key created", extra={"fields": {"event": "dkg_done", "key": request.key_name}})
        return KeyCommitted()

    def _peer_box_keys(self, participants: Mapping[str, bytes]) -> dict[str, bytes]:
        """Verify every participant's document; their box keys (this node excluded)."""
        if self._node_id not in participants:
            raise PeerRefusedError(self._node_id, "this node is not among the participants")
        bindings = {
            node_id: self._peers.verify(node_id, document)
            for node_id, document in sorted(participants.items())
        }
        if bindings[self._node_id].box_public_key != bytes(self.identity.box_key.public_key):
            raise PeerRefusedError(self._node_id, "this node's document is from another boot")
        return {
            node_id: binding.box_public_key
            for node_id, binding in bindings.items()
            if node_id != self._node_id
        }

    # -- FROST --------------------------------------------------------------------------

    async def _nonce_commit(self, request: NonceCommit) -> Reply:
        """Commit in chunks of :data:`NONCE_CHUNK`, yielding to the event loop between them."""
        key = await self._key(request.key_name, Scheme.FROST)
        suite = key.suite.frost_suite()
        commitments: list[bytes] = []
        while len(commitments) < request.count:
            chunk = min(NONCE_CHUNK, request.count - len(commitments))
            commitments += self._nonces.preprocess(
                request.key_name, suite, key.share, chunk, self._rng
            )
            if len(commitments) < request.count:
                await asyncio.sleep(0)
        return NonceCommitments(tuple(commitments))

    async def _frost_sign(self, request: FrostSign) -> Reply:
        """Each package must carry one of this node's unused commitments; the nonces behind it
        are taken out BEFORE any other check (single use, whatever follows)."""
        key = await self._key(request.key_name, Scheme.FROST)
        suite = key.suite.frost_suite()
        me = key.share.identifier
        shares = []
        for package_bytes, approvals in zip(request.packages, request.approvals, strict=True):
            package = SigningPackage.from_bytes(package_bytes)
            if package.suite is not suite:
                raise UnsupportedError("the signing package is for another ciphersuite")
            mine = package.commitments.get(me)
            if mine is None:
                raise SessionError("the signing package carries no commitment of this node")
            nonces = self._nonces.take(request.key_name, mine)
            digest = message_digest(package.message)
            self._approve(request.key_name, key, Operation.SIGN, digest, approvals)
            shares.append(frost_sign(package, nonces, key.share).to_bytes())
        return SignatureShares(tuple(shares))

    # -- threshold decryption -----------------------------------------------------------

    async def _decrypt_partial(self, request: DecryptPartial) -> Reply:
        key = await self._key(request.key_name, Scheme.FROST)
        digest = decryption_digest(request.ciphertext, request.context)
        self._approve(request.key_name, key, Operation.DECRYPT, digest, request.approvals)
        ciphertext = Ciphertext.from_bytes(request.ciphertext, key.share.group)  # MALFORMED
        # Before any arithmetic with the share, partial_decrypt checks the encryptor's proof of
        # knowledge of the ephemeral exponent for this key and this request's context (TDH2):
        # an approval for one ciphertext cannot open another (InvalidProof -> PROTOCOL).
        partial = partial_decrypt(
            key.share, ciphertext, request.session_id, self._rng, request.context
        )
        return Partial(partial.to_bytes())

    # -- threshold ECDSA ----------------------------------------------------------------

    async def _presign_start(self, request: PresignStart, *, client: bytes) -> Reply:
        key = await self._key(request.key_name, Scheme.ECDSA)
        pending = self._presigning.pending(request.key_name, client)
        self._pools.check_room(request.key_name, client, request.count, pending)
        self._presigning.check_new(request.key_name, request.session_id)
        presigning = Presigning(
            key_name=request.key_name,
            session_id=request.session_id,
            me=self._node_id,
            key=key,
            box_key=self.identity.box_key,
            peer_box_keys=self._peer_box_keys(request.participants),
            count=request.count,
            client=client,
        )
        outbox = presigning.start(self._rng)
        self._presigning.put(presigning)
        return DkgOutbox(outbox)

    async def _presign_step(self, request: PresignStep, *, client: bytes) -> Reply:
        presigning = self._presigning.take(request.key_name, request.session_id)
        if presigning.client != client:
            raise SessionError("no pending presigning run with this id")  # another client's
        result = presigning.step(request.inbox)
        if isinstance(result, list):
            self._pools.add(request.key_name, client, result)
            log.info(
                "presignatures stored",
                extra={"fields": {"event": "presigned", "key": request.key_name, "n": len(result)}},
            )
            return Presigned(
                tuple(p.info.presignature_id for p in result),
                tuple(p.info.big_r.to_bytes() for p in result),
            )
        self._presigning.put(presigning)  # only a step that succeeded keeps the run
        return DkgOutbox(result)

    async def _ecdsa_sign(self, request: EcdsaSign, *, client: bytes) -> Reply:
        """Approvals for every item first, then each presignature is taken out of the pool
        (never used twice) and signs."""
        key = await self._key(request.key_name, Scheme.ECDSA)
        tweak, signing_key = derive_keyshard_path(key.share.public.group_public_key, request.path)
        digests = [message_digest(message) for message in request.messages]
        for digest, approvals in zip(digests, request.approvals, strict=True):
            self._approve(
                request.key_name,
                key,
                Operation.SIGN,
                digest,
                approvals,
                group_public_key=signing_key.to_bytes(),
            )
        shares = []
        for presignature_id, digest, entropy in zip(
            request.presignature_ids, digests, request.entropies, strict=True
        ):
            presignature = self._pools.take(request.key_name, client, presignature_id)
            signing = SigningRequest(presignature_id, digest, entropy, tweak)
            shares.append(ecdsa_sign(presignature, signing).to_bytes())
        return SignatureShares(tuple(shares))
