"""``keyshard dev up | status | down`` through the CLI entry point, on a one-node cluster."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import cluster_processes

from keyshard.cli.main import main
from keyshard.dev.cluster import Cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ksd-", dir="/tmp"))
    try:
        yield path
    finally:
        if (path / "cluster.json").exists():
            Cluster.attach(path).down()
        assert cluster_processes(path) == []
        shutil.rmtree(path, ignore_errors=True)


def test_up_status_down(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "up", "--nodes", "1", "--dir", str(directory)]) == 0
    out, err = capsys.readouterr()
    assert "node-1" in out
    assert "ready" in out
    assert "waiting for enclaves to attest and unseal" in err  # progress goes to stderr

    assert main(["dev", "status", "--dir", str(directory), "--format", "json"]) == 0
    [node] = json.loads(capsys.readouterr().out)
    assert node["state"] == "ready"
    profile = json.loads((directory / "profile.json").read_text())
    assert node["status"]["pcrs"]["0"] == profile["expected_pcrs"][0]["0"]
    assert profile["nodes"][0]["endpoint"] == node["endpoint"]

    assert main(["dev", "down", "--dir", str(directory)]) == 0
    assert cluster_processes(directory) == []
    assert main(["dev", "status", "--dir", str(directory)]) == 2
    assert "stopped" in capsys.readouterr().out


def test_status_without_a_cluster_is_a_local_error(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dev", "status", "--dir", str(directory / "nothing")]) == 1
    assert "no cluster" in capsys.readouterr().err
    assert main(["dev", "up", "--nodes", "0", "--dir", str(directory)]) == 1
