"""Approval policy and approval codecs against forged approver keys and signatures (issue 9 item
7), and the policy's approval lifetime (issue 9 item 8)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st
from nacl import bindings as sodium

from wire import cbor
from wire.approvals import (
    DEFAULT_APPROVAL_LIFETIME,
    GUARDED_OPERATIONS,
    MAX_APPROVAL_LIFETIME,
    Approval,
    ApprovalPolicy,
    Operation,
    backup_digest,
    lifecycle_digest,
    message_digest,
)
from wire.errors import MalformedMessageError
from wire.hashing import lp_join

#: The eight points of edwards25519 whose order divides 8, canonically encoded: the identity,
#: the point of order 2, two of order 4 and four of order 8. Source: the blocklist in libsodium's
#: ``crypto_core/ed25519/ref10/ed25519_ref10.c`` (``ge25519_has_small_order``) and Chalkias et
#: al., "Taming the many EdDSAs" (2020), Table 6; checked below (8P is the identity).
SMALL_ORDER = tuple(
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    )
)
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
#: Non-canonical encodings (y >= p, or x = 0 with the sign bit set) of small-order points.
NON_CANONICAL = (
    _P.to_bytes(32, "little"),  # y = p, i.e. y = 0: an order-4 point
    (_P + 1).to_bytes(32, "little"),  # y = p + 1, i.e. y = 1: the identity
    bytes.fromhex("01" + "00" * 30 + "80"),  # the identity with x's sign bit set
)
IDENTITY = SMALL_ORDER[0]

HONEST = Ed25519PrivateKey.generate()
HONEST_PUBLIC = HONEST.public_key().public_bytes(
    serialization.Encoding.Raw, serialization.PublicFormat.Raw
)
BOTH = frozenset({Operation.SIGN, Operation.DECRYPT})
NOW = 1_800_000_000
DIGEST = message_digest(b"wire 5 to 42")


def test_the_small_order_vectors_are_the_eight_torsion_points() -> None:
    assert len(set(SMALL_ORDER)) == 8
    for point in SMALL_ORDER:
        multiple = point
        for _ in range(3):
            multiple = sodium.crypto_core_ed25519_add(multiple, multiple)
        assert multiple == IDENTITY
        Ed25519PublicKey.from_public_bytes(point)  # what cryptography alone lets through


def _policy_bytes(approvers: list[bytes]) -> bytes:
    """A version-1 policy encoding as a client could send it (bypassing the constructor)."""
    return cbor.dumps(
        {"v": 1, "approvers": sorted(approvers), "quorum": 1, "operations": ["decrypt", "sign"]}
    )


@pytest.mark.parametrize("bad", SMALL_ORDER + NON_CANONICAL, ids=lambda b: b.hex()[:8])
def test_small_order_and_non_canonical_approver_keys_are_refused(bad: bytes) -> None:
    """Item 7: a small-order or non-canonically encoded approver key is refused wherever a policy
    or an approval is built or decoded."""
    with pytest.raises(MalformedMessageError, match="small order or not canonical") as caught:
        ApprovalPolicy((HONEST_PUBLIC, bad), 1, BOTH)
    assert caught.value.field == "approvers"
    with pytest.raises(MalformedMessageError, match="small order or not canonical"):
        ApprovalPolicy.decode(_policy_bytes([HONEST_PUBLIC, bad]))
    with pytest.raises(MalformedMessageError, match="small order or not canonical") as caught:
        Approval("k", bytes(32), Operation.SIGN, DIGEST, NOW, bad, bytes(64))
    assert caught.value.field == "approval.approver"


def _forge(approver: bytes) -> tuple[bytes, bytes]:
    """A statement and a signature "by" a small-order key, made without any private key:
    R = identity, S = 0 verifies (cofactorless) whenever k*A is the identity, i.e. when
    k = H(R || A || M) is a multiple of A's order; the forger tries expiries until it is (about
    8 tries)."""
    signature = IDENTITY + bytes(32)
    for not_after in range(NOW, NOW + 1000):
        statement = Approval(
            "treasury", bytes(32), Operation.SIGN, DIGEST, not_after, HONEST_PUBLIC, bytes(64)
        ).statement()
        try:
            Ed25519PublicKey.from_public_bytes(approver).verify(signature, statement)
        except InvalidSignature:
            continue
        return statement, signature
    raise AssertionError("no forgery found")


@pytest.mark.parametrize("bad", SMALL_ORDER, ids=lambda b: b.hex()[:8])
def test_a_forged_approval_by_a_small_order_key_reaches_no_quorum(bad: bytes) -> None:
    """Item 7: with a small-order key listed, anyone forges its approvals (cryptography's
    Ed25519 verifies them); such a policy can no longer be built nor decoded, so no quorum
    can count a forged approval."""
    _forge(bad)  # the forgery is real at the primitive level: the check must live in the codec
    with pytest.raises(MalformedMessageError):
        ApprovalPolicy((bad,), 1, BOTH)
    with pytest.raises(MalformedMessageError):
        ApprovalPolicy.decode(_policy_bytes([bad]))


def _sign_with_small_order_r(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """A signature with R = identity that verifies cofactorless: S = k*a with k = H(R||A||M)
    (RFC 8032 5.1.5 clamping; only the key's holder can make it — malleability, not forgery)."""
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    a = int.from_bytes(hashlib.sha512(seed).digest()[:32], "little")
    a = (a & ((1 << 254) - 8)) | (1 << 254)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    k = int.from_bytes(hashlib.sha512(IDENTITY + public + message).digest(), "little") % _L
    return IDENTITY + (k * a % _L).to_bytes(32, "little")


def _approval(signature: bytes | None = None) -> Approval:
    unsigned = Approval("k", bytes(32), Operation.SIGN, DIGEST, NOW, HONEST_PUBLIC, bytes(64))
    if signature is None:
        signature = HONEST.sign(unsigned.statement())
    return Approval("k", bytes(32), Operation.SIGN, DIGEST, NOW, HONEST_PUBLIC, signature)


def test_approval_signatures_with_a_small_order_r_are_refused() -> None:
    """Item 7: cryptography (OpenSSL) accepts R = identity when S matches; Approval.verify
    refuses any R that is not a canonical point of prime order."""
    genuine = _approval()
    genuine.verify()
    signature = _sign_with_small_order_r(HONEST, genuine.statement())
    HONEST.public_key().verify(signature, genuine.statement())  # OpenSSL lets it through
    with pytest.raises(InvalidSignature):
        _approval(signature).verify()
    for r in SMALL_ORDER + NON_CANONICAL:
        with pytest.raises(InvalidSignature):
            _approval(r + genuine.signature[32:]).verify()


def test_approval_signatures_with_a_non_canonical_s_are_refused() -> None:
    """Item 7: S + L verifies the same equation; cryptography already refuses it (S < L)."""
    genuine = _approval()
    s = int.from_bytes(genuine.signature[32:], "little")
    with pytest.raises(InvalidSignature):
        _approval(genuine.signature[:32] + (s + _L).to_bytes(32, "little")).verify()


# -- item 8: the approval lifetime -------------------------------------------------------------

V1 = ApprovalPolicy((HONEST_PUBLIC,), 1, BOTH)


def test_a_policy_without_a_lifetime_keeps_its_version_1_encoding_and_the_default() -> None:
    """Item 8: policies sealed before lifetimes existed decode unchanged, with the default."""
    encoded = V1.encode()
    assert encoded == _policy_bytes([HONEST_PUBLIC])
    decoded = ApprovalPolicy.decode(encoded)
    assert decoded == V1
    assert decoded.max_approval_lifetime is None
    assert decoded.approval_lifetime == DEFAULT_APPROVAL_LIFETIME == 7 * 24 * 3600


def test_a_policy_with_a_lifetime_is_version_2_one_encoding_per_value() -> None:
    """Item 8: an explicit lifetime is encoded as version 2 (byte snapshot: a changed one is a
    format break) and round-trips."""
    policy = ApprovalPolicy((HONEST_PUBLIC,), 1, frozenset({Operation.DECRYPT}), 600)
    encoded = policy.encode()
    assert encoded == cbor.dumps(
        {
            "v": 2,
            "approvers": [HONEST_PUBLIC],
            "quorum": 1,
            "operations": ["decrypt"],
            "max_lifetime": 600,
        }
    )
    assert encoded.hex().startswith("a5")  # five fields
    assert ApprovalPolicy.decode(encoded) == policy
    assert policy.approval_lifetime == 600
    assert policy != ApprovalPolicy((HONEST_PUBLIC,), 1, frozenset({Operation.DECRYPT}))
    assert "approvals live at most 600 s" in str(policy)


@pytest.mark.parametrize("lifetime", [0, -1, MAX_APPROVAL_LIFETIME + 1, True, "60"])
def test_out_of_range_lifetimes_are_refused(lifetime: object) -> None:
    with pytest.raises(MalformedMessageError, match="max_approval_lifetime"):
        ApprovalPolicy((HONEST_PUBLIC,), 1, BOTH, lifetime)  # type: ignore[arg-type]
    data = cbor.dumps(
        {
            "v": 2,
            "approvers": [HONEST_PUBLIC],
            "quorum": 1,
            "operations": ["sign"],
            "max_lifetime": lifetime,
        }
    )
    with pytest.raises(MalformedMessageError):
        ApprovalPolicy.decode(data)


@pytest.mark.parametrize(
    "value",
    [
        {"v": 1, "max_lifetime": 600},  # a version-1 policy has no lifetime
        {"v": 2},  # a version-2 policy has one
        {"v": 3, "max_lifetime": 600},
    ],
)
def test_versions_and_fields_must_agree(value: dict[str, object]) -> None:
    base = {"approvers": [HONEST_PUBLIC], "quorum": 1, "operations": ["sign"]}
    with pytest.raises(MalformedMessageError, match="unknown version or fields"):
        ApprovalPolicy.decode(cbor.dumps({**base, **value}))


@given(st.none() | st.integers(1, MAX_APPROVAL_LIFETIME))
def test_policies_with_any_lifetime_round_trip(lifetime: int | None) -> None:
    policy = ApprovalPolicy((HONEST_PUBLIC,), 1, BOTH, lifetime)
    encoded = policy.encode()
    assert ApprovalPolicy.decode(encoded) == policy
    assert ApprovalPolicy.decode(encoded).encode() == encoded


def test_a_backup_needs_the_quorum_of_any_policy_and_names_its_recovery_key() -> None:
    """A policy listing only sign (written before backups existed) still gates backups."""
    sign_only = ApprovalPolicy((HONEST_PUBLIC,), 1, frozenset({Operation.SIGN}))
    assert sign_only.requires(Operation.BACKUP)
    assert not sign_only.requires(Operation.DECRYPT)
    assert Operation.BACKUP in GUARDED_OPERATIONS
    assert backup_digest(b"a" * 32) != backup_digest(b"b" * 32)
    assert len(backup_digest(b"a" * 32)) == 32
    listed = ApprovalPolicy((HONEST_PUBLIC,), 1, frozenset({Operation.BACKUP}))
    assert ApprovalPolicy.decode(listed.encode()) == listed


# -- lifecycle operations (issue 10) ---------------------------------------------------------


def test_every_policy_guards_reshare_backup_restore_and_delete_and_refresh_only_if_listed() -> None:
    sign_only = ApprovalPolicy((HONEST_PUBLIC,), 1, frozenset({Operation.SIGN}))
    for operation in (Operation.RESHARE, Operation.BACKUP, Operation.RESTORE, Operation.DELETE):
        assert sign_only.requires(operation)
    assert not sign_only.requires(Operation.REFRESH)
    assert not sign_only.requires(Operation.DECRYPT)
    listed = ApprovalPolicy((HONEST_PUBLIC,), 1, frozenset({Operation.REFRESH}))
    assert listed.requires(Operation.REFRESH)
    assert ApprovalPolicy.decode(listed.encode()) == listed


def test_lifecycle_digests_bind_operation_epoch_and_detail() -> None:
    base = lifecycle_digest(Operation.DELETE, 3, (7).to_bytes(2, "big"))
    assert base != lifecycle_digest(Operation.DELETE, 4, (7).to_bytes(2, "big"))
    assert base != lifecycle_digest(Operation.DELETE, 3, (30).to_bytes(2, "big"))
    assert base != lifecycle_digest(Operation.RESHARE, 3, (7).to_bytes(2, "big"))
    # SHA-256(lp("keyshard/lifecycle/v1") || lp("refresh") || lp(epoch u32) || lp(""))
    assert (
        lifecycle_digest(Operation.REFRESH, 0)
        == hashlib.sha256(lp_join((b"keyshard/lifecycle/v1", b"refresh", bytes(4), b""))).digest()
    )
    for operation in (Operation.SIGN, Operation.DECRYPT):
        with pytest.raises(ValueError, match="name a message"):
            lifecycle_digest(operation, 0)
