"""``peer_releases`` in the measured image.json: other releases' whole PCR sets accepted as peers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.emulated_ca import EmulatedCa
from enclave.config import IMAGE_CONFIG_PATH, ImageConfig
from enclave.errors import ConfigError

ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
RELEASE_N = {0: b"\x10" * 48, 1: b"\x11" * 48, 2: b"\x12" * 48}


@pytest.fixture(scope="module")
def pem() -> bytes:
    return EmulatedCa.ephemeral().root_certificate.public_bytes(Encoding.PEM)


def _write(root: Path, text: str) -> Path:
    path = root / IMAGE_CONFIG_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return root


def test_peer_releases_round_trip_through_image_json(pem: bytes, tmp_path: Path) -> None:
    image = ImageConfig(pem, {"node-1": ARN}, peer_releases=(RELEASE_N | {8: b"\x18" * 48},))
    loaded = ImageConfig.load(_write(tmp_path, image.to_json()))
    assert loaded == image
    assert dict(loaded.peer_releases[0]) == RELEASE_N | {8: b"\x18" * 48}


def test_an_image_listing_no_release_keeps_its_format_2_bytes(pem: bytes) -> None:
    """Absent, not empty: images built before this field measure exactly as before."""
    raw = json.loads(ImageConfig(pem, {"node-1": ARN}).to_json())
    assert "peer_releases" not in raw
    assert raw["format"] == 2


@pytest.mark.parametrize(
    ("release", "culprit"),
    [
        ({0: b"\x10" * 48, 1: b"\x11" * 48}, "PCR0, 1, 2"),
        (RELEASE_N | {3: b"\x13" * 48}, "at most PCR8"),
        (RELEASE_N | {2: b"\x12" * 32}, "48 bytes"),
    ],
)
def test_malformed_peer_releases_are_refused(
    pem: bytes, release: dict[int, bytes], culprit: str
) -> None:
    with pytest.raises(ConfigError, match=culprit) as caught:
        ImageConfig(pem, {"node-1": ARN}, peer_releases=(release,))
    assert "peer_releases" in str(caught.value)


@pytest.mark.parametrize("value", [{"0": "zz"}, ["00"], {"x": "00"}])
def test_malformed_peer_releases_in_json_are_refused(
    pem: bytes, tmp_path: Path, value: object
) -> None:
    raw = json.loads(ImageConfig(pem, {"node-1": ARN}).to_json())
    raw["peer_releases"] = value if isinstance(value, list) else [value]
    with pytest.raises(ConfigError) as caught:
        ImageConfig.load(_write(tmp_path, json.dumps(raw)))
    assert "peer_releases" in str(caught.value)
