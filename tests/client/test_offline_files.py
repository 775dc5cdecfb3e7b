"""The files of offline partial signatures (issue 11): one codec for FROST and ECDSA.

FROST files carry no ``scheme`` tag, so files written before ECDSA was added (kept in
tests/data/offline, see SOURCES.md there) still decode, and FROST files encode byte for byte
as before; ECDSA files are tagged. A file of another kind, an unknown scheme, an unknown field,
or an ECDSA package whose parts are not what they claim are refused with InvalidInputError.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from enclave.mpc.groups import SECP256K1
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from keyshard.client.errors import InvalidInputError, ProtocolError
from keyshard.client.offline import (
    ECDSA,
    FROST,
    CommitmentsFile,
    EcdsaPackage,
    PackageFile,
    PartialFile,
    PresignatureDescription,
    PresignRunFile,
)
from wire import cbor
from wire.messages import presign_batch_session_id

DATA = Path(__file__).parent.parent / "data" / "offline"

DESCRIPTION = PresignatureDescription(b"\x11" * 32, b"\x22" * 32, b"\x02" + b"\x33" * 32, (1, 2, 3))
PACKAGE = EcdsaPackage(DESCRIPTION, b"move 3 BTC", b"\x44" * 32)


def _ecdsa_files() -> tuple[CommitmentsFile, PackageFile]:
    commitments = CommitmentsFile("cold", "node-3", b"\x02" * 33, (DESCRIPTION.encode(),), 3, ECDSA)
    package = PackageFile(
        "cold", "node-3", b"\x02" * 33, PACKAGE.encode(), (b"a",), {"node-1": b"s"}, ECDSA
    )
    return commitments, package


def test_frost_files_written_before_ecdsa_still_decode_and_encode_the_same() -> None:
    old = (DATA / "frost-v1.commitments").read_bytes()
    commitments = CommitmentsFile.decode(old)
    assert commitments.scheme == FROST
    assert commitments.identifier == 3
    assert commitments.commitments == (b"\x01" * 10, b"\x02" * 10)
    assert commitments.encode() == old
    old = (DATA / "frost-v1.package").read_bytes()
    package = PackageFile.decode(old)
    assert package.scheme == FROST
    assert package.online_shares == {"node-1": b"share"}
    assert package.encode() == old
    assert "scheme" not in cbor.loads(old, what="file")
    with pytest.raises(InvalidInputError):  # FROST commitments are not presignatures
        commitments.presignature(0)
    with pytest.raises(InvalidInputError):
        package.ecdsa()


def test_ecdsa_files_are_tagged_and_round_trip() -> None:
    commitments, package = _ecdsa_files()
    assert cbor.loads(commitments.encode(), what="file")["scheme"] == "ecdsa"
    assert CommitmentsFile.decode(commitments.encode()) == commitments
    assert PackageFile.decode(package.encode()) == package
    assert commitments.presignature(0) == DESCRIPTION
    assert package.ecdsa() == PACKAGE
    assert package.message() == b"move 3 BTC"
    assert package.message_sha256() == hashlib.sha256(b"move 3 BTC").digest()
    partial = PartialFile("cold", "node-3", b"\x55" * 32, b"share")
    assert PartialFile.decode(partial.encode()) == partial  # one partial format for both
    with pytest.raises(InvalidInputError):
        commitments.presignature(1)
    with pytest.raises(InvalidInputError):
        commitments.presignature(-1)


def _rewrite(data: bytes, **changes: object) -> bytes:
    value = cbor.loads(data, what="file")
    for field, new in changes.items():
        if new is None:
            del value[field]
        else:
            value[field] = new
    return cbor.dumps(value)


@pytest.mark.parametrize(
    "changes",
    [
        {"scheme": "rsa"},
        {"scheme": 1},
        {"extra": b""},
        {"kind": "offline-partial"},
        {"v": 2},
        {"identifier": "3"},
        {"node": "../etc"},
    ],
)
def test_a_commitments_file_that_is_not_one_is_refused(changes: dict[str, object]) -> None:
    commitments, _ = _ecdsa_files()
    with pytest.raises(InvalidInputError):
        CommitmentsFile.decode(_rewrite(commitments.encode(), **changes))


@pytest.mark.parametrize(
    "changes", [{"scheme": "bip340"}, {"shares": {"node-1": "s"}}, {"approvals": [1]}]
)
def test_a_package_file_that_is_not_one_is_refused(changes: dict[str, object]) -> None:
    _, package = _ecdsa_files()
    with pytest.raises(InvalidInputError):
        PackageFile.decode(_rewrite(package.encode(), **changes))


@pytest.mark.parametrize(
    "description",
    [
        replace(DESCRIPTION, presignature_id=b"\x22" * 31),
        replace(DESCRIPTION, session_id=b""),
        replace(DESCRIPTION, parties=(1, 1, 2)),
        replace(DESCRIPTION, parties=(0, 1, 2)),
    ],
)
def test_a_presignature_description_that_is_not_one_is_refused(
    description: PresignatureDescription,
) -> None:
    with pytest.raises(InvalidInputError):
        PresignatureDescription.decode(description.encode())


def test_an_ecdsa_package_that_is_not_one_is_refused() -> None:
    for broken in (
        replace(PACKAGE, entropy=b"\x44" * 31),
        replace(PACKAGE, presignature=replace(DESCRIPTION, parties=(1, 1, 2))),
    ):
        with pytest.raises(InvalidInputError):
            EcdsaPackage.decode(broken.encode())
    _, package = _ecdsa_files()
    with pytest.raises(InvalidInputError):  # a FROST-tagged package holding ECDSA bytes
        replace(package, scheme=FROST).message()
    with pytest.raises(InvalidInputError):  # an ECDSA-tagged package holding garbage
        replace(package, package=b"\x00").message()


def test_a_presignature_description_with_a_point_off_the_curve_is_refused() -> None:
    point = SECP256K1.base_mul(SECP256K1.scalar(7))
    shares = {Identifier.from_int(SECP256K1, i): point for i in (1, 2, 3)}
    public = PublicKeyPackage(SECP256K1, point, shares, 1)
    assert DESCRIPTION.to_info(public).parties == tuple(shares)
    for broken in (
        replace(DESCRIPTION, big_r=b"\x05" + b"\x00" * 32),
        replace(DESCRIPTION, parties=(1, 2, 70000)),
    ):
        with pytest.raises(InvalidInputError):
            broken.to_info(public)


RUN = PresignRunFile(
    "vault",
    "node-3",
    b"\x02" * 33,
    b"\x66" * 32,
    2,
    2,
    {"node-1": 1, "node-2": 2, "node-3": 3},
    {"node-1": b"doc-1", "node-3": b"doc-3"},
    ((1, "node-3", "node-1", b"e31"), (1, "node-3", "node-2", b"e32")),
)


def test_a_presigning_run_file_round_trips_and_says_whose_turn_it_is() -> None:
    assert PresignRunFile.decode(RUN.encode()) == RUN
    assert not RUN.air_gapped_turn
    assert replace(RUN, stage=3).air_gapped_turn
    assert RUN.inbox("node-1", 1) == (b"e31",)
    assert RUN.inbox("node-1", 2) == ()
    assert RUN.inbox("node-3", 1) == ()
    done = replace(RUN, stage=5, presignature_ids=(b"\x01" * 32,), big_rs=(b"\x02" * 33,))
    assert PresignRunFile.decode(done.encode()) == done


@pytest.mark.parametrize(
    "changes",
    [
        {"stage": 0},
        {"stage": 6},
        {"session": b"short"},
        {"parties": {"node-1": 0}},
        {"envelopes": [[4, "node-3", "node-1", b"e"]]},
        {"envelopes": [[1, "node-3", "node-1"]]},
        {"envelopes": [[1, "node-3", "node-1", "e"]]},
        {"ids": [b"\x01" * 32], "big_rs": []},
        {"scheme": "ecdsa"},  # this kind is ECDSA's alone: no tag
    ],
)
def test_a_presigning_run_file_that_is_not_one_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        PresignRunFile.decode(_rewrite(RUN.encode(), **changes))


def test_a_run_takes_only_outboxes_addressed_to_every_other_participant() -> None:
    run = RUN.with_outboxes(2, {"node-1": {"node-2": b"a", "node-3": b"b"}})
    assert run.inbox("node-3", 2) == (b"b",)
    assert run.envelopes[:2] == RUN.envelopes
    for misaddressed in ({"node-2": b"a"}, {"node-1": b"x", "node-2": b"a", "node-3": b"b"}):
        with pytest.raises(ProtocolError) as caught:
            RUN.with_outboxes(2, {"node-1": misaddressed})
        assert caught.value.culprit == "node-1"


def test_a_finished_run_publishes_one_description_per_presignature() -> None:
    ids, big_rs = (b"\x01" * 32, b"\x02" * 32), (b"\x02" + b"\x03" * 32, b"\x03" + b"\x04" * 32)
    done = replace(RUN, stage=5, presignature_ids=ids, big_rs=big_rs)
    published = done.published()
    assert (published.scheme, published.identifier, published.node_id) == (ECDSA, 3, "node-3")
    first, second = published.presignature(0), published.presignature(1)
    assert (first.presignature_id, second.big_r) == (ids[0], big_rs[1])
    assert first.parties == (1, 2, 3)
    assert first.session_id == presign_batch_session_id(RUN.session_id, 0)
    assert second.session_id == presign_batch_session_id(RUN.session_id, 1)
