"""The backup file (keyshard.client.backup): canonical codec, public verification and every way
a file can lie — verification shares off the key's polynomial, too few encrypted shares, a proof
moved to another holder, key or epoch — refused with BackupError; reconstruction refuses a
result that is not the public key; recovery key PEM round trips."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from enclave.mpc import pve
from enclave.mpc.groups import Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.keys import PublicKeyPackage
from enclave.mpc.shamir import split_secret
from enclave.mpc.suites import KEY_SUITES, KeySuite
from keyshard.client.backup import (
    Backup,
    EncryptedShare,
    generate_recovery_key,
    load_recovery_private_key,
    load_recovery_public_key,
    private_key_pem,
)
from keyshard.client.errors import BackupError
from tests.mpc.rng import SeededRandom
from wire import cbor
from wire.approvals import ApprovalPolicy, Operation
from wire.backup import backup_label

RECOVERY = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"backup file test").digest())
RECOVERY_PUBLIC = RECOVERY.public_key().public_bytes_raw()
POLICY = ApprovalPolicy(
    (Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key().public_bytes_raw(),),
    1,
    frozenset({Operation.SIGN}),
)
SUITES = pytest.mark.parametrize("suite", list(KEY_SUITES.values()), ids=lambda s: s.name)


def make_backup(suite: KeySuite, *, holders: int = 3, threshold: int = 1) -> tuple[Backup, Scalar]:
    """A backup as a cluster would produce it, made here from a dealt key (pure, no nodes)."""
    group, rng = suite.group, SeededRandom(suite.name)
    secret = group.random_scalar(rng)
    ids = [Identifier.from_int(group, i) for i in range(1, holders + 1)]
    shares, _ = split_secret(group, secret, threshold, ids, rng)
    public = PublicKeyPackage(
        group, group.base_mul(secret), {i: group.base_mul(s) for i, s in shares.items()}, threshold
    )
    label = backup_label("payroll", suite.name, public.to_bytes(), 3, b"")
    encrypted = tuple(
        EncryptedShare(
            int(i),
            f"node-{int(i)}",
            pve.encrypt(
                s, pve.PveStatement(public.verifying_shares[i], i, RECOVERY_PUBLIC, label), rng
            ).to_bytes(),
        )
        for i, s in shares.items()
    )
    return Backup("payroll", suite, public, 3, 1_800_000_000, RECOVERY_PUBLIC, encrypted), secret


_CACHE: dict[str, tuple[Backup, Scalar]] = {}


def honest(suite: KeySuite) -> tuple[Backup, Scalar]:
    if suite.name not in _CACHE:
        _CACHE[suite.name] = make_backup(suite)
    return _CACHE[suite.name]


@SUITES
def test_round_trip_verify_and_reconstruct(suite: KeySuite) -> None:
    backup, secret = honest(suite)
    encoded = backup.encode()
    decoded = Backup.decode(encoded)
    assert decoded == backup
    assert decoded.encode() == encoded
    decoded.verify()
    assert decoded.reconstruct(RECOVERY) == secret


@SUITES
def test_a_proof_bound_to_other_context_is_refused(suite: KeySuite) -> None:
    backup, _ = honest(suite)
    for other in (
        dataclasses.replace(backup, epoch=4),  # a backup from before a refresh
        dataclasses.replace(backup, key_name="other"),
        dataclasses.replace(backup, recovery_key=generate_recovery_public()),
        dataclasses.replace(backup, policy=POLICY),  # a policy added (or stripped) afterwards
    ):
        with pytest.raises(BackupError, match="does not verify"):
            other.verify()
    # a holder's proof presented as another holder's
    a, b = backup.shares[0], backup.shares[1]
    swapped = (dataclasses.replace(a, encryption=b.encryption), b, backup.shares[2])
    with pytest.raises(BackupError, match="node-1"):
        dataclasses.replace(backup, shares=swapped).verify()


def generate_recovery_public() -> bytes:
    return X25519PrivateKey.generate().public_key().public_bytes_raw()


@SUITES
def test_verification_shares_must_lie_on_the_keys_polynomial(suite: KeySuite) -> None:
    backup, _ = honest(suite)
    group = backup.public.group
    shares = dict(backup.public.verifying_shares)
    last = max(shares)
    shares[last] = shares[last] + group.generator()  # the third share off the polynomial
    bent = dataclasses.replace(
        backup,
        public=PublicKeyPackage(group, backup.public.group_public_key, shares, 1),
    )
    with pytest.raises(BackupError, match="do not match the key"):
        bent.verify()
    with pytest.raises(BackupError, match="do not match the key"):  # the same from the file
        Backup.decode(bent.encode()).verify()


@SUITES
def test_t_plus_1_distinct_encrypted_shares_are_needed(suite: KeySuite) -> None:
    backup, secret = honest(suite)
    with pytest.raises(BackupError, match="2 are needed"):
        dataclasses.replace(backup, shares=backup.shares[:1]).verify()
    twice = (backup.shares[0], backup.shares[0])
    with pytest.raises(BackupError, match="not increasing"):
        dataclasses.replace(backup, shares=twice).verify()
    two = dataclasses.replace(backup, shares=backup.shares[1:])  # any t+1 holders restore
    two.verify()
    assert two.reconstruct(RECOVERY) == secret


def test_decoding_is_strict() -> None:
    backup, _ = honest(KEY_SUITES["ed25519"])
    value = cbor.loads(backup.encode())
    for change in (
        {"v": 2},
        {"format": "other"},
        {"suite": "p256"},
        {"threshold": 0},
        {"recovery_key": bytes(32)},  # low order
        {"key": "../etc"},
        {"encrypted_shares": []},
        {"verification_shares": list(reversed(value["verification_shares"]))},
    ):
        with pytest.raises(BackupError):
            Backup.decode(cbor.dumps(value | change))
    extra = dict(value, note="x")
    with pytest.raises(BackupError):
        Backup.decode(cbor.dumps(extra))
    with pytest.raises(BackupError):
        Backup.decode(backup.encode() + b"\0")


def test_reconstruct_refuses_shares_presented_for_another_public_key() -> None:
    backup, _ = honest(KEY_SUITES["secp256k1"])
    group = backup.public.group
    # a consistent package for ANOTHER group key, with the same encrypted shares: the proofs no
    # longer verify (the label binds the package), so nothing is decrypted
    other = PublicKeyPackage(
        group,
        backup.public.group_public_key + group.generator(),
        dict(backup.public.verifying_shares),
        1,
    )
    with pytest.raises(BackupError):
        dataclasses.replace(backup, public=other).reconstruct(RECOVERY)


def test_recovery_key_files_round_trip_and_refuse_other_keys() -> None:
    private_pem, public_pem = generate_recovery_key()
    private = load_recovery_private_key(private_pem)
    assert load_recovery_public_key(public_pem) == private.public_key().public_bytes_raw()
    with pytest.raises(BackupError):
        load_recovery_public_key(private_pem)
    with pytest.raises(BackupError):
        load_recovery_private_key(public_pem)
    ed = Ed25519PrivateKey.generate()
    ed_public = ed.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(BackupError, match="X25519"):
        load_recovery_public_key(ed_public)


@SUITES
def test_the_emergency_pem_holds_the_key(suite: KeySuite) -> None:
    _, secret = honest(suite)
    pem = private_key_pem(suite, secret)
    if suite.group.name == "secp256k1":
        key = serialization.load_pem_private_key(pem, password=None)
        assert key.private_numbers().private_value == int(secret)  # type: ignore[union-attr]
    else:
        assert pem.startswith(b"-----BEGIN KEYSHARD ED25519 SECRET SCALAR-----\n")
