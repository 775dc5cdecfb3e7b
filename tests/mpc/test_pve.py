"""Publicly verifiable encryption of a share to a recovery key (enclave.mpc.pve), both suites.

Completeness (encrypt, verify without the private key, decrypt), strict codec, every tampering
refused with its typed error naming the holder, statement binding (label, holder, public share,
recovery key), refused recovery keys and shares, and the soundness argument exercised: a
cheating prover that plants bad halves must guess the challenge bit of every bad row; with a few
bad rows it can grind (2^-3 per try), and decryption still recovers the share from a whole row.
"""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.mpc import pve
from enclave.mpc.encoding import lp_join
from enclave.mpc.errors import EncodingError, InvalidParameters, InvalidProof, SecretError
from enclave.mpc.groups import ED25519, SECP256K1, Group, Scalar
from enclave.mpc.identifiers import Identifier
from enclave.mpc.pve import KAPPA, PveStatement, VerifiableEncryption

from .rng import SeededRandom

GROUPS = [SECP256K1, ED25519]
SUITES = pytest.mark.parametrize("group", GROUPS, ids=lambda g: g.name)
RECOVERY = X25519PrivateKey.from_private_bytes(hashlib.sha256(b"test recovery key").digest())
RECOVERY_PUBLIC = RECOVERY.public_key().public_bytes_raw()
#: The eight-torsion X25519 point u = 0 (low order): every exchange with it is all-zero.
LOW_ORDER = bytes(32)
#: The encoding of one fixed PVE (secp256k1, seeds 42/43): see test_the_encoding_is_a_fixed_format.
SNAPSHOT_LENGTH = 17545
SNAPSHOT_SHA256 = "6de091af8cdee98415af76c642d58528d2e131ed88c5f46b166e4bdfcaa2b65a"


def _setup(group: Group, seed: int = 1) -> tuple[Scalar, PveStatement]:
    share = group.random_scalar(SeededRandom(seed))
    statement = PveStatement(
        group.base_mul(share), Identifier.from_int(group, 2), RECOVERY_PUBLIC, b"key=demo;epoch=0"
    )
    return share, statement


_CACHE: dict[str, tuple[Scalar, PveStatement, VerifiableEncryption]] = {}


def _honest(group: Group) -> tuple[Scalar, PveStatement, VerifiableEncryption]:
    if group.name not in _CACHE:
        share, statement = _setup(group)
        _CACHE[group.name] = (share, statement, pve.encrypt(share, statement, SeededRandom(9)))
    return _CACHE[group.name]


@SUITES
@settings(max_examples=8)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_round_trip_verifies_without_the_key_and_decrypts(group: Group, seed: int) -> None:
    share, statement = _setup(group, seed)
    proof = pve.encrypt(share, statement, SeededRandom(seed + 1))
    encoded = proof.to_bytes()
    decoded = VerifiableEncryption.from_bytes(encoded, group)
    assert decoded.to_bytes() == encoded
    pve.verify(statement, decoded)  # public data only
    assert pve.decrypt(RECOVERY, statement, decoded) == share


@SUITES
def test_opened_halves_reveal_nothing_of_the_share(group: Group) -> None:
    share, _, proof = _honest(group)
    encoded = proof.to_bytes()
    assert share.to_bytes() not in encoded
    # the challenge opens both sides (a uniform 128-bit string) and x1 only on 1-rows
    ones = sum(row.opened_x1 is not None for row in proof.rows)
    assert 0 < ones < KAPPA


@SUITES
def test_encryption_is_randomised(group: Group) -> None:
    share, statement = _setup(group)
    a = pve.encrypt(share, statement, SeededRandom(1)).to_bytes()
    b = pve.encrypt(share, statement, SeededRandom(2)).to_bytes()
    assert a != b


# -- tampering --------------------------------------------------------------------------------


def _replace_row(proof: VerifiableEncryption, k: int, **changes: object) -> VerifiableEncryption:
    rows = list(proof.rows)
    rows[k] = dataclasses.replace(rows[k], **changes)  # type: ignore[arg-type]
    return dataclasses.replace(proof, rows=tuple(rows))


