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

Custody (:mod:`enclave.service.custody`): ``key_export`` wraps this node's re-randomised share for
a recipient, only for a key created exportable and with its policy's export quorum (spent here),
and seals the key ``exported`` before answering; ``key_import`` seals (pending) a share a client
dealt with Feldman VSS once it checks against the commitment, committed by ``key_commit`` like a
created key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
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
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.suites import KeySuite, Scheme, key_suite
from enclave.mpc.vss import VssCommitment
from enclave.service.binding import PeerVerifier
from enclave.service.custody import (
    KeyImportation,
    import_digest,
    open_import_share,
    wrap_share,
)
from enclave.service.dkg import KeyCreation
from enclave.service.envelope import EnvelopeHeader, Envelopes
from enclave.service.errors import (
    EnvelopeError,
    EpochMismatchError,
    ImportShareError,
    KeyExistsError,
    KeyStateError,
    NotExportableError,
    PeerRefusedError,
    RolledBackError,
    ServiceError,
    SessionError,
    UnexpectedMessageError,
    UnknownKeyError,
    UnsupportedError,
    WitnessError,
    WrongSchemeError,
)
from enclave.service.identity import ServiceIdentity
from enclave.service.keystore import KeyState, KeyStore, SealedBlobs, StoredKey
from enclave.service.nonces import NONCE_CHUNK, FrostNonces
from enclave.service.policy import SpentApprovals, check_approvals
from enclave.service.presigning import Presigning
from enclave.service.sessions import KeyCreations, PresignaturePools, PresigningRuns
from enclave.service.witness import (
    WITNESS_BLOB,
    StateStatement,
    WitnessBook,
    WitnessGate,
    WitnessState,
    decode_report,
    encode_report,
)
from wire.approvals import (
    ApprovalPolicy,
    Operation,
    decryption_digest,
    lifecycle_digest,
    message_digest,
)
from wire.binding import ChannelBinding
from wire.errors import ErrorCode, MalformedMessageError, WireError
from wire.messages import (
    DecryptPartial,
    DkgOutbox,
    DkgStep,
    EcdsaSign,
    ErrorReply,
    ExportedShare,
    FrostSign,
    Hello,
    HelloReply,
    KeyCommit,
    KeyCommitted,
    KeyCreate,
    KeyCreated,
    KeyExport,
    KeyImport,
    KeyInfo,
    KeyInfoReply,
    KeyList,
    KeyListReply,
    KeySetState,
    KeyStateReply,
    NonceCommit,
    NonceCommitments,
    Partial,
    Presigned,
    PresignStart,
    PresignStep,
    Reply,
    Request,
    SignatureShares,
    SignedState,
    StateQuery,
    WitnessCheck,
    WitnessEnvelope,
    WitnessQuery,
    WitnessRecord,
    WitnessRecorded,
    WitnessVerdict,
)

__all__ = ["ANONYMOUS", "NodeService", "OsRandom", "error_reply"]

