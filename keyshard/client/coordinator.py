"""The coordinator: drives key creation, signing and decryption across a cluster's nodes.

The coordinator is untrusted by the enclaves: it relays DKG and presigning envelopes it cannot
open, chooses signers, and combines what nodes return. Everything it combines is verified: FROST
aggregation checks every signature share and the final signature (naming a cheating node),
threshold decryption checks every partial's DLEQ proof, ECDSA signatures are verified before
they are returned, and a key's description is accepted only when every answering holder (at
least t+1) reports the same.

What it does to keep round trips few:

* a key's description is fetched once and cached (per epoch; dropped when a node's answer shows
  it is stale);
* FROST nonces are preprocessed in batches (``nonce_commit``): a signature is then ONE request
  per signer, and a batch of messages one request per signer too (:meth:`sign_many`);
* ECDSA presignatures are made in batches among 2t+1 holders and pooled per key, so an ECDSA
  signature is one request per presigner;
* signers are chosen among reachable holders by load (fewest requests in flight), not by order;
  a key's mandatory participants are always chosen, and asked first where the other nodes need
  their endorsement (decryption, the PRF's decrypt mode: :mod:`keyshard.client.mandatory`).

Failures: a channel that breaks is dropped and the next call reconnects (re-attesting the node).
An operation is retried once, on other signers or fresh nonces, only where that is safe — reads,
signing with FROST nonces or presignatures the failed attempt already spent, decryption — never
key creation. Nodes are reached through a :data:`Connector`, so tests run this class against
in-process nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nacl.public import PublicKey, SealedBox
from nacl.public import PublicKey as BoxPublicKey

from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import Ciphertext, encrypt, verify_ciphertext
from enclave.mpc.decryption.partial import PartialDecryption
from enclave.mpc.ecdsa import EcdsaSignature, PresignatureInfo, SigningRequest
from enclave.mpc.ecdsa import SignatureShare as EcdsaSignatureShare
from enclave.mpc.ecdsa import combine as combine_ecdsa
from enclave.mpc.errors import MpcError, ProtocolAbort, SecretError
from enclave.mpc.frost import bip340
from enclave.mpc.frost.aggregate import aggregate, verify_signature_share
from enclave.mpc.frost.round1 import PREPROCESSED_SESSION_ID, SigningCommitments
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage
from enclave.mpc.groups import ED25519
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.prf import (
    NONCE_LENGTH,
    SEED_LENGTH,
    PrfMode,
    PrfPartial,
    encryption_seed,
    output_key,
)
from enclave.mpc.prf import combine as combine_prf
from enclave.mpc.shamir import split_secret
from enclave.mpc.suites import Scheme, key_suite
from keyshard.client.backup import Backup, EncryptedShare
from keyshard.client.batching import Coalescer
from keyshard.client.bip340 import core_tweaks
from keyshard.client.custody import ExportBundle, PrivateKey
from keyshard.client.errors import (
    BackupError,
    BindingError,
    ChannelError,
    ClientError,
    InvalidInputError,
    KeyNotFoundError,
    ProtocolError,
    RemoteError,
    UnavailableError,
)
from keyshard.client.keys import KeyDescription
from keyshard.client.mandatory import endorsed_answers, require_all
from keyshard.client.offline import (
    ECDSA,
    STAGE_ROUNDS,
    CommitmentsFile,
    EcdsaPackage,
    PackageFile,
    PartialFile,
    PresignatureDescription,
    PresignRunFile,
    WitnessReportsFile,
    WitnessRequestFile,
    package_digest,
)
from keyshard.client.witnessing import WitnessRelay
from wire.approvals import ApprovalPolicy, message_digest
from wire.backup import RestoredShare
from wire.binding import ChannelBinding
from wire.custody import encode_import_share
from wire.errors import ErrorCode, MalformedMessageError
from wire.messages import (
    KEY_ACTIONS,
    MAX_BATCH,
    MAX_FRAME,
    MAX_PRESIGN_BATCH,
    BackupShare,
    Bip340NonceCommit,
    Bip340Sign,
    DecryptPartial,
    DecryptPartials,
    DkgOutbox,
    DkgStep,
    EcdsaSign,
    ExportedShare,
    FrostSign,
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
    WitnessCheck,
    WitnessEnvelope,
    WitnessQuery,
    WitnessVerdict,
    presign_batch_session_id,
)

__all__ = ["Connector", "Coordinator", "KeyDescription", "Link"]

DKG_ROUNDS = 3
PRESIGN_ROUNDS = 3
#: Peers refuse documents older than their image's maximum age (300 s by default): channels older
#: than this are reopened before a key creation or presigning, so the relayed documents are fresh.
DOCUMENT_REFRESH_SECONDS = 60.0
#: FROST nonce commitments fetched per node and key at once.
NONCE_BATCH = 64
#: Presignatures made per presigning run when the pool is empty.
PRESIGN_BATCH = 16
#: Presignatures one ``offline_presign`` makes for an offline holder (half a client's quota on
#: each presigner, so its online signing keeps room).
MAX_OFFLINE_PRESIGNATURES = 256
#: A node that could not be reached is skipped for this long when choosing signers.
DOWN_SECONDS = 5.0

_T = TypeVar("_T")
_R = TypeVar("_R", bound=Reply)


class Link(Protocol):
    """An attested channel to one node (:class:`~keyshard.client.channel.NodeChannel`)."""

    node_id: str
    document: bytes
    binding: ChannelBinding
    opened_at: float

    @property
    def broken(self) -> bool: ...
    async def request(self, message: Request, *, timeout: float = 60.0) -> Reply: ...
    async def retire(self) -> None: ...
    async def close(self) -> None: ...


#: Opens a verified link to a node id (raising :class:`ChannelError` when it cannot).
Connector = Callable[[str], Awaitable[Link]]


class _OsRandom:
    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


_ITEM_CODES = frozenset(
    {
        ErrorCode.APPROVAL_MISMATCH,
        ErrorCode.APPROVAL_UNLISTED,
        ErrorCode.APPROVAL_EXPIRED,
        ErrorCode.APPROVAL_SIGNATURE,
        ErrorCode.QUORUM_NOT_MET,
        ErrorCode.MALFORMED,
    }
)


def _unavailable(
    message: str, failures: Mapping[str, ChannelError], *, have: int, need: int
) -> ClientError:
    """Too few nodes: with every node's reason. An attestation refusal is a security failure,
    not an outage: when nothing could be reached and some node's attestation was refused, that
    :class:`BindingError` is the error."""
    refused = [e for e in failures.values() if isinstance(e, BindingError)]
    if have == 0 and refused:
        return refused[0]
    reasons = "; ".join(f"{n}: {e.reason}" for n, e in sorted(failures.items()))
    return UnavailableError(f"{message} ({reasons})" if reasons else message, have=have, need=need)


#: One signature request: the message and its approvals.
_Item = tuple[bytes, tuple[bytes, ...]]
_K = TypeVar("_K")


def _per_message(
    messages: Sequence[bytes], approvals: Sequence[Sequence[bytes]] | None
) -> list[tuple[bytes, ...]]:
    """One tuple of approvals per message (none given: none for each)."""
    if approvals is None:
        return [()] * len(messages)
    if len(approvals) != len(messages):
        raise InvalidInputError("approvals must hold one list per message")
    return [tuple(a) for a in approvals]


def _unzip(items: list[_Item]) -> tuple[list[bytes], list[tuple[bytes, ...]]]:
    return [message for message, _ in items], [approvals for _, approvals in items]


def _coalesced(
    table: dict[_K, Coalescer[_Item, _T]],
    slot: _K,
    run: Callable[[list[_Item]], Awaitable[Sequence[_T]]],
) -> Coalescer[_Item, _T]:
    """The coalescer of ``slot`` (one per key, or key and path), made on first use."""
    coalescer = table.get(slot)
    if coalescer is None:
        coalescer = table[slot] = Coalescer(run, max_items=MAX_BATCH, isolate=_item_error)
    return coalescer


def _item_error(error: BaseException) -> bool:
    """Whether a failed batch may have failed for one item only (then each is tried alone)."""
    return isinstance(error, RemoteError) and error.error_code in _ITEM_CODES


#: One coalesced decryption: the ciphertext as sent, as parsed (and checked) here, its context.
_DecryptItem = tuple[bytes, Ciphertext, bytes]
#: A ciphertext with its context coalesced with others at most this long: a full batch then
#: fits one frame (:data:`MAX_FRAME`) with room to spare; a longer one goes alone.
_MAX_COALESCED_DECRYPTION = MAX_FRAME // (2 * MAX_BATCH)


def _decrypt_item_error(error: BaseException) -> bool:
    """As :func:`_item_error`, and a refused proof: a node that refuses one item's proof (which
    this client checked first) must not cost the batch's other callers their answers."""
    if isinstance(error, RemoteError) and error.error_code is ErrorCode.PROTOCOL:
        return True
    return _item_error(error)


def _opened(
    key: KeyDescription,
    parsed: Ciphertext,
    partials: Mapping[str, bytes],
    session_id: bytes,
    associated_data: bytes,
) -> bytes:
    """Every node's partial checked by its DLEQ proof (:func:`combine`), then the plaintext;
    a partial that does not verify names its node."""
    name = key.name
    try:
        parsed_partials = {
            key.identifier(n): PartialDecryption.from_bytes(partial, key.public.group)
            for n, partial in partials.items()
        }
        return combine(key.public, parsed, parsed_partials, session_id, associated_data)
    except SecretError:
        raise InvalidInputError(_UNDECRYPTABLE) from None
    except ProtocolAbort as error:
        raise ProtocolError(
            f"decryption of {name!r} refused: {error}", culprit=_culprits(key, error)
        ) from None
    except MpcError as error:
        raise ProtocolError(f"decryption of {name!r} refused: {error}") from None


_UNDECRYPTABLE = "the ciphertext does not decrypt: wrong context, or altered or truncated"


def _mandatory(key: KeyDescription) -> tuple[str, ...]:
    """The key's mandatory participants (issue 11): in every signing and decryption set."""
    return () if key.policy is None else key.policy.mandatory_nodes


def _culprits(key: KeyDescription, error: ProtocolAbort) -> str | None:
    names = sorted(key.node_of(c) for c in error.culprits if int(c) in key.holders.values())
    return ", ".join(names) or None


