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
partial decryption. A key's mandatory participants (issue 11) must be in every FROST package,
BIP-340 signer list and ECDSA presigning set; a partial decryption or PRF decrypt-mode partial
needs each one's endorsement of the exact request (:mod:`enclave.service.endorsement`). A refused
request answers an ``error`` reply with the error's wire code
(:func:`error_reply`); the connection stays usable.

Threshold ECDSA (suite ``ecdsa-secp256k1``): ``presign_start``/``presign_step`` run DJNPO20
presigning among 2t+1 holders over envelopes, in batches; each finished presignature goes into
this key's in-memory :class:`~enclave.mpc.ecdsa.PresignaturePool` — never sealed, used at most
once (``ecdsa_sign`` takes it out of the pool before signing), all lost on restart, which is
safe: the client presigns again. One key, one scheme: the suite registry says what a key serves.

A key's life (issue 10): ``key_set_state`` (disable, enable, scheduled deletion — a due key is
erased on the next request naming it or by :meth:`NodeService.sweep_forever`); proactive refresh
in two phases (:mod:`enclave.service.refresh`); reshare to a new committee and/or threshold, in
two phases too (:mod:`enclave.service.reshare`); repair of a holder's lost share
(:mod:`enclave.service.repair`); BIP-340 signing by BIP-445 (:mod:`enclave.service.
bip340_signing`). Only an enabled key signs or decrypts; a refresh, reshare or repair destroys every nonce
and presignature made with the share it replaces.

Custody (:mod:`enclave.service.custody`): ``key_export`` wraps this node's re-randomised share for
a recipient, only for a key created exportable and with its policy's export quorum (spent here),
and seals the key ``exported`` before answering; ``key_import`` seals (pending) a share a client
dealt with Feldman VSS once it checks against the commitment, committed by ``key_commit`` like a
created key.

Audit (issue 12): :meth:`NodeService.answer` turns every operation and every refusal into a
record of the node's signed audit trail (:mod:`enclave.service.audit`); handlers report the
digests and approvers they checked through :func:`enclave.service.audit.note` (``_approve`` does
it for every guarded operation), and ``audit_receipts`` returns a client its own records.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import SealedBox

from attestation.errors import AttestationError
from attestation.nsm.client import NsmClient
from attestation.nsm.raw import RawNsm
from enclave.errors import EnclaveError
from enclave.mpc.bip32 import derive_keyshard_path
from enclave.mpc.decryption.ecies import Ciphertext, verify_ciphertext
from enclave.mpc.decryption.partial import partial_decrypt
from enclave.mpc.ecdsa import SigningRequest
from enclave.mpc.ecdsa import sign as ecdsa_sign
from enclave.mpc.errors import EncodingError, InvalidParameters, MisuseError, MpcError
from enclave.mpc.frost.round2 import SigningPackage
from enclave.mpc.frost.round2 import sign as frost_sign
from enclave.mpc.groups import ED25519
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.mpc.prf import PrfMode, encryption_seed
from enclave.mpc.prf import evaluate as prf_evaluate
from enclave.mpc.pve import PveStatement
from enclave.mpc.pve import encrypt as pve_encrypt
from enclave.mpc.repair import repair_step_3
from enclave.mpc.suites import KeySuite, Scheme, key_suite
from enclave.mpc.vss import VssCommitment
from enclave.service.audit import AuditTrail, reply_digest
from enclave.service.audit import note as audit_note
from enclave.service.binding import PeerVerifier
from enclave.service.bip340_signing import Bip340Nonces, decode_tweaks, output_key, sign_item
from enclave.service.custody import (
    KeyImportation,
    import_digest,
    open_import_share,
    wrap_share,
)
from enclave.service.dkg import KeyCreation
from enclave.service.endorsement import (
    EndorsedOperation,
    EndorsedRequest,
    MandatoryGate,
    prf_request_digest,
)
from enclave.service.envelope import EnvelopeHeader, Envelopes
from enclave.service.errors import (
    EndorsementError,
    EnvelopeError,
    EpochMismatchError,
    ImportShareError,
    KeyExistsError,
    KeyStateError,
    MandatoryParticipantError,
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
from enclave.service.keystore import (
    KeyState,
    KeyStore,
    PolicyChange,
    SealedBlobs,
    StagedShare,
    StoredKey,
)
from enclave.service.metrics import ServiceMetrics
from enclave.service.nonces import NONCE_CHUNK, FrostNonces
from enclave.service.policy import SpentApprovals, check_approvals
from enclave.service.presigning import Presigning
from enclave.service.refresh import VOUCH_ROUND, KeyRefreshing, vouch_digest, vouch_session_id
from enclave.service.repair import (
    KeyRepairing,
    RepairRecord,
    open_sums,
    repair_session_id,
    sigma_values,
)
from enclave.service.reshare import (
    VOUCH_ROUND as RESHARE_VOUCH_ROUND,
)
from enclave.service.reshare import (
    KeyReshares,
    KeyResharing,
    ReshareRecord,
    open_vouch_body,
    reshare_vouch_body,
    reshare_vouch_session_id,
)
from enclave.service.sessions import KeyCreations, KeyRefreshes, PresignaturePools, PresigningRuns
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
    Approval,
    ApprovalPolicy,
    Operation,
    backup_digest,
    decryption_digest,
    lifecycle_digest,
    message_digest,
    policy_update_digest,
    prf_digest,
    reshare_detail,
    restore_digest,
)
from wire.backup import RestoredShare, backup_label
from wire.binding import ChannelBinding, IdentitySignatureError
from wire.checkpoints import AuditCheckpoint, WitnessedCheckpoint
from wire.errors import ErrorCode, MalformedMessageError, WireError
from wire.messages import (
    MAX_AUDIT_RECEIPTS,
    AuditHead,
    AuditReceipts,
    AuditReceiptsReply,
    BackupShare,
    Bip340NonceCommit,
    Bip340Sign,
    CheckpointQuery,
    CheckpointRecord,
    DecryptPartial,
    DecryptPartials,
    DkgOutbox,
    DkgStep,
    EcdsaSign,
    Endorsed,
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
    KeyRefresh,
    KeyRestore,
    KeyRestored,
    KeySetState,
    KeyStateReply,
    NonceCommit,
    NonceCommitments,
    Partial,
    Partials,
    PolicyHistory,
    PolicyShow,
    PolicyUpdate,
    PolicyUpdated,
    Presigned,
    PresignStart,
    PresignStep,
    PrfEvaluate,
    PrfPartials,
    RefreshAbandon,
    RefreshCommit,
    RefreshFinish,
    RefreshStaged,
    RefreshStep,
    RefreshVouch,
    RepairInstall,
    RepairStart,
    RepairSum,
    Reply,
    Request,
    ReshareAbandon,
    ReshareCommit,
    ReshareFinish,
    ReshareStart,
    ReshareStatus,
    ReshareStep,
    ReshareVouch,
    RestoreCommit,
    ShareBackup,
    SignatureShares,
    SignedCheckpoint,
    SignedState,
    StateQuery,
    WitnessCheck,
    WitnessedCheckpointReply,
    WitnessEnvelope,
    WitnessQuery,
    WitnessRecord,
    WitnessRecorded,
    WitnessVerdict,
)
from wire.messages import encode as encode_message

__all__ = ["ANONYMOUS", "NodeService", "OsRandom", "error_reply"]

