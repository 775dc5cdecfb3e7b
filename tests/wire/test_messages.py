"""The node service's wire protocol: closed, versioned message types with request ids, strict
canonical CBOR, validation on construction, and one request -> reply table."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from unittest import mock

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from wire import cbor, messages
from wire.approvals import ApprovalPolicy, Operation
from wire.errors import ErrorCode, MalformedMessageError
from wire.messages import (
    MAX_BATCH,
    MAX_NONCES,
    MAX_PATH,
    MAX_PRESIGN_BATCH,
    MAX_REQUEST_ID,
    REPLIES,
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
    Message,
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
    decode_reply,
    decode_request,
    encode,
    presign_batch_session_id,
)

SESSION = b"s" * 32
E64 = b"e" * 64  # an endorsement's size
APPROVER = (
    Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    .public_key()
    .public_bytes(Encoding.Raw, PublicFormat.Raw)
)
POLICY = ApprovalPolicy((APPROVER,), 1, frozenset({Operation.SIGN})).encode()
THREE = {"node-1": b"d1", "node-2": b"d2", "node-3": b"d3"}

REQUEST_SAMPLES: list[Request] = [
    Hello(b"n" * 32),
    KeyCreate("payroll", "ed25519", 1, SESSION, {"node-1": b"d1", "node-2": b"d2"}, POLICY),
    DkgStep("payroll", (b"e1", b"e2")),
    KeyCommit("payroll", (b"a1", b"a2")),
    KeyInfo("payroll"),
    KeyCreate("vault", "ed25519", 1, SESSION, {"node-1": b"d1", "node-2": b"d2"}, POLICY, True),
    KeyExport("vault", 2, SESSION, b"x" * 32, THREE, (b"a1", b"a2")),
    KeyImport("imp", "ed25519", 1, SESSION, THREE, b"commitment", b"envelope", POLICY, True),
    KeyList(),
    KeySetState("payroll", "disable", 0),
    KeySetState("payroll", "schedule_deletion", 3, 7, (b"approval",)),
    KeyRefresh("payroll", SESSION, 2, THREE, (b"approval",)),
    RefreshStep("payroll", SESSION, (b"e1", b"e2")),
    RefreshCommit("payroll", SESSION, (b"c1", b"c2")),
    RefreshVouch("payroll", 3, {"node-1": b"d1", "node-3": b"d3"}),
    RefreshFinish("payroll", 3, {"node-1": b"d1", "node-3": b"d3"}, (b"vouch",)),
    RefreshAbandon("payroll", 2, True),
    ReshareStart("payroll", SESSION, 2, THREE, ("node-1", "node-3"), 1, (b"approval",)),
    ReshareStep("payroll", SESSION, (b"e1", b"e2")),
    ReshareCommit("payroll", SESSION, (b"c1",)),
    ReshareVouch("payroll", 3, {"node-1": b"d1", "node-3": b"d3"}),
    ReshareFinish("payroll", 3, {"node-1": b"d1", "node-3": b"d3"}, (b"vouch",)),
    ReshareAbandon("payroll", 2, True),
    NonceCommit("payroll", 16),
    Bip340NonceCommit("btc", 64),
    RepairStart("payroll", SESSION, 1, "node-3", THREE, (b"approval",)),
    RepairSum("payroll", SESSION, (b"d1",)),
    RepairInstall("payroll", SESSION, THREE, (b"s1", b"s2")),
    Bip340Sign(
        "btc", (1, 3), (b"sighash",), ((b"n" * 66, b"m" * 66),), ((),), (b"\x01" + bytes(32),)
    ),
    FrostSign("payroll", (b"package 1", b"package 2"), ((b"approval",), ())),
    DecryptPartial("payroll", b"ct", SESSION, b"context", (b"a1", b"a2")),
    DecryptPartial("payroll", b"ct", SESSION, b"", (), {"node-3": b"d3"}, {"node-3": b"e" * 64}),
    DecryptPartials("payroll", (SESSION, SESSION), (b"ct1", b"ct2"), (b"", b"ctx"), ((), (b"a",))),
    BackupShare("payroll", b"r" * 32, (b"approval",)),
    KeyRestore("payroll", "ed25519", b"pkg", POLICY, ("node-1", "node-2"), b"sealed", (b"a",)),
    RestoreCommit("payroll"),
    PresignStart("wallet", SESSION, THREE, 3),
    PresignStep("wallet", SESSION, (b"e1", b"e2")),
    EcdsaSign(
        "wallet",
        (b"p" * 32, b"q" * 32),
        (b"tx 1", b""),
        (b"e" * 32, b"f" * 32),
        ((b"approval",), ()),
        "m/0/7",
    ),
    StateQuery(),
    PolicyUpdate("payroll", POLICY, (b"approval",)),
    PolicyShow("payroll"),
    AuditReceipts((bytes(32),)),
    WitnessRecord({"node-2": b"d2"}, {"node-2": b"statement"}),
    WitnessQuery("node-3", b"d3"),
    WitnessCheck({"node-1": b"d1", "node-2": b"d2"}, {"node-1": b"e1", "node-2": b"e2"}),
    AuditHead(),
    CheckpointRecord({"node-2": b"d2"}, {"node-2": b"checkpoint"}),
    CheckpointQuery("node-2"),
    PrfEvaluate("xks-key", SESSION, "encrypt", (b"n" * 32, b"o" * 32)),
    PrfEvaluate("xks-key", SESSION, "decrypt", (b"s" * 16,), {"node-3": b"d3"}, {"node-3": E64}),
]
REPLY_SAMPLES: list[Reply] = [
    KeyInfoReply(
        "ed25519", 1, b"pkg", POLICY, ("node-1", "node-2"), 0, "enabled", 0, False, True, True
    ),
    ExportedShare(2, b"enc || ct"),
    HelloReply(b"document"),
    DkgOutbox({"node-2": b"e"}),
    KeyCreated(b"pkg", {"node-2": b"ack"}),
    KeyCommitted(),
    KeyInfoReply("secp256k1", 2, b"pkg", POLICY, ("node-1", "node-2", "node-3"), 4),
    KeyListReply(("btc", "payroll")),
    KeyInfoReply("ed25519", 1, b"pkg", b"", ("node-1", "node-2"), 2, "pending_deletion", 1 << 31),
    KeyStateReply("disabled", 0, 5),
    RefreshStaged(b"pkg", {"node-2": b"confirmation"}),
    ReshareStatus("staged", 2, ("node-1", "node-2"), ("node-1", "node-4")),
    NonceCommitments((b"c1", b"c2")),
    SignatureShares((b"s1", b"s2")),
    Partial(b"partial"),
    Partial(b"partial", b"e" * 64),
    Endorsed(b"e" * 64),
    Partials((b"partial 1", b"partial 2")),
    Presigned((b"p" * 32, b"q" * 32), (b"\x02" + b"r" * 32, b"\x03" + b"r" * 32)),
    ShareBackup(2, 4, b"pkg", b"pve"),
    KeyRestored(),
    SignedState(b"statement"),
    PolicyUpdated(1),
    PolicyHistory(POLICY, (b"",), (1_700_000_000,)),
    AuditReceiptsReply((b"\xa1", b"\xa2"), (bytes(64), bytes(64))),
    WitnessRecorded(("node-2",)),
    WitnessEnvelope(b"envelope"),
    WitnessVerdict("witnessed", 1, 1),
    SignedCheckpoint(b""),
    SignedCheckpoint(b"checkpoint"),
    WitnessedCheckpointReply(b"record"),
    ErrorReply(ErrorCode.KEY_EXISTS, "key 'payroll' already exists"),
    PrfPartials((b"partial",)),
    PrfPartials((b"partial",), b"e" * 64),
]


def _module_classes(base: type[Message]) -> set[type[Message]]:
    return {
        cls
        for _, cls in inspect.getmembers(messages, inspect.isclass)
        if issubclass(cls, base) and cls is not base and cls.OP
    }


ALL_REQUESTS = _module_classes(Request)
ALL_REPLIES = _module_classes(Reply)


# -- round trips -------------------------------------------------------------------------------


def test_the_samples_cover_every_message_type() -> None:
    assert {type(m) for m in REQUEST_SAMPLES} == ALL_REQUESTS
    assert {type(m) for m in REPLY_SAMPLES} == ALL_REPLIES


@pytest.mark.parametrize("message", REQUEST_SAMPLES, ids=lambda m: m.OP)
def test_request_round_trip_is_byte_exact(message: Request) -> None:
    frame = encode(message, 41)
    assert decode_request(frame) == (41, message)
    assert encode(decode_request(frame)[1], 41) == frame
    with pytest.raises(MalformedMessageError) as caught:  # a request is never a reply
        decode_reply(frame)
    assert caught.value.field == "op"


@pytest.mark.parametrize("message", REPLY_SAMPLES, ids=lambda m: m.OP)
def test_reply_round_trip_is_byte_exact(message: Reply) -> None:
    frame = encode(message, 41)
    assert decode_reply(frame) == (41, message)
    assert encode(decode_reply(frame)[1], 41) == frame
    with pytest.raises(MalformedMessageError) as caught:  # a reply is never a request
        decode_request(frame)
    assert caught.value.field == "op"


def test_snapshots() -> None:
    # A changed snapshot is a wire-format break.
    hello = (
        "a4" + "617601" + "62696400" + "626f70" + "6568656c6c6f" + "656e6f6e63655820" + "00" * 32
    )
    assert encode(Hello(bytes(32)), 0).hex() == hello
    error = (
        "a5617601626964076" + "26f706565" + "72726f72" + "64636f6465" + "6462757379"
        "676d657373616765656c61746572"
    )
    assert encode(ErrorReply(ErrorCode.BUSY, "later"), 7).hex() == error
    # SHA-256(lp("keyshard/service/presign-batch/v1") || lp(session id) || lp(index as u16))
    assert presign_batch_session_id(bytes(32), 1).hex() == (
        "31777a2f9ae9a9c4283694824dd743042edd25d7871eea2c682e8ca43a3bed66"
    )


# -- request ids -------------------------------------------------------------------------------


@given(st.integers(0, MAX_REQUEST_ID))
def test_request_ids_round_trip(request_id: int) -> None:
    assert decode_request(encode(KeyList(), request_id))[0] == request_id
    assert decode_reply(encode(KeyListReply(()), request_id))[0] == request_id


@pytest.mark.parametrize("request_id", [-1, MAX_REQUEST_ID + 1, True, "7"])
def test_an_out_of_range_request_id_is_not_encoded(request_id: object) -> None:
    with pytest.raises(ValueError, match="request id"):
        encode(KeyList(), request_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("request_id", [-1, MAX_REQUEST_ID + 1, True, "7", None, b"\x07"])
def test_a_frame_with_a_bad_request_id_is_refused(request_id: object) -> None:
    body: dict[str, object] = {"v": 1, "op": "key_list"}
    if request_id is not None:
        body["id"] = request_id
    with pytest.raises(MalformedMessageError) as caught:
        decode_request(cbor.dumps(body))
    assert caught.value.field == "id"


# -- strictness --------------------------------------------------------------------------------


def test_non_canonical_encoding_is_refused() -> None:
    body = {"op": "hello", "nonce": b"n" * 32, "v": 1, "id": 0}  # keys out of canonical order
    with pytest.raises(MalformedMessageError) as caught:
        decode_request(cbor2.dumps(body))
    assert caught.value.field == "frame"
    with pytest.raises(MalformedMessageError, match="trailing"):
        decode_request(encode(KeyList(), 1) + b"\x00")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"v": 2, "id": 1, "op": "key_list"}, "frame"),
        ({"id": 1, "op": "key_list"}, "frame"),
        ({"v": 1, "id": 1, "op": "launch_missiles"}, "op"),
        ({"v": 1, "id": 1}, "op"),
        ({"v": 1, "id": 1, "op": 7}, "op"),
        ({"v": 1, "id": 1, "op": "hello", "nonce": b"n" * 32, "extra": 1}, "hello"),
        ({"v": 1, "id": 1, "op": "hello"}, "hello"),
        ({"v": 1, "id": 1, "op": "hello", "nonce": "text"}, "nonce"),
        ({"v": 1, "id": 1, "op": "hello", "nonce": b"short"}, "nonce"),
        ({"v": 1, "id": 1, "op": "key_info", "key_name": "Bad Name"}, "key_name"),
        ({"v": 1, "id": 1, "op": "nonce_commit", "key_name": "k", "count": 0}, "count"),
        (
            {
                "v": 1,
                "id": 1,
                "op": "frost_sign",
                "key_name": "k",
                "packages": [b"p"],
                "approvals": [],
            },
            "approvals",
        ),
        (
            {
                "v": 1,
                "id": 1,
                "op": "presign_step",
                "key_name": "k",
                "session_id": b"x",
                "inbox": [],
            },
            "session_id",
        ),
    ],
)
def test_malformed_requests_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(MalformedMessageError) as caught:
        decode_request(cbor.dumps(body))
    assert caught.value.field == field


def test_an_unknown_error_code_decodes_as_internal_keeping_the_text() -> None:
    frame = cbor.dumps(
        {"v": 1, "id": 9, "op": "error", "code": "from_a_newer_node", "message": "why"}
    )
    assert decode_reply(frame) == (9, ErrorReply(ErrorCode.INTERNAL, "why"))
    for code in ErrorCode:  # every known code decodes as itself
        assert decode_reply(encode(ErrorReply(code, "m"), 1))[1] == ErrorReply(code, "m")


def test_error_codes_are_distinct_and_only_busy_is_retryable() -> None:
    assert len({code.value for code in ErrorCode}) == len(ErrorCode)
    assert [code for code in ErrorCode if code.retryable] == [ErrorCode.BUSY]


# -- the reply table ---------------------------------------------------------------------------


def test_every_replies_entry_is_consistent() -> None:
    # every request type has an entry, and only request types do
    assert set(REPLIES) == ALL_REQUESTS
    answers = [reply for replies in REPLIES.values() for reply in replies]
    for request, replies in REPLIES.items():
        assert replies, request
        assert len(set(replies)) == len(replies), request
        assert all(issubclass(reply, Reply) for reply in replies), request
    # an error reply may answer anything, so no entry lists it; every other reply answers something
    assert ErrorReply not in answers
    assert set(answers) | {ErrorReply} == ALL_REPLIES
    # one op names one type, whichever the direction
    ops = [cls.OP for cls in (*ALL_REQUESTS, *ALL_REPLIES)]
    assert len(set(ops)) == len(ops)


# -- validation on construction ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: KeyCreate("k", "ed25519", 2, SESSION, {"a": b"1", "b": b"2"}), "threshold"),
        (lambda: KeyCreate("k", "ed25519", 0, SESSION, {"a": b"1", "b": b"2"}), "threshold"),
        (lambda: KeyCreate("k", "P-256", 1, SESSION, {"a": b"1", "b": b"2"}), "suite"),
        (lambda: KeyCreate("k", "ed25519", 1, SESSION, {"a": b"1"}), "participants"),
        (lambda: KeyCreate("k", "ed25519", 1, SESSION, {"a": b"1", "../b": b"2"}), "participants"),
        (lambda: KeyCreate("k", "ed25519", 1, SESSION, {"a": b"1", "b": b""}), "participants"),
        (lambda: KeyCreate("k", "ed25519", 1, SESSION, {"a": b"1", "b": b"2"}, b"x"), "policy"),
        (lambda: NonceCommit("k", 0), "count"),
        (lambda: NonceCommit("k", MAX_NONCES + 1), "count"),
        (lambda: NonceCommitments(()), "commitments"),
        (lambda: FrostSign("k", (), ()), "packages"),
        (lambda: FrostSign("k", (b"p",) * (MAX_BATCH + 1), ((),) * (MAX_BATCH + 1)), "packages"),
        (lambda: FrostSign("k", (b"p", b"q"), ((),)), "approvals"),
        (lambda: SignatureShares(()), "shares"),
        (lambda: DecryptPartials("k", (), (), (), ()), "ciphertexts"),
        (
            lambda: DecryptPartials("k", (SESSION,) * 65, (b"c",) * 65, (b"",) * 65, ((),) * 65),
            "ciphertexts",
        ),
        (
            lambda: DecryptPartials("k", (SESSION,), (b"c", b"d"), (b"", b""), ((), ())),
            "session_ids",
        ),
        (lambda: DecryptPartials("k", (b"short",), (b"c",), (b"",), ((),)), "session_ids"),
        (lambda: DecryptPartials("k", (SESSION,), (b"c",), (), ((),)), "contexts"),
        (lambda: DecryptPartials("k", (SESSION,), (b"c",), (b"",), ()), "approvals"),
        (lambda: DecryptPartials("k", (SESSION,), (b"",), (b"",), ((),)), "ciphertexts"),
        (lambda: Partials(()), "partials"),
        (lambda: BackupShare("k", b"r" * 31), "recovery_key"),
        (lambda: ShareBackup(0, 0, b"pkg", b"pve"), "identifier"),
        (lambda: ShareBackup(1, 0, b"pkg", b""), "encryption"),
        (lambda: KeyRestore("k", "ed25519", b"p", b"", ("a", "a"), b"s"), "nodes"),
        (lambda: KeyRestore("k", "ed25519", b"p", b"", ("a", "b"), b""), "share"),
        (lambda: PresignStart("k", SESSION, THREE, 0), "count"),
        (lambda: PresignStart("k", SESSION, THREE, MAX_PRESIGN_BATCH + 1), "count"),
        (lambda: Presigned((b"p" * 32,), (b"\x02" + b"r" * 32,) * 2), "big_rs"),
        (lambda: Presigned((b"p" * 31,), (b"\x02" + b"r" * 32,)), "presignature_ids"),
        (lambda: EcdsaSign("k", (), (), (), ()), "presignature_ids"),
        (lambda: EcdsaSign("k", (b"p" * 32,), (), (b"e" * 32,), ((),)), "messages"),
        (lambda: EcdsaSign("k", (b"p" * 32,), (b"m",), (b"e" * 31,), ((),)), "entropies"),
        (lambda: EcdsaSign("k", (b"p" * 32,), (b"m",), (b"e" * 32,), ()), "approvals"),
        (
            lambda: EcdsaSign(
                "k", (b"p" * 32,), (b"m",), (b"e" * 32,), ((),), "m" * (MAX_PATH + 1)
            ),
            "path",
        ),
        (lambda: KeyInfoReply("ed25519", 0, b"pkg", b"", (), 0), "identifier"),
        (lambda: KeyInfoReply("ed25519", 17, b"pkg", b"", (), 0), "identifier"),
        (lambda: KeyInfoReply("ed25519", 1, b"pkg", b"", ("bad id",), 0), "nodes"),
        (lambda: KeyInfoReply("ed25519", 1, b"pkg", b"", (), -1), "epoch"),
        (lambda: KeyInfoReply("ed25519", 1, b"pkg", b"", (), 2**32), "epoch"),
        (lambda: KeyListReply(("Bad Name",)), "names"),
        (lambda: KeyInfoReply("ed25519", 1, b"pkg", b"", (), 0, "deleted"), "state"),
        (lambda: KeyInfoReply("ed25519", 1, b"pkg", b"", (), 0, "pending_deletion"), "delete_at"),
        (lambda: KeyInfoReply("ed25519", 1, b"pkg", b"", (), 0, "enabled", 5), "delete_at"),
        (lambda: KeySetState("k", "destroy", 0), "action"),
        (lambda: KeySetState("k", "disable", -1), "epoch"),
        (lambda: KeySetState("k", "disable", 0, 7), "days"),
        (lambda: KeySetState("k", "schedule_deletion", 0, 6), "days"),
        (lambda: KeySetState("k", "schedule_deletion", 0, 31), "days"),
        (lambda: KeySetState("k", "schedule_deletion", 0, 7, (b"",)), "approvals"),
        (lambda: KeyStateReply("enabled", 0, 2**32), "epoch"),
        (lambda: KeyInfoReply("ed25519", 1, b"pkg", b"", (), 0, "enabled", 0, 1), "staged"),  # type: ignore[arg-type]
        (lambda: KeyRefresh("k", SESSION, -1, THREE), "epoch"),
        (lambda: Bip340NonceCommit("k", 0), "count"),
        (lambda: RepairStart("k", SESSION, 0, "node-9", THREE), "participants"),
        (lambda: RepairStart("k", SESSION, 0, "bad id", THREE), "target"),
        (lambda: RepairInstall("k", SESSION, THREE, ()), "inbox"),
        (lambda: Bip340Sign("k", (2, 1), (b"m",), ((b"n" * 66,) * 2,), ((),)), "signers"),
        (lambda: Bip340Sign("k", (1, 1), (b"m",), ((b"n" * 66,) * 2,), ((),)), "signers"),
        (lambda: Bip340Sign("k", (1, 2), (b"m",), ((b"n" * 66,),), ((),)), "pubnonces"),
        (lambda: Bip340Sign("k", (1, 2), (b"m",), ((b"n" * 65,) * 2,), ((),)), "pubnonces"),
        (lambda: Bip340Sign("k", (1, 2), (b"m",), ((b"n" * 66,) * 2,), ()), "approvals"),
        (lambda: Bip340Sign("k", (1, 2), (b"m",), ((b"n" * 66,) * 2,), ((),), (b"t",)), "tweaks"),
        (lambda: KeyRefresh("k", b"short", 0, THREE), "session_id"),
        (lambda: RefreshVouch("k", 1, THREE), "participants"),
        (lambda: RefreshFinish("k", 1, {"a": b"1", "b": b"2"}, ()), "inbox"),
        (lambda: RefreshFinish("k", 1, {"a": b"1", "b": b"2"}, (b"x", b"y")), "inbox"),
        (lambda: RefreshAbandon("k", 0, 1), "discard"),  # type: ignore[arg-type]
        (lambda: ReshareStart("k", SESSION, 0, THREE, ("node-1", "node-9"), 1), "new_nodes"),
        (lambda: ReshareStart("k", SESSION, 0, THREE, ("node-1", "node-1"), 1), "new_nodes"),
        (lambda: ReshareStart("k", SESSION, 0, THREE, ("node-1", "node-2"), 0), "new_threshold"),
        (lambda: ReshareStatus("lost", 0, ()), "role"),
        (lambda: ReshareFinish("k", 1, {"a": b"1", "b": b"2"}, ()), "inbox"),
        (lambda: ErrorReply("KeyExistsError", "m"), "code"),  # type: ignore[arg-type]
        (lambda: ErrorReply(ErrorCode.BUSY, "m" * 2001), "message"),
    ],
)
def test_values_are_validated_on_construction(build: Callable[[], Message], field: str) -> None:
    with pytest.raises(MalformedMessageError) as caught:
        build()
    assert caught.value.field == field


def test_presign_batch_session_ids_are_distinct_per_item_and_run() -> None:
    ids = {presign_batch_session_id(s, k) for s in (b"a" * 32, b"b" * 32) for k in range(3)}
    assert len(ids) == 6
    for index in (-1, MAX_PRESIGN_BATCH):
        with pytest.raises(ValueError, match="out of range"):
            presign_batch_session_id(SESSION, index)


# -- properties --------------------------------------------------------------------------------

names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
node_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
suites = st.sampled_from(["ed25519", "secp256k1", "ecdsa-secp256k1", "p256"])
sessions = st.binary(min_size=16, max_size=64)
policies = st.sampled_from([b"", POLICY])
approvals = st.lists(st.binary(min_size=1, max_size=40), max_size=3).map(tuple)
participants = st.dictionaries(node_ids, st.binary(min_size=1, max_size=40), min_size=2, max_size=6)


def _endorsed_decrypt(name: str, ciphertext: bytes, documents: dict[str, bytes]) -> DecryptPartial:
    endorsements = {n: bytes([len(d)]) * 64 for n, d in documents.items()}
    return DecryptPartial(name, ciphertext, SESSION, b"", (), documents, endorsements)


def blobs(low: int = 0, high: int = 4, size: tuple[int, int] = (1, 40)) -> st.SearchStrategy:
    item = st.binary(min_size=size[0], max_size=size[1])
    return st.lists(item, min_size=low, max_size=high).map(tuple)


def _key_create(chosen: dict[str, bytes]) -> st.SearchStrategy[KeyCreate]:
    threshold = st.integers(1, len(chosen) - 1)
    return st.builds(KeyCreate, names, suites, threshold, sessions, st.just(chosen), policies)


def _key_import(chosen: dict[str, bytes]) -> st.SearchStrategy[KeyImport]:
    return st.builds(
        KeyImport,
        names,
        suites,
        st.integers(1, len(chosen) - 1),
        sessions,
        st.just(chosen),
        st.binary(min_size=1, max_size=64),
        st.binary(min_size=1, max_size=64),
        st.just(POLICY),
        st.booleans(),
    )


def _decrypt_partials(
    items: list[tuple[bytes, bytes, bytes, tuple[bytes, ...]]],
) -> DecryptPartials:
    sessions_, ciphertexts, contexts, approvals_ = zip(*items, strict=True)
    return DecryptPartials("k", sessions_, ciphertexts, contexts, approvals_)


def _frost_sign(items: list[tuple[bytes, tuple[bytes, ...]]]) -> FrostSign:
    return FrostSign("k", tuple(p for p, _ in items), tuple(a for _, a in items))


def _ecdsa_sign(items: list[tuple[bytes, bytes, bytes, tuple[bytes, ...]]], path: str) -> EcdsaSign:
    return EcdsaSign(
        "k",
        tuple(i[0] for i in items),
        tuple(i[1] for i in items),
        tuple(i[2] for i in items),
        tuple(i[3] for i in items),
        path,
    )


def _presigned(items: list[tuple[bytes, bytes]]) -> Presigned:
    return Presigned(tuple(i for i, _ in items), tuple(r for _, r in items))


b32 = st.binary(min_size=32, max_size=32)
STRATEGIES: dict[type[Message], st.SearchStrategy] = {
    Hello: st.builds(Hello, b32),
    HelloReply: st.builds(HelloReply, st.binary(min_size=1, max_size=64)),
    KeyCreate: participants.flatmap(_key_create),
    DkgStep: st.builds(DkgStep, names, blobs()),
    DkgOutbox: st.builds(
        DkgOutbox, st.dictionaries(node_ids, st.binary(min_size=1, max_size=40), max_size=4)
    ),
    KeyCreated: st.builds(
        KeyCreated,
        st.binary(min_size=1, max_size=64),
        st.dictionaries(node_ids, st.binary(min_size=1, max_size=40), max_size=4),
    ),
    KeyCommit: st.builds(KeyCommit, names, blobs()),
    KeyCommitted: st.just(KeyCommitted()),
    KeyInfo: st.builds(KeyInfo, names),
    KeyInfoReply: st.builds(
        KeyInfoReply,
        suites,
        st.integers(1, 16),
        st.binary(min_size=1, max_size=64),
        policies,
        st.lists(node_ids, max_size=16).map(tuple),
        st.integers(0, 2**32 - 1),
    ),
    KeyList: st.just(KeyList()),
    KeySetState: st.one_of(
        st.builds(
            KeySetState,
            names,
            st.sampled_from(["enable", "disable", "cancel_deletion"]),
            st.integers(0, 2**32 - 1),
            st.just(0),
            approvals,
        ),
        st.builds(
            KeySetState,
            names,
            st.just("schedule_deletion"),
            st.integers(0, 2**32 - 1),
            st.integers(7, 30),
            approvals,
        ),
    ),
    Bip340NonceCommit: st.builds(Bip340NonceCommit, names, st.integers(1, MAX_NONCES)),
    Bip340Sign: st.integers(1, 4).flatmap(
        lambda signers: st.lists(
            st.tuples(
                st.binary(max_size=40),
                st.lists(
                    st.binary(min_size=66, max_size=66), min_size=signers, max_size=signers
                ).map(tuple),
                approvals,
            ),
            min_size=1,
            max_size=3,
        ).map(
            lambda items: Bip340Sign(
                "k",
                tuple(range(1, len(items[0][1]) + 1)),
                tuple(i[0] for i in items),
                tuple(i[1] for i in items),
                tuple(i[2] for i in items),
                (b"\x00" + bytes(32),),
            )
        )
    ),
    RepairStart: participants.flatmap(
        lambda chosen: st.builds(
            RepairStart,
            names,
            sessions,
            st.integers(0, 2**32 - 1),
            st.sampled_from(sorted(chosen)),
            st.just(chosen),
            approvals,
        )
    ),
    RepairSum: st.builds(RepairSum, names, sessions, blobs()),
    RepairInstall: st.builds(RepairInstall, names, sessions, participants, blobs(1)),
    KeyRefresh: st.builds(
        KeyRefresh, names, sessions, st.integers(0, 2**32 - 1), participants, approvals
    ),
    RefreshStep: st.builds(RefreshStep, names, sessions, blobs()),
    RefreshCommit: st.builds(RefreshCommit, names, sessions, blobs()),
    RefreshStaged: st.builds(
        RefreshStaged,
        st.binary(min_size=1, max_size=64),
        st.dictionaries(node_ids, st.binary(min_size=1, max_size=40), max_size=4),
    ),
    RefreshVouch: st.builds(
        RefreshVouch,
        names,
        st.integers(0, 2**32 - 1),
        st.dictionaries(node_ids, st.binary(min_size=1, max_size=40), min_size=2, max_size=2),
    ),
    RefreshFinish: st.builds(
        RefreshFinish,
        names,
        st.integers(0, 2**32 - 1),
        st.dictionaries(node_ids, st.binary(min_size=1, max_size=40), min_size=2, max_size=2),
        blobs(1, 1),
    ),
    KeyExport: st.builds(
        KeyExport, names, st.integers(0, 2**32 - 1), sessions, b32, participants, approvals
    ),
    ExportedShare: st.builds(ExportedShare, st.integers(1, 16), st.binary(min_size=1, max_size=80)),
    KeyImport: participants.flatmap(_key_import),
    RefreshAbandon: st.builds(RefreshAbandon, names, st.integers(0, 2**32 - 1), st.booleans()),
    ReshareStart: participants.flatmap(
        lambda chosen: st.builds(
            ReshareStart,
            names,
            sessions,
            st.integers(0, 2**32 - 1),
            st.just(chosen),
            st.lists(st.sampled_from(sorted(chosen)), min_size=2, unique=True).map(tuple),
            st.integers(1, 15),
            approvals,
        )
    ),
    ReshareStep: st.builds(ReshareStep, names, sessions, blobs()),
    ReshareCommit: st.builds(ReshareCommit, names, sessions, blobs()),
    ReshareVouch: st.builds(
        ReshareVouch,
        names,
        st.integers(0, 2**32 - 1),
        st.dictionaries(node_ids, st.binary(min_size=1, max_size=40), min_size=2, max_size=2),
    ),
    ReshareFinish: st.builds(
        ReshareFinish,
        names,
        st.integers(0, 2**32 - 1),
        st.dictionaries(node_ids, st.binary(min_size=1, max_size=40), min_size=2, max_size=2),
        blobs(1, 1),
    ),
    ReshareAbandon: st.builds(ReshareAbandon, names, st.integers(0, 2**32 - 1), st.booleans()),
    ReshareStatus: st.builds(
        ReshareStatus,
        st.sampled_from(["none", "committed", "staged", "joining"]),
        st.integers(0, 2**32 - 1),
        st.lists(node_ids, max_size=16).map(tuple),
        st.lists(node_ids, max_size=16).map(tuple),
    ),
    KeyStateReply: st.one_of(
        st.builds(
            KeyStateReply,
            st.sampled_from(["enabled", "disabled"]),
            st.just(0),
            st.integers(0, 2**32 - 1),
        ),
        st.builds(
            KeyStateReply,
            st.just("pending_deletion"),
            st.integers(1, 2**40 - 1),
            st.integers(0, 2**32 - 1),
        ),
    ),
    KeyListReply: st.builds(KeyListReply, st.lists(names, max_size=6).map(tuple)),
    NonceCommit: st.builds(NonceCommit, names, st.integers(1, MAX_NONCES)),
    NonceCommitments: st.builds(NonceCommitments, blobs(1)),
    FrostSign: st.lists(
        st.tuples(st.binary(min_size=1, max_size=40), approvals), min_size=1, max_size=4
    ).map(_frost_sign),
    SignatureShares: st.builds(SignatureShares, blobs(1)),
    DecryptPartial: st.builds(
        DecryptPartial,
        names,
        st.binary(min_size=1, max_size=64),
        sessions,
        st.binary(max_size=32),
        approvals,
    )
    | st.builds(
        _endorsed_decrypt,
        names,
        st.binary(min_size=1, max_size=64),
        st.dictionaries(node_ids, st.binary(min_size=1, max_size=40), min_size=1, max_size=3),
    ),
    Partial: st.builds(
        Partial, st.binary(min_size=1, max_size=64), st.sampled_from([b"", E64, bytes(64)])
    ),
    Endorsed: st.builds(Endorsed, st.binary(min_size=64, max_size=64)),
    PresignStart: st.builds(
        PresignStart, names, sessions, participants, st.integers(1, MAX_PRESIGN_BATCH)
    ),
    PresignStep: st.builds(PresignStep, names, sessions, blobs()),
    Presigned: st.lists(
        st.tuples(b32, st.binary(min_size=33, max_size=33)), min_size=1, max_size=4
    ).map(_presigned),
    EcdsaSign: st.builds(
        _ecdsa_sign,
        st.lists(st.tuples(b32, st.binary(max_size=40), b32, approvals), min_size=1, max_size=4),
        st.text(max_size=30),
    ),
    StateQuery: st.just(StateQuery()),
    PolicyUpdate: st.builds(PolicyUpdate, names, policies, approvals),
    PolicyUpdated: st.builds(PolicyUpdated, st.integers(1, 2**32 - 1)),
    PolicyShow: st.builds(PolicyShow, names),
    AuditReceipts: st.builds(
        AuditReceipts,
        st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=4).map(tuple),
    ),
    AuditReceiptsReply: st.integers(0, 3).flatmap(
        lambda n: st.builds(
            AuditReceiptsReply,
            st.lists(st.binary(min_size=1, max_size=64), min_size=n, max_size=n).map(tuple),
            st.lists(st.binary(min_size=64, max_size=64), min_size=n, max_size=n).map(tuple),
        )
    ),
    PolicyHistory: st.lists(st.tuples(policies, st.integers(0, 2**40 - 1)), max_size=3).flatmap(
        lambda items: st.builds(
            PolicyHistory,
            policies,
            st.just(tuple(p for p, _ in items)),
            st.just(tuple(t for _, t in items)),
        )
    ),
    SignedState: st.builds(SignedState, st.binary(min_size=1, max_size=200)),
    WitnessRecord: participants.map(
        lambda p: WitnessRecord(p, {n: b"s" + d for n, d in p.items()})
    ),
    WitnessRecorded: st.builds(WitnessRecorded, st.lists(node_ids, max_size=6).map(tuple)),
    WitnessQuery: st.builds(WitnessQuery, node_ids, st.binary(min_size=1, max_size=64)),
    WitnessEnvelope: st.builds(WitnessEnvelope, st.binary(min_size=1, max_size=200)),
    WitnessCheck: participants.map(lambda p: WitnessCheck(p, {n: b"e" + d for n, d in p.items()})),
    WitnessVerdict: st.builds(
        WitnessVerdict,
        st.sampled_from(["pending", "witnessed"]),
        st.integers(0, 16),
        st.integers(0, 16),
    ),
    AuditHead: st.just(AuditHead()),
    SignedCheckpoint: st.builds(SignedCheckpoint, st.binary(max_size=200)),
    CheckpointRecord: participants.map(
        lambda p: CheckpointRecord(p, {n: b"c" + d for n, d in p.items()})
    ),
    CheckpointQuery: st.builds(CheckpointQuery, node_ids),
    WitnessedCheckpointReply: st.builds(WitnessedCheckpointReply, st.binary(max_size=200)),
    BackupShare: st.builds(BackupShare, names, b32, approvals),
    ShareBackup: st.builds(
        ShareBackup,
        st.integers(1, 16),
        st.integers(0, 2**32 - 1),
        st.binary(min_size=1, max_size=64),
        st.binary(min_size=1, max_size=64),
    ),
    KeyRestore: st.builds(
        KeyRestore,
        names,
        suites,
        st.binary(min_size=1, max_size=64),
        policies,
        st.lists(node_ids, min_size=2, max_size=16, unique=True).map(tuple),
        st.binary(min_size=1, max_size=64),
        approvals,
    ),
    KeyRestored: st.just(KeyRestored()),
    RestoreCommit: st.builds(RestoreCommit, names),
    ErrorReply: st.builds(ErrorReply, st.sampled_from(ErrorCode), st.text(max_size=60)),
    PrfEvaluate: st.builds(
        PrfEvaluate,
        names,
        sessions,
        st.just("encrypt"),
        st.lists(b32, min_size=1, max_size=4).map(tuple),
    )
    | st.builds(
        PrfEvaluate,
        names,
        sessions,
        st.just("decrypt"),
        st.lists(st.binary(min_size=16, max_size=16), min_size=1, max_size=4).map(tuple),
    ),
    PrfPartials: st.builds(PrfPartials, blobs(1), st.sampled_from([b"", E64])),
    DecryptPartials: st.lists(
        st.tuples(sessions, st.binary(min_size=1, max_size=64), st.binary(max_size=32), approvals),
        min_size=1,
        max_size=4,
    ).map(_decrypt_partials),
    Partials: st.builds(Partials, blobs(1)),
}


def test_every_message_type_has_a_strategy() -> None:
    assert set(STRATEGIES) == ALL_REQUESTS | ALL_REPLIES


@given(st.one_of(*STRATEGIES.values()), st.integers(0, MAX_REQUEST_ID))
def test_every_valid_message_round_trips(message: Message, request_id: int) -> None:
    frame = encode(message, request_id)
    decode = decode_request if isinstance(message, Request) else decode_reply
    assert decode(frame) == (request_id, message)
    assert encode(decode(frame)[1], request_id) == frame


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_the_typed_error(data: bytes) -> None:
    for decode in (decode_request, decode_reply):
        try:
            request_id, message = decode(data)
        except MalformedMessageError:
            continue
        assert encode(message, request_id) == data


# Values of the data model the codec accepts, to put in any field.
field_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 2**33)
    | st.binary(max_size=40)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(node_ids | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)
_TYPES = {cls.OP: cls for cls in ALL_REQUESTS | ALL_REPLIES}


@given(st.sampled_from(sorted(_TYPES)), st.data())
def test_frames_of_known_ops_with_arbitrary_fields_decode_or_raise_the_typed_error(
    op: str, data: st.DataObject
) -> None:
    """Every field of the op, each any value of the data model: the constructors' checks must
    turn every wrong value into :class:`MalformedMessageError` (never a TypeError or the like)."""
    names_ = [item.name for item in dataclasses.fields(_TYPES[op])]
    body = {name: data.draw(field_values, label=name) for name in names_}
    frame = cbor.dumps({"v": 1, "id": 3, "op": op, **body})
    for decode in (decode_request, decode_reply):
        try:
            request_id, message = decode(frame)
        except MalformedMessageError:
            continue
        if isinstance(message, ErrorReply) and message.code is ErrorCode.INTERNAL:
            continue  # a code unknown to this side decodes as INTERNAL (see the test above)
        assert encode(message, request_id) == frame


# Items outside the data model (issue 9 item 9): tags of every kind cbor2 would decode
# semantically, floats, undefined, simple values, indefinite lengths, a stray break.
_FOREIGN_ITEMS = st.sampled_from(
    [
        b"\xd8\x24\x65x: y\n",  # tag 36, a MIME message
        b"\xd8\x23\x65(a*)*",  # tag 35, a regular expression
        b"\xc4\x82\x1a\x7f\xff\xff\xff\x01",  # tag 4, a decimal fraction
        b"\xc2\x49" + b"\x01" * 9,  # tag 2, a bignum
        b"\xc1\x01",  # tag 1, a date
        b"\xd8\x1c\x01",  # tag 28, shareable
        b"\xd9\x01\x02\x80",  # tag 258, a set
        b"\xda\x00\x01\x00\x00\x01",  # tag 65536, unknown
        b"\xf9\x3c\x00",
        b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00",
        b"\xf7",
        b"\xf0",
        b"\x5f\x41a\xff",
        b"\x7f\x61a\xff",
        b"\x9f\xff",
        b"\xbf\xff",
        b"\xff",
    ]
)


@given(st.one_of(*STRATEGIES.values()), st.data(), _FOREIGN_ITEMS)
def test_every_message_type_refuses_foreign_items_before_decoding(
    message: Message, data: st.DataObject, foreign: bytes
) -> None:
    """Issue 9 item 9, over every message type: a valid frame with one field (or the request
    id, or an item inside a list or map field) replaced by an item outside the data model is
    refused with :class:`MalformedMessageError` by the codec's pre-scan — cbor2 never decodes
    it, so no semantic tag decoder runs on a peer's bytes."""
    body = cbor2.loads(encode(message, 5))
    marker = b"\x00marker\x00"
    name = data.draw(st.sampled_from(sorted(body)), label="field")
    value = body[name]
    if isinstance(value, list) and value:
        value[data.draw(st.integers(0, len(value) - 1), label="index")] = marker
    elif isinstance(value, dict) and value:
        value[data.draw(st.sampled_from(sorted(value)), label="key")] = marker
    else:
        body[name] = marker
    frame = cbor.dumps(body).replace(cbor.dumps(marker), foreign)
    decode = decode_request if isinstance(message, Request) else decode_reply
    with mock.patch.object(cbor2, "loads", wraps=cbor2.loads) as decoder:
        with pytest.raises(MalformedMessageError) as caught:
            decode(frame)
        assert decoder.call_count == 0
    assert caught.value.field == "frame"
    assert caught.value.code is ErrorCode.MALFORMED


