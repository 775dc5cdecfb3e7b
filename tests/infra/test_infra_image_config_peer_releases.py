"""``tools/image_config.py --peer-release MANIFEST.json``: another release admitted as peer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_infra_image_config import AWS_ROOT, KEY, KEY_B, NODES, _cli, _write_args, ic

from enclave.config import ImageConfig
from keyshard.client.credentials import ClientCredentials

REPO = Path(__file__).resolve().parents[2]
PREVIOUS = {"0": "10" * 48, "1": "11" * 48, "2": "12" * 48}


def _manifest(path: Path, pcrs: dict[str, str], *, example: bool = False) -> Path:
    path.write_text(
        json.dumps(
            {
                "schema": "keyshard.release-manifest.v1",
                "example": example,
                "version": "0.1.0",
                "image_digest": "sha256:" + "9" * 64,
                "hash_algorithm": "SHA384",
                "pcrs": pcrs,
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("clients")
    return (
        ClientCredentials.load_or_create(base / "ops").cert_path,
        ClientCredentials.load_or_create(base / "sdk", name="sdk").cert_path,
    )


def test_the_cli_lists_the_previous_release_in_the_measured_config(
    tmp_path: Path, clients: tuple[Path, Path]
) -> None:
    previous = _manifest(tmp_path / "previous.json", PREVIOUS)
    out = tmp_path / "image.json"
    written = _cli(*_write_args(out, clients), "--peer-release", str(previous))
    assert written.returncode == 0, written.stderr
    assert "1 peer release(s)" in written.stdout
    config = ic.check_image_config(out)
    assert [dict(r) for r in config.peer_releases] == [
        {int(i): bytes.fromhex(v) for i, v in PREVIOUS.items()}
    ]
    assert json.loads(out.read_text())["peer_releases"] == [PREVIOUS]


@pytest.mark.parametrize(
    ("pcrs", "example", "culprit"),
    [
        (PREVIOUS, True, "example"),
        ({"0": "10" * 48, "1": "11" * 48}, False, "pcrs"),
        (PREVIOUS | {"2": "00" * 48}, False, "pcrs"),
    ],
    ids=["example", "no-pcr2", "zero-pcr"],
)
def test_bad_peer_release_manifests_write_nothing(
    tmp_path: Path, clients: tuple[Path, Path], pcrs: dict[str, str], example: bool, culprit: str
) -> None:
    manifest = _manifest(tmp_path / "m.json", pcrs, example=example)
    out = tmp_path / "image.json"
    refused = _cli(*_write_args(out, clients), "--peer-release", str(manifest))
    assert refused.returncode == 1
    assert "peer_releases" in refused.stderr and culprit in refused.stderr
    assert not out.exists()


def test_a_missing_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ic.ImageConfigError, match="cannot read"):
        ic.peer_release_pcrs(tmp_path / "absent.json")


def test_the_same_release_twice_is_refused(clients: tuple[Path, Path]) -> None:
    release = {int(i): bytes.fromhex(v) for i, v in PREVIOUS.items()}
    inputs = ic.ImageInputs(
        attestation_root_pem=AWS_ROOT.read_bytes(),
        nodes=NODES,
        client_cert_pems=tuple(path.read_bytes() for path in clients),
    )
    with pytest.raises(ic.ImageConfigError, match="listed twice"):
        ic.build_image_config(dataclasses.replace(inputs, peer_releases=(release, release)))
    config = ic.build_image_config(dataclasses.replace(inputs, peer_releases=(release,)))
    assert isinstance(config, ImageConfig)
    assert dict(config.nodes) == {"a": KEY, "b": KEY_B}
