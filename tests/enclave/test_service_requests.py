"""The node service's request handling, in process: three NodeService objects with real emulated
NSMs and real sealed stores, driven through ``dispatch`` (typed errors) and ``answer`` (what the
connection sends: refusals as ``error`` replies with their wire code).

FROST signing uses preprocessed nonces: ``nonce_commit`` hands out commitments, ``frost_sign``
signs packages carrying them, each commitment at most once. Also the secrecy canary: with DEBUG
logging on, no key share appears in any log record or error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from service_fixtures import NODES, Cluster, boot

from attestation.emulated_ca import EmulatedCa
from enclave.logs import LogChannel
from enclave.mpc.decryption.combine import combine
from enclave.mpc.decryption.ecies import encrypt
from enclave.mpc.decryption.partial import PartialDecryption
from enclave.mpc.frost.aggregate import aggregate
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512
from enclave.mpc.frost.round1 import PREPROCESSED_SESSION_ID, SigningCommitments
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage
from enclave.mpc.groups import ED25519, Group
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import KeyShare, PublicKeyPackage
from enclave.service.errors import (
    KeyExistsError,
    NonceUnknownError,
    PeerRefusedError,
    SessionError,
    UnexpectedMessageError,
    UnknownKeyError,
)
from enclave.service.handlers import OsRandom
from enclave.service.keystore import PENDING_TIMEOUT, KeyStore
from enclave.service.nonces import FrostNonces
from wire import cbor
from wire.errors import ErrorCode
from wire.messages import (
    DecryptPartial,
    DkgOutbox,
    DkgStep,
    ErrorReply,
    FrostSign,
    Hello,
    KeyCommit,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyInfoReply,
    KeyList,
    KeyListReply,
    NonceCommit,
    NonceCommitments,
    Partial,
    PresignStep,
    Request,
    SignatureShares,
)

#: Party identifiers are positions in the sorted node list.
POSITION = {node_id: index for index, node_id in enumerate(NODES, 1)}


@pytest.fixture(scope="module")
def cluster(ca: EmulatedCa) -> Cluster:
    """Holds key ``frost`` (ed25519) and ``frost-b`` (another key of the same suite)."""
    cluster = Cluster(ca)
    for name in ("frost", "frost-b"):
        asyncio.run(cluster.create_key(name))
    return cluster


def ident(node_id: str, group: Group = ED25519) -> Identifier:
    return Identifier.from_int(group, POSITION[node_id])


async def committed(
    cluster: Cluster, node_id: str, key: str = "frost", count: int = 1
) -> list[SigningCommitments]:
    reply = await cluster.services[node_id].dispatch(NonceCommit(key, count))
    assert isinstance(reply, NonceCommitments)
    assert len(reply.commitments) == count
    commitments = [SigningCommitments.from_bytes(c) for c in reply.commitments]
    assert all(c.session_id == PREPROCESSED_SESSION_ID for c in commitments)
    return commitments


def package(commitments: dict[str, SigningCommitments], message: bytes) -> SigningPackage:
    """A signing package over preprocessed commitments (given by node id), in their suite."""
    suite = next(iter(commitments.values())).suite
    return SigningPackage(
        suite,
        PREPROCESSED_SESSION_ID,
        {ident(n, suite.group): c for n, c in commitments.items()},
        message,
    )


async def packages_for(
    cluster: Cluster, signers: tuple[str, ...], messages: list[bytes], key: str = "frost"
) -> list[SigningPackage]:
    """One package per message, each with a fresh commitment of every signer."""
    pools = {n: await committed(cluster, n, key, len(messages)) for n in signers}
    return [
        package({n: pools[n][k] for n in signers}, message) for k, message in enumerate(messages)
    ]


async def frost_shares(
    cluster: Cluster, key: str, signers: tuple[str, ...], packages: list[SigningPackage]
) -> list[dict[Identifier, SignatureShare]]:
    """Every signer's ``frost_sign`` over the batch; the shares by item, then by signer."""
    by_item: list[dict[Identifier, SignatureShare]] = [{} for _ in packages]
    for node_id in signers:
        reply = await cluster.services[node_id].dispatch(frost_sign(key, *packages))
        assert isinstance(reply, SignatureShares)
        assert len(reply.shares) == len(packages)
        for k, share in enumerate(reply.shares):
            by_item[k][ident(node_id)] = SignatureShare.from_bytes(share)
    return by_item


