"""Decoder fuzzing for the decryption, refresh/reshare and repair messages.

Property: any byte string — random, or a valid encoding with one byte changed, cut or extended —
is either refused with :class:`EncodingError` (nothing else escapes) or decodes to a value whose
encoding is exactly those bytes (one encoding per value).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enclave.mpc.decryption.ecies import Ciphertext, encrypt
from enclave.mpc.decryption.partial import PartialDecryption, partial_decrypt
from enclave.mpc.errors import EncodingError
from enclave.mpc.groups import ED25519, SECP256K1
from enclave.mpc.refresh import refresh_deal
from enclave.mpc.renewal import Confirmation, DealerCommitment, Renewal, SubShare
from enclave.mpc.repair import RepairStep, RepairValue

from .rng import SeededRandom
from .threshold_keys import deal

Codec = Callable[[bytes], bytes]


def _samples() -> list[tuple[str, bytes, Codec]]:
    out: list[tuple[str, bytes, Codec]] = []
    for group in (SECP256K1, ED25519):
        _, shares = deal(group, 1, 3, SeededRandom(b"fuzz"))
        share = next(iter(shares.values()))
        ct = encrypt(share.group_public_key, b"fuzz me", SeededRandom(1), b"ad")
        partial = partial_decrypt(share, ct, b"session", SeededRandom(2), b"ad")
        commitment, subs = refresh_deal(share, b"session", SeededRandom(3))
        confirmation = Confirmation(Renewal.REFRESH, group, b"session", bytes(range(64)))
        repair = RepairValue(RepairStep.DELTA, b"session", group.scalar(99))
        out += [
            (
                f"ciphertext-{group.name}",
                ct.to_bytes(),
                lambda b: Ciphertext.from_bytes(b).to_bytes(),
            ),
            (
                f"partial-{group.name}",
                partial.to_bytes(),
                lambda b: PartialDecryption.from_bytes(b).to_bytes(),
            ),
            (
                f"commitment-{group.name}",
                commitment.to_bytes(),
                lambda b: DealerCommitment.from_bytes(b, Renewal.REFRESH).to_bytes(),
            ),
            (
                f"subshare-{group.name}",
                next(iter(subs.values())).to_bytes(),
                lambda b: SubShare.from_bytes(b, Renewal.REFRESH).to_bytes(),
            ),
            (
                f"confirmation-{group.name}",
                confirmation.to_bytes(),
                lambda b: Confirmation.from_bytes(b, Renewal.REFRESH).to_bytes(),
            ),
            (
                f"repair-{group.name}",
                repair.to_bytes(),
                lambda b: RepairValue.from_bytes(b, RepairStep.DELTA).to_bytes(),
            ),
        ]
    return out


SAMPLES = _samples()
CODECS = pytest.mark.parametrize(("name", "valid", "codec"), SAMPLES, ids=[s[0] for s in SAMPLES])


def _refused_or_canonical(codec: Codec, data: bytes) -> None:
    try:
        encoded = codec(data)
    except EncodingError:
        return
    assert encoded == data


@CODECS
def test_valid_sample_round_trips(name: str, valid: bytes, codec: Codec) -> None:
    assert codec(valid) == valid


@CODECS
@given(data=st.binary(max_size=300))
def test_random_bytes(name: str, valid: bytes, codec: Codec, data: bytes) -> None:
    _refused_or_canonical(codec, data)


@CODECS
@given(data=st.data())
def test_mutated_valid_encoding(name: str, valid: bytes, codec: Codec, data: st.DataObject) -> None:
    index = data.draw(st.integers(min_value=0, max_value=len(valid) - 1))
    value = data.draw(st.integers(min_value=0, max_value=255))
    mutated = valid[:index] + bytes([value]) + valid[index + 1 :]
    _refused_or_canonical(codec, mutated)
    _refused_or_canonical(codec, valid[:index])
    _refused_or_canonical(codec, valid + data.draw(st.binary(min_size=1, max_size=8)))


WITH_SESSION = [s for s in SAMPLES if not s[0].startswith("ciphertext")]


@pytest.mark.parametrize(("name", "valid", "codec"), WITH_SESSION, ids=[s[0] for s in WITH_SESSION])
def test_empty_session_id_is_an_encoding_error(name: str, valid: bytes, codec: Codec) -> None:
    marker = (7).to_bytes(4, "big") + b"session"
    assert marker in valid
    with pytest.raises(EncodingError):
        codec(valid.replace(marker, (0).to_bytes(4, "big"), 1))
