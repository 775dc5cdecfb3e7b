"""Review finding: a FROST message whose group header and ciphersuite name disagree is malformed.

Every FROST message carries the group in the codec header and the ciphersuite name after it. The
decoder took the points/scalars from the header's group and the suite from the name without
checking they match, so a peer's ``ed25519`` header with a ``secp256k1`` suite name escaped from
``from_bytes`` as :class:`InvalidParameters` ("the caller misused the API") rather than
:class:`EncodingError` naming the field — the wrong side of the error tree for bytes a peer sent.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from enclave.mpc.encoding import Encoder
from enclave.mpc.errors import EncodingError
from enclave.mpc.frost.ciphersuite import FROST_ED25519_SHA512, FROST_SECP256K1_SHA256
from enclave.mpc.frost.round1 import SigningCommitments
from enclave.mpc.frost.round2 import SignatureShare, SigningPackage
from enclave.mpc.groups import ED25519
from enclave.mpc.identifiers import Identifier

ED = FROST_ED25519_SHA512
SECP = FROST_SECP256K1_SHA256
SID = b"review-suite-hdr"


def _mismatched(kind: str) -> Encoder:
    """Header says ed25519, the suite name says secp256k1."""
    return Encoder(kind, ED25519).var_bytes(SECP.name.encode()).var_bytes(SID)


def _commitments() -> bytes:
    g = ED25519.generator()
    return _mismatched("frost/round1/commitments").point(g).point(g + g).finish()


def _package() -> bytes:
    g = ED25519.generator()
    enc = _mismatched("frost/round2/package").var_bytes(b"msg").count(1)
    return enc.identifier(Identifier(ED25519, 1)).point(g).point(g + g).finish()


def _share() -> bytes:
    return _mismatched("frost/round2/share").scalar(ED25519.scalar(7)).finish()


@pytest.mark.parametrize(
    ("decode", "data"),
    [
        (SigningCommitments.from_bytes, _commitments),
        (SigningPackage.from_bytes, _package),
        (SignatureShare.from_bytes, _share),
    ],
    ids=["commitments", "package", "share"],
)
def test_suite_of_another_group_is_an_encoding_error(
    decode: Callable[[bytes], object], data: Callable[[], bytes]
) -> None:
    with pytest.raises(EncodingError) as caught:
        decode(data())
    assert caught.value.field == "ciphersuite"


def test_matching_header_still_decodes() -> None:
    g = ED25519.generator()
    good = SigningCommitments(ED, SID, g, g + g)
    assert SigningCommitments.from_bytes(good.to_bytes()) == good