class Coordinator:
    """Use as ``async with Coordinator(...) as c:`` — links are opened lazily, closed at exit."""

    def __init__(self, node_ids: Iterable[str], connect: Connector) -> None:
        self._node_ids = sorted(set(node_ids))
        self._connect = connect
        self._links: dict[str, Link] = {}
        self._opening: dict[str, asyncio.Lock] = {}
        self._load: dict[str, int] = dict.fromkeys(self._node_ids, 0)
        self._down_until: dict[str, float] = {}
        self._keys: dict[str, KeyDescription] = {}
        self._nonces: dict[tuple[str, str], deque[SigningCommitments]] = {}
        self._nonce_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._refills: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._presign_refills: dict[str, asyncio.Task[None]] = {}
        self._presignatures: dict[str, deque[PresignatureInfo]] = {}
        self._presign_locks: dict[str, asyncio.Lock] = {}
        self._bip340_nonces: dict[tuple[str, str], deque[bytes]] = {}
        self._rng = _OsRandom()
        self._frost_batches: dict[str, Coalescer[_Item, bytes]] = {}
        self._ecdsa_batches: dict[tuple[str, str, bool], Coalescer[_Item, EcdsaSignature]] = {}
        self._decrypt_batches: dict[str, Coalescer[_DecryptItem, bytes | ClientError]] = {}
        self._witnesses = WitnessRelay(self._node_ids, self._call, self._fresh_link)

    async def __aenter__(self) -> Coordinator:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        refills = [*self._refills.values(), *self._presign_refills.values()]
        for refill in refills:
            refill.cancel()
        await asyncio.gather(*refills, return_exceptions=True)
        links, self._links = self._links, {}
        await asyncio.gather(*(link.close() for link in links.values()))

    @property
    def node_ids(self) -> list[str]:
        return list(self._node_ids)

    # -- links ----------------------------------------------------------------------------

    async def link(self, node_id: str) -> Link:
        """The verified link to ``node_id``, (re)connecting when there is none or it broke."""
        if node_id not in self._load:
            raise InvalidInputError(f"unknown node {node_id!r}")
        link = self._links.get(node_id)
        if link is not None and not link.broken:
            return link
        async with self._opening.setdefault(node_id, asyncio.Lock()):
            link = self._links.get(node_id)
            if link is not None and not link.broken:
                return link
            if link is not None:
                await self.forget(node_id)
            try:
                link = self._links[node_id] = await self._connect(node_id)
            except ChannelError:
                self._down_until[node_id] = time.monotonic() + DOWN_SECONDS
                raise
            self._down_until.pop(node_id, None)
            return link

    async def forget(self, node_id: str) -> None:
        """Drop a node's link and whatever it held for us (its nonces die with its boot)."""
        link = self._links.pop(node_id, None)
        for slot in [s for s in self._nonces if s[1] == node_id]:
            del self._nonces[slot]
        for slot in [s for s in self._bip340_nonces if s[1] == node_id]:
            del self._bip340_nonces[slot]
        if link is not None:
            await link.close()

    async def _call(self, node_id: str, request: Request, expected: type[_R]) -> _R:
        """One request to one node. A node that booted since it was last shown its peers'
        witness reports answers ``unwitnessed`` (before it does anything): it is shown them
        and asked again."""
        try:
            return await self._request(node_id, request, expected)
        except RemoteError as error:
            if error.error_code is not ErrorCode.UNWITNESSED:
                raise
        await self._witnesses.check(node_id)
        return await self._request(node_id, request, expected)

    async def _request(self, node_id: str, request: Request, expected: type[_R]) -> _R:
        link = await self.link(node_id)
        self._load[node_id] += 1
        try:
            reply = await link.request(request)
        except ChannelError:
            await self.forget(node_id)
            raise
        finally:
            self._load[node_id] -= 1
        if not isinstance(reply, expected):
            raise ProtocolError(f"{node_id} answered {request.OP} with {reply.OP}", culprit=node_id)
        return reply

    async def _retry_once(self, name: str, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``attempt``; after a broken channel or spent nonces, forget what the failure
        showed to be stale and run it once more (callers only pass attempts safe to repeat)."""
        try:
            return await attempt()
        except ChannelError as error:
            self._drop_key_state(name, error.node_id)
        except RemoteError as error:
            if error.error_code not in (ErrorCode.NONCE_UNKNOWN, ErrorCode.BUSY):
                raise
            self._drop_key_state(name, error.node_id)
            if error.error_code is ErrorCode.NONCE_UNKNOWN:
                await self._check_epoch(name)
        return await attempt()

    async def _check_epoch(self, name: str) -> None:
        """After spent nonces: a refresh (by any client) destroys every nonce and presignature
        of the old epoch on every holder, so when the key moved to another epoch, everything
        held for it is dropped with its description."""
        stale = self._keys.pop(name, None)
        if stale is None:
            return
        try:
            fresh = await self.describe_key(name)
        except ClientError:
            fresh = None
        if fresh is None or fresh.epoch != stale.epoch:
            self._drop_key_state(name)

    def _drop_key_state(self, name: str, node_id: str | None = None) -> None:
        """Forget ``name``'s nonces held for ``node_id`` (every node's when None) and its pooled
        presignatures (any presigner may be the one that lost them)."""
        for slot in [s for s in self._nonces if s[0] == name and node_id in (None, s[1])]:
            del self._nonces[slot]
        for slot in [s for s in self._bip340_nonces if s[0] == name and node_id in (None, s[1])]:
            del self._bip340_nonces[slot]
        self._presignatures.pop(name, None)

    async def _choose(
        self,
        key: KeyDescription,
        needed: int,
        explicit: Sequence[str] | None,
        *,
        with_mandatory: bool = True,
    ) -> list[str]:
        """``needed`` holders with a working link: the least loaded first (ties at random).

        The key's mandatory participants come first; one that cannot be reached ends the choice
        (:class:`UnavailableError` naming it), unless ``with_mandatory`` is off (an operation
        they need not take part in: a repair, a PRF evaluation for encryption). An explicit set
        is taken as given: the nodes themselves refuse one without the mandatory nodes."""
        if explicit is not None:
            unknown = [n for n in explicit if n not in key.holders]
            if unknown:
                raise InvalidInputError(f"not holders of {key.name!r}: {', '.join(unknown)}")
            if len(set(explicit)) != needed:
                raise InvalidInputError(
                    f"{key.suite.name} signs with exactly {needed} distinct nodes"
                )
            for node_id in explicit:
                await self.link(node_id)
            return sorted(set(explicit))
        now = time.monotonic()
        mandatory = _mandatory(key)
        candidates = sorted(
            key.holders,
            key=lambda n: (
                n not in mandatory,  # the policy's mandatory participants first, always
                self._down_until.get(n, 0.0) > now,
                self._load[n],
                random.random(),  # noqa: S311 -- load spreading, not security
            ),
        )
        chosen: list[str] = []
        failures: dict[str, ChannelError] = {}
        for node_id in candidates:
            if len(chosen) == needed:
                break
            try:
                await self.link(node_id)
            except ChannelError as error:
                failures[node_id] = error
                continue
            chosen.append(node_id)
        down = [n for n in mandatory if n in failures]
        if with_mandatory and down:
            raise UnavailableError(
                f"{', '.join(down)}, mandatory participant(s) of {key.name!r}, unreachable ("
                + "; ".join(f"{n}: {failures[n].reason}" for n in down)
                + "): no quorum without them",
                have=len(chosen),
                need=needed,
            )
        if len(chosen) < needed:
            raise _unavailable(
                f"{len(chosen)} holder(s) of {key.name!r} reachable; {needed} needed",
                failures,
                have=len(chosen),
                need=needed,
            )
        return sorted(chosen)

    async def _reachable(self, node_ids: Iterable[str]) -> list[str]:
        """The nodes a link opens to; none at all is :class:`UnavailableError` with each
        node's reason (or the :class:`BindingError` itself when attestation was refused)."""
        ids = list(node_ids)
        results = await asyncio.gather(*(self.link(i) for i in ids), return_exceptions=True)
        reachable = []
        failures: dict[str, ChannelError] = {}
        for node_id, result in zip(ids, results, strict=True):
            if isinstance(result, ChannelError):
                failures[node_id] = result
                continue
            if isinstance(result, BaseException):
                raise result
            reachable.append(node_id)
        if not reachable:
            raise _unavailable("no node is reachable", failures, have=0, need=1)
        return reachable

    async def _fresh(self, node_ids: Sequence[str]) -> dict[str, Link]:
        """Links whose documents are fresh enough to be relayed to peers."""
        for node_id in node_ids:
            link = self._links.get(node_id)
            if link is not None and time.monotonic() - link.opened_at > DOCUMENT_REFRESH_SECONDS:
                del self._links[node_id]  # new requests go to a new channel; its own requests
                await link.retire()  # in flight still get their answers
        links = await asyncio.gather(*(self.link(i) for i in node_ids))
        return dict(zip(node_ids, links, strict=True))

    async def _fresh_link(self, node_id: str) -> Link:
        return (await self._fresh([node_id]))[node_id]

    async def _documents(self, node_ids: Sequence[str]) -> dict[str, bytes]:
        """The documents of fresh links to ``node_ids`` (to relay to their peers)."""
        return {n: link.document for n, link in (await self._fresh(list(node_ids))).items()}

    # -- key creation ---------------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        *,
        suite: str = "ed25519",
        threshold: int | None = None,
        nodes: Sequence[str] | None = None,
        policy: ApprovalPolicy | None = None,
        exportable: bool = False,
    ) -> KeyDescription:
        """Run a DKG among ``nodes`` (default: every node). ``threshold`` is the polynomial degree
        t (t+1 nodes sign; 2t+1 for ECDSA); default: the largest t the suite allows on n nodes
        with a majority signing. ``policy``: approvals the nodes will require, fixed for the
        key's life (bound into the DKG, sealed with each share). ``exportable``: the policy's
        quorum may export the key (:meth:`export_key`; only with a policy, never by default).
        Never retried: a failed
        creation leaves nothing sealed, and the caller may simply run it again.
        """
        try:
            kind = key_suite(suite)
        except MpcError as error:
            raise InvalidInputError(str(error)) from None
        participants = sorted(nodes or self._node_ids)
        n = len(participants)
        t = (n - 1) // 2 if threshold is None else threshold
        try:
            kind.check_committee(t, n)
        except MpcError as error:
            raise InvalidInputError(str(error)) from None
        encoded_policy = b"" if policy is None else policy.encode()
        if exportable and policy is None:
            raise InvalidInputError("only a key with an approval policy can be exportable")
        links = await self._fresh(participants)
        documents = {i: link.document for i, link in links.items()}
        session_id = os.urandom(32)
        request = KeyCreate(
            name, kind.name, t, session_id, documents, encoded_policy, exportable=exportable
        )
        replies = await asyncio.gather(*(self._call(i, request, DkgOutbox) for i in participants))
        outboxes = {i: reply.outbox for i, reply in zip(participants, replies, strict=True)}
        answers: list[Reply] = []
        for round_ in range(1, DKG_ROUNDS + 1):
            inboxes = self._route(outboxes, participants, f"DKG round {round_}")
            answers = list(
                await asyncio.gather(
                    *(self._call(i, DkgStep(name, tuple(inboxes[i])), Reply) for i in participants)
                )
            )
            if round_ < DKG_ROUNDS:
                outboxes = {}
                for i, answer in zip(participants, answers, strict=True):
                    if not isinstance(answer, DkgOutbox):
                        raise ProtocolError(f"{i} finished the DKG early", culprit=i)
                    outboxes[i] = answer.outbox
        packages = set()
        acknowledgements: dict[str, Mapping[str, bytes]] = {}
        for i, answer in zip(participants, answers, strict=True):
            if not isinstance(answer, KeyCreated):
                raise ProtocolError(f"{i} did not finish the DKG", culprit=i)
            packages.add(answer.public_key_package)
            acknowledgements[i] = answer.outbox
        if len(packages) != 1:
            raise ProtocolError("the nodes finished with different public keys")
        # Second phase: every node sealed its share pending; each commits only on every peer's
        # acknowledgement that it sealed the same key.
        inboxes = self._route(acknowledgements, participants, "sealed-key acknowledgement")
        await asyncio.gather(
            *(self._call(i, KeyCommit(name, tuple(inboxes[i])), KeyCommitted) for i in participants)
        )
        # The holders' sealed state changed: their peers witness it, so that none of them can
        # later be handed state without this key and serve from it.
        await self._witnesses.record(participants)
        public = PublicKeyPackage.from_bytes(packages.pop(), kind.group)
        key = KeyDescription(
            name,
            kind,
            public,
            {i: k for k, i in enumerate(participants, start=1)},
            policy,
            exportable=exportable,
        )
        self._keys[name] = key
        return key

    @staticmethod
    def _route(
        outboxes: Mapping[str, Mapping[str, bytes]], parties: Sequence[str], what: str
    ) -> dict[str, list[bytes]]:
        """Each party's inbox: one envelope from every other party (an outbox must address
        exactly the other parties)."""
        for sender, outbox in outboxes.items():
            if set(outbox) != set(parties) - {sender}:
                raise ProtocolError(f"{sender}'s {what} outbox is misaddressed", culprit=sender)
        return {i: [outboxes[s][i] for s in parties if s != i] for i in parties}

    # -- key description ------------------------------------------------------------------

    async def describe_key(self, name: str, *, refresh: bool = False) -> KeyDescription:
        """The key as its reachable holders report it (cached; ``refresh`` asks again): at least
        t+1 must answer, all must agree, and each must sit at its recorded position."""
        if not refresh and name in self._keys:
            return self._keys[name]
        return await self._retry_once(name, lambda: self._describe(name))

    async def _describe(self, name: str) -> KeyDescription:
        reachable = await self._reachable(self._node_ids)
        results = await asyncio.gather(
            *(self._call(i, KeyInfo(name), KeyInfoReply) for i in reachable),
            return_exceptions=True,
        )
        answers, lacking = self._answers(reachable, results)
        if not answers:
            raise KeyNotFoundError(name)
        # One epoch only (an interrupted refresh leaves holders at two): the newest that t+1
        # holders report, else the newest. Holders at the other are described, never chosen.
        newest = self._usable_epoch(answers)
        lagging = tuple(sorted(n for n, a in answers.items() if a.epoch != newest))
        answers = {n: a for n, a in answers.items() if a.epoch == newest}
        views = {
            (a.suite, a.public_key_package, a.policy, a.nodes, a.epoch, a.exportable, a.imported)
            for a in answers.values()
        }
        if len(views) != 1:
            raise ProtocolError(f"nodes disagree about key {name!r}")
        first = next(iter(answers.values()))
        try:
            kind = key_suite(first.suite)
            public = PublicKeyPackage.from_bytes(first.public_key_package, kind.group)
            policy = ApprovalPolicy.decode(first.policy) if first.policy else None
        except (MpcError, MalformedMessageError) as error:
            raise ProtocolError(
                f"the nodes describe key {name!r} in a way this client refuses: {error}"
            ) from None
        if len(answers) < public.threshold + 1:
            finish = (
                f" (run `keyshard key refresh {name}` to finish its refresh)" if lagging else ""
            )
            raise UnavailableError(
                f"only {len(answers)} holder(s) of {name!r} answered at epoch {newest}; "
                f"{public.threshold + 1} must agree{finish}",
                have=len(answers),
                need=public.threshold + 1,
            )
        holders = {node_id: a.identifier for node_id, a in answers.items()}
        if first.nodes:  # recorded holders: each answers at its own position, the rest are known
            positions = {node_id: index for index, node_id in enumerate(first.nodes, start=1)}
            for node_id, index in holders.items():
                if positions.get(node_id) != index:
                    raise ProtocolError(
                        f"{node_id} claims party {index} of {name!r}", culprit=node_id
                    )
            holders = positions
        elif len(set(holders.values())) != len(holders):
            raise ProtocolError(f"two nodes claim the same identifier for {name!r}")
        # A recorded holder that answers it has no such key lost its share (deleted or rolled-back
        # state): reported, and never chosen to sign.
        missing = tuple(n for n in first.nodes if n in lacking)
        holders = {
            n: i
            for n, i in holders.items()
            if n in self._load and n not in missing and n not in lagging
        }
        states = {n: (a.state, a.delete_at) for n, a in answers.items()}
        key = KeyDescription(
            name,
            kind,
            public,
            holders,
            policy,
            first.epoch,
            missing,
            states,
            lagging,
            exportable=first.exportable,
            exported=any(a.exported for a in answers.values()),
            imported=first.imported,
        )
        self._keys[name] = key
        return key

    @staticmethod
    def _usable_epoch(answers: Mapping[str, KeyInfoReply]) -> int:
        """The newest epoch at least t+1 answers report (t as those answers' package says);
        the newest of all when none has t+1."""
        epochs = sorted({a.epoch for a in answers.values()}, reverse=True)
        for epoch in epochs:
            at = [a for a in answers.values() if a.epoch == epoch]
            try:
                group = key_suite(at[0].suite).group
                threshold = PublicKeyPackage.from_bytes(at[0].public_key_package, group).threshold
            except MpcError:
                continue  # refused below, with the whole description
            if len(at) >= threshold + 1:
                return epoch
        return epochs[0]

    @staticmethod
    def _answers(
        node_ids: Sequence[str], results: Sequence[KeyInfoReply | BaseException]
    ) -> tuple[dict[str, KeyInfoReply], set[str]]:
        """The holders' answers, and the reachable nodes that refused to describe the key (no
        such key, pending, or their state is broken); a node out of reach is neither."""
        answers: dict[str, KeyInfoReply] = {}
        lacking: set[str] = set()
        for node_id, result in zip(node_ids, results, strict=True):
            if isinstance(result, RemoteError):
                # no such key, a pending one, or a node that cannot read its own state (e.g. a
                # deleted sealed blob): not an answer; the other holders' answers decide
                lacking.add(node_id)
                continue
            if isinstance(result, ChannelError):
                continue
            if isinstance(result, BaseException):
                raise result
            answers[node_id] = result
        return answers, lacking

    async def list_keys(self) -> list[str]:
        """The names of the keys any reachable node holds."""
        reachable = await self._reachable(self._node_ids)
        replies = await asyncio.gather(
            *(self._call(i, KeyList(), KeyListReply) for i in reachable), return_exceptions=True
        )
        answers = [r for r in replies if isinstance(r, KeyListReply)]
        for reply in replies:
            if isinstance(reply, BaseException) and not isinstance(
                reply, ChannelError | RemoteError
            ):
                raise reply
        if not answers:  # every reachable node refused: say why (the first refusal)
            raise next(r for r in replies if isinstance(r, BaseException))
        return sorted({name for reply in answers for name in reply.names})

    # -- governance: policy updates ----------------------------------------------------------

    async def update_policy(
        self, name: str, policy: ApprovalPolicy | None, *, approvals: Sequence[bytes] = ()
    ) -> KeyDescription:
        """Replace ``name``'s approval policy on every holder, with approvals its CURRENT policy
        accepts for ``update-policy`` (each node checks them itself). A holder out of reach
        fails the call after the others changed: run it again with the same approvals (a node
        already under the new policy answers without change)."""
        key = await self.describe_key(name, refresh=True)
        try:
            request = PolicyUpdate(
                name, b"" if policy is None else policy.encode(), tuple(approvals)
            )
        except MalformedMessageError as error:
            raise InvalidInputError(str(error)) from None
        await self._change_every_holder(key, request, PolicyUpdated, f"the policy of {name!r}")
        return await self.describe_key(name, refresh=True)

    async def policy_history(self, name: str) -> PolicyHistory:
        """The key's policies, as its reachable holders (at least t+1) agree on them."""
        key = await self.describe_key(name)
        holders = await self._reachable(sorted(key.holders))
        results = await asyncio.gather(
            *(self._call(n, PolicyShow(name), PolicyHistory) for n in holders),
            return_exceptions=True,
        )
        answers = {}
        for node_id, result in zip(holders, results, strict=True):
            if isinstance(result, ChannelError | RemoteError):
                continue
            if isinstance(result, BaseException):
                raise result
            answers[node_id] = result
        need = key.public.threshold + 1
        if len(answers) < need:
            raise UnavailableError(
                f"{len(answers)} holder(s) of {name!r} answered; {need} must agree",
                have=len(answers),
                need=need,
            )
        if len({(r.current, r.previous) for r in answers.values()}) != 1:
            raise ProtocolError(f"the holders of {name!r} disagree about its policies")
        return answers[min(answers)]

    # -- key state --------------------------------------------------------------------------

    async def set_key_state(
        self, name: str, action: str, *, days: int = 0, approvals: Sequence[bytes] = ()
    ) -> KeyDescription:
        """Enable, disable, schedule (``days``) or cancel the deletion of ``name`` on every
        holder. A holder out of reach fails the call (:class:`UnavailableError`) after the
        others changed: the change is idempotent, so the caller runs it again; ``key info``
        shows ``mixed`` meanwhile. A refusal (approvals short of the quorum, a key pending
        deletion asked to enable) is raised as the node's error."""
        if action not in KEY_ACTIONS:
            raise InvalidInputError(f"unknown key action {action!r}")
        key = await self.describe_key(name, refresh=True)
        if key.other_epoch:
            raise UnavailableError(
                f"{', '.join(key.other_epoch)} of {name!r} are at another epoch: run "
                f"`keyshard key refresh {name}` to finish its refresh first",
                have=len(key.holders),
                need=len(key.holders) + len(key.other_epoch),
            )
        try:
            request = KeySetState(name, action, key.epoch, days, tuple(approvals))
        except MalformedMessageError as error:
            raise InvalidInputError(str(error)) from None
        await self._change_every_holder(key, request, KeyStateReply, f"{action} of {name!r}")
        return await self.describe_key(name, refresh=True)

    async def _change_every_holder(
        self, key: KeyDescription, request: Request, expected: type[Reply], what: str
    ) -> None:
        """Send one idempotent change of sealed state to every holder of ``key``; then forget
        what this client cached for it (nonces, presignatures, the description) and have the
        holders that changed witnessed. A node's refusal is raised as is; a holder out of reach
        is :class:`UnavailableError` after the others changed (the caller runs it again)."""
        targets = sorted(key.holders)
        results = await asyncio.gather(
            *(self._call(n, request, expected) for n in targets), return_exceptions=True
        )
        failures: dict[str, ChannelError] = {}
        for node_id, result in zip(targets, results, strict=True):
            if isinstance(result, ChannelError):
                failures[node_id] = result
            elif isinstance(result, BaseException):
                raise result
        self.forget_key(key.name)
        # sealed state changed: peers witness it, so it cannot be undone by a rollback
        await self._witnesses.record([n for n in targets if n not in failures])
        if failures:
            raise _unavailable(
                f"{what} reached {len(targets) - len(failures)} of {len(targets)} holders: "
                "run it again",
                failures,
                have=len(targets) - len(failures),
                need=len(targets),
            )

    # -- proactive refresh ----------------------------------------------------------------

    async def refresh_key(self, name: str, *, approvals: Sequence[bytes] = ()) -> KeyDescription:
        """Proactive refresh among every holder: the same public key, fresh shares, the next
        epoch (see :mod:`enclave.service.refresh`). A refresh interrupted earlier is resolved
        first — finished where any holder committed it, else abandoned everywhere — and then
        counts as this one when some holder had committed it. Needs every recorded holder
        reachable. ``approvals``: operation ``refresh`` at the key's epoch, when its policy
        lists refresh. An interrupted reshare is resolved before anything else."""
        await self._resolve_reshare(name)
        if await self._resolve_refresh(name) == "finished":
            return await self.describe_key(name, refresh=True)
        key = await self.describe_key(name, refresh=True)
        participants = sorted({*key.holders, *key.missing, *key.other_epoch})
        unreachable = sorted(set(participants) - set(key.holders))
        if unreachable:
            raise UnavailableError(
                f"a refresh of {name!r} takes every holder; not usable: {', '.join(unreachable)}",
                have=len(key.holders),
                need=len(participants),
            )
        try:
            links = await self._fresh(participants)
        except ChannelError as error:
            raise _unavailable(
                f"a refresh of {name!r} takes every holder; unreachable: {error.node_id}",
                {error.node_id: error},
                have=len(participants) - 1,
                need=len(participants),
            ) from None
        documents = {i: link.document for i, link in links.items()}
        session_id = os.urandom(32)
        start = KeyRefresh(name, session_id, key.epoch, documents, tuple(approvals))
        replies = await asyncio.gather(*(self._call(i, start, DkgOutbox) for i in participants))
        deals = {i: r.outbox for i, r in zip(participants, replies, strict=True)}
        inboxes = self._route(deals, participants, "refresh deal")
        staged = await asyncio.gather(
            *(
                self._call(i, RefreshStep(name, session_id, tuple(inboxes[i])), RefreshStaged)
                for i in participants
            )
        )
        packages = {r.public_key_package for r in staged}
        if len(packages) != 1:
            raise ProtocolError(f"the holders staged different refreshes of {name!r}")
        try:
            public = PublicKeyPackage.from_bytes(packages.pop(), key.public.group)
        except MpcError as error:
            raise ProtocolError(f"the holders staged an invalid key package: {error}") from None
        if public.group_public_key != key.public.group_public_key:
            raise ProtocolError(f"the holders' refresh would change the public key of {name!r}")
        confirmations = {i: r.outbox for i, r in zip(participants, staged, strict=True)}
        inboxes = self._route(confirmations, participants, "refresh confirmation")
        await asyncio.gather(
            *(
                self._call(i, RefreshCommit(name, session_id, tuple(inboxes[i])), KeyCommitted)
                for i in participants
            )
        )
        self.forget_key(name)
        await self._witnesses.record(participants)  # the old epoch can no longer be served back
        return await self.describe_key(name, refresh=True)

    async def _resolve_refresh(self, name: str) -> str | None:
        """Finish or abandon an interrupted refresh of ``name``: ``"finished"``,
        ``"abandoned"``, or None when there was none.

        Where some holder moved to the next epoch, every holder still staged commits on its
        vouch. Where none did, every holder first drops its running refresh (so none can commit
        it any more), and only then are the staged shares discarded — which needs every holder.
        """
        reachable = await self._reachable(self._node_ids)
        results = await asyncio.gather(
            *(self._call(i, KeyInfo(name), KeyInfoReply) for i in reachable),
            return_exceptions=True,
        )
        answers, _ = self._answers(reachable, results)
        if not any(a.staged for a in answers.values()):
            return None
        newest = max(a.epoch for a in answers.values())
        behind = sorted(n for n, a in answers.items() if a.staged and a.epoch == newest - 1)
        if behind:
            voucher = next(n for n, a in sorted(answers.items()) if a.epoch == newest)
            for node_id in behind:
                await self._finish_refresh(name, newest, voucher, node_id)
            self.forget_key(name)
            return "finished"
        holders = next(iter(answers.values())).nodes
        if set(holders) - set(answers):
            raise UnavailableError(
                f"an interrupted refresh of {name!r} can only be abandoned with every holder "
                f"reachable; missing: {', '.join(sorted(set(holders) - set(answers)))}",
                have=len(answers),
                need=len(holders),
            )
        dropped = await asyncio.gather(
            *(self._call(i, RefreshAbandon(name, newest), KeyInfoReply) for i in holders)
        )
        if any(r.epoch != newest for r in dropped):
            return await self._resolve_refresh(name)  # one committed meanwhile: finish it
        await asyncio.gather(
            *(self._call(i, RefreshAbandon(name, newest, True), KeyInfoReply) for i in holders)
        )
        self.forget_key(name)
        return "abandoned"

    async def _finish_refresh(self, name: str, epoch: int, voucher: str, node_id: str) -> None:
        await self._finish_on_vouch(
            voucher,
            node_id,
            lambda documents: RefreshVouch(name, epoch, documents),
            lambda documents, inbox: RefreshFinish(name, epoch, documents, inbox),
        )
        await self._witnesses.record([node_id])  # its sealed state moved on, as in a reshare

    async def _finish_on_vouch(
        self,
        voucher: str,
        node_id: str,
        vouch: Callable[[dict[str, bytes]], Request],
        finish: Callable[[dict[str, bytes], tuple[bytes, ...]], Request],
    ) -> None:
        """Have ``voucher`` (committed) vouch, in an envelope, for ``node_id``'s staged change,
        and relay it so ``node_id`` commits too (refresh and reshare alike)."""
        links = await self._fresh([voucher, node_id])
        documents = {i: link.document for i, link in links.items()}
        reply = await self._call(voucher, vouch(documents), DkgOutbox)
        envelope = reply.outbox.get(node_id)
        if envelope is None or len(reply.outbox) != 1:
            raise ProtocolError(f"{voucher}'s vouch is misaddressed", culprit=voucher)
        await self._call(node_id, finish(documents, (envelope,)), KeyCommitted)

    # -- reshare --------------------------------------------------------------------------

    async def reshare_key(
        self,
        name: str,
        *,
        nodes: Sequence[str],
        threshold: int,
        approvals: Sequence[bytes] = (),
    ) -> KeyDescription:
        """Move ``name`` to the committee ``nodes`` with ``threshold`` (the polynomial degree:
        ``threshold + 1`` sign), the same public key, at the next epoch (see
        :mod:`enclave.service.reshare`). Every old holder deals, so every one must be reachable,
        and every new member. Old holders leaving the committee erase their shares once every
        new member has committed. The committee's identifier order is ``sorted(nodes)``. An
        interrupted reshare is resolved first (finished where any new member committed, else
        abandoned everywhere). ``approvals``: operation ``reshare`` at the key's epoch with
        :func:`wire.approvals.reshare_detail` of the sorted committee and the threshold, when
        the key has a policy (reshare is always guarded)."""
        new_nodes = sorted(set(nodes))
        if len(new_nodes) != len(nodes):
            raise InvalidInputError("the new committee names a node twice")
        unknown = [n for n in new_nodes if n not in self._load]
        if unknown:
            raise InvalidInputError(f"unknown node(s): {', '.join(unknown)}")
        if await self._resolve_reshare(name) == "finished":
            key = await self.describe_key(name, refresh=True)
            if sorted(key.holders) == new_nodes and key.threshold == threshold:
                return key  # the interrupted reshare was this one
        key = await self.describe_key(name, refresh=True)
        old = sorted({*key.holders, *key.missing, *key.other_epoch})
        unusable = sorted(set(old) - set(key.holders))
        if unusable:
            raise UnavailableError(
                f"a reshare of {name!r} takes every holder; not usable: {', '.join(unusable)}",
                have=len(key.holders),
                need=len(old),
            )
        participants = sorted({*old, *new_nodes})
        try:
            links = await self._fresh(participants)
        except ChannelError as error:
            raise _unavailable(
                f"a reshare of {name!r} takes every holder and new member; "
                f"unreachable: {error.node_id}",
                {error.node_id: error},
                have=len(participants) - 1,
                need=len(participants),
            ) from None
        documents = {i: link.document for i, link in links.items()}
        session_id = os.urandom(32)
        start = ReshareStart(
            name, session_id, key.epoch, documents, tuple(new_nodes), threshold, tuple(approvals)
        )
        replies = await asyncio.gather(*(self._call(i, start, DkgOutbox) for i in participants))
        deals = {i: r.outbox for i, r in zip(participants, replies, strict=True)}
        for sender, outbox in deals.items():
            expected = set(new_nodes) - {sender} if sender in old else set()
            if set(outbox) != expected:
                raise ProtocolError(f"{sender}'s reshare deal is misaddressed", culprit=sender)
        staged = await asyncio.gather(
            *(
                self._call(
                    m,
                    ReshareStep(name, session_id, tuple(deals[s][m] for s in old if s != m)),
                    RefreshStaged,
                )
                for m in new_nodes
            )
        )
        self._check_reshared(key, {r.public_key_package for r in staged}, new_nodes, threshold)
        confirmations = dict(zip(new_nodes, (r.outbox for r in staged), strict=True))
        for sender, outbox in confirmations.items():
            if set(outbox) != set(participants) - {sender}:
                raise ProtocolError(f"{sender}'s confirmation is misaddressed", culprit=sender)

        def inbox(node_id: str) -> tuple[bytes, ...]:
            return tuple(confirmations[m][node_id] for m in new_nodes if m != node_id)

        await asyncio.gather(
            *(
                self._call(m, ReshareCommit(name, session_id, inbox(m)), KeyCommitted)
                for m in new_nodes
            )
        )
        leaving = [n for n in old if n not in new_nodes]  # erase only once the new one holds
        await asyncio.gather(
            *(
                self._call(n, ReshareCommit(name, session_id, inbox(n)), KeyCommitted)
                for n in leaving
            )
        )
        self.forget_key(name)
        await self._witnesses.record(participants)  # the old committee can't be served back
        return await self.describe_key(name, refresh=True)

    @staticmethod
    def _check_reshared(
        key: KeyDescription, packages: set[bytes], new_nodes: Sequence[str], threshold: int
    ) -> None:
        """Every new member staged one package: the same public key, the committee asked."""
        if len(packages) != 1:
            raise ProtocolError(f"the new members staged different reshares of {key.name!r}")
        try:
            public = PublicKeyPackage.from_bytes(packages.pop(), key.public.group)
        except MpcError as error:
            raise ProtocolError(f"the new members staged an invalid package: {error}") from None
        if public.group_public_key != key.public.group_public_key:
            raise ProtocolError(f"the reshare would change the public key of {key.name!r}")
        if public.threshold != threshold or len(public.verifying_shares) != len(new_nodes):
            raise ProtocolError(f"the new members staged another committee for {key.name!r}")

    async def _resolve_reshare(self, name: str) -> str | None:
        """Finish or abandon an interrupted reshare of ``name``: ``"finished"``,
        ``"abandoned"``, or None when there was none.

        Every reachable node first drops its running reshare of the key and says what it holds.
        Where a member of a newer committee committed, every node still staged or joining
        commits on its vouch, and every holder of an older epoch left out of that committee
        erases its share (it is of no use any more, whatever happened since).
        Where none did, the staged shares and joining records are discarded — only with every
        node of the cluster reachable (an unreachable one might be a member that committed).
        """
        reachable = await self._reachable(self._node_ids)
        results = await asyncio.gather(
            *(self._call(i, ReshareAbandon(name, 0), ReshareStatus) for i in reachable),
            return_exceptions=True,
        )
        statuses: dict[str, ReshareStatus] = {}
        for node_id, result in zip(reachable, results, strict=True):
            if isinstance(result, ReshareStatus):
                statuses[node_id] = result
            elif not isinstance(result, ChannelError | RemoteError):
                raise result
        held = {n: s for n, s in statuses.items() if s.role in ("committed", "staged")}
        if not held:
            return None
        top = max(s.epoch for s in held.values())
        voucher = next((n for n, s in sorted(held.items()) if s.epoch == top), None)
        committee = held[voucher].nodes if voucher is not None else ()
        behind = sorted(
            n
            for n, s in statuses.items()
            if (s.role == "staged" and s.epoch == top - 1 and s.next_nodes == committee)
            or (s.role == "joining" and s.epoch == top and s.nodes == committee)
            or (s.role == "committed" and s.epoch < top and n not in committee)
        )
        if voucher is not None and behind:
            for node_id in behind:
                await self._finish_reshare(name, top, voucher, node_id)
            self.forget_key(name)
            return "finished"
        leftovers = sorted(n for n, s in statuses.items() if s.role in ("staged", "joining"))
        if not leftovers:
            return None
        if len(statuses) != len(self._node_ids):
            missing = sorted(set(self._node_ids) - set(statuses))
            raise UnavailableError(
                f"an interrupted reshare of {name!r} can only be abandoned with every node "
                f"reachable; missing: {', '.join(missing)}",
                have=len(statuses),
                need=len(self._node_ids),
            )
        for node_id in leftovers:
            status = statuses[node_id]
            epoch = status.epoch if status.role == "staged" else status.epoch - 1
            await self._call(node_id, ReshareAbandon(name, epoch, True), ReshareStatus)
        self.forget_key(name)
        return "abandoned"

    async def _finish_reshare(self, name: str, epoch: int, voucher: str, node_id: str) -> None:
        await self._finish_on_vouch(
            voucher,
            node_id,
            lambda documents: ReshareVouch(name, epoch, documents),
            lambda documents, inbox: ReshareFinish(name, epoch, documents, inbox),
        )
        await self._witnesses.record([node_id])

    # -- repair ---------------------------------------------------------------------------

    async def repair_key(
        self,
        name: str,
        node_id: str,
        *,
        helpers: Sequence[str] | None = None,
        approvals: Sequence[bytes] = (),
    ) -> KeyDescription:
        """Give ``node_id``, a recorded holder that lost its share, the same share back from
        t+1 helpers (default: the least loaded reachable holders), none of which learns
        another's share (:mod:`enclave.service.repair`). ``approvals``: operation ``repair``
        naming the epoch and ``node_id``, when the key's policy lists repair."""
        key = await self.describe_key(name, refresh=True)
        committee = {*key.holders, *key.missing, *key.other_epoch}
        if node_id not in committee:
            raise InvalidInputError(f"{node_id} is not a holder of {name!r}")
        others = replace(key, holders={n: i for n, i in key.holders.items() if n != node_id})
        if helpers is not None and node_id in helpers:
            raise InvalidInputError("the node being repaired cannot help repair itself")
        chosen = await self._choose(others, key.threshold + 1, helpers, with_mandatory=False)
        links = await self._fresh([*chosen, node_id])
        documents = {i: link.document for i, link in links.items()}
        session_id = os.urandom(32)
        start = RepairStart(name, session_id, key.epoch, node_id, documents, tuple(approvals))
        replies = await asyncio.gather(*(self._call(i, start, DkgOutbox) for i in chosen))
        deals = {i: r.outbox for i, r in zip(chosen, replies, strict=True)}
        inboxes = self._route(deals, chosen, "repair delta")
        sums = await asyncio.gather(
            *(
                self._call(i, RepairSum(name, session_id, tuple(inboxes[i])), DkgOutbox)
                for i in chosen
            )
        )
        envelopes = []
        for helper, reply in zip(chosen, sums, strict=True):
            if set(reply.outbox) != {node_id}:
                raise ProtocolError(f"{helper}'s repair sum is misaddressed", culprit=helper)
            envelopes.append(reply.outbox[node_id])
        install = RepairInstall(name, session_id, documents, tuple(envelopes))
        await self._call(node_id, install, KeyCommitted)
        self.forget_key(name)
        await self._witnesses.record([node_id])
        return await self.describe_key(name, refresh=True)

    def forget_key(self, name: str) -> None:
        """Drop the cached description, nonces and presignatures of ``name``."""
        self._keys.pop(name, None)
        self._drop_key_state(name)

    # -- FROST signing --------------------------------------------------------------------

    async def sign(
        self,
        name: str,
        message: bytes,
        *,
        signers: Sequence[str] | None = None,
        approvals: Sequence[bytes] = (),
    ) -> bytes:
        """A FROST signature by t+1 holders; verified (and a cheater named) by ``aggregate``.

        ``approvals`` (encoded :class:`~wire.approvals.Approval`) go to every signer; each checks
        them against the key's policy before it signs. Concurrent calls for one key leave as one
        batch (:mod:`keyshard.client.batching`) unless ``signers`` are named.
        """
        if signers is not None:
            return (await self.sign_many(name, [message], signers=signers, approvals=[approvals]))[
                0
            ]

        async def run(items: list[_Item]) -> list[bytes]:
            messages, approvals = _unzip(items)
            return await self.sign_many(name, messages, approvals=approvals)

        return await _coalesced(self._frost_batches, name, run).submit((message, tuple(approvals)))

    async def sign_many(
        self,
        name: str,
        messages: Sequence[bytes],
        *,
        signers: Sequence[str] | None = None,
        approvals: Sequence[Sequence[bytes]] | None = None,
    ) -> list[bytes]:
        """FROST signatures over many messages: one request per signer for each
        :data:`~wire.messages.MAX_BATCH` messages. ``approvals[i]`` are for ``messages[i]``."""
        approvals = _per_message(messages, approvals)
        signatures: list[bytes] = []
        for start in range(0, len(messages), MAX_BATCH):
            chunk = list(messages[start : start + MAX_BATCH])
            chunk_approvals = [tuple(a) for a in approvals[start : start + MAX_BATCH]]
            signatures += await self._retry_once(
                name,
                lambda c=chunk, a=chunk_approvals: self._sign_batch(name, c, a, signers),  # type: ignore[misc]
            )
        return signatures

    async def _sign_batch(
        self,
        name: str,
        messages: list[bytes],
        approvals: list[tuple[bytes, ...]],
        signers: Sequence[str] | None,
    ) -> list[bytes]:
        key = await self.describe_key(name)
        if key.suite.scheme is not Scheme.FROST:
            scheme = "BIP-340" if key.suite.scheme is Scheme.BIP340 else "ECDSA"
            raise InvalidInputError(f"key {name!r} is {key.suite.name}: sign it with {scheme}")
        suite = key.suite.frost_suite()
        chosen = await self._choose(key, key.suite.signers_needed(key.threshold), signers)
        pools = await asyncio.gather(*(self._commitments(key, n, len(messages)) for n in chosen))
        packages = [
            SigningPackage(
                suite,
                PREPROCESSED_SESSION_ID,
                {key.identifier(n): pool[k] for n, pool in zip(chosen, pools, strict=True)},
                message,
            )
            for k, message in enumerate(messages)
        ]
        request = FrostSign(name, tuple(p.to_bytes() for p in packages), tuple(approvals))
        replies = await asyncio.gather(*(self._call(n, request, SignatureShares) for n in chosen))
        for node_id, reply in zip(chosen, replies, strict=True):
            if len(reply.shares) != len(packages):
                raise ProtocolError(
                    f"{node_id} signed {len(reply.shares)} of {len(packages)}", culprit=node_id
                )
        signatures = []
        for k, package in enumerate(packages):
            try:
                shares = {
                    key.identifier(n): SignatureShare.from_bytes(reply.shares[k])
                    for n, reply in zip(chosen, replies, strict=True)
                }
                signatures.append(aggregate(package, shares, key.public))
            except ProtocolAbort as error:
                raise ProtocolError(
                    f"signature of {name!r} refused: {error}", culprit=_culprits(key, error)
                ) from None
            except MpcError as error:
                raise ProtocolError(f"signature of {name!r} refused: {error}") from None
        return signatures

    async def _commitments(
        self, key: KeyDescription, node_id: str, count: int
    ) -> list[SigningCommitments]:
        """``count`` unused commitments of ``node_id`` for ``key``. Fetched in batches; when the
        pool runs low it is refilled in the background, so a signature rarely waits for one."""
        slot = (key.name, node_id)
        pool = self._nonces.setdefault(slot, deque())
        if len(pool) < count:
            async with self._nonce_locks.setdefault(slot, asyncio.Lock()):
                if len(pool) < count:  # nobody refilled it while this call waited
                    pool.extend(
                        await self._fetch_commitments(key, node_id, max(count, NONCE_BATCH))
                    )
                if len(pool) < count:
                    raise ProtocolError(f"{node_id} sent too few commitments", culprit=node_id)
        taken = [pool.popleft() for _ in range(count)]
        if len(pool) < NONCE_BATCH // 2 and slot not in self._refills:
            refill = asyncio.get_running_loop().create_task(self._refill(key, node_id, pool))
            self._refills[slot] = refill  # held until done (asyncio keeps weak references)
            refill.add_done_callback(lambda _: self._refills.pop(slot, None))
        return taken

    async def _refill(
        self, key: KeyDescription, node_id: str, pool: deque[SigningCommitments]
    ) -> None:
        with contextlib.suppress(ClientError):  # the next signature refills on its own path
            pool.extend(await self._fetch_commitments(key, node_id, NONCE_BATCH))

    async def _fetch_commitments(
        self, key: KeyDescription, node_id: str, count: int
    ) -> list[SigningCommitments]:
        reply = await self._call(node_id, NonceCommit(key.name, count), NonceCommitments)
        suite = key.suite.frost_suite()
        fetched = []
        for encoded in reply.commitments:
            try:
                commitment = SigningCommitments.from_bytes(encoded)
            except MpcError:
                raise ProtocolError(
                    f"{node_id} sent a malformed commitment", culprit=node_id
                ) from None
            if commitment.suite is not suite or commitment.session_id != PREPROCESSED_SESSION_ID:
                raise ProtocolError(f"{node_id} committed for another suite", culprit=node_id)
            fetched.append(commitment)
        return fetched

    # -- threshold ECDSA ------------------------------------------------------------------

    async def presign(
        self, name: str, *, count: int = 1, signers: Sequence[str] | None = None
    ) -> list[PresignatureInfo]:
        """Run DJNPO20 presigning of ``count`` presignatures among 2t+1 holders in one run; their
        (public) descriptions. Their secret halves stay in the presigners' memory (single use,
        lost on restart); the same 2t+1 nodes must sign with each."""
        if not 1 <= count <= MAX_PRESIGN_BATCH:
            raise InvalidInputError(f"a presigning run makes 1..{MAX_PRESIGN_BATCH}")
        return await self._retry_once(name, lambda: self._presign(name, count, signers))

    async def _presign(
        self, name: str, count: int, signers: Sequence[str] | None
    ) -> list[PresignatureInfo]:
        key = await self.describe_key(name)
        if key.suite.scheme is not Scheme.ECDSA:
            raise InvalidInputError(f"key {name!r} is {key.suite.name}, not threshold ECDSA")
        chosen = await self._choose(key, key.suite.signers_needed(key.threshold), signers)
        links = await self._fresh(chosen)
        documents = {i: link.document for i, link in links.items()}
        session_id = os.urandom(32)
        start = PresignStart(name, session_id, documents, count)
        replies = await asyncio.gather(*(self._call(i, start, DkgOutbox) for i in chosen))
        outboxes = {i: reply.outbox for i, reply in zip(chosen, replies, strict=True)}
        answers: list[Reply] = []
        for round_ in range(1, PRESIGN_ROUNDS + 1):
            inboxes = self._route(outboxes, chosen, f"presign round {round_}")
            answers = list(
                await asyncio.gather(
                    *(
                        self._call(i, PresignStep(name, session_id, tuple(inboxes[i])), Reply)
                        for i in chosen
                    )
                )
            )
            outboxes = {
                i: a.outbox
                for i, a in zip(chosen, answers, strict=True)
                if isinstance(a, DkgOutbox)
            }
            if round_ < PRESIGN_ROUNDS and len(outboxes) != len(chosen):
                raise ProtocolError("a node finished presigning early")
        results = set()
        for node_id, answer in zip(chosen, answers, strict=True):
            if not isinstance(answer, Presigned) or len(answer.presignature_ids) != count:
                raise ProtocolError(f"{node_id} did not finish presigning", culprit=node_id)
            results.add((answer.presignature_ids, answer.big_rs))
        if len(results) != 1:
            raise ProtocolError("the presigners disagree about the presignatures")
        ids, big_rs = results.pop()
        parties = tuple(sorted(key.identifier(n) for n in chosen))
        try:
            return [
                PresignatureInfo(
                    key.public,
                    parties,
                    presign_batch_session_id(session_id, k),
                    ids[k],
                    key.public.group.decode_point(big_rs[k]),
                )
                for k in range(count)
            ]
        except MpcError as error:
            raise ProtocolError(f"the presigners sent an invalid nonce point: {error}") from None

    async def stock_presignatures(self, name: str, count: int) -> int:
        """Presign until ``name``'s pool holds at least ``count`` presignatures (in runs of
        :data:`~wire.messages.MAX_PRESIGN_BATCH`), so later ECDSA signatures are one request per
        presigner with no presigning on their path. Returns the pool's size."""
        async with self._presign_locks.setdefault(name, asyncio.Lock()):
            pool = self._presignatures.setdefault(name, deque())
            while len(pool) < count:
                pool.extend(
                    await self.presign(name, count=min(MAX_PRESIGN_BATCH, count - len(pool)))
                )
            return len(pool)

    async def _pooled(self, name: str, count: int) -> list[PresignatureInfo]:
        """``count`` presignatures of one presigning committee from the pool (refilled in runs
        of :data:`PRESIGN_BATCH`, in the background once it runs low)."""
        async with self._presign_locks.setdefault(name, asyncio.Lock()):
            pool = self._presignatures.setdefault(name, deque())
            taken: list[PresignatureInfo] = []
            while len(taken) < count:
                if not pool:
                    pool.extend(
                        await self.presign(
                            name,
                            count=min(MAX_PRESIGN_BATCH, max(PRESIGN_BATCH, count - len(taken))),
                        )
                    )
                info = pool.popleft()
                if taken and info.parties != taken[0].parties:
                    pool.appendleft(info)
                    break
                taken.append(info)
        if len(pool) < PRESIGN_BATCH // 2 and name not in self._presign_refills:
            refill = asyncio.get_running_loop().create_task(self._refill_presignatures(name, pool))
            self._presign_refills[name] = refill  # held until done
            refill.add_done_callback(lambda _: self._presign_refills.pop(name, None))
        return taken

    async def _refill_presignatures(self, name: str, pool: deque[PresignatureInfo]) -> None:
        with contextlib.suppress(ClientError):  # the next signature presigns on its own path
            pool.extend(await self.presign(name, count=PRESIGN_BATCH))

    async def sign_ecdsa(
        self,
        name: str,
        message: bytes,
        *,
        presignature: PresignatureInfo | None = None,
        approvals: Sequence[bytes] = (),
        path: str = "",
        prehashed: bool = False,
    ) -> EcdsaSignature:
        """ECDSA-sign SHA-256(``message``) with a presignature (from the pool unless given);
        ``prehashed``: ``message`` is that 32-byte digest already (AWS KMS's DIGEST).

        Every presigner checks the approvals, then takes the presignature out of its pool; the
        combined signature is verified (under the BIP-32 child of ``path`` when one is given),
        low-S normalised and carries its recovery id.
        """
        if presignature is not None:
            return (
                await self._ecdsa_batch(
                    await self.describe_key(name),
                    [message],
                    [tuple(approvals)],
                    path,
                    [presignature],
                    prehashed=prehashed,
                )
            )[0]

        async def run(items: list[_Item]) -> list[EcdsaSignature]:
            messages, approvals = _unzip(items)
            return await self.sign_ecdsa_many(
                name, messages, approvals=approvals, path=path, prehashed=prehashed
            )

        batches = _coalesced(self._ecdsa_batches, (name, path, prehashed), run)
        return await batches.submit((message, tuple(approvals)))

    async def sign_ecdsa_many(
        self,
        name: str,
        messages: Sequence[bytes],
        *,
        approvals: Sequence[Sequence[bytes]] | None = None,
        path: str = "",
        prehashed: bool = False,
    ) -> list[EcdsaSignature]:
        """ECDSA signatures over many messages with pooled presignatures: one request per
        presigner for each batch. The path is checked before any presignature is taken.
        ``prehashed``: every message is its 32-byte SHA-256 digest already."""
        approvals = _per_message(messages, approvals)
        if prehashed and any(len(m) != 32 for m in messages):
            raise InvalidInputError("a prehashed message is a 32-byte SHA-256 digest")
        key = await self.describe_key(name)
        if key.suite.scheme is not Scheme.ECDSA:
            raise InvalidInputError(f"key {name!r} is {key.suite.name}, not threshold ECDSA")
        key.child(path)  # InvalidInputError for a bad or hardened path, before any presigning
        out: list[EcdsaSignature] = []
        index = 0
        while index < len(messages):
            count = min(MAX_BATCH, len(messages) - index)

            async def attempt(i: int = index, n: int = count) -> list[EcdsaSignature]:
                infos = await self._pooled(name, n)
                return await self._ecdsa_batch(
                    await self.describe_key(name),
                    list(messages[i : i + len(infos)]),
                    approvals[i : i + len(infos)],
                    path,
                    infos,
                    prehashed=prehashed,
                )

            signed = await self._retry_once(name, attempt)
            out += signed
            index += len(signed)
        return out

    async def _ecdsa_batch(
        self,
        key: KeyDescription,
        messages: list[bytes],
        approvals: list[tuple[bytes, ...]],
        path: str,
        infos: list[PresignatureInfo],
        *,
        prehashed: bool = False,
    ) -> list[EcdsaSignature]:
        name = key.name
        tweak, _ = key.child(path)
        parties = infos[0].parties
        signers = [key.node_of(p) for p in parties]
        requests = [
            SigningRequest.create(info, m if prehashed else message_digest(m), self._rng, tweak)
            for info, m in zip(infos, messages, strict=True)
        ]
        request = EcdsaSign(
            name,
            tuple(info.presignature_id for info in infos),
            tuple(messages),
            tuple(r.entropy for r in requests),
            tuple(approvals),
            path,
            prehashed,
        )
        replies = await asyncio.gather(*(self._call(n, request, SignatureShares) for n in signers))
        signatures = []
        for k, (info, signing) in enumerate(zip(infos, requests, strict=True)):
            try:
                shares = {
                    p: EcdsaSignatureShare.from_bytes(reply.shares[k], key.public.group)
                    for p, reply in zip(parties, replies, strict=True)
                }
                signatures.append(combine_ecdsa(info, signing, shares))
            except IndexError:
                raise ProtocolError("a presigner returned too few signature shares") from None
            except ProtocolAbort as error:
                raise ProtocolError(
                    f"ECDSA signature of {name!r} refused: {error}", culprit=_culprits(key, error)
                ) from None
            except MpcError as error:
                raise ProtocolError(f"ECDSA signature of {name!r} refused: {error}") from None
        return signatures

    # -- BIP-340 (BIP-445) ----------------------------------------------------------------

    async def sign_bip340(
        self,
        name: str,
        message: bytes,
        *,
        tweaks: Sequence[bytes] = (),
        signers: Sequence[str] | None = None,
        approvals: Sequence[bytes] = (),
    ) -> bytes:
        """A 64-byte BIP-340 signature of ``message`` by t+1 holders of a ``bip340`` key, for
        its x-only key tweaked by ``tweaks`` (:mod:`keyshard.client.bip340`; e.g. a Taproot
        output key); verified with libsecp256k1 before it is returned (a wrong partial
        signature names its node). Retried once on other nonces."""
        return await self._retry_once(
            name, lambda: self._sign_bip340(name, message, tuple(tweaks), signers, approvals)
        )

    async def _sign_bip340(
        self,
        name: str,
        message: bytes,
        tweaks: tuple[bytes, ...],
        signers: Sequence[str] | None,
        approvals: Sequence[bytes],
    ) -> bytes:
        key = await self.describe_key(name)
        if key.suite.scheme is not Scheme.BIP340:
            raise InvalidInputError(f"key {name!r} is {key.suite.name}, not a bip340 key")
        decoded = core_tweaks(tweaks)
        chosen = await self._choose(key, key.threshold + 1, signers)
        chosen.sort(key=lambda n: int(key.identifier(n)))
        pubnonces = await asyncio.gather(*(self._bip340_nonce(key, n) for n in chosen))
        ids = tuple(int(key.identifier(n)) for n in chosen)
        request = Bip340Sign(
            name, ids, (message,), (tuple(pubnonces),), (tuple(approvals),), tweaks
        )
        replies = await asyncio.gather(*(self._call(n, request, SignatureShares) for n in chosen))
        identifiers = [key.identifier(n) for n in chosen]
        by_id = dict(zip(identifiers, pubnonces, strict=True))
        try:
            context = bip340.SessionContext(
                bip340.nonce_agg(by_id),
                bip340.SignersContext.from_public(key.public, identifiers),
                decoded,
                message,
            )
            psigs = {i: reply.shares[0] for i, reply in zip(identifiers, replies, strict=True)}
            return bip340.aggregate(psigs, by_id, context)
        except ProtocolAbort as error:
            raise ProtocolError(
                f"BIP-340 signature of {name!r} refused: {error}", culprit=_culprits(key, error)
            ) from None
        except MpcError as error:
            raise ProtocolError(f"BIP-340 signature of {name!r} refused: {error}") from None

    async def _bip340_nonce(self, key: KeyDescription, node_id: str) -> bytes:
        """One unused public nonce of ``node_id`` (fetched in batches of :data:`NONCE_BATCH`)."""
        slot = (key.name, node_id)
        pool = self._bip340_nonces.setdefault(slot, deque())
        if not pool:
            async with self._nonce_locks.setdefault(slot, asyncio.Lock()):
                if not pool:
                    request = Bip340NonceCommit(key.name, NONCE_BATCH)
                    reply = await self._call(node_id, request, NonceCommitments)
                    if any(len(n) != 66 for n in reply.commitments):
                        raise ProtocolError(f"{node_id} sent a malformed nonce", culprit=node_id)
                    pool.extend(reply.commitments)
        if not pool:
            raise ProtocolError(f"{node_id} sent no nonces", culprit=node_id)
        return pool.popleft()

    # -- encryption -----------------------------------------------------------------------

    async def encrypt(self, name: str, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        """Client-side encryption to the key's group public key (no node takes part).

        Refused (:class:`InvalidInputError`) for a key that cannot decrypt and for a plaintext
        over ``ecies.MAX_PLAINTEXT``: whatever this returns, :meth:`decrypt` accepts."""
        key = await self.describe_key(name)
        if not key.suite.decrypts:
            raise InvalidInputError(f"key {name!r} is {key.suite.name}: it does not decrypt")
        try:
            return encrypt(
                key.public.group_public_key, plaintext, self._rng, associated_data
            ).to_bytes()
        except MpcError as error:
            raise InvalidInputError(str(error)) from None

    async def decrypt(
        self,
        name: str,
        ciphertext: bytes,
        associated_data: bytes = b"",
        *,
        nodes: Sequence[str] | None = None,
        approvals: Sequence[bytes] = (),
    ) -> bytes:
        """Threshold decryption: t+1 partials, each checked by its DLEQ proof, then combined.

        For a key with mandatory participants, they are asked first and their endorsements
        passed to the other nodes (:mod:`keyshard.client.mandatory`); an unreachable one is
        :class:`UnavailableError` naming it, and their partials must be among those combined.

        Concurrent calls for one key without mandatory participants, made without ``nodes`` or
        ``approvals``, leave as one ``decrypt_partials`` batch per node (each ciphertext with
        its context at most :data:`_MAX_COALESCED_DECRYPTION` bytes; a longer one goes alone).
        """
        if nodes is None and not approvals:
            key = await self.describe_key(name)
            small = len(ciphertext) + len(associated_data) <= _MAX_COALESCED_DECRYPTION
            if key.suite.decrypts and not _mandatory(key) and small:
                return await self._decrypt_coalesced(key, ciphertext, associated_data)
        return await self._retry_once(
            name, lambda: self._decrypt(name, ciphertext, associated_data, nodes, approvals)
        )

    async def _decrypt(
        self,
        name: str,
        ciphertext: bytes,
        associated_data: bytes,
        nodes: Sequence[str] | None,
        approvals: Sequence[bytes],
    ) -> bytes:
        key = await self.describe_key(name)
        parsed = self._checked_ciphertext(key, ciphertext, associated_data)
        mandatory = _mandatory(key)
        chosen = await self._choose(key, max(key.threshold + 1, len(mandatory)), nodes)
        session_id = os.urandom(32)

        def build(endorsers: Mapping[str, bytes], endorsements: Mapping[str, bytes]) -> Request:
            return DecryptPartial(
                name,
                ciphertext,
                session_id,
                associated_data,
                tuple(approvals),
                endorsers,
                endorsements,
            )

        replies = await endorsed_answers(
            mandatory=[m for m in mandatory if m in chosen],  # else the nodes refuse the set
            chosen=chosen,
            build=build,
            expected=Partial,
            call=self._call,
            documents=self._documents,
        )
        require_all(mandatory, list(replies), name)
        partials = {n: reply.partial for n, reply in replies.items()}
        return _opened(key, parsed, partials, session_id, associated_data)

    def _checked_ciphertext(
        self, key: KeyDescription, ciphertext: bytes, associated_data: bytes
    ) -> Ciphertext:
        """``ciphertext`` parsed for ``key``, its encryptor's proof checked under this context
        (the check every node makes before it answers, made here first: a wrong context is a
        local :class:`InvalidInputError`, never a request)."""
        if not key.suite.decrypts:
            raise InvalidInputError(f"key {key.name!r} is {key.suite.name}: it does not decrypt")
        try:
            parsed = Ciphertext.from_bytes(ciphertext, key.public.group)
        except MpcError as error:
            raise InvalidInputError(f"not a ciphertext of key {key.name!r}: {error}") from None
        try:
            verify_ciphertext(parsed, key.public.group_public_key, associated_data)
        except MpcError:
            raise InvalidInputError(_UNDECRYPTABLE) from None
        return parsed

    async def _decrypt_coalesced(
        self, key: KeyDescription, ciphertext: bytes, associated_data: bytes
    ) -> bytes:
        """One decryption of a key without mandatory participants, asked without approvals or
        named nodes: concurrent ones leave as one ``decrypt_partials`` per node
        (:mod:`keyshard.client.batching`); each caller gets its own plaintext or error."""
        parsed = self._checked_ciphertext(key, ciphertext, associated_data)
        name = key.name
        batches = self._decrypt_batches.get(name)
        if batches is None:

            async def run(items: list[_DecryptItem]) -> list[bytes | ClientError]:
                try:
                    return await self._retry_once(name, lambda: self._decrypt_batch(name, items))
                except ChannelError:
                    # twice a channel lost: a node down, or of a release before decrypt_partials
                    # (a node closes the channel on an op it does not know, e.g. during a rolling
                    # upgrade); the single request, which chooses its nodes afresh, serves both
                    return await self._decrypt_singly(name, items)

            batches = self._decrypt_batches[name] = Coalescer(
                run, max_items=MAX_BATCH, isolate=_decrypt_item_error
            )
        outcome = await batches.submit((ciphertext, parsed, associated_data))
        if isinstance(outcome, ClientError):
            raise outcome
        return outcome

    async def _decrypt_singly(
        self, name: str, items: list[_DecryptItem]
    ) -> list[bytes | ClientError]:
        """Each item by the single ``decrypt_partial`` path, concurrently: its outcome."""

        async def one(ciphertext: bytes, context: bytes) -> bytes | ClientError:
            try:
                return await self._retry_once(
                    name, lambda: self._decrypt(name, ciphertext, context, None, ())
                )
            except ClientError as error:
                return error

        return list(await asyncio.gather(*(one(ct, context) for ct, _, context in items)))

    async def _decrypt_batch(
        self, name: str, items: list[_DecryptItem]
    ) -> list[bytes | ClientError]:
        """One ``decrypt_partials`` to each of t+1 holders; each item combined from its own
        partials (every DLEQ proof checked), its outcome a plaintext or its own error."""
        key = await self.describe_key(name)
        if _mandatory(key):  # the policy changed since the item was queued: the single path
            return await self._decrypt_singly(name, items)
        chosen = await self._choose(key, key.threshold + 1, None)
        session_ids = [os.urandom(32) for _ in items]
        request = DecryptPartials(
            name,
            tuple(session_ids),
            tuple(ciphertext for ciphertext, _, _ in items),
            tuple(context for _, _, context in items),
            ((),) * len(items),
        )
        replies = await asyncio.gather(*(self._call(n, request, Partials) for n in chosen))
        for node_id, reply in zip(chosen, replies, strict=True):
            if len(reply.partials) != len(items):
                raise ProtocolError(
                    f"{node_id} answered {len(items)} decryptions with "
                    f"{len(reply.partials)} partials",
                    culprit=node_id,
                )
        outcomes: list[bytes | ClientError] = []
        for index, ((_, parsed, context), session_id) in enumerate(
            zip(items, session_ids, strict=True)
        ):
            partials = {n: reply.partials[index] for n, reply in zip(chosen, replies, strict=True)}
            try:
                outcomes.append(_opened(key, parsed, partials, session_id, context))
            except ClientError as error:  # this item's alone (a node's bad partial names it)
                outcomes.append(error)
        return outcomes

    # -- backup ---------------------------------------------------------------------------

    async def backup(
        self,
        name: str,
        recovery_key: bytes,
        *,
        approvals: Sequence[bytes] = (),
        created: int | None = None,
    ) -> Backup:
        """Every reachable holder's share, verifiably encrypted to ``recovery_key`` (raw X25519),
        as one backup that is verified here before it is returned.

        Asks every holder (the more encrypted shares, the more holders a later restore may
        lose); at least t+1 must answer. Each reply must describe the key as its holders agree
        (same package and epoch, its own position); any node that answers with a proof that
        does not verify is named. A node refusing (approvals short of the quorum) is an error:
        a backup is never made from fewer holders than were asked silently.
        """
        key = await self.describe_key(name, refresh=True)
        holders = await self._reachable(key.holders)
        need = key.threshold + 1
        if len(holders) < need:
            raise UnavailableError(
                f"only {len(holders)} holder(s) of {name!r} reachable; {need} needed",
                have=len(holders),
                need=need,
            )
        request = BackupShare(name, recovery_key, tuple(approvals))
        replies = await asyncio.gather(*(self._call(n, request, ShareBackup) for n in holders))
        package = key.public.to_bytes()
        shares = []
        for node_id, reply in sorted(
            zip(holders, replies, strict=True), key=lambda item: item[1].identifier
        ):
            if reply.public_key_package != package or reply.epoch != key.epoch:
                raise ProtocolError(
                    f"{node_id} backs up another version of {name!r}", culprit=node_id
                )
            if reply.identifier != key.holders[node_id]:
                raise ProtocolError(f"{node_id} claims party {reply.identifier}", culprit=node_id)
            shares.append(EncryptedShare(reply.identifier, node_id, reply.encryption))
        backup = Backup(
            name,
            key.suite,
            key.public,
            key.epoch,
            int(time.time()) if created is None else created,
            recovery_key,
            tuple(shares),
            key.policy,
        )
        try:
            backup.verify()
        except BackupError as error:
            for share in backup.shares:  # name the node whose proof fails, if one does
                try:
                    backup.verify_share(share)
                except BackupError as bad:
                    raise ProtocolError(str(bad), culprit=share.node) from None
            raise ProtocolError(f"the backup of {name!r} does not verify: {error}") from None
        return backup

    async def restore(
        self,
        backup: Backup,
        recovery_private_key: X25519PrivateKey,
        *,
        nodes: Sequence[str] | None = None,
        approvals: Sequence[bytes] = (),
    ) -> KeyDescription:
        """Deal a backup's shares into the attested enclaves of this cluster, then commit.

        The backup is verified first. Party ``i`` (the i-th verification share) goes to
        ``nodes[i-1]`` (default: this cluster's first n nodes, sorted); each share is decrypted
        here with the recovery key and at once sealed (``crypto_box_seal``) to that node's box
        key — the one its attestation document bound when its channel was opened — addressed to
        that node, key and package. A party the backup has no share of gets none: its node is
        recorded as a holder and reported missing (a repair gives it one). Every node seals its
        share pending; only when all have does each commit (a failure leaves pending shares that
        serve nothing and expire). The backup's policy becomes the key's, and each node checks
        ``approvals`` against it (operation ``restore``).
        """
        try:
            backup.verify()
        except BackupError as error:
            raise InvalidInputError(str(error)) from None
        n = len(backup.public.verifying_shares)
        targets = list(nodes) if nodes is not None else self._node_ids[:n]
        if len(targets) != n or len(set(targets)) != n:
            raise InvalidInputError(f"a restore of {backup.key_name!r} needs {n} distinct nodes")
        unknown = [node_id for node_id in targets if node_id not in self._load]
        if unknown:
            raise InvalidInputError(f"not nodes of this cluster: {', '.join(unknown)}")
        by_party = dict(zip((int(i) for i in backup.public.identifiers), targets, strict=True))
        package = backup.public.to_bytes()
        policy = b"" if backup.policy is None else backup.policy.encode()
        requests: dict[str, KeyRestore] = {}
        for share in backup.shares:
            node_id = by_party[share.identifier]
            link = await self.link(node_id)
            secret = backup.open_share(share, recovery_private_key)  # BackupError: local
            payload = RestoredShare(
                backup.key_name,
                node_id,
                share.identifier,
                RestoredShare.package_digest(package),
                secret.to_bytes(),
            )
            sealed = SealedBox(PublicKey(link.binding.box_public_key)).encrypt(payload.encode())
            requests[node_id] = KeyRestore(
                backup.key_name,
                backup.suite.name,
                package,
                policy,
                tuple(targets),
                bytes(sealed),
                tuple(approvals),
            )
        await asyncio.gather(
            *(self._call(node_id, request, KeyRestored) for node_id, request in requests.items())
        )
        name = backup.key_name
        await asyncio.gather(
            *(self._call(node_id, RestoreCommit(name), KeyCommitted) for node_id in requests)
        )
        self.forget_key(name)
        await self._witnesses.record(list(requests))
        return await self.describe_key(name, refresh=True)

    # -- threshold PRF (per-message keys for the XKS proxy) -------------------------------

    async def prf(
        self, name: str, mode: PrfMode, inputs: Sequence[bytes]
    ) -> list[tuple[bytes, bytes]]:
        """``(seed, 32-byte output)`` of the key's threshold PRF for each input: fresh nonces in
        ``ENCRYPT`` mode (the seed is their one-way hash), seeds in ``DECRYPT`` mode. t+1
        holders answer; every partial is checked by its DLEQ proof, a bad one named."""
        if not 1 <= len(inputs) <= MAX_BATCH:
            raise InvalidInputError(f"1..{MAX_BATCH} PRF inputs per request")
        return await self._retry_once(name, lambda: self._prf(name, mode, list(inputs)))

    async def _prf(
        self, name: str, mode: PrfMode, inputs: list[bytes]
    ) -> list[tuple[bytes, bytes]]:
        key = await self.describe_key(name)
        if key.public.group is not ED25519 or not key.suite.decrypts:
            raise InvalidInputError(
                f"key {name!r} is {key.suite.name}: the PRF needs an Ed25519 key"
            )
        size = NONCE_LENGTH if mode is PrfMode.ENCRYPT else SEED_LENGTH
        if any(len(i) != size for i in inputs):
            raise InvalidInputError(f"{mode.value} PRF inputs are {size} bytes")
        seeds = [encryption_seed(i) for i in inputs] if mode is PrfMode.ENCRYPT else inputs
        # decrypt mode opens existing ciphertexts: gated by the mandatory participants as a
        # decryption is; encrypt mode, like encryption, is not
        gated = mode is PrfMode.DECRYPT
        mandatory = _mandatory(key) if gated else ()
        needed = max(key.threshold + 1, len(mandatory))
        chosen = await self._choose(key, needed, None, with_mandatory=gated)
        session_id = os.urandom(32)

        def build(endorsers: Mapping[str, bytes], endorsements: Mapping[str, bytes]) -> Request:
            return PrfEvaluate(name, session_id, mode.value, tuple(inputs), endorsers, endorsements)

        replies = await endorsed_answers(
            mandatory=mandatory,
            chosen=chosen,
            build=build,
            expected=PrfPartials,
            call=self._call,
            documents=self._documents,
        )
        require_all(mandatory, list(replies), name)
        label = name.encode()
        out = []
        for k, seed in enumerate(seeds):
            try:
                partials = {
                    key.identifier(n): PrfPartial.from_bytes(reply.partials[k], key.public.group)
                    for n, reply in replies.items()
                }
                value = combine_prf(key.public, label, seed, partials, session_id)
            except IndexError:
                raise ProtocolError("a node returned too few PRF partials") from None
            except ProtocolAbort as error:
                raise ProtocolError(
                    f"PRF of {name!r} refused: {error}", culprit=_culprits(key, error)
                ) from None
            except MpcError as error:
                raise ProtocolError(f"PRF of {name!r} refused: {error}") from None
            out.append((seed, output_key(key.public, label, seed, value)))
        return out

    # -- custody: export and import (keyshard.client.custody, enclave.service.custody) ----

    async def export_key(
        self, name: str, recipient: bytes, *, approvals: Sequence[bytes] = ()
    ) -> ExportBundle:
        """Every holder's share of ``name``, re-randomised and HPKE-wrapped for ``recipient``
        (a raw X25519 public key): the bundle only the recipient opens
        (:func:`keyshard.client.custody.unwrap`). Every holder checks on its own that the key
        was created exportable and that ``approvals`` (operation ``export`` over
        :func:`wire.approvals.lifecycle_digest` at the key's epoch, the recipient as detail)
        meet its policy, and flags the key exported before it answers. Every holder must take
        part; never retried (the approvals are spent)."""
        key = await self.describe_key(name, refresh=True)
        if key.missing:
            raise UnavailableError(
                f"holders of {name!r} lost their share ({', '.join(key.missing)}): an export "
                "takes every holder",
                have=len(key.holders),
                need=len(key.holders) + len(key.missing),
            )
        holders = sorted(key.holders)
        links = await self._fresh(holders)
        documents = {n: link.document for n, link in links.items()}
        session_id = os.urandom(32)
        try:
            request = KeyExport(name, key.epoch, session_id, recipient, documents, tuple(approvals))
        except MalformedMessageError as error:
            raise InvalidInputError(str(error)) from None
        results = await asyncio.gather(
            *(self._call(n, request, ExportedShare) for n in holders), return_exceptions=True
        )
        answered = [n for n, r in zip(holders, results, strict=True) if isinstance(r, Reply)]
        self.forget_key(name)  # its description changed (exported)
        if answered:  # their sealed state changed: witnessed, so no rollback undoes the flag
            await self._witnesses.record(answered)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        shares: dict[str, tuple[int, bytes]] = {}
        for node_id, result in zip(holders, results, strict=True):
            assert isinstance(result, ExportedShare)
            if result.identifier != key.holders[node_id]:
                raise ProtocolError(f"{node_id} exported another party's share", culprit=node_id)
            shares[node_id] = (result.identifier, result.wrapped)
        return ExportBundle(
            name, key.suite, key.public_key, key.epoch, session_id, recipient, shares
        )

    async def import_key(
        self,
        name: str,
        private: PrivateKey,
        *,
        suite: str | None = None,
        threshold: int | None = None,
        nodes: Sequence[str] | None = None,
        policy: ApprovalPolicy | None = None,
        exportable: bool = False,
    ) -> KeyDescription:
        """Split ``private`` with Feldman VSS among ``nodes`` (default: every node) and seal each
        share to the attested box key of its holder's current boot; each holder checks its share
        against the commitment and seals it pending, and all commit once every holder
        acknowledged the same key (as a creation). The key is flagged imported. Never retried."""
        suite = suite or ("ed25519" if private.group.name == "ed25519" else "ecdsa-secp256k1")
        try:
            kind = key_suite(suite)
        except MpcError as error:
            raise InvalidInputError(str(error)) from None
        if kind.group is not private.group:
            raise InvalidInputError(f"a {private.group.name} key cannot be a {kind.name} key")
        if exportable and policy is None:
            raise InvalidInputError("only a key with an approval policy can be exportable")
        participants = sorted(nodes or self._node_ids)
        n = len(participants)
        t = (n - 1) // 2 if threshold is None else threshold
        try:
            kind.check_committee(t, n)
        except MpcError as error:
            raise InvalidInputError(str(error)) from None
        group = kind.group
        ids = {node: Identifier.from_int(group, k) for k, node in enumerate(participants, 1)}
        shares, polynomial = split_secret(group, private.scalar, t, list(ids.values()), self._rng)
        commitment = polynomial.commitments()
        del polynomial
        expected = PublicKeyPackage(
            group,
            commitment.constant,
            {ident: commitment.evaluate(ident) for ident in ids.values()},
            t,
        ).to_bytes()
        links = await self._fresh(participants)
        documents = {i: link.document for i, link in links.items()}
        session_id = os.urandom(32)
        encoded_policy = b"" if policy is None else policy.encode()
        requests = {}
        for node_id, link in links.items():
            plaintext = encode_import_share(
                name, session_id, node_id, shares[ids[node_id]].to_bytes()
            )
            envelope = SealedBox(BoxPublicKey(link.binding.box_public_key)).encrypt(plaintext)
            requests[node_id] = KeyImport(
                name,
                kind.name,
                t,
                session_id,
                documents,
                commitment.to_bytes(),
                bytes(envelope),
                encoded_policy,
                exportable,
            )
        shares.clear()
        replies = await asyncio.gather(
            *(self._call(i, requests[i], KeyCreated) for i in participants)
        )
        for node_id, reply in zip(participants, replies, strict=True):
            if reply.public_key_package != expected:
                raise ProtocolError(f"{node_id} sealed another key", culprit=node_id)
        acknowledgements = {i: r.outbox for i, r in zip(participants, replies, strict=True)}
        inboxes = self._route(acknowledgements, participants, "imported-key acknowledgement")
        await asyncio.gather(
            *(self._call(i, KeyCommit(name, tuple(inboxes[i])), KeyCommitted) for i in participants)
        )
        await self._witnesses.record(participants)
        key = KeyDescription(
            name,
            kind,
            PublicKeyPackage.from_bytes(expected, group),
            {i: k for k, i in enumerate(participants, start=1)},
            policy,
            exportable=exportable,
            imported=True,
        )
        self._keys[name] = key
        return key

    # -- offline partial signatures (keyshard.client.offline) -----------------------------

    async def _node_key(
        self, node_id: str, name: str, scheme: Scheme = Scheme.FROST
    ) -> tuple[KeyInfoReply, PublicKeyPackage]:
        """One node's own description of a key of ``scheme`` (the air-gapped side reaches one
        node)."""
        info = await self._call(node_id, KeyInfo(name), KeyInfoReply)
        try:
            kind = key_suite(info.suite)
            public = PublicKeyPackage.from_bytes(info.public_key_package, kind.group)
        except MpcError as error:
            raise ProtocolError(f"{node_id} describes {name!r} wrongly: {error}") from None
        if kind.scheme is not scheme:
            raise InvalidInputError(
                f"key {name!r} is {kind.name}, not a {scheme.value} key (FROST keys publish nonce"
                " commitments, ECDSA keys presignatures)"
            )
        return info, public

    @staticmethod
    def _offline_party(key: KeyDescription, commitments: CommitmentsFile) -> int:
        """The offline node's party: the online side may not know the node (a profile without
        it), so it is the one the commitments file names, if the key has it and no online
        holder claims it."""
        offline = commitments.node_id
        party = key.holders.get(offline, commitments.identifier)
        claimed = {i for n, i in key.holders.items() if n != offline}
        known = {int(i) for i in key.public.identifiers}
        if party != commitments.identifier or party not in known or party in claimed:
            raise InvalidInputError(
                f"{offline} is not party {commitments.identifier} of {key.name!r}"
            )
        return party

    async def offline_commit(self, node_id: str, name: str, count: int) -> CommitmentsFile:
        """Air-gapped side: ``count`` nonce commitments of ``node_id`` for ``name``, to publish
        (the nonces stay in the node, each usable once)."""
        info, public = await self._node_key(node_id, name)
        try:
            request = NonceCommit(name, count)
        except MalformedMessageError as error:
            raise InvalidInputError(str(error)) from None
        reply = await self._call(node_id, request, NonceCommitments)
        return CommitmentsFile(
            name,
            node_id,
            public.group_public_key.to_bytes(),
            tuple(reply.commitments),
            info.identifier,
        )

    async def offline_sign(self, node_id: str, package: PackageFile) -> PartialFile:
        """Air-gapped side: ``node_id``'s signature share over ``package`` (it checks the
        approvals and spends the nonces behind its commitment; a replay is refused)."""
        if package.node_id != node_id:
            raise InvalidInputError(f"this package is for {package.node_id}, not {node_id}")
        if package.scheme == ECDSA:
            return await self._offline_sign_ecdsa(node_id, package)
        info, public = await self._node_key(node_id, package.key_name)
        if public.group_public_key.to_bytes() != package.public_key:
            raise InvalidInputError(f"this package is for another key named {package.key_name!r}")
        try:
            parsed = SigningPackage.from_bytes(package.package)
            request = FrostSign(package.key_name, (package.package,), (package.approvals,))
        except (MpcError, MalformedMessageError) as error:
            raise InvalidInputError(f"not a signing package: {error}") from None
        reply = await self._call(node_id, request, SignatureShares)
        ident = Identifier.from_int(public.group, info.identifier)
        try:
            share = SignatureShare.from_bytes(reply.shares[0])
            verify_signature_share(parsed, ident, share, public)
        except (MpcError, IndexError) as error:
            raise ProtocolError(f"{node_id}'s share: {error}", culprit=node_id) from None
        return PartialFile(
            package.key_name, node_id, package_digest(package.package), reply.shares[0]
        )

    async def prepare_offline(
        self,
        name: str,
        message: bytes,
        commitments: CommitmentsFile,
        *,
        index: int = 0,
        approvals: Sequence[bytes] = (),
    ) -> PackageFile:
        """Online side: a package carrying the offline node's published commitment ``index``,
        signed at once by enough online holders (their shares verified and kept in the file)."""
        key = await self.describe_key(name)
        if commitments.scheme == ECDSA:
            return await self._prepare_offline_ecdsa(key, message, commitments, index, approvals)
        if key.suite.scheme is not Scheme.FROST:
            raise InvalidInputError(f"key {name!r} is {key.suite.name}: these are FROST files")
        offline = commitments.node_id
        if commitments.key_name != name or commitments.public_key != key.public_key:
            raise InvalidInputError(f"these commitments are not {name!r}'s")
        party = self._offline_party(key, commitments)
        their_id = Identifier.from_int(key.public.group, party)
        suite = key.suite.frost_suite()
        try:
            theirs = SigningCommitments.from_bytes(commitments.commitments[index])
        except (MpcError, IndexError) as error:
            raise InvalidInputError(f"commitment {index}: {error}") from None
        if theirs.suite is not suite or theirs.session_id != PREPROCESSED_SESSION_ID:
            raise InvalidInputError(f"commitment {index} is for another suite")

        async def attempt() -> PackageFile:
            online = [n for n in sorted(key.holders) if n != offline]
            needed = key.suite.signers_needed(key.threshold) - 1
            chosen = (await self._reachable(online))[:needed]
            if len(chosen) < needed:
                raise UnavailableError(
                    f"{len(chosen)} online holder(s) of {name!r} reachable; {needed} needed",
                    have=len(chosen),
                    need=needed,
                )
            pools = await asyncio.gather(*(self._commitments(key, n, 1) for n in chosen))
            mine = {key.identifier(n): pool[0] for n, pool in zip(chosen, pools, strict=True)}
            package = SigningPackage(
                suite, PREPROCESSED_SESSION_ID, mine | {their_id: theirs}, message
            )
            encoded = package.to_bytes()
            request = FrostSign(name, (encoded,), (tuple(approvals),))
            replies = await asyncio.gather(
                *(self._call(n, request, SignatureShares) for n in chosen)
            )
            shares = {}
            for node_id, reply in zip(chosen, replies, strict=True):
                try:
                    share = SignatureShare.from_bytes(reply.shares[0])
                    verify_signature_share(package, key.identifier(node_id), share, key.public)
                except (MpcError, IndexError) as error:
                    raise ProtocolError(f"{node_id}'s share: {error}", culprit=node_id) from None
                shares[node_id] = reply.shares[0]
            return PackageFile(name, offline, key.public_key, encoded, tuple(approvals), shares)

        return await self._retry_once(name, attempt)

    async def combine_offline(self, package: PackageFile, partial: PartialFile) -> bytes:
        """Online side: the signature, from the package's online shares and the offline
        node's partial; returned only if it verifies under the key."""
        key = await self._combinable(package, partial)
        if package.scheme == ECDSA:
            return self._combine_ecdsa(key, package, partial).to_der()
        try:
            parsed = SigningPackage.from_bytes(package.package)
            shares = {
                key.identifier(n): SignatureShare.from_bytes(s)
                for n, s in package.online_shares.items()
            }
            # the offline node's party: the one signer of the package no online share covers
            [offline] = [i for i in parsed.signers if i not in shares]
            shares[offline] = SignatureShare.from_bytes(partial.share)
            return aggregate(parsed, shares, key.public)
        except ProtocolAbort as error:
            raise ProtocolError(
                f"signature of {key.name!r} refused: {error}", culprit=_culprits(key, error)
            ) from None
        except (MpcError, KeyError, ValueError) as error:
            raise InvalidInputError(f"the package and partial do not combine: {error}") from None

    async def _combinable(self, package: PackageFile, partial: PartialFile) -> KeyDescription:
        """The key, once the package and partial belong together and to it."""
        key = await self.describe_key(package.key_name)
        if (partial.key_name, partial.node_id) != (package.key_name, package.node_id):
            raise InvalidInputError("this partial is for another key or node than the package")
        if partial.digest != package_digest(package.package):
            raise InvalidInputError("this partial signed another package")
        if key.public_key != package.public_key:
            raise InvalidInputError(f"this package is for another key named {key.name!r}")
        return key

    # -- offline partial signatures: threshold ECDSA ---------------------------------------

    async def offline_presign(self, name: str, node_id: str, count: int) -> CommitmentsFile:
        """Online side, while ``node_id`` is still reachable: ``count`` presignatures of
        ``name`` made by 2t+1 holders including ``node_id``, described in a file for
        :meth:`prepare_offline`. Their secret halves stay in the presigners' memory: single
        use, lost when any of them reboots, expired by the nodes after an hour."""
        key = await self.describe_key(name)
        if key.suite.scheme is not Scheme.ECDSA:
            raise InvalidInputError(f"key {name!r} is {key.suite.name}, not threshold ECDSA")
        if node_id not in key.holders:
            raise InvalidInputError(f"{node_id} is not a holder of {name!r} reachable from here")
        if not 1 <= count <= MAX_OFFLINE_PRESIGNATURES:
            raise InvalidInputError(f"offline presigning makes 1..{MAX_OFFLINE_PRESIGNATURES}")
        await self.link(node_id)  # its channel first: a clear error if it is unreachable
        needed = key.suite.signers_needed(key.threshold)
        others = await self._reachable([n for n in sorted(key.holders) if n != node_id])
        if len(others) < needed - 1:
            raise UnavailableError(
                f"{len(others) + 1} holder(s) of {name!r} reachable; {needed} presign",
                have=len(others) + 1,
                need=needed,
            )
        signers = [node_id, *others[: needed - 1]]
        infos: list[PresignatureInfo] = []
        while len(infos) < count:
            batch = min(MAX_PRESIGN_BATCH, count - len(infos))
            infos += await self.presign(name, count=batch, signers=signers)
        return CommitmentsFile(
            name,
            node_id,
            key.public_key,
            tuple(PresignatureDescription.of(info).encode() for info in infos),
            key.holders[node_id],
            ECDSA,
        )

    # presigning by files, for a node that is never reachable (keyshard.client.offline)

    async def offline_presign_open(self, name: str, node_id: str, count: int) -> PresignRunFile:
        """Online side: a presigning run of ``count`` presignatures between 2t holders reachable
        here and the offline ``node_id``, opened as a file (stage 1) for the air-gapped side:
        the session and the online presigners' fresh attestation documents."""
        key = await self.describe_key(name)
        if key.suite.scheme is not Scheme.ECDSA:
            raise InvalidInputError(f"key {name!r} is {key.suite.name}, not threshold ECDSA")
        if not 1 <= count <= MAX_PRESIGN_BATCH:
            raise InvalidInputError(f"a presigning run makes 1..{MAX_PRESIGN_BATCH}")
        needed = key.suite.signers_needed(key.threshold) - 1
        chosen = (await self._reachable(n for n in sorted(key.holders) if n != node_id))[:needed]
        if len(chosen) < needed:
            raise UnavailableError(
                f"{len(chosen)} online holder(s) of {name!r} reachable; {needed} presign",
                have=len(chosen),
                need=needed,
            )
        links = await self._fresh(chosen)
        return PresignRunFile(
            name,
            node_id,
            key.public_key,
            os.urandom(32),
            count,
            1,
            {n: key.holders[n] for n in chosen},
            {n: links[n].document for n in chosen},
        )

    async def offline_presign_step(
        self, run: PresignRunFile, node_id: str | None = None
    ) -> PresignRunFile | CommitmentsFile:
        """The next stage of a presigning run by files: the air-gapped side (``node_id``, the
        offline node) answers odd stages, the online side (``node_id`` None) even ones. The
        air-gapped side's answer to the last stage is the presignatures' file for
        :meth:`prepare_offline`; every other answer is the run's next file."""
        if run.air_gapped_turn != (node_id is not None):
            side = f"the air-gapped side (node {run.node_id})" if run.air_gapped_turn else "online"
            raise InvalidInputError(f"stage {run.stage} of this run is answered {side}")
        if node_id is not None and node_id != run.node_id:
            raise InvalidInputError(f"this run is for {run.node_id}, not {node_id}")
        if node_id is None:
            return await self._presign_online(run)
        return await self._presign_air_gapped(run)

    async def _presign_rounds(
        self, run: PresignRunFile, nodes: Sequence[str], rounds: Sequence[int]
    ) -> tuple[PresignRunFile, dict[str, Presigned]]:
        """Have ``nodes`` take ``rounds`` in turn (0: start); the run with their envelopes,
        and their ``Presigned`` answers once round 3 is taken."""
        finished: dict[str, Presigned] = {}
        for round_ in rounds:
            requests: dict[str, Request] = {
                n: (
                    PresignStart(run.key_name, run.session_id, run.documents, run.count)
                    if round_ == 0
                    else PresignStep(run.key_name, run.session_id, run.inbox(n, round_))
                )
                for n in nodes
            }
            answers = await asyncio.gather(*(self._call(n, requests[n], Reply) for n in nodes))
            outboxes = {}
            for node_id, answer in zip(nodes, answers, strict=True):
                if isinstance(answer, DkgOutbox) and round_ < PRESIGN_ROUNDS:
                    outboxes[node_id] = answer.outbox
                elif isinstance(answer, Presigned) and round_ == PRESIGN_ROUNDS:
                    if len(answer.presignature_ids) != run.count:
                        raise ProtocolError(f"{node_id} presigned another count", culprit=node_id)
                    finished[node_id] = answer
                else:
                    raise ProtocolError(f"{node_id} answered round {round_} out of turn")
            if outboxes:
                run = run.with_outboxes(round_ + 1, outboxes)
        return run, finished

    async def _presign_online(self, run: PresignRunFile) -> PresignRunFile:
        key = await self.describe_key(run.key_name)
        if key.public_key != run.public_key:
            raise InvalidInputError(f"this run is for another key named {run.key_name!r}")
        online = sorted(n for n in run.parties if n != run.node_id)
        if any(key.holders.get(n) != run.parties[n] for n in online) or run.node_id in online:
            raise InvalidInputError("this run names presigners the key does not have")
        if run.stage == 2:  # the presigners start: documents fresh for the offline node's next
            links = await self._fresh(online)  # carrying (same boots: the same box keys)
            fresh = {n: links[n].document for n in online}
            run = replace(run, documents=dict(run.documents) | fresh)
        answered, finished = await self._presign_rounds(run, online, STAGE_ROUNDS[run.stage])
        if finished:
            results = {(a.presignature_ids, a.big_rs) for a in finished.values()}
            if len(results) != 1:
                raise ProtocolError("the presigners disagree about the presignatures")
            ids, big_rs = results.pop()
            answered = replace(answered, presignature_ids=ids, big_rs=big_rs)
        return replace(answered, stage=run.stage + 1)

    async def _presign_air_gapped(self, run: PresignRunFile) -> PresignRunFile | CommitmentsFile:
        node = run.node_id
        info, public = await self._node_key(node, run.key_name, Scheme.ECDSA)
        if public.group_public_key.to_bytes() != run.public_key:
            raise InvalidInputError(f"this run is for another key named {run.key_name!r}")
        if run.stage == 1:  # the node joins: its party and its fresh document
            if info.identifier in {p for n, p in run.parties.items() if n != node}:
                raise InvalidInputError(f"this run gives {node}'s party to another presigner")
            document = (await self._fresh_link(node)).document
            run = replace(
                run,
                parties=dict(run.parties) | {node: info.identifier},
                documents=dict(run.documents) | {node: document},
            )
        elif run.parties.get(node) != info.identifier:
            raise InvalidInputError(f"this run does not give {node} its party")
        answered, finished = await self._presign_rounds(run, [node], STAGE_ROUNDS[run.stage])
        if node not in finished:
            return replace(answered, stage=run.stage + 1)
        answer = finished[node]
        if (answer.presignature_ids, answer.big_rs) != (run.presignature_ids, run.big_rs):
            raise ProtocolError("the online presigners finished with other presignatures")
        return run.published()

    async def _prepare_offline_ecdsa(
        self,
        key: KeyDescription,
        message: bytes,
        commitments: CommitmentsFile,
        index: int,
        approvals: Sequence[bytes],
    ) -> PackageFile:
        """Online side: the online presigners of presignature ``index`` sign ``message`` with
        it (each checks the approvals, then spends its half); their shares go in the package.
        Never retried: a second attempt would need the presignature the first one spent."""
        name, offline = key.name, commitments.node_id
        if key.suite.scheme is not Scheme.ECDSA:
            raise InvalidInputError(f"key {name!r} is {key.suite.name}: these are ECDSA files")
        if commitments.key_name != name or commitments.public_key != key.public_key:
            raise InvalidInputError(f"these presignatures are not {name!r}'s")
        party = self._offline_party(key, commitments)
        description = commitments.presignature(index)
        info = description.to_info(key.public)
        if party not in description.parties:
            raise InvalidInputError(f"presignature {index} was not made with {offline}")
        if len(description.parties) != key.suite.signers_needed(key.threshold):
            raise InvalidInputError(f"presignature {index} has another number of presigners")
        online = {}
        for p in info.parties:
            if int(p) != party:
                holder = [n for n, i in key.holders.items() if i == int(p) and n != offline]
                if not holder:
                    raise InvalidInputError(f"presignature {index}: party {int(p)} is unknown")
                online[holder[0]] = p
        try:
            signing = SigningRequest.create(info, message_digest(message), self._rng)
            request = EcdsaSign(
                name, (info.presignature_id,), (message,), (signing.entropy,), (tuple(approvals),)
            )
        except (MpcError, MalformedMessageError) as error:
            raise InvalidInputError(str(error)) from None
        chosen = sorted(online)
        replies = await asyncio.gather(*(self._call(n, request, SignatureShares) for n in chosen))
        shares = {}
        for node_id, reply in zip(chosen, replies, strict=True):
            try:
                share = EcdsaSignatureShare.from_bytes(reply.shares[0], key.public.group)
            except (MpcError, IndexError) as error:
                raise ProtocolError(f"{node_id}'s share: {error}", culprit=node_id) from None
            if share.request_digest != signing.digest():
                raise ProtocolError(f"{node_id} signed another request", culprit=node_id)
            shares[node_id] = reply.shares[0]
        package = EcdsaPackage(description, message, signing.entropy)
        return PackageFile(
            name, offline, key.public_key, package.encode(), tuple(approvals), shares, ECDSA
        )

    async def _offline_sign_ecdsa(self, node_id: str, package: PackageFile) -> PartialFile:
        """Air-gapped side: ``node_id`` checks the approvals, spends its half of the package's
        presignature and answers its share (a replay: ``nonce_unknown``, the half is gone)."""
        info, public = await self._node_key(node_id, package.key_name, Scheme.ECDSA)
        if public.group_public_key.to_bytes() != package.public_key:
            raise InvalidInputError(f"this package is for another key named {package.key_name!r}")
        ecdsa = package.ecdsa()
        presignature = ecdsa.presignature.to_info(public)
        if info.identifier not in ecdsa.presignature.parties:
            raise InvalidInputError(f"this package's presignature was not made with {node_id}")
        try:
            signing = SigningRequest(
                presignature.presignature_id, message_digest(ecdsa.message), ecdsa.entropy
            )
            request = EcdsaSign(
                package.key_name,
                (presignature.presignature_id,),
                (ecdsa.message,),
                (ecdsa.entropy,),
                (package.approvals,),
            )
        except (MpcError, MalformedMessageError) as error:
            raise InvalidInputError(f"not a signing package: {error}") from None
        reply = await self._call(node_id, request, SignatureShares)
        # one ECDSA share cannot be verified alone (no redundancy at degree 2t): the combined
        # signature is; here only what it names is checked
        try:
            share = EcdsaSignatureShare.from_bytes(reply.shares[0], public.group)
        except (MpcError, IndexError) as error:
            raise ProtocolError(f"{node_id}'s share: {error}", culprit=node_id) from None
        if (share.presignature_id, share.request_digest) != (
            presignature.presignature_id,
            signing.digest(),
        ):
            raise ProtocolError(f"{node_id} signed another request", culprit=node_id)
        return PartialFile(
            package.key_name, node_id, package_digest(package.package), reply.shares[0]
        )

    async def combine_offline_ecdsa(
        self, package: PackageFile, partial: PartialFile
    ) -> EcdsaSignature:
        """Online side: the ECDSA signature (low-S, with its recovery id) from an ECDSA
        package's online shares and the offline node's partial; returned only if it verifies
        under the key (libsecp256k1)."""
        if package.scheme != ECDSA:
            raise InvalidInputError("this is a FROST package: use combine_offline")
        return self._combine_ecdsa(await self._combinable(package, partial), package, partial)

    @staticmethod
    def _combine_ecdsa(
        key: KeyDescription, package: PackageFile, partial: PartialFile
    ) -> EcdsaSignature:
        ecdsa = package.ecdsa()
        info = ecdsa.presignature.to_info(key.public)
        group = key.public.group
        try:
            signing = SigningRequest(
                info.presignature_id, message_digest(ecdsa.message), ecdsa.entropy
            )
            shares = {
                key.identifier(n): EcdsaSignatureShare.from_bytes(s, group)
                for n, s in package.online_shares.items()
            }
            # the offline node's party: the one presigner no online share covers
            [offline] = [p for p in info.parties if p not in shares]
            shares[offline] = EcdsaSignatureShare.from_bytes(partial.share, group)
            return combine_ecdsa(info, signing, shares)
        except ProtocolAbort as error:
            raise ProtocolError(
                f"ECDSA signature of {key.name!r} refused: {error}", culprit=_culprits(key, error)
            ) from None
        except (MpcError, KeyError, ValueError) as error:
            raise InvalidInputError(f"the package and partial do not combine: {error}") from None

    async def witness_audit_checkpoints(self) -> int:
        """Hand each node's signed audit checkpoint to its reachable peers (they keep the
        highest); the number of (node, peer) records now held (:mod:`wire.checkpoints`)."""
        return await self._witnesses.checkpoints()

    async def offline_witness_request(self, node_id: str) -> WitnessRequestFile:
        """Air-gapped side: ``node_id``'s fresh attestation document, for its peers to seal
        their witness reports to (the link's ``hello`` is served before the node is witnessed)."""
        return WitnessRequestFile(node_id, (await self._fresh_link(node_id)).document)

    async def offline_witness_reports(self, request: WitnessRequestFile) -> WitnessReportsFile:
        """Online side: every reachable peer's report on the offline node, sealed to the box
        key its document binds (a peer that cannot vouch is skipped; the node's quorum rule
        decides)."""
        peers = await self._reachable([n for n in self._node_ids if n != request.node_id])
        links = await self._fresh(peers)
        try:
            query = WitnessQuery(request.node_id, request.document)
        except MalformedMessageError as error:
            raise InvalidInputError(str(error)) from None
        results = await asyncio.gather(
            *(self._call(p, query, WitnessEnvelope) for p in peers), return_exceptions=True
        )
        documents, envelopes = {}, {}
        for peer, result in zip(peers, results, strict=True):
            if isinstance(result, ChannelError | RemoteError):
                continue
            if isinstance(result, BaseException):
                raise result
            documents[peer], envelopes[peer] = links[peer].document, result.envelope
        if not envelopes:
            raise UnavailableError(f"no peer reported on {request.node_id}", have=0, need=1)
        return WitnessReportsFile(request.node_id, documents, envelopes)

    async def offline_witness_check(
        self, node_id: str, reports: WitnessReportsFile
    ) -> WitnessVerdict:
        """Air-gapped side: show ``node_id`` its peers' reports; its verdict (``witnessed``:
        it serves keys for the rest of this boot). A rolled-back node answers its error."""
        if reports.node_id != node_id:
            raise InvalidInputError(f"these reports are on {reports.node_id}, not {node_id}")
        try:
            request = WitnessCheck(reports.documents, reports.envelopes)
        except MalformedMessageError as error:
            raise InvalidInputError(str(error)) from None
        return await self._request(node_id, request, WitnessVerdict)