#: The client id of requests that reach the service without a TLS identity (in-process tests).
ANONYMOUS = b""
#: Requests served before this boot is witnessed: the witness protocol itself.
_WITNESS_REQUESTS = (StateQuery, WitnessRecord, WitnessQuery, WitnessCheck)
#: The header of every witness report envelope (it is bound to one boot by the box keys).
_REPORT = EnvelopeHeader(":witness", b"witness-report/v1", 0, "", "")
#: How often a node looks for keys whose scheduled deletion is due.
SWEEP_SECONDS = 600.0

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
        cluster_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.identity = identity
        self._node_id = identity.node_id
        self._nsm = NsmClient(nsm)
        self._store = store
        self._keys = KeyStore(store, clock)
        # No key is served until peers have vouched that this sealed state is not older than
        # what they witnessed (enclave.service.witness).
        self.witness_gate = WitnessGate(
            identity.node_id, identity.node_identity.public_key, cluster_size
        )
        self._witness_book: WitnessBook | None = None
        self._witness_lock = asyncio.Lock()
        self._peers = peers
        self._rng = OsRandom()
        self._clock = clock
        self._creations = KeyCreations()
        self._nonces = FrostNonces()
        self._presigning = PresigningRuns()
        self._pools = PresignaturePools()
        self._spent_approvals = SpentApprovals()  # decrypt approvals are single use

    async def sweep_deletions(self) -> list[str]:
        """Erase every key whose scheduled deletion is due (each request that names such a key
        erases it too); the names erased."""
        erased = await self._keys.sweep()
        for name in erased:
            self._forget_secrets(name)
            log.info("key erased", extra={"fields": {"event": "key_erased", "key": name}})
        return erased

    async def sweep_forever(self, interval: float = SWEEP_SECONDS) -> None:
        """:meth:`sweep_deletions` every ``interval`` seconds for the life of the boot (a due
        key is erased within the interval even if nobody asks for it)."""
        while True:
            try:
                await self.sweep_deletions()
            except (ServiceError, MpcError, EnclaveError, OSError) as error:
                log.warning(
                    "deletion sweep failed",
                    extra={"fields": {"event": "sweep_failed", "error": type(error).__name__}},
                )
            await asyncio.sleep(interval)

    async def hello(self, request: Hello) -> HelloReply:
        """A fresh NSM document echoing the nonce and binding this boot's TLS and box keys."""
        binding = self.identity.binding().encode()
        document = await asyncio.to_thread(
            self._nsm.get_attestation_document, binding, request.nonce, None
        )
        return HelloReply(document)

    async def answer(self, request: Request, client: bytes = ANONYMOUS) -> Reply:
        """Serve one request of ``client`` (the SHA-256 of its TLS certificate); any refusal
        becomes an ``error`` reply (never an exception)."""
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
            KeySetState: self._key_set_state,
            NonceCommit: self._nonce_commit,
            FrostSign: self._frost_sign,
            DecryptPartial: self._decrypt_partial,
            PresignStart: partial(self._presign_start, client=client),
            PresignStep: partial(self._presign_step, client=client),
            EcdsaSign: partial(self._ecdsa_sign, client=client),
            StateQuery: self._state_query,
            WitnessRecord: self._witness_record,
            WitnessQuery: self._witness_query,
            WitnessCheck: self._witness_check,
            KeyExport: self._key_export,
            KeyImport: self._key_import,
        }
        handler = handlers.get(type(request))
        if handler is None:
            raise UnexpectedMessageError(f"{request.OP} is not served here")
        if not isinstance(request, _WITNESS_REQUESTS):
            self.witness_gate.require_serving()
        elif self.witness_gate.state is WitnessState.ROLLED_BACK and not isinstance(
            request, StateQuery
        ):
            raise RolledBackError(self.witness_gate.reason)  # its records are suspect too
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
            key.state.value,
            key.delete_at,
            key.exportable,
            key.exported,
            key.imported,
        )

    async def _key_list(self, request: KeyList) -> Reply:
        await self.sweep_deletions()  # keys whose deletion date came: erased first
        return KeyListReply(tuple(await self._keys.names()))

    async def _key(self, name: str, scheme: Scheme) -> StoredKey:
        """The committed, enabled key ``name`` if it serves ``scheme`` (a pending, disabled or
        pending-deletion key serves nothing)."""
        try:
            key = await self._keys.usable(name)
        except UnknownKeyError:
            self._forget_secrets(name)  # erased when its deletion came due, or never here
            raise
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
        if operation in (Operation.DECRYPT, Operation.DELETE):
            self._spent_approvals.spend(accepted, now)

    def _forget_secrets(self, name: str) -> None:
        """Destroy every preprocessed nonce, presignature and presigning run of ``name``."""
        self._nonces.forget(name)
        self._pools.forget(name)
        self._presigning.forget(name)

    # -- key state ------------------------------------------------------------------------

    async def _key_set_state(self, request: KeySetState) -> Reply:
        """Enable, disable, schedule or cancel the deletion of a committed key (AWS KMS's
        rules): a key pending deletion can only have its deletion cancelled, which leaves it
        disabled; scheduling needs the policy's delete quorum, approvals spent on this node.
        Scheduling a key already pending and cancelling where nothing is pending change nothing
        (so a coordinator may send the change again to the nodes it did not reach)."""
        name = request.key_name
        key = await self._keys.active(name)
        if request.epoch != key.epoch:
            raise EpochMismatchError(name, key.epoch, request.epoch)
        state, delete_at = key.state, key.delete_at
        action = request.action
        pending = state is KeyState.PENDING_DELETION
        if action in ("enable", "disable"):
            if pending:
                raise KeyStateError(name, state.value, action)
            state = KeyState.ENABLED if action == "enable" else KeyState.DISABLED
        elif action == "schedule_deletion":
            if not pending:  # already pending: unchanged (a coordinator's retry spends nothing)
                digest = lifecycle_digest(
                    Operation.DELETE, key.epoch, request.days.to_bytes(2, "big")
                )
                self._approve(name, key, Operation.DELETE, digest, request.approvals)
                now = int(self._clock())
                state, delete_at = KeyState.PENDING_DELETION, now + request.days * 86400
        elif pending:  # cancel_deletion: as AWS KMS, the key comes back disabled
            state, delete_at = KeyState.DISABLED, 0
        if (state, delete_at) != (key.state, key.delete_at):
            await self._keys.replace(name, replace(key, state=state, delete_at=delete_at))
            if state is not KeyState.ENABLED:
                self._forget_secrets(name)  # nothing prepared survives a key taken out of use
            log.info(
                "key state changed",
                extra={"fields": {"event": "key_state", "key": name, "state": state.value}},
            )
        return KeyStateReply(state.value, delete_at, key.epoch)

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
            exportable=request.exportable,
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
        if not isinstance(creation, KeyCreation):
            raise SessionError(f"key {request.key_name!r} is being imported, not created")
        result = creation.step(request.inbox)
        if isinstance(result, KeyShare):
            policy = ApprovalPolicy.decode(creation.policy) if creation.policy else None
            now = int(self._clock())
            # sealed (share and policy together, pending) before success is reported
            stored = StoredKey(
                result,
                policy,
                key_suite(creation.suite),
                creation.nodes,
                pending=True,
                created=now,
                exportable=creation.exportable,
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

    # -- custody: export and import (enclave.service.custody) ---------------------------

    async def _key_export(self, request: KeyExport) -> Reply:
        """Wrap this node's re-randomised share for the recipient: only an exportable key, at
        the epoch named, with every holder taking part and the policy's quorum of ``export``
        approvals naming this recipient (spent here). The record is resealed ``exported``
        before the wrapped share leaves the node."""
        name = request.key_name
        key = await self._keys.usable(name)
        if not key.exportable or key.policy is None:
            raise NotExportableError(name)
        if request.epoch != key.epoch:
            raise EpochMismatchError(name, key.epoch, request.epoch)
        if not key.nodes or set(request.participants) != set(key.nodes):
            raise PeerRefusedError(self._node_id, "an export takes every holder of the key")
        peer_box_keys = self._peer_box_keys(request.participants)
        # an exportable key's policy always guards export, listed or not
        policy = replace(key.policy, operations=key.policy.operations | {Operation.EXPORT})
        now = int(self._clock())
        accepted = check_approvals(
            policy,
            request.approvals,
            key_name=name,
            group_public_key=key.share.public.group_public_key.to_bytes(),
            operation=Operation.EXPORT,
            digest=lifecycle_digest(Operation.EXPORT, key.epoch, request.recipient),
            now=now,
        )
        wrapped = wrap_share(
            key.share,
            key_name=name,
            epoch=key.epoch,
            session_id=request.session_id,
            recipient=request.recipient,
            me=self._node_id,
            holders=key.nodes,
            box_key=self.identity.box_key,
            peer_box_keys=peer_box_keys,
        )
        self._spent_approvals.spend(accepted, now)
        if not key.exported:
            await self._keys.replace(name, replace(key, exported=True))
        log.info("key share exported", extra={"fields": {"event": "key_exported", "key": name}})
        return ExportedShare(int(key.share.identifier), wrapped)

    async def _key_import(self, request: KeyImport) -> Reply:
        """Seal (pending) this node's share of an imported key once it checks against the
        commitment; committed, like a created key, on every peer's acknowledgement."""
        name = request.key_name
        suite = self._suite(request.suite)
        suite.check_committee(request.threshold, len(request.participants))
        self._creations.reserve(name)  # before the first await
        try:
            if await self._keys.exists(name, now=int(self._clock())):
                raise KeyExistsError(name)
            peer_box_keys = self._peer_box_keys(request.participants)
            nodes = tuple(sorted(request.participants))
            group = suite.group
            commitment = VssCommitment.from_bytes(request.commitment, group)
            if commitment.degree != request.threshold:
                raise ImportShareError("the commitment's degree is not the threshold")
            ids = {n: Identifier.from_int(group, k) for k, n in enumerate(nodes, start=1)}
            public = PublicKeyPackage(
                group,
                commitment.constant,
                {ident: commitment.evaluate(ident) for ident in ids.values()},
                request.threshold,
            )
            secret = open_import_share(
                group,
                box_key=self.identity.box_key,
                envelope=request.envelope,
                key_name=name,
                session_id=request.session_id,
                me=self._node_id,
                identifier=ids[self._node_id],
                commitment=commitment,
            )
            share = KeyShare(ids[self._node_id], secret, public)
            policy = ApprovalPolicy.decode(request.policy) if request.policy else None
            now = int(self._clock())
            stored = StoredKey(
                share,
                policy,
                suite,
                nodes,
                pending=True,
                created=now,
                exportable=request.exportable,
                imported=True,
            )
            await self._keys.save(name, stored, now=now)
        except BaseException:
            self._creations.release(name)
            raise
        importation = KeyImportation(
            key_name=name,
            session_id=request.session_id,
            me=self._node_id,
            box_key=self.identity.box_key,
            peer_box_keys=peer_box_keys,
            digest=import_digest(
                public, suite.name, request.policy, request.exportable, request.session_id
            ),
        )
        self._creations.start(name, importation)
        log.info(
            "imported key sealed, pending", extra={"fields": {"event": "imported", "key": name}}
        )
        return KeyCreated(public.to_bytes(), importation.acknowledge())

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

    # -- state witnesses ----------------------------------------------------------------

    async def _state_query(self, request: StateQuery) -> Reply:
        """This node's sealed-state epoch, signed by its long-term identity."""
        statement = StateStatement.make(
            self._node_id, self._store.epoch, self.identity.node_identity
        )
        return SignedState(statement.encode())

    async def _book(self) -> WitnessBook:
        async with self._witness_lock:
            if self._witness_book is None:
                sealed = await self._store.get(WITNESS_BLOB)
                self._witness_book = WitnessBook() if sealed is None else WitnessBook.decode(sealed)
            return self._witness_book

    def _witness_peer(self, node_id: str, document: bytes) -> ChannelBinding:
        """A peer's verified binding for the witness protocol (never this node's own)."""
        if node_id == self._node_id:
            raise WitnessError("a node is not its own witness")
        return self._peers.verify(node_id, document)

    async def _witness_record(self, request: WitnessRecord) -> Reply:
        """Keep each peer's statement if it is news; every statement is checked before any is
        kept (one bad statement refuses the request and changes nothing)."""
        statements = []
        for node_id, document in sorted(request.documents.items()):
            identity = self._witness_peer(node_id, document).identity_public_key
            statement = StateStatement.decode(request.statements[node_id])
            if statement.node_id != node_id:
                raise WitnessError(f"the statement filed for {node_id} is {statement.node_id}'s")
            statement.verify(identity)
            statements.append(statement)
        book = await self._book()
        async with self._witness_lock:
            recorded = tuple(s.node_id for s in statements if book.record(s))
            if recorded:
                await self._store.put(WITNESS_BLOB, book.encode())
        return WitnessRecorded(recorded)

    async def _witness_query(self, request: WitnessQuery) -> Reply:
        """This node's record of a peer, sealed to the box key of that peer's current boot."""
        binding = self._witness_peer(request.node_id, request.document)
        record = (await self._book()).get(request.node_id)
        envelopes = Envelopes(
            self._node_id, self.identity.box_key, {request.node_id: binding.box_public_key}
        )
        header = EnvelopeHeader(
            _REPORT.key_name, _REPORT.session_id, _REPORT.round, self._node_id, request.node_id
        )
        return WitnessEnvelope(envelopes.seal(header, encode_report(request.node_id, record)))

    async def _witness_check(self, request: WitnessCheck) -> Reply:
        """Weigh peers' reports on this boot's sealed state (see :class:`WitnessGate`). A
        report that does not open or verify does not count; a newer record ends this boot's
        service for good."""
        gate = self.witness_gate
        for node_id, document in sorted(request.documents.items()):
            try:
                box_key = self._witness_peer(node_id, document).box_public_key
                envelopes = Envelopes(self._node_id, self.identity.box_key, {node_id: box_key})
                _, body = envelopes.open(request.envelopes[node_id], _REPORT)
                about, record = decode_report(body)
                gate.report(node_id, about, record, self._store.epoch)
            except (PeerRefusedError, EnvelopeError, WitnessError, MalformedMessageError) as error:
                log.warning(
                    "witness report refused",
                    extra={
                        "fields": {
                            "event": "witness_refused",
                            "peer": node_id,
                            "error": type(error).__name__,
                        }
                    },
                )
        if gate.state is WitnessState.ROLLED_BACK:
            log.error(
                "sealed state older than witnessed: serving no key",
                extra={"fields": {"event": "rolled_back", "reason": gate.reason}},
            )
            raise RolledBackError(gate.reason)
        if gate.state is WitnessState.WITNESSED:
            log.info(
                "sealed state witnessed",
                extra={"fields": {"event": "witnessed", "epoch": self._store.epoch}},
            )
        return WitnessVerdict(gate.state.value, gate.counted, gate.needed)