def _flip(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


@SUITES
@pytest.mark.parametrize("k", [0, 63, KAPPA - 1])
def test_every_row_field_is_bound(group: Group, k: int) -> None:
    _, statement, proof = _honest(group)
    row = proof.rows[k]
    tampered = [
        _replace_row(proof, k, seed=_flip(row.seed)),
        _replace_row(proof, k, ciphertext=_flip(row.ciphertext)),  # ephemeral key
        _replace_row(proof, k, ciphertext=_flip(row.ciphertext, 40)),  # body
        _replace_row(proof, k, ciphertext=_flip(row.ciphertext, pve.CIPHERTEXT_LENGTH - 1)),  # tag
    ]
    if row.opened_x1 is not None:
        tampered.append(_replace_row(proof, k, opened_x1=row.opened_x1 + group.one()))
    for bad in tampered:
        with pytest.raises(InvalidProof) as err:
            pve.verify(statement, bad)
        assert err.value.culprits == frozenset({statement.holder})
        with pytest.raises(InvalidProof):  # decryption verifies first
            pve.decrypt(RECOVERY, statement, bad)


@SUITES
def test_challenge_is_bound(group: Group) -> None:
    _, statement, proof = _honest(group)
    # flipping a bit changes which half a row opens: the row's shape no longer fits
    with pytest.raises(InvalidParameters):
        dataclasses.replace(proof, challenge=_flip(proof.challenge))
    # swapping two rows with the same bit keeps the shape but not the transcript
    same = [k for k in range(KAPPA) if (proof.rows[k].opened_x1 is None)]
    a, b = same[0], same[1]
    rows = list(proof.rows)
    rows[a], rows[b] = rows[b], rows[a]
    with pytest.raises(InvalidProof):
        pve.verify(statement, dataclasses.replace(proof, rows=tuple(rows)))


@SUITES
def test_a_proof_holds_for_its_statement_only(group: Group) -> None:
    _, statement, proof = _honest(group)
    other_key = X25519PrivateKey.generate().public_key().public_bytes_raw()
    for other in (
        dataclasses.replace(statement, label=b"key=demo;epoch=1"),
        dataclasses.replace(statement, holder=Identifier.from_int(group, 3)),
        dataclasses.replace(statement, public_share=statement.public_share + group.generator()),
        dataclasses.replace(statement, recovery_key=other_key),
    ):
        with pytest.raises(InvalidProof):
            pve.verify(other, proof)


@SUITES
def test_proof_from_another_group_is_refused(group: Group) -> None:
    other = ED25519 if group is SECP256K1 else SECP256K1
    _, statement, _ = _honest(group)
    _, _, foreign = _honest(other)
    with pytest.raises(InvalidProof):
        pve.verify(statement, foreign)
    with pytest.raises(EncodingError) as err:
        VerifiableEncryption.from_bytes(foreign.to_bytes(), group)
    assert err.value.field == "suite"


@SUITES
def test_decoding_is_strict(group: Group) -> None:
    _, _, proof = _honest(group)
    encoded = proof.to_bytes()
    for bad in (encoded[:-1], encoded + b"\0", encoded[:20], b""):
        with pytest.raises(EncodingError):
            VerifiableEncryption.from_bytes(bad, group)
    # a non-canonical x1 (>= q) in the first row that carries one
    k = next(k for k in range(KAPPA) if proof.rows[k].opened_x1 is not None)
    x1 = proof.rows[k].opened_x1
    assert x1 is not None
    position = encoded.index(x1.to_bytes())
    high = b"\xff" * 32
    with pytest.raises(EncodingError) as err:
        VerifiableEncryption.from_bytes(encoded[:position] + high + encoded[position + 32 :], group)
    assert err.value.field == f"row[{k}].x1"


@SUITES
@settings(max_examples=25)
@given(data=st.data())
def test_any_flipped_byte_is_refused(group: Group, data: st.DataObject) -> None:
    _, statement, proof = _honest(group)
    encoded = proof.to_bytes()
    index = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    bad = encoded[:index] + bytes([encoded[index] ^ (1 << bit)]) + encoded[index + 1 :]
    with pytest.raises((EncodingError, InvalidParameters, InvalidProof)):
        pve.verify(statement, VerifiableEncryption.from_bytes(bad, group))


# -- keys and shares ----------------------------------------------------------------------------


@SUITES
def test_low_order_or_malformed_recovery_keys_are_refused(group: Group) -> None:
    _, statement = _setup(group)
    for bad in (LOW_ORDER, RECOVERY_PUBLIC[:31], b""):
        with pytest.raises(InvalidParameters):
            dataclasses.replace(statement, recovery_key=bad)
        with pytest.raises(InvalidParameters):
            pve.check_recovery_key(bad)


@SUITES
def test_a_false_statement_is_never_proved(group: Group) -> None:
    share, statement = _setup(group)
    with pytest.raises(InvalidParameters):
        pve.encrypt(share + group.one(), statement, SeededRandom(1))


@SUITES
def test_decryption_with_another_key_is_opaque(group: Group) -> None:
    _, statement, proof = _honest(group)
    with pytest.raises(SecretError) as err:
        pve.decrypt(X25519PrivateKey.generate(), statement, proof)
    assert str(err.value) == SecretError.MESSAGE


# -- soundness, exercised -----------------------------------------------------------------------


def _cheating_encrypt(
    share: Scalar, statement: PveStatement, bad_rows: int, rng: SeededRandom
) -> tuple[VerifiableEncryption, int]:
    """A prover that plants a wrong value in one random half of each of the first ``bad_rows``
    rows and grinds the Fiat-Shamir hash until the challenge opens only the good halves. Returns
    the proof and the number of tries: expected ``2**bad_rows``, which is why KAPPA = 128 bad
    rows cannot be afforded."""
    group = statement.group
    recipient = pve.check_recovery_key(statement.recovery_key)
    digest = statement.digest()
    tries = 0
    while True:
        tries += 1
        transcript = pve._transcript(statement, digest)
        rows = []
        planted = []
        for k in range(KAPPA):
            seeds = (rng.random_bytes(32), rng.random_bytes(32))
            x0 = pve._half_from_seed(group, seeds[0])
            x1 = share - x0
            values = [x0, x1]
            bad_side = rng.random_bytes(1)[0] & 1 if k < bad_rows else None
            if bad_side is not None:
                values[bad_side] = values[bad_side] + group.one()  # not the committed half
            c = tuple(
                pve._encrypt_half(recipient, values[j], seeds[j], pve._row_aad(digest, k, j))
                for j in (0, 1)
            )
            big_x0 = group.base_mul(x0)
            pve._absorb_row(transcript, c, (big_x0, statement.public_share - big_x0))
            rows.append((seeds, x1, c))
            planted.append(bad_side)
        challenge = pve._challenge(transcript)
        # the bad half must stay unopened: opened side = bit, so bit must differ from bad_side
        if all(bad is None or int(pve._bit(challenge, k)) != bad for k, bad in enumerate(planted)):
            break
    out = []
    for k, (seeds, x1, c) in enumerate(rows):
        if pve._bit(challenge, k):
            out.append(pve._Row(seeds[1], x1, c[0]))
        else:
            out.append(pve._Row(seeds[0], None, c[1]))
    return VerifiableEncryption(group, challenge, tuple(out)), tries


@SUITES
def test_a_cheater_must_guess_every_bad_row_and_decryption_skips_them(group: Group) -> None:
    share, statement = _setup(group)
    proof, tries = _cheating_encrypt(share, statement, bad_rows=3, rng=SeededRandom(5))
    pve.verify(statement, proof)  # the grind succeeded (about 2^3 tries)
    assert tries >= 1
    # ... yet every other row is whole, so the recovery key still gets the share back
    assert pve.decrypt(RECOVERY, statement, proof) == share


def test_label_is_length_prefixed_into_the_statement() -> None:
    _, statement = _setup(SECP256K1)
    a = dataclasses.replace(statement, label=lp_join((b"ab", b"c"))).digest()
    b = dataclasses.replace(statement, label=lp_join((b"a", b"bc"))).digest()
    assert a != b


# -- format snapshot ------------------------------------------------------------------------------


def test_the_encoding_is_a_fixed_format() -> None:
    """With fixed randomness the PVE is byte-for-byte fixed (every primitive is deterministic
    given its seed): a changed digest here is a format break, not a refactoring."""
    share, statement = _setup(SECP256K1, 42)
    encoded = pve.encrypt(share, statement, SeededRandom(43)).to_bytes()
    assert len(encoded) == SNAPSHOT_LENGTH
    assert hashlib.sha256(encoded).hexdigest() == SNAPSHOT_SHA256