def frost_sign(key: str, *packages: SigningPackage) -> FrostSign:
    return FrostSign(key, tuple(p.to_bytes() for p in packages), ((),) * len(packages))


async def key_public(cluster: Cluster, key: str) -> PublicKeyPackage:
    info = await cluster.services["node-1"].dispatch(KeyInfo(key))
    assert isinstance(info, KeyInfoReply)
    return PublicKeyPackage.from_bytes(info.public_key_package)


def verify(public: PublicKeyPackage, signature: bytes, message: bytes) -> None:
    """RFC 8032 verification by OpenSSL (raises unless the signature holds)."""
    key = Ed25519PublicKey.from_public_bytes(public.group_public_key.to_bytes())
    key.verify(signature, message)


# -- end to end, with the secrecy canary ---------------------------------------------------------


def test_create_sign_decrypt_and_no_secret_in_logs(
    ca: EmulatedCa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cluster = Cluster(ca)
    refusals: list[str] = []
    # The log channel too: every line it would hand the parent (DEBUG included).
    shipped = _ShippedLines()
    channel = LogChannel(shipped, level=logging.DEBUG)  # type: ignore[arg-type]
    logging.getLogger().addHandler(channel)

    async def use() -> tuple[PublicKeyPackage, list[bytes], bytes]:
        public = await cluster.create_key("canary")
        info = await cluster.services["node-3"].dispatch(KeyInfo("canary"))
        assert isinstance(info, KeyInfoReply)
        assert (info.suite, info.identifier, info.nodes, info.epoch) == ("ed25519", 3, NODES, 0)
        assert info.policy == b""
        assert info.public_key_package == public.to_bytes()

        signers = ("node-1", "node-3")
        messages = [b"msg", b"another msg"]
        packages = await packages_for(cluster, signers, messages, "canary")
        shares = await frost_shares(cluster, "canary", signers, packages)
        signatures = [aggregate(p, s, public) for p, s in zip(packages, shares, strict=True)]
        # the nonces are single use: the same package again is refused by every signer
        for node_id in signers:
            again = await cluster.refusal(node_id, frost_sign("canary", packages[0]))
            assert again.code is ErrorCode.NONCE_UNKNOWN
            refusals.append(again.message)

        ciphertext = encrypt(public.group_public_key, b"payroll", OsRandom(), b"ad")
        session = os.urandom(32)
        partials = {}
        for node_id in signers:
            request = DecryptPartial("canary", ciphertext.to_bytes(), session, b"ad")
            reply = await cluster.services[node_id].answer(request)  # audited, as served
            assert isinstance(reply, Partial)
            partials[ident(node_id)] = PartialDecryption.from_bytes(reply.partial, ED25519)
        return public, signatures, combine(public, ciphertext, partials, session, b"ad")

    try:
        public, signatures, plaintext = asyncio.run(use())
        assert asyncio.run(channel.send_buffered())
    finally:
        logging.getLogger().removeHandler(channel)
    for signature, message in zip(signatures, [b"msg", b"another msg"], strict=True):
        verify(public, signature, message)
    assert plaintext == b"payroll"

    secrets_hex = []
    for node_id, store in cluster.stores.items():
        sealed = asyncio.run(store.get("key-canary"))
        assert sealed is not None, node_id
        share = KeyShare.from_sealed_bytes(cbor.loads(sealed)["share"])
        secret = share.secret_share.to_bytes()
        secrets_hex.append(secret.hex())
        # what the parent stores is sealed: the share never appears in it
        assert secret not in b"".join(cluster.hosts[node_id].blobs.values())
    records = [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    assert records  # the service did log its events
    assert any('"event": "request_refused"' in line for line in shipped.lines)
    # the audit trail too: every record the nodes would hand their parents
    audit = [
        json.dumps(record.to_json())
        for service in cluster.services.values()
        for record in service.audit.history
    ]
    assert any('"op": "decrypt_partial"' in line for line in audit)
    assert any('"outcome": "nonce_unknown"' in line for line in audit)
    text = "\n".join(records + refusals + shipped.lines + audit)
    for secret_hex in secrets_hex:
        assert secret_hex not in text
    assert b"payroll".hex() not in text
    assert "payroll" not in "\n".join(audit)


class _ShippedLines:
    """Stands in for the parent's host services: keeps what the log channel hands over."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def put_logs(self, lines: tuple[str, ...], dropped: int = 0) -> None:
        assert dropped == 0
        self.lines.extend(lines)


# -- refusals ----------------------------------------------------------------------------------


def test_refusals_carry_their_wire_code(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)
    service = cluster.services["node-2"]

    async def attempts() -> None:
        await cluster.create_key("taken")
        documents = cluster.documents()
        stale = dict(documents, **{"node-2": boot(ca, "node-2").document()})
        without_me = cluster.documents(("node-1", "node-3"))
        refused: list[tuple[Request, ErrorCode, str]] = [
            (KeyCreate("taken", "ed25519", 1, b"s" * 32, documents), ErrorCode.KEY_EXISTS, "taken"),
            (KeyInfo("absent"), ErrorCode.UNKNOWN_KEY, "absent"),
            (NonceCommit("absent", 1), ErrorCode.UNKNOWN_KEY, "absent"),
            (DkgStep("absent", ()), ErrorCode.SESSION, "no key creation"),
            (PresignStep("absent", b"s" * 32, ()), ErrorCode.SESSION, "no pending presigning"),
            # a document from another boot of this node id: the box key is not this service's
            (KeyCreate("fresh", "ed25519", 1, b"s" * 32, stale), ErrorCode.PEER_REFUSED, "boot"),
            (
                KeyCreate("fresh", "ed25519", 1, b"s" * 32, without_me),
                ErrorCode.PEER_REFUSED,
                "not among the participants",
            ),
            (KeyCreate("fresh", "p256", 1, b"s" * 32, documents), ErrorCode.UNSUPPORTED, "suite"),
            (Hello(os.urandom(32)), ErrorCode.UNEXPECTED, "not served"),
        ]
        for request, code, text in refused:
            reply = await cluster.refusal("node-2", request)
            assert (reply.code, request.OP) == (code, request.OP)
            assert text in reply.message, (request.OP, reply.message)
        # refused creations leave nothing behind: the name is still free
        started = await service.dispatch(KeyCreate("fresh", "ed25519", 1, b"s" * 32, documents))
        assert isinstance(started, DkgOutbox)
        again = await cluster.refusal(
            "node-2", KeyCreate("fresh", "ed25519", 1, b"t" * 32, documents)
        )
        assert again.code is ErrorCode.SESSION
        assert "already running" in again.message

        # dispatch raises the typed errors the codes come from
        with pytest.raises(KeyExistsError) as exists:
            await service.dispatch(KeyCreate("taken", "ed25519", 1, b"s" * 32, documents))
        assert exists.value.name == "taken"
        with pytest.raises(UnknownKeyError) as unknown:
            await service.dispatch(KeyInfo("absent"))
        assert unknown.value.name == "absent"
        with pytest.raises(PeerRefusedError, match="another boot") as peer:
            await service.dispatch(KeyCreate("other", "ed25519", 1, b"s" * 32, stale))
        assert peer.value.node_id == "node-2"
        with pytest.raises(SessionError, match="no key creation"):
            await service.dispatch(DkgStep("absent", ()))
        with pytest.raises(UnexpectedMessageError):
            await service.dispatch(Hello(os.urandom(32)))

    asyncio.run(attempts())


# -- KeyList -----------------------------------------------------------------------------------


def test_key_list_names_the_sealed_keys_and_survives_a_restart(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)

    async def listing() -> None:
        assert await cluster.services["node-1"].dispatch(KeyList()) == KeyListReply(())
        await cluster.create_key("zeta")
        await cluster.create_key("alpha", "ecdsa-secp256k1")
        # a creation still running is not a key
        documents = cluster.documents()
        await cluster.services["node-1"].dispatch(
            KeyCreate("pending", "ed25519", 1, os.urandom(32), documents)
        )
        for service in cluster.services.values():
            assert await service.dispatch(KeyList()) == KeyListReply(("alpha", "zeta"))
        restarted = await cluster.restart("node-2")  # a new boot reads the sealed manifest
        assert await restarted.dispatch(KeyList()) == KeyListReply(("alpha", "zeta"))
        info = await restarted.dispatch(KeyInfo("alpha"))
        assert isinstance(info, KeyInfoReply)
        assert (info.suite, info.identifier, info.nodes) == ("ecdsa-secp256k1", 2, NODES)

    asyncio.run(listing())


# -- preprocessed FROST nonces ---------------------------------------------------------------------


def test_a_commitment_signs_once(cluster: Cluster) -> None:
    async def run() -> None:
        public = await key_public(cluster, "frost")
        signers = ("node-1", "node-2")
        (signed,) = await packages_for(cluster, signers, [b"pay 10"])
        shares = await frost_shares(cluster, "frost", signers, [signed])
        verify(public, aggregate(signed, shares[0], public), b"pay 10")
        for node_id in signers:
            # the same package again, and the same commitments under another message
            for again in (
                signed,
                package({n: signed.commitments[ident(n)] for n in signers}, b"pay 1000"),
            ):
                reply = await cluster.refusal(node_id, frost_sign("frost", again))
                assert reply.code is ErrorCode.NONCE_UNKNOWN
        with pytest.raises(NonceUnknownError):
            await cluster.services["node-1"].dispatch(frost_sign("frost", signed))

    asyncio.run(run())


def test_concurrent_requests_for_one_commitment_get_one_share(cluster: Cluster) -> None:
    """Requests on a connection run concurrently: still, one commitment signs one request."""

    async def run() -> None:
        (signed,) = await packages_for(cluster, ("node-1", "node-2"), [b"race"])
        service = cluster.services["node-1"]
        replies = await asyncio.gather(
            *(service.answer(frost_sign("frost", signed)) for _ in range(4))
        )
        assert sum(isinstance(r, SignatureShares) for r in replies) == 1
        refused = [r for r in replies if isinstance(r, ErrorReply)]
        assert [r.code for r in refused] == [ErrorCode.NONCE_UNKNOWN] * 3

    asyncio.run(run())


def test_a_package_without_this_nodes_commitment_is_refused(cluster: Cluster) -> None:
    async def run() -> None:
        public = await key_public(cluster, "frost")
        signers = ("node-2", "node-3")
        (theirs,) = await packages_for(cluster, signers, [b"not for node-1"])
        reply = await cluster.refusal("node-1", frost_sign("frost", theirs))
        assert reply.code is ErrorCode.SESSION
        assert "no commitment of this node" in reply.message
        # the refusal took nothing from anyone: the package's own signers still sign it
        shares = await frost_shares(cluster, "frost", signers, [theirs])
        verify(public, aggregate(theirs, shares[0], public), b"not for node-1")

    asyncio.run(run())


def test_a_commitment_this_node_did_not_issue_for_this_key_is_refused(cluster: Cluster) -> None:
    async def run() -> None:
        mine = (await committed(cluster, "node-1"))[0]
        peer = (await committed(cluster, "node-2"))[0]
        other_key = (await committed(cluster, "node-1", "frost-b"))[0]
        moved = SigningCommitments(
            FROST_ED25519_SHA512, b"another session id", mine.hiding, mine.binding
        )
        forged = [
            package({"node-1": peer, "node-2": (await committed(cluster, "node-2"))[0]}, b"m"),
            package({"node-1": other_key, "node-2": peer}, b"m"),
        ]
        moved_package = SigningPackage(
            FROST_ED25519_SHA512,
            b"another session id",
            {
                ident("node-1"): moved,
                ident("node-2"): SigningCommitments(
                    FROST_ED25519_SHA512, b"another session id", peer.hiding, peer.binding
                ),
            },
            b"m",
        )
        for refused in (*forged, moved_package):
            reply = await cluster.refusal("node-1", frost_sign("frost", refused))
            assert reply.code is ErrorCode.NONCE_UNKNOWN
        # node-1's genuine commitments are untouched by the forgeries
        signers = ("node-1", "node-2")
        genuine = package({"node-1": mine, "node-2": peer}, b"m")
        public = await key_public(cluster, "frost")
        shares = await frost_shares(cluster, "frost", signers, [genuine])
        verify(public, aggregate(genuine, shares[0], public), b"m")
        # and frost-b's commitment still signs for frost-b
        (other,) = await packages_for(cluster, ("node-2",), [b"m"], "frost-b")
        mixed = package({"node-1": other_key, "node-2": other.commitments[ident("node-2")]}, b"m")
        shares = await frost_shares(cluster, "frost-b", signers, [mixed])
        public_b = await key_public(cluster, "frost-b")
        verify(public_b, aggregate(mixed, shares[0], public_b), b"m")

    asyncio.run(run())


def test_malformed_and_foreign_packages_are_refused(ca: EmulatedCa) -> None:
    cluster = Cluster(ca)

    async def run() -> None:
        await cluster.create_key("ed")
        await cluster.create_key("k1", "secp256k1")
        # a secp256k1 package (with node-1's genuine k1 commitment) sent for the ed25519 key
        (k1_package,) = await packages_for(cluster, ("node-1", "node-2"), [b"m"], "k1")
        reply = await cluster.refusal("node-1", frost_sign("ed", k1_package))
        assert reply.code is ErrorCode.UNSUPPORTED
        garbage = await cluster.refusal("node-1", FrostSign("ed", (b"garbage",), ((),)))
        assert garbage.code is ErrorCode.MALFORMED

    asyncio.run(run())


def test_preprocessed_nonces_are_bounded_per_key_and_forgotten_with_it(cluster: Cluster) -> None:
    """A client cannot exhaust a node's memory with commitments: the oldest are dropped."""
    key = asyncio.run(KeyStore(cluster.stores["node-3"]).stored("frost"))
    nonces = FrostNonces(max_per_key=2)
    encoded = nonces.preprocess("frost", key.suite.frost_suite(), key.share, 3, OsRandom())
    oldest, newer, newest = (SigningCommitments.from_bytes(c) for c in encoded)
    assert nonces.available("frost") == 2
    with pytest.raises(NonceUnknownError):
        nonces.take("frost", oldest)
    with pytest.raises(NonceUnknownError):  # nonces belong to one key
        nonces.take("frost-b", newer)
    taken = nonces.take("frost", newer)
    assert not taken.used
    assert "redacted" in repr(taken)
    with pytest.raises(NonceUnknownError):
        nonces.take("frost", newer)
    nonces.forget("frost")  # the key's shares changed: its nonces are gone
    assert nonces.available("frost") == 0
    with pytest.raises(NonceUnknownError):
        nonces.take("frost", newest)


# -- FROST batches -----------------------------------------------------------------------------


def test_frost_sign_batches_sign_every_package_in_order(cluster: Cluster) -> None:
    async def run() -> None:
        public = await key_public(cluster, "frost")
        signers = ("node-1", "node-3")
        messages = [b"batch item 0", b"batch item 1", b"batch item 2"]
        packages = await packages_for(cluster, signers, messages)
        shares = await frost_shares(cluster, "frost", signers, packages)
        for item, message, by_signer in zip(packages, messages, shares, strict=True):
            verify(public, aggregate(item, by_signer, public), message)

    asyncio.run(run())


def test_a_refused_batch_still_uses_up_the_nonces_it_took(cluster: Cluster) -> None:
    async def run() -> None:
        signers = ("node-1", "node-2")
        first, second = await packages_for(cluster, signers, [b"first", b"second"])
        reuse = package({n: first.commitments[ident(n)] for n in signers}, b"first, again")
        # one commitment twice in one batch: the second use is refused, so the whole request is
        reply = await cluster.refusal("node-1", frost_sign("frost", first, reuse))
        assert reply.code is ErrorCode.NONCE_UNKNOWN
        # and no share was returned for the first item, yet its nonce is gone for good
        alone = await cluster.refusal("node-1", frost_sign("frost", first))
        assert alone.code is ErrorCode.NONCE_UNKNOWN
        # node-2 was not asked: its commitments in both packages are still good
        shares = await cluster.services["node-2"].dispatch(frost_sign("frost", first, second))
        assert isinstance(shares, SignatureShares)
        assert len(shares.shares) == 2

    asyncio.run(run())


def test_two_concurrent_creations_of_one_name_cannot_both_start(ca: EmulatedCa) -> None:
    """The name is reserved before the node's first await: a second key_create that arrives
    while the first waits on the parent (for the "does it exist" read) is refused."""
    cluster = Cluster(ca)
    node = cluster.services["node-1"]

    async def run() -> tuple[object, ErrorCode]:
        documents = cluster.documents()
        create = KeyCreate("twice", "ed25519", 1, os.urandom(32), documents)
        with cluster.hosts["node-1"].hold("key-twice") as gate:
            first = asyncio.create_task(node.answer(create))
            await gate.reached.wait()
            second = await node.answer(KeyCreate("twice", "ed25519", 1, os.urandom(32), documents))
            gate.opened.set()
            assert isinstance(second, ErrorReply)
            return await first, second.code

    first, code = asyncio.run(run())
    assert code is ErrorCode.SESSION
    assert isinstance(first, DkgOutbox)


def test_a_key_withheld_from_one_node_is_usable_nowhere_and_expires(ca: EmulatedCa) -> None:
    """Issue 9 item 10: a client that withholds the last DKG round from node-3 used to leave a
    usable key on node-1 and node-2. Now a sealed share stays pending until every participant
    acknowledged sealing the same key: it signs nothing, is not listed, and once abandoned
    its name is free again."""
    cluster = Cluster(ca)
    now = time.time()
    cluster.clock = lambda: now

    async def run() -> None:
        documents, session = cluster.documents(), os.urandom(32)
        replies = {
            n: await s.dispatch(KeyCreate("held", "ed25519", 1, session, documents))
            for n, s in cluster.services.items()
        }
        for round_ in range(3):
            outboxes = {n: r.outbox for n, r in replies.items()}  # type: ignore[attr-defined]
            for node_id, service in cluster.services.items():
                if round_ == 2 and node_id == "node-3":
                    continue  # the last round never reaches node-3
                inbox = tuple(outboxes[o][node_id] for o in NODES if o != node_id)
                replies[node_id] = await service.dispatch(DkgStep("held", inbox))
        assert isinstance(replies["node-1"], KeyCreated)
        for request in (KeyInfo("held"), NonceCommit("held", 1)):
            reply = await cluster.refusal("node-1", request)
            assert reply.code is ErrorCode.KEY_PENDING, request.OP
        assert await cluster.services["node-1"].dispatch(KeyList()) == KeyListReply(())
        # node-1 cannot commit without node-3's acknowledgement
        inbox = (replies["node-2"].outbox["node-1"],)  # type: ignore[attr-defined]
        reply = await cluster.refusal("node-1", KeyCommit("held", inbox))
        assert reply.code is ErrorCode.ENVELOPE
        # abandoned: a new creation may take the name once the pending key expired
        reply = await cluster.refusal(
            "node-1", KeyCreate("held", "ed25519", 1, b"s" * 32, documents)
        )
        assert reply.code in (ErrorCode.SESSION, ErrorCode.KEY_EXISTS)
        cluster.clock = lambda: now + PENDING_TIMEOUT + 1
        await cluster.restart("node-1")  # its creation session is gone; the pending share stays
        fresh = cluster.documents()
        assert isinstance(
            await cluster.services["node-1"].dispatch(
                KeyCreate("held", "ed25519", 1, os.urandom(32), fresh)
            ),
            DkgOutbox,
        )

    asyncio.run(run())