# -- custody (issue 11) ------------------------------------------------------------------------


def test_only_a_key_with_a_policy_can_be_exportable() -> None:
    with pytest.raises(MalformedMessageError) as caught:
        KeyCreate("k", "ed25519", 1, SESSION, {"node-1": b"d1", "node-2": b"d2"}, b"", True)
    assert caught.value.field == "exportable"
    with pytest.raises(MalformedMessageError):
        KeyImport("k", "ed25519", 1, SESSION, THREE, b"c", b"e", b"", True)


@pytest.mark.parametrize("recipient", [b"", b"x" * 31, b"x" * 33])
def test_an_export_names_one_x25519_recipient(recipient: bytes) -> None:
    with pytest.raises(MalformedMessageError) as caught:
        KeyExport("k", 0, SESSION, recipient, THREE)
    assert caught.value.field == "recipient"


def test_custody_flags_are_booleans() -> None:
    with pytest.raises(MalformedMessageError):
        KeyInfoReply("ed25519", 1, b"pkg", b"", (), 0, "enabled", 0, 1)  # type: ignore[arg-type]


# -- optional fields (issue 11: endorsements of a key's mandatory participants) ----------------


def test_optional_fields_at_their_default_are_left_out_so_older_frames_are_unchanged() -> None:
    """A request or reply that carries no endorsement is the frame it was before the field
    existed (byte for byte), and such a frame still decodes."""
    request = DecryptPartial("payroll", b"ct", SESSION, b"context", (b"a1",))
    old = {
        "v": 1,
        "id": 9,
        "op": "decrypt_partial",
        "key_name": "payroll",
        "ciphertext": b"ct",
        "session_id": SESSION,
        "context": b"context",
        "approvals": [b"a1"],
    }
    assert encode(request, 9) == cbor.dumps(old)
    assert decode_request(cbor.dumps(old)) == (9, request)
    old_reply = {"v": 1, "id": 9, "op": "partial", "partial": b"p"}
    assert encode(Partial(b"p"), 9) == cbor.dumps(old_reply)
    prf = {"v": 1, "id": 9, "op": "prf_partials", "partials": [b"p"]}
    assert decode_reply(cbor.dumps(prf)) == (9, PrfPartials((b"p",)))