#: The client id of requests that reach the service without a TLS identity (in-process tests).
ANONYMOUS = b""
#: Requests served before this boot is witnessed: the witness protocol itself.
_WITNESS_REQUESTS = (
    StateQuery,
    WitnessRecord,
    WitnessQuery,
    WitnessCheck,
    CheckpointRecord,
    CheckpointQuery,
)
#: The header of every witness report envelope (it is bound to one boot by the box keys).
_REPORT = EnvelopeHeader(":witness", b"witness-report/v1", 0, "", "")
#: Requests that change a key's sealed record: one at a time per key on a node.
_SERIALISED = (
    KeySetState,
    KeyRefresh,
    RefreshStep,
    RefreshCommit,
    RefreshFinish,
    RefreshAbandon,
    RepairInstall,
    ReshareStart,
    ReshareStep,
    ReshareCommit,
    ReshareFinish,
    ReshareAbandon,
)
#: Requests that are operations or change state: each answer is an audit record (refusals of
#: every request are recorded too, see :meth:`NodeService.answer`).
_AUDITED = (
    KeyCreate,
    KeyCommit,
    KeySetState,
    KeyRefresh,
    RefreshCommit,
    RefreshFinish,
    RefreshAbandon,
    RepairStart,
    RepairInstall,
    FrostSign,
    Bip340Sign,
    EcdsaSign,
    PresignStart,
    DecryptPartial,
    DecryptPartials,
    PrfEvaluate,
    BackupShare,
    KeyRestore,
    RestoreCommit,
    PolicyUpdate,
    KeyExport,
    KeyImport,
    ReshareStart,
    ReshareCommit,
    ReshareFinish,
    ReshareAbandon,
)
#: At most this many repairs wait between their two steps on a node (the oldest dropped first).
MAX_REPAIRS = 32
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
        audit: AuditTrail | None = None,
    ) -> None:
        """``audit``: this node's audit trail (an in-memory one, signing with the identity key,
        when the caller keeps none: tests, and boots that ship no records)."""
        self.identity = identity
        self.audit = audit or AuditTrail(identity.node_id, identity.node_identity.sign, clock=clock)
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
        self._policy_lock = asyncio.Lock()
        self._restoring: set[str] = (
            set()
        )  # keys this boot sealed pending by a restore  # one policy update at a time: each names a count
        self._witness_lock = asyncio.Lock()
        self._peers = peers
        self._rng = OsRandom()
        self._clock = clock
        self._creations = KeyCreations()
        self._nonces = FrostNonces()
        self._presigning = PresigningRuns()
        self._pools = PresignaturePools()
        self._spent_approvals = SpentApprovals()  # decrypt approvals are single use
        self._refreshes = KeyRefreshes()
        self._reshares = KeyReshares()
        self._bip340_nonces = Bip340Nonces()
        self._repairs: OrderedDict[tuple[str, bytes], KeyRepairing] = OrderedDict()
        self._key_locks: dict[str, asyncio.Lock] = {}
        self.metrics = ServiceMetrics(self._keys, self._nonces, self._pools)

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
        becomes an ``error`` reply (never an exception). Counted in :attr:`metrics`."""
        started = self.metrics.clock()
        with self.audit.noting() as noted:
            reply = await self._answer(request, client)
        self.metrics.observe(request.OP, reply, self.metrics.clock() - started)
        refused = isinstance(reply, ErrorReply)
        if refused or isinstance(request, _AUDITED):
            self.audit.append(
                client=client,
                op=request.OP,
                key=str(getattr(request, "key_name", ""))[:256],
                outcome=reply.code.value if isinstance(reply, ErrorReply) else "ok",
                result=b"" if refused else reply_digest(encode_message(reply, 0)),
                current=noted,
            )
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
            KeySetState: self._key_set_state,
            KeyRefresh: self._key_refresh,
            RefreshStep: self._refresh_step,
            RefreshCommit: self._refresh_commit,
            RefreshVouch: self._refresh_vouch,
            RefreshFinish: self._refresh_finish,
            RefreshAbandon: self._refresh_abandon,
            RepairStart: self._repair_start,
            RepairSum: self._repair_sum,
            RepairInstall: self._repair_install,
            ReshareStart: self._reshare_start,
            ReshareStep: self._reshare_step,
            ReshareCommit: self._reshare_commit,
            ReshareVouch: self._reshare_vouch,
            ReshareFinish: self._reshare_finish,
            ReshareAbandon: self._reshare_abandon,
            NonceCommit: self._nonce_commit,
            FrostSign: self._frost_sign,
            DecryptPartial: self._decrypt_partial,
            DecryptPartials: self._decrypt_partials,
            PresignStart: partial(self._presign_start, client=client),
            PresignStep: partial(self._presign_step, client=client),
            EcdsaSign: partial(self._ecdsa_sign, client=client),
            BackupShare: self._backup_share,
            KeyRestore: self._key_restore,
            RestoreCommit: self._restore_commit,
            PolicyUpdate: self._policy_update,
            PolicyShow: self._policy_show,
            StateQuery: self._state_query,
            WitnessRecord: self._witness_record,
            WitnessQuery: self._witness_query,
            WitnessCheck: self._witness_check,
            PrfEvaluate: self._prf_evaluate,
            Bip340NonceCommit: self._bip340_nonce_commit,
            Bip340Sign: self._bip340_sign,
            KeyExport: self._key_export,
            KeyImport: self._key_import,
            AuditReceipts: partial(self._audit_receipts, client=client),
            AuditHead: self._audit_head,
            CheckpointRecord: self._checkpoint_record,
            CheckpointQuery: self._checkpoint_query,
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
        if isinstance(request, _SERIALISED):
            async with self._key_lock(request.key_name):
                return await handler(request)
        return await handler(request)

    @contextlib.asynccontextmanager
    async def _key_lock(self, name: str) -> AsyncIterator[None]:
        """One change of ``name``'s record at a time on this node (a refresh's commit and an
        abandon racing would otherwise each read the record the other is replacing). The lock
        is forgotten once nobody holds or waits for it."""
        lock = self._key_locks.setdefault(name, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._key_locks.get(name) is lock:
                del self._key_locks[name]

    # -- keys ---------------------------------------------------------------------------

    async def _key_info(self, request: KeyInfo) -> Reply:
        return self._describe(await self._keys.active(request.key_name))

    @staticmethod
    def _describe(key: StoredKey) -> KeyInfoReply:
        return KeyInfoReply(
            key.suite.name,
            int(key.share.identifier),
            key.share.public.to_bytes(),
            b"" if key.policy is None else key.policy.encode(),
            key.nodes,
            key.epoch,
            key.state.value,
            key.delete_at,
            key.staged is not None,
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
        spend: bool = True,
    ) -> tuple[Approval, ...]:
        """Refuse (typed :class:`ApprovalError`) unless the key's sealed policy is satisfied;
        approvals of a decryption are then spent (single use on this node). Nothing awaits
        between the check and the spending, so two concurrent requests cannot both spend one.

        ``group_public_key``: the key that signs when it is not the key itself (a BIP-32 child).
        ``spend=False``: checked only (a mandatory participant's endorsement without its partial:
        the approvals are spent when it answers with the partial).
        """
        if group_public_key is None:
            group_public_key = key.share.public.group_public_key.to_bytes()
        now = int(self._clock())
        audit_note(digest=digest, epoch=key.epoch)  # recorded even when refused below
        accepted = check_approvals(
            key.policy,
            approvals,
            key_name=key_name,
            group_public_key=group_public_key,
            operation=operation,
            digest=digest,
            now=now,
        )
        if spend and operation in (Operation.DECRYPT, Operation.DELETE):
            self._spent_approvals.spend(accepted, now)
        audit_note(approvers=tuple(a.approver for a in accepted))
        return accepted  # the approvals accepted (for a batch to spend them all at once)

    def _forget_secrets(self, name: str) -> None:
        """Destroy every preprocessed nonce, presignature and presigning run of ``name``."""
        self._nonces.forget(name)
        self._bip340_nonces.forget(name)
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

    @staticmethod
    def _holders(key: StoredKey, identifiers: Iterable[Identifier | int]) -> list[str]:
        """The node ids behind share identifiers (a key's holders are recorded in identifier
        order; an identifier outside them names no node)."""
        return [key.nodes[int(i) - 1] for i in identifiers if 1 <= int(i) <= len(key.nodes)]

    @staticmethod
    def _require_participants(key_policy: ApprovalPolicy | None, node_ids: Iterable[str]) -> None:
        """Refuse a signing set without every node the key's policy makes mandatory."""
        if key_policy is None or not key_policy.mandatory_nodes:
            return
        taking_part = set(node_ids)
        missing = tuple(n for n in key_policy.mandatory_nodes if n not in taking_part)
        if missing:
            raise MandatoryParticipantError(missing)

    # -- proactive refresh ----------------------------------------------------------------

    async def _key_refresh(self, request: KeyRefresh) -> Reply:
        """Start a refresh among every holder (module :mod:`enclave.service.refresh`). Refused
        for a key pending deletion, at another epoch, with a staged refresh not yet resolved,
        or whose holders were never recorded."""
        name = request.key_name
        key = await self._keys.active(name)
        if key.state is KeyState.PENDING_DELETION:
            raise KeyStateError(name, key.state.value, "refresh")
        if request.epoch != key.epoch:
            raise EpochMismatchError(name, key.epoch, request.epoch)
        if key.staged is not None:
            raise KeyStateError(name, "staged for an interrupted refresh", "refresh")
        if not key.nodes or set(request.participants) != set(key.nodes):
            raise SessionError(f"a refresh of {name!r} takes exactly every holder of the key")
        digest = lifecycle_digest(Operation.REFRESH, key.epoch)
        self._approve(name, key, Operation.REFRESH, digest, request.approvals)
        run = KeyRefreshing(
            key_name=name,
            epoch=key.epoch,
            share=key.share,
            nodes=key.nodes,
            session_id=request.session_id,
            me=self._node_id,
            box_key=self.identity.box_key,
            peer_box_keys=self._peer_box_keys(request.participants),
        )
        outbox = run.start(self._rng)
        self._refreshes.put(run)
        log.info("refresh started", extra={"fields": {"event": "refresh_start", "key": name}})
        return DkgOutbox(outbox)

    async def _refresh_step(self, request: RefreshStep) -> Reply:
        """Stage: the next share is sealed beside the current one BEFORE this node confirms."""
        name = request.key_name
        run = self._refreshes.get(name, request.session_id)
        pending = run.stage(request.inbox)
        key = await self._keys.active(name)
        if key.epoch != run.epoch or key.staged is not None:
            self._refreshes.drop(name)
            raise SessionError(f"key {name!r} changed during its refresh")
        staged = StagedShare(pending.new, pending.confirmation.digest)
        await self._keys.replace(name, replace(key, staged=staged))
        log.info("refresh staged", extra={"fields": {"event": "refresh_staged", "key": name}})
        return RefreshStaged(pending.new.public.to_bytes(), run.confirmations())

    async def _refresh_commit(self, request: RefreshCommit) -> Reply:
        name = request.key_name
        run = self._refreshes.get(name, request.session_id)
        new = run.commit(request.inbox)
        key = await self._keys.active(name)
        staged = key.staged
        if key.epoch != run.epoch or staged is None or staged.share.public != new.public:
            raise SessionError(f"key {name!r} changed during its refresh")
        await self._commit_staged(name, key, staged)
        return KeyCommitted()

    async def _commit_staged(self, name: str, key: StoredKey, staged: StagedShare) -> None:
        """Reseal with only the next share, at the next epoch; then destroy what the old share
        made (nonces, presignatures) and the run."""
        committed = replace(key, share=staged.share, staged=None, epoch=key.epoch + 1)
        await self._keys.replace(name, committed)
        self._refreshes.drop(name)
        self._forget_secrets(name)
        log.info(
            "refresh committed",
            extra={"fields": {"event": "refresh_done", "key": name, "epoch": committed.epoch}},
        )

    def _vouch_envelopes(self, participants: Mapping[str, bytes]) -> tuple[str, Envelopes]:
        """The other participant (attested like any peer) and envelopes to it."""
        peers = self._peer_box_keys(participants)
        [other] = peers
        return other, Envelopes(self._node_id, self.identity.box_key, peers)

    async def _refresh_vouch(self, request: RefreshVouch) -> Reply:
        name = request.key_name
        key = await self._keys.active(name)
        if key.epoch != request.epoch:
            raise EpochMismatchError(name, key.epoch, request.epoch)
        recipient, envelopes = self._vouch_envelopes(request.participants)
        if recipient not in key.nodes:
            raise PeerRefusedError(recipient, f"not a holder of {name!r}")
        header = EnvelopeHeader(
            name, vouch_session_id(name, key.epoch), VOUCH_ROUND, self._node_id, recipient
        )
        body = vouch_digest(name, key.epoch, key.share.public.to_bytes())
        return DkgOutbox({recipient: envelopes.seal(header, body)})

    async def _refresh_finish(self, request: RefreshFinish) -> Reply:
        """Commit a staged share on a committed holder's vouch for exactly its package."""
        name = request.key_name
        key = await self._keys.active(name)
        staged = key.staged
        if staged is None:
            if key.epoch == request.epoch:
                return KeyCommitted()  # finished already (a retry)
            raise SessionError(f"no staged refresh of {name!r} on this node")
        if staged.nodes:
            raise SessionError(f"{name!r} is staged for a reshare: `key reshare` finishes it")
        if request.epoch != key.epoch + 1:
            raise EpochMismatchError(name, key.epoch + 1, request.epoch)
        voucher, envelopes = self._vouch_envelopes(request.participants)
        if voucher not in key.nodes:
            raise PeerRefusedError(voucher, f"not a holder of {name!r}")
        header = EnvelopeHeader(
            name, vouch_session_id(name, request.epoch), VOUCH_ROUND, "", self._node_id
        )
        _, body = envelopes.open(request.inbox[0], header)
        expected = vouch_digest(name, request.epoch, staged.share.public.to_bytes())
        if not hmac.compare_digest(body, expected):
            raise EnvelopeError(f"{voucher} holds another epoch {request.epoch} of {name!r}")
        await self._commit_staged(name, key, staged)
        return KeyCommitted()

    async def _refresh_abandon(self, request: RefreshAbandon) -> Reply:
        name = request.key_name
        self._refreshes.drop(name)  # before any await: no confirmation can commit it any more
        key = await self._keys.active(name)
        if request.discard and key.staged is not None:
            if key.staged.nodes:
                raise SessionError(f"{name!r} is staged for a reshare: `key reshare` ends it")
            if key.epoch != request.epoch:
                raise EpochMismatchError(name, key.epoch, request.epoch)
            key = replace(key, staged=None)
            await self._keys.replace(name, key)
            log.info(
                "staged refresh discarded",
                extra={"fields": {"event": "refresh_discarded", "key": name}},
            )
        return self._describe(key)

    # -- reshare --------------------------------------------------------------------------

    async def _reshare_start(self, request: ReshareStart) -> Reply:
        """Start a reshare (module :mod:`enclave.service.reshare`). An old holder checks the
        key (committed, not pending deletion, nothing staged, at the epoch named), the suite's
        committee rules for the new committee, the policy's mandatory participants and the
        approvals (reshare is always guarded), then deals. A joining node must hold no record
        of the key; it checks what the old holders send at the next step."""
        name = request.key_name
        new_nodes = request.new_nodes
        peer_box_keys = self._peer_box_keys(request.participants)
        try:
            key: StoredKey | None = await self._keys.active(name)
        except UnknownKeyError:
            key = None
        held = None
        if key is not None:
            if self._node_id not in key.nodes:
                raise SessionError(f"this node's share of {name!r} is not a recorded holder's")
            if key.state is KeyState.PENDING_DELETION:
                raise KeyStateError(name, key.state.value, "reshare")
            if key.staged is not None:
                raise KeyStateError(name, "staged for an interrupted refresh or reshare", "reshare")
            if request.epoch != key.epoch:
                raise EpochMismatchError(name, key.epoch, request.epoch)
            key.suite.check_committee(request.new_threshold, len(new_nodes))
            if key.policy is not None:
                self._require_participants(key.policy, new_nodes)
            detail = reshare_detail(new_nodes, request.new_threshold)
            digest = lifecycle_digest(Operation.RESHARE, key.epoch, detail)
            self._approve(name, key, Operation.RESHARE, digest, request.approvals)
            record = ReshareRecord(
                key.share.public.to_bytes(),
                b"" if key.policy is None else key.policy.encode(),
                key.suite.name,
                key.nodes,
                key.epoch,
                key.state.value,
                key.delete_at,
                key.exportable,
                key.imported,
            )
            held = (key.share, record)
        run = KeyResharing(
            key_name=name,
            epoch=request.epoch,
            session_id=request.session_id,
            me=self._node_id,
            new_nodes=new_nodes,
            new_threshold=request.new_threshold,
            box_key=self.identity.box_key,
            peer_box_keys=peer_box_keys,
            held=held,
            exported=key is not None and key.exported,
        )
        outbox = run.start(self._rng)
        run.approvals = request.approvals  # a joining node checks them at the next step
        self._reshares.put(run)
        log.info("reshare started", extra={"fields": {"event": "reshare_start", "key": name}})
        return DkgOutbox(outbox)

    async def _reshare_step(self, request: ReshareStep) -> Reply:
        """Stage: the new share is sealed BEFORE this node confirms — beside the current one on
        a staying holder, as a pending record (the old holders' public record, the new share,
        the new committee, the next epoch) on a joining node."""
        name = request.key_name
        run = self._reshares.get(name, request.session_id)
        pending = run.stage(request.inbox)
        record = run.record
        assert record is not None  # set by stage
        if run.joining:
            now = int(self._clock())
            try:
                state = KeyState(record.state)
                policy = ApprovalPolicy.decode(record.policy) if record.policy else None
            except (ValueError, MalformedMessageError):
                self._reshares.drop(name)
                raise SessionError("the old holders' record of the key is invalid") from None
            self._check_joining_approvals(name, run, policy, pending.new.public)
            joined = StoredKey(
                pending.new,
                policy,
                run.suite_of(record),
                run.new_nodes,
                epoch=run.epoch + 1,
                pending=True,
                created=now,
                state=state,
                delete_at=record.delete_at,
                exportable=record.exportable,
                exported=run.exported,
                imported=record.imported,
            )
            try:
                await self._keys.save(name, joined, now=now)
            except KeyExistsError:
                self._reshares.drop(name)
                raise
        else:
            key = await self._keys.active(name)
            if key.epoch != run.epoch or key.staged is not None:
                self._reshares.drop(name)
                raise SessionError(f"key {name!r} changed during its reshare")
            staged = StagedShare(pending.new, pending.confirmation.digest, run.new_nodes)
            await self._keys.replace(name, replace(key, staged=staged))
        log.info("reshare staged", extra={"fields": {"event": "reshare_staged", "key": name}})
        return RefreshStaged(pending.new.public.to_bytes(), run.confirmations())

    def _check_joining_approvals(
        self,
        name: str,
        run: KeyResharing,
        policy: ApprovalPolicy | None,
        public: PublicKeyPackage,
    ) -> None:
        """A joining node learns the key's policy from the old holders: it checks the reshare's
        approvals against it too (every old holder already did), before sealing anything."""
        detail = reshare_detail(run.new_nodes, run.new_threshold)
        try:
            check_approvals(
                policy,
                run.approvals,
                key_name=name,
                group_public_key=public.group_public_key.to_bytes(),
                operation=Operation.RESHARE,
                digest=lifecycle_digest(Operation.RESHARE, run.epoch, detail),
                now=int(self._clock()),
            )
        except BaseException:
            self._reshares.drop(name)
            raise

    async def _reshare_commit(self, request: ReshareCommit) -> Reply:
        """Every new member confirmed: a member commits its share, a leaving holder erases."""
        name = request.key_name
        run = self._reshares.get(name, request.session_id)
        if not run.member:
            run.retire(request.inbox)
            key = await self._keys.active(name)
            if key.epoch != run.epoch:
                raise SessionError(f"key {name!r} changed during its reshare")
            await self._retire(name)
            return KeyCommitted()
        new = run.commit(request.inbox)
        key = await self._keys.stored(name)
        if run.joining:
            if not key.pending or key.epoch != run.epoch + 1 or key.share.public != new.public:
                raise SessionError(f"key {name!r} changed during its reshare")
            await self._keys.activate(name)
        else:
            staged = key.staged
            if key.epoch != run.epoch or staged is None or staged.share.public != new.public:
                raise SessionError(f"key {name!r} changed during its reshare")
            await self._commit_reshared(name, key, staged)
        self._reshares.drop(name)
        self._forget_secrets(name)
        log.info("reshare committed", extra={"fields": {"event": "reshare_done", "key": name}})
        return KeyCommitted()

    async def _commit_reshared(self, name: str, key: StoredKey, staged: StagedShare) -> None:
        """Reseal with only the new share and the new committee, at the next epoch."""
        committed = replace(
            key, share=staged.share, staged=None, epoch=key.epoch + 1, nodes=staged.nodes
        )
        await self._keys.replace(name, committed)

    async def _retire(self, name: str) -> None:
        """A holder leaving the committee: its share is erased (a tombstone, as a deletion),
        with everything made with it."""
        await self._keys.erase(name)
        self._reshares.drop(name)
        self._forget_secrets(name)
        log.info("share retired", extra={"fields": {"event": "reshare_retired", "key": name}})

    async def _reshare_vouch(self, request: ReshareVouch) -> Reply:
        """A committed member of ``epoch`` vouches for its package and committee."""
        name = request.key_name
        key = await self._keys.active(name)
        if key.epoch != request.epoch:
            raise EpochMismatchError(name, key.epoch, request.epoch)
        if self._node_id not in key.nodes:
            raise SessionError(f"this node is not a recorded holder of {name!r}")
        recipient, envelopes = self._vouch_envelopes(request.participants)
        header = EnvelopeHeader(
            name,
            reshare_vouch_session_id(name, key.epoch),
            RESHARE_VOUCH_ROUND,
            self._node_id,
            recipient,
        )
        body = reshare_vouch_body(key.share.public.to_bytes(), key.nodes)
        return DkgOutbox({recipient: envelopes.seal(header, body)})

    async def _reshare_finish(self, request: ReshareFinish) -> Reply:
        """On a committed member's vouch for ``epoch``: a staged or joining member commits
        exactly the package vouched for; a holder left out of the vouched committee (the same
        public key, an older epoch) erases its share."""
        name = request.key_name
        voucher, envelopes = self._vouch_envelopes(request.participants)
        header = EnvelopeHeader(
            name,
            reshare_vouch_session_id(name, request.epoch),
            RESHARE_VOUCH_ROUND,
            "",
            self._node_id,
        )
        _, body = envelopes.open(request.inbox[0], header)
        package, nodes = open_vouch_body(body)
        if voucher not in nodes:
            raise PeerRefusedError(voucher, "not a member of the committee it vouches for")
        try:
            key = await self._keys.stored(name)
        except UnknownKeyError:
            if self._node_id not in nodes:
                return KeyCommitted()  # retired already (a retry)
            raise
        own = key.share.public.to_bytes()
        staged = key.staged
        if key.pending:
            if key.epoch != request.epoch or key.nodes != nodes:
                raise EpochMismatchError(name, key.epoch, request.epoch)
            if not hmac.compare_digest(own, package):
                raise EnvelopeError(f"{voucher} holds another epoch {request.epoch} of {name!r}")
            await self._keys.activate(name)
        elif staged is not None and staged.nodes:
            if request.epoch != key.epoch + 1 or staged.nodes != nodes:
                raise EpochMismatchError(name, key.epoch + 1, request.epoch)
            if not hmac.compare_digest(staged.share.public.to_bytes(), package):
                raise EnvelopeError(f"{voucher} holds another epoch {request.epoch} of {name!r}")
            await self._commit_reshared(name, key, staged)
        elif key.epoch == request.epoch and key.nodes == nodes:
            return KeyCommitted()  # finished already (a retry)
        elif self._node_id not in nodes and staged is None and key.epoch < request.epoch:
            self._check_same_key(name, key, package, voucher)
            await self._retire(name)
            return KeyCommitted()
        else:
            raise SessionError(f"no interrupted reshare of {name!r} to finish on this node")
        self._reshares.drop(name)
        self._forget_secrets(name)
        log.info("reshare finished", extra={"fields": {"event": "reshare_done", "key": name}})
        return KeyCommitted()

    @staticmethod
    def _check_same_key(name: str, key: StoredKey, package: bytes, voucher: str) -> None:
        """A vouched package is of this very key (the same group public key)."""
        try:
            vouched = PublicKeyPackage.from_bytes(package, key.suite.group)
        except MpcError:
            raise EnvelopeError(f"{voucher} vouched for an invalid package") from None
        if vouched.group_public_key != key.share.public.group_public_key:
            raise EnvelopeError(f"{voucher} vouched for another key named {name!r}")

    async def _reshare_abandon(self, request: ReshareAbandon) -> Reply:
        """Drop the running reshare (before any await: no confirmation can commit it any more);
        with ``discard``, also what an uncommitted reshare leaving ``epoch`` sealed here."""
        name = request.key_name
        self._reshares.drop(name)
        try:
            key = await self._keys.stored(name)
        except UnknownKeyError:
            return ReshareStatus("none", request.epoch, ())
        staged = key.staged
        if key.pending:
            if key.epoch == 0:  # a creation in progress, not a reshare
                return ReshareStatus("none", request.epoch, ())
            if request.discard and key.epoch == request.epoch + 1:
                await self._keys.erase(name)
                log.info("joining record discarded", extra={"fields": {"key": name}})
                return ReshareStatus("none", request.epoch, ())
            return ReshareStatus("joining", key.epoch, key.nodes)
        if staged is not None and staged.nodes:
            if not request.discard:
                return ReshareStatus("staged", key.epoch, key.nodes, staged.nodes)
            if key.epoch != request.epoch:
                raise EpochMismatchError(name, key.epoch, request.epoch)
            key = replace(key, staged=None)
            await self._keys.replace(name, key)
            log.info("staged reshare discarded", extra={"fields": {"key": name}})
        return ReshareStatus("committed", key.epoch, key.nodes)

    # -- repair ---------------------------------------------------------------------------

    async def _repair_start(self, request: RepairStart) -> Reply:
        """A helper: check the key, the epoch, the helpers (holders, t+1 at least, the target
        not among them) and the approvals the policy may require; deal the deltas."""
        name = request.key_name
        key = await self._keys.active(name)
        if request.epoch != key.epoch:
            raise EpochMismatchError(name, key.epoch, request.epoch)
        if not key.nodes:
            raise SessionError(f"the holders of {name!r} were never recorded: no repair")
        detail = request.target.encode()
        digest = lifecycle_digest(Operation.REPAIR, key.epoch, detail)
        self._approve(name, key, Operation.REPAIR, digest, request.approvals)
        helpers = sorted(set(request.participants) - {request.target})
        record = RepairRecord(
            key.share.public.to_bytes(),
            b"" if key.policy is None else key.policy.encode(),
            key.suite.name,
            key.nodes,
            key.epoch,
            key.state.value,
            key.delete_at,
        )
        run = KeyRepairing(
            key_name=name,
            share=key.share,
            record=record,
            session_id=request.session_id,
            me=self._node_id,
            target=request.target,
            helpers=helpers,
            box_key=self.identity.box_key,
            peer_box_keys=self._peer_box_keys(request.participants),
        )
        try:
            outbox = run.start(self._rng)
        except MpcError as error:  # too few helpers, one outside the committee...
            raise SessionError(f"repair of {name!r}: {error}") from None
        self._repairs[name, request.session_id] = run
        while len(self._repairs) > MAX_REPAIRS:
            self._repairs.popitem(last=False)
        return DkgOutbox(outbox)

    async def _repair_sum(self, request: RepairSum) -> Reply:
        run = self._repairs.pop((request.key_name, request.session_id), None)
        if run is None:
            raise SessionError(f"no running repair of {request.key_name!r} with this id")
        return DkgOutbox(run.sum(request.inbox))

    async def _repair_install(self, request: RepairInstall) -> Reply:
        """The target: one record from every helper, a share that matches its verification
        share, sealed over the lost one (never over a readable share of this epoch)."""
        name = request.key_name
        peers = self._peer_box_keys(request.participants)
        helpers = sorted(peers)
        record, sums = open_sums(
            Envelopes(self._node_id, self.identity.box_key, peers),
            key_name=name,
            session_id=request.session_id,
            me=self._node_id,
            inbox=request.inbox,
            helpers=helpers,
        )
        suite = self._suite(record.suite)
        if self._node_id not in record.nodes or not set(helpers) <= set(record.nodes):
            raise SessionError(f"the helpers' record of {name!r} does not name this node")
        if not await self._keys.lost(name, epoch=record.epoch):
            raise KeyExistsError(name)
        ids = {n: Identifier.from_int(suite.group, i) for i, n in enumerate(record.nodes, 1)}
        try:
            public = PublicKeyPackage.from_bytes(record.package, suite.group)
            share = repair_step_3(
                public,
                [ids[h] for h in helpers],
                ids[self._node_id],
                repair_session_id(request.session_id, name, record.epoch, self._node_id),
                sigma_values(sums, ids, suite.group),
            )
            state = KeyState(record.state)
        except ValueError:
            raise SessionError("the helpers' record has an unknown key state") from None
        policy = ApprovalPolicy.decode(record.policy) if record.policy else None
        repaired = StoredKey(
            share,
            policy,
            suite,
            record.nodes,
            epoch=record.epoch,
            created=int(self._clock()),
            state=state,
            delete_at=record.delete_at,
        )
        await self._keys.restore(name, repaired)
        self._forget_secrets(name)
        log.info("share repaired", extra={"fields": {"event": "repaired", "key": name}})
        return KeyCommitted()

    # -- key creation -------------------------------------------------------------------

    async def _key_create(self, request: KeyCreate) -> Reply:
        name = request.key_name
        suite = self._suite(request.suite)
        suite.check_committee(request.threshold, len(request.participants))
        if request.policy:  # a mandatory participant must hold a share, or nothing could sign
            self._require_participants(ApprovalPolicy.decode(request.policy), request.participants)
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
            # every listed signer's share is needed for the signature to verify, so a package
            # naming the mandatory participants cannot be signed without them
            self._require_participants(key.policy, self._holders(key, package.commitments))
            nonces = self._nonces.take(request.key_name, mine)
            digest = message_digest(package.message)
            self._approve(request.key_name, key, Operation.SIGN, digest, approvals)
            shares.append(frost_sign(package, nonces, key.share).to_bytes())
        return SignatureShares(tuple(shares))

    # -- threshold decryption -----------------------------------------------------------

    async def _decrypt_partial(self, request: DecryptPartial) -> Reply:
        """A partial decryption; for a key with mandatory participants, only once each of them
        (this node aside) has endorsed this exact request (:mod:`enclave.service.endorsement`),
        checked before any approval is spent."""
        key = await self._key(request.key_name, Scheme.FROST)
        digest = decryption_digest(request.ciphertext, request.context)
        gate = self._mandatory_gate(key, EndorsedOperation.DECRYPT, digest, request)
        if gate is not None and gate.endorse_only:
            self._approve(
                request.key_name, key, Operation.DECRYPT, digest, request.approvals, spend=False
            )
            ciphertext = Ciphertext.from_bytes(request.ciphertext, key.share.group)
            verify_ciphertext(ciphertext, key.share.group_public_key, request.context)
            return Endorsed(gate.endorsement(self._node_id, self.identity.node_identity))
        self._approve(request.key_name, key, Operation.DECRYPT, digest, request.approvals)
        ciphertext = Ciphertext.from_bytes(request.ciphertext, key.share.group)  # MALFORMED
        # Before any arithmetic with the share, partial_decrypt checks the encryptor's proof of
        # knowledge of the ephemeral exponent for this key and this request's context (TDH2):
        # an approval for one ciphertext cannot open another (InvalidProof -> PROTOCOL).
        partial = partial_decrypt(
            key.share, ciphertext, request.session_id, self._rng, request.context
        )
        endorsement = (
            b"" if gate is None else gate.endorsement(self._node_id, self.identity.node_identity)
        )
        return Partial(partial.to_bytes(), endorsement)

    async def _decrypt_partials(self, request: DecryptPartials) -> Reply:
        """:meth:`_decrypt_partial` for a batch, all or none: every item's approvals and its
        encryptor's proof (for its own context) are checked, and its partial computed, before
        any approval is spent; one refusal refuses the batch with that item's own error and
        nothing spent (the SDK then asks item by item, so each caller gets its own outcome).
        Each item is its own audit record (its decryption digest). A key with mandatory
        participants is refused: their endorsements are per request (:class:`DecryptPartial`).
        """
        name = request.key_name
        key = await self._key(name, Scheme.FROST)
        mandatory = () if key.policy is None else key.policy.mandatory_nodes
        if mandatory:
            for ciphertext, context in zip(request.ciphertexts, request.contexts, strict=True):
                audit_note(digest=decryption_digest(ciphertext, context), epoch=key.epoch)
            raise EndorsementError(
                mandatory[0], f"key {name!r} has mandatory participants: decrypt one at a time"
            )
        group = key.share.group
        accepted = []
        ciphertexts = []
        for ciphertext, context, approvals in zip(
            request.ciphertexts, request.contexts, request.approvals, strict=True
        ):
            digest = decryption_digest(ciphertext, context)
            accepted.append(
                self._approve(name, key, Operation.DECRYPT, digest, approvals, spend=False)
            )
            ciphertexts.append(Ciphertext.from_bytes(ciphertext, group))  # MALFORMED
        # partial_decrypt checks each encryptor's proof for its context before any arithmetic
        # with the share (InvalidProof -> PROTOCOL); nothing computed leaves unless all pass
        partials = [
            partial_decrypt(key.share, ciphertext, session_id, self._rng, context).to_bytes()
            for ciphertext, session_id, context in zip(
                ciphertexts, request.session_ids, request.contexts, strict=True
            )
        ]
        self._spent_approvals.spend_each(accepted, int(self._clock()))  # single use, all or none
        return Partials(tuple(partials))

    def _mandatory_gate(
        self,
        key: StoredKey,
        operation: EndorsedOperation,
        digest: bytes,
        request: DecryptPartial | PrfEvaluate,
    ) -> MandatoryGate | None:
        """None for a key without mandatory participants (served as before, at no cost);
        otherwise every endorsement given checked, and a node that is not mandatory refused
        while one is missing (:meth:`MandatoryGate.open`)."""
        key_name, endorsements = request.key_name, request.endorsements
        mandatory = () if key.policy is None else key.policy.mandatory_nodes
        if not mandatory:
            if endorsements:
                raise EndorsementError(
                    min(endorsements), f"key {key_name!r} has no mandatory participants"
                )
            return None
        audit_note(digest=digest, epoch=key.epoch)  # recorded even when refused below
        endorsed = EndorsedRequest(
            key_name, key.share.public.group_public_key.to_bytes(), key.epoch, operation, digest
        )
        return MandatoryGate.open(
            endorsed,
            me=self._node_id,
            mandatory=mandatory,
            endorsers=request.endorsers,
            endorsements=endorsements,
            verify_peer=self._peers.verify,
        )

    # -- threshold PRF (the XKS proxy's per-message AES keys) ---------------------------

    async def _prf_evaluate(self, request: PrfEvaluate) -> Reply:
        """Partials of the key's PRF. Encrypt mode evaluates at the one-way hash of each
        nonce; decrypt mode at seeds the caller names, so it is refused for a key whose policy
        wants approvals to decrypt (:mod:`enclave.mpc.prf`)."""
        key = await self._key(request.key_name, Scheme.FROST)
        if key.share.group is not ED25519:
            raise UnsupportedError(f"key {request.key_name!r}: the PRF is served for Ed25519 keys")
        gate = None
        if request.mode == PrfMode.DECRYPT.value:
            seeds = list(request.inputs)
            # decrypt mode opens existing ciphertexts: the key's mandatory participants must
            # have endorsed these seeds, as for a decryption; encrypt mode, like encryption,
            # opens nothing that exists and is not gated
            gate = self._mandatory_gate(
                key, EndorsedOperation.PRF_DECRYPT, prf_request_digest(seeds), request
            )
            for seed in seeds:
                self._approve(
                    request.key_name,
                    key,
                    Operation.DECRYPT,
                    prf_digest(request.key_name, seed),
                    (),
                    spend=gate is None or not gate.endorse_only,
                )
            if gate is not None and gate.endorse_only:
                return Endorsed(gate.endorsement(self._node_id, self.identity.node_identity))
        else:
            if request.endorsements:
                raise EndorsementError(min(request.endorsements), "encrypt mode is not endorsed")
            seeds = [encryption_seed(nonce) for nonce in request.inputs]
        name = request.key_name.encode()
        return PrfPartials(
            tuple(
                prf_evaluate(key.share, name, seed, request.session_id, self._rng).to_bytes()
                for seed in seeds
            ),
            b"" if gate is None else gate.endorsement(self._node_id, self.identity.node_identity),
        )

    # -- threshold ECDSA ----------------------------------------------------------------

    async def _presign_start(self, request: PresignStart, *, client: bytes) -> Reply:
        key = await self._key(request.key_name, Scheme.ECDSA)
        # exactly 2t+1 presign and every one of them signs: the set must hold the mandatory nodes
        self._require_participants(key.policy, request.participants)
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
        digests = (
            list(request.messages)  # AWS KMS MessageType DIGEST: SHA-256 done by the caller
            if request.prehashed
            else [message_digest(message) for message in request.messages]
        )
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
        return await self._keep_in_book(
            lambda book: tuple(s.node_id for s in statements if book.record(s))
        )

    async def _keep_in_book(
        self, keep: Callable[[WitnessBook], tuple[str, ...]]
    ) -> WitnessRecorded:
        """Apply ``keep`` (items already verified) to the witness book under its lock, and seal
        the book only when it changed; the reply names the nodes whose item was news."""
        book = await self._book()
        async with self._witness_lock:
            recorded = keep(book)
            if recorded:
                await self._store.put(WITNESS_BLOB, book.encode())
        return WitnessRecorded(recorded)

    async def _witness_query(self, request: WitnessQuery) -> Reply:
        """This node's record of a peer, sealed to the box key of that peer's current boot."""
        binding = self._witness_peer(request.node_id, request.document)
        book = await self._book()
        record, checkpoint = book.get(request.node_id), book.checkpoint(request.node_id)
        envelopes = Envelopes(
            self._node_id, self.identity.box_key, {request.node_id: binding.box_public_key}
        )
        header = EnvelopeHeader(
            _REPORT.key_name, _REPORT.session_id, _REPORT.round, self._node_id, request.node_id
        )
        return WitnessEnvelope(
            envelopes.seal(header, encode_report(request.node_id, record, checkpoint))
        )

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
                about, record, checkpoint = decode_report(body)
                gate.report(
                    node_id,
                    about,
                    record,
                    self._store.epoch,
                    checkpoint=checkpoint,
                    audit_resumed=self.audit.resumed_at,
                )
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

    # -- governance: policy updates -----------------------------------------------------

    async def _policy_update(self, request: PolicyUpdate) -> Reply:
        """Replace the key's policy, with approvals its CURRENT policy accepts for
        ``update-policy`` naming this update's number and the new policy; the old policy joins
        the key's history (sealed with the share)."""
        async with self._policy_lock:
            key = await self._keys.active(request.key_name)
            current = b"" if key.policy is None else key.policy.encode()
            if request.policy == current:  # a repeat of an update that applied here: no change
                return PolicyUpdated(len(key.policy_history))
            new = ApprovalPolicy.decode(request.policy) if request.policy else None
            self._require_participants(new, key.nodes)  # mandatory nodes must hold shares
            updates = len(key.policy_history)
            digest = policy_update_digest(updates, request.policy)
            self._approve(request.key_name, key, Operation.UPDATE_POLICY, digest, request.approvals)
            change = PolicyChange(current, int(self._clock()))
            updated = replace(key, policy=new, policy_history=(*key.policy_history, change))
            await self._keys.replace(request.key_name, updated)
        log.info(
            "key policy updated",
            extra={
                "fields": {"event": "policy_updated", "key": request.key_name, "n": updates + 1}
            },
        )
        return PolicyUpdated(updates + 1)

    async def _policy_show(self, request: PolicyShow) -> Reply:
        key = await self._keys.active(request.key_name)
        return PolicyHistory(
            b"" if key.policy is None else key.policy.encode(),
            tuple(c.policy for c in key.policy_history),
            tuple(c.replaced_at for c in key.policy_history),
        )

    # -- backup -------------------------------------------------------------------------

    async def _backup_share(self, request: BackupShare) -> Reply:
        """This node's share, verifiably encrypted to the request's recovery key (PVE), for a
        committed key of any scheme. The key's policy gates it — any policy, even one whose list
        predates backups (``GUARDED_OPERATIONS``) — with approvals naming this recovery key. The
        proof's label binds the key as this node holds it (name, suite, package, epoch, policy)."""
        key = await self._keys.active(request.key_name)
        digest = backup_digest(request.recovery_key)
        self._approve(request.key_name, key, Operation.BACKUP, digest, request.approvals)
        package = key.share.public.to_bytes()
        policy = b"" if key.policy is None else key.policy.encode()
        label = backup_label(request.key_name, key.suite.name, package, key.epoch, policy)
        statement = PveStatement(  # a low-order recovery key: InvalidParameters -> MALFORMED
            key.share.verifying_share, key.share.identifier, request.recovery_key, label
        )
        # about 60 ms of CPU: off the event loop, so the node keeps serving meanwhile
        encryption = await asyncio.to_thread(
            pve_encrypt, key.share.secret_share, statement, self._rng
        )
        log.info(
            "share backed up",
            extra={"fields": {"event": "backup_share", "key": request.key_name}},
        )
        return ShareBackup(int(key.share.identifier), key.epoch, package, encryption.to_bytes())

    async def _key_restore(self, request: KeyRestore) -> Reply:
        """Seal, pending, this node's share of a restored key (see :class:`KeyRestore`).

        Before anything is sealed: the package decodes and is consistent (its shares lie on one
        polynomial through its group key); this node is among ``nodes``, at the position that is
        its identifier; the backup's policy is satisfied (operation ``restore``, digest of the
        package); the sealed share opens with this boot's box key, names this key, node,
        identifier and package, and is the discrete log of this node's verification share."""
        name = request.key_name
        suite = self._suite(request.suite)
        public = PublicKeyPackage.from_bytes(request.public_key_package, suite.group)
        if len(request.nodes) != len(public.verifying_shares):
            raise SessionError("a restore names one node per verification share")
        suite.check_committee(public.threshold, len(request.nodes))
        if self._node_id not in request.nodes:
            raise PeerRefusedError(self._node_id, "this node is not among the restored holders")
        identifier = public.identifiers[request.nodes.index(self._node_id)]
        policy = ApprovalPolicy.decode(request.policy) if request.policy else None
        audit_note(digest=restore_digest(request.public_key_package))
        accepted = check_approvals(
            policy,
            request.approvals,
            key_name=name,
            group_public_key=public.group_public_key.to_bytes(),
            operation=Operation.RESTORE,
            digest=restore_digest(request.public_key_package),
            now=int(self._clock()),
        )
        audit_note(approvers=tuple(a.approver for a in accepted))
        share = self._open_restored_share(request, int(identifier))
        key_share = KeyShare(identifier, suite.group.decode_scalar(share.share), public)
        self._creations.reserve(name)  # no DKG of this name meanwhile
        try:
            now = int(self._clock())
            stored = StoredKey(key_share, policy, suite, request.nodes, pending=True, created=now)
            await self._keys.save(name, stored, now=now)  # KeyExistsError for a taken name
        finally:
            self._creations.release(name)
        self._restoring.add(name)
        log.info("key restored, pending", extra={"fields": {"event": "restore", "key": name}})
        return KeyRestored()

    def _open_restored_share(self, request: KeyRestore, identifier: int) -> RestoredShare:
        try:
            plaintext = SealedBox(self.identity.box_key).decrypt(request.share)
        except CryptoError:
            raise EnvelopeError("the restored share is not sealed to this boot's box key") from None
        share = RestoredShare.decode(plaintext)
        expected = (
            request.key_name,
            self._node_id,
            identifier,
            RestoredShare.package_digest(request.public_key_package),
        )
        if (share.key_name, share.node_id, share.identifier, share.package_sha256) != expected:
            raise EnvelopeError("the restored share is addressed to another key, node or package")
        return share

    async def _restore_commit(self, request: RestoreCommit) -> Reply:
        """Commit a key this boot sealed pending by ``key_restore``. A pending restore this boot
        did not make (before a restart, or a DKG's) is refused: it expires as any pending key."""
        if request.key_name not in self._restoring:
            raise SessionError("no key restore of this name is pending on this boot")
        await self._keys.activate(request.key_name)
        self._restoring.discard(request.key_name)
        log.info(
            "key restored", extra={"fields": {"event": "restore_done", "key": request.key_name}}
        )
        return KeyCommitted()

    # -- BIP-340 (BIP-445) ----------------------------------------------------------------

    async def _bip340_nonce_commit(self, request: Bip340NonceCommit) -> Reply:
        """Nonce pairs in chunks of :data:`NONCE_CHUNK`, yielding between them."""
        key = await self._key(request.key_name, Scheme.BIP340)
        published: list[bytes] = []
        while len(published) < request.count:
            chunk = min(NONCE_CHUNK, request.count - len(published))
            published += self._bip340_nonces.preprocess(
                request.key_name, key.share, chunk, self._rng
            )
            if len(published) < request.count:
                await asyncio.sleep(0)
        return NonceCommitments(tuple(published))

    async def _bip340_sign(self, request: Bip340Sign) -> Reply:
        """Each item's nonce of this node is taken out BEFORE any other check (single use,
        whatever follows); then approvals (naming the tweaked x-only key), then BIP-445 Sign."""
        key = await self._key(request.key_name, Scheme.BIP340)
        me = int(key.share.identifier)
        if me not in request.signers:
            raise SessionError("this node is not among the signers")
        # as a FROST package: the signature needs every listed signer's share, so a set naming
        # the mandatory participants cannot be signed without them (checked before any nonce
        # of this node is taken)
        self._require_participants(key.policy, self._holders(key, request.signers))
        position = request.signers.index(me)
        secnonces = [
            self._bip340_nonces.take(request.key_name, nonces[position])
            for nonces in request.pubnonces
        ]
        tweaks = decode_tweaks(request.tweaks)
        signing_key = output_key(key.share, tweaks)
        digests = [message_digest(message) for message in request.messages]
        for digest, approvals in zip(digests, request.approvals, strict=True):
            self._approve(
                request.key_name,
                key,
                Operation.SIGN,
                digest,
                approvals,
                group_public_key=signing_key,
            )
        shares = [
            sign_item(
                key.share,
                secnonce,
                signers=request.signers,
                pubnonces=nonces,
                tweaks=tweaks,
                message=message,
            )
            for secnonce, nonces, message in zip(
                secnonces, request.pubnonces, request.messages, strict=True
            )
        ]
        return SignatureShares(tuple(shares))

    # -- audit receipts -------------------------------------------------------------------

    async def _audit_receipts(self, request: AuditReceipts, *, client: bytes) -> Reply:
        """This client's signed records of successful requests with these digests (another
        client's are never shown: the records name who asked)."""
        found = self.audit.receipts(client, request.digests)[-4 * MAX_AUDIT_RECEIPTS :]  # newest
        return AuditReceiptsReply(tuple(r.body for r in found), tuple(r.signature for r in found))

    # -- audit checkpoints peers witness (wire.checkpoints) ---------------------------------

    async def _audit_head(self, request: AuditHead) -> Reply:
        """This node's identity-signed audit checkpoint: the head of what its parent took,
        once what is pending was handed over. Served only once this boot is witnessed, so that
        a checkpoint shown to a pending boot is always of an earlier one (the rollback check
        of :class:`~enclave.service.witness.WitnessGate`). A record the parent has not acknowledged is
        never vouched for: a crash could still lose it, and the witnessed checkpoint would
        then accuse an honest parent of cutting the log."""
        await self.audit.flush()  # False when the parent takes nothing now: the older head
        stored = self.audit.stored_head
        if stored is None:
            return SignedCheckpoint(b"")
        node = self.identity.node_identity
        checkpoint = AuditCheckpoint.make(
            self._node_id, *stored, sign=node.sign, identity_public_key=node.public_key
        )
        return SignedCheckpoint(checkpoint.encode())

    async def _checkpoint_record(self, request: CheckpointRecord) -> Reply:
        """Keep each peer's audit checkpoint if it is higher than the one held; every one is
        checked against the identity key its peer's document binds before any is kept."""
        checkpoints = []
        for node_id, document in sorted(request.documents.items()):
            identity = self._witness_peer(node_id, document).identity_public_key
            checkpoint = AuditCheckpoint.decode(request.checkpoints[node_id])
            if checkpoint.node_id != node_id:
                raise WitnessError(f"the checkpoint filed for {node_id} is {checkpoint.node_id}'s")
            try:
                checkpoint.verify(identity)
            except IdentitySignatureError:
                raise WitnessError(
                    f"the audit checkpoint of {node_id} is not signed by the identity key its "
                    "document binds"
                ) from None
            checkpoints.append(checkpoint)
        return await self._keep_in_book(
            lambda book: tuple(c.node_id for c in checkpoints if book.record_checkpoint(c))
        )

    async def _checkpoint_query(self, request: CheckpointQuery) -> Reply:
        """The highest audit checkpoint of a peer this node keeps, signed by this node's
        identity key for an auditor to check offline (empty: none kept)."""
        if request.node_id == self._node_id:
            raise WitnessError("a node is not its own witness")
        held = (await self._book()).checkpoint(request.node_id)
        if held is None:
            return WitnessedCheckpointReply(b"")
        node = self.identity.node_identity
        witnessed = WitnessedCheckpoint.make(
            self._node_id, held, sign=node.sign, identity_public_key=node.public_key
        )
        return WitnessedCheckpointReply(witnessed.encode())