@pytest.mark.parametrize(
    ("op", "body", "field"),
    [
        ("partial", {"partial": b"p", "endorsement": b""}, "endorsement"),
        ("prf_partials", {"partials": [b"p"], "endorsement": b""}, "endorsement"),
    ],
)
def test_an_optional_field_present_with_its_default_is_refused(
    op: str, body: dict[str, object], field: str
) -> None:
    frame = cbor.dumps({"v": 1, "id": 1, "op": op, **body})
    with pytest.raises(MalformedMessageError) as caught:
        decode_reply(frame)
    assert caught.value.field == field


def test_endorsements_name_the_same_nodes_as_their_documents_and_are_64_bytes() -> None:
    with pytest.raises(MalformedMessageError) as caught:
        DecryptPartial("k", b"ct", SESSION, b"", (), {"node-3": b"d"}, {"node-2": E64})
    assert caught.value.field == "endorsers"
    with pytest.raises(MalformedMessageError) as caught:
        DecryptPartial("k", b"ct", SESSION, b"", (), {"node-3": b"d"}, {"node-3": b"e" * 63})
    assert caught.value.field == "endorsement"
    with pytest.raises(MalformedMessageError):
        Endorsed(b"")
    assert REPLIES[DecryptPartial] == (Partial, Endorsed)
    assert REPLIES[PrfEvaluate] == (PrfPartials, Endorsed)


def test_decrypt_partials_is_a_new_op_beside_the_single_request() -> None:
    """The batch is additive: the single request keeps its op and its reply types, and the
    batch's frame is the one its fields name."""
    assert REPLIES[DecryptPartial] == (Partial, Endorsed)
    assert REPLIES[DecryptPartials] == (Partials,)
    batch = DecryptPartials("k", (SESSION,), (b"ct",), (b"ctx",), ((b"a",),))
    frame = {
        "v": 1,
        "id": 3,
        "op": "decrypt_partials",
        "key_name": "k",
        "session_ids": [SESSION],
        "ciphertexts": [b"ct"],
        "contexts": [b"ctx"],
        "approvals": [[b"a"]],
    }
    assert encode(batch, 3) == cbor.dumps(frame)
    assert decode_request(cbor.dumps(frame)) == (3, batch)
    reply = {"v": 1, "id": 3, "op": "partials", "partials": [b"p1", b"p2"]}
    assert decode_reply(cbor.dumps(reply)) == (3, Partials((b"p1", b"p2")))
