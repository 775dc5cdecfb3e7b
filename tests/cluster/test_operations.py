"""Operating a dev cluster as an operator would, on real processes: Prometheus ``/metrics`` over
HTTP moves after a signature, ``/ready`` and ``/health`` answer a load balancer, an enclave's
refusal appears in its parent's log stream as JSON, ``keyshard node status``, ``dev logs``,
``dev restart``, and ``dev down`` leaves no profile and may be repeated."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_processes import cluster_processes
from prometheus_client.parser import text_string_to_metric_families

from keyshard.cli.main import main
from keyshard.dev.cluster import Cluster

pytestmark = pytest.mark.slow

LOG_DEADLINE = 30.0


@pytest.fixture(scope="module")
def directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kso-", dir="/tmp"))
    try:
        assert main(["dev", "up", "--nodes", "3", "--dir", str(path)]) == 0
        yield path
    finally:
        if (path / "cluster.json").exists():
            Cluster.attach(path).down()
        assert cluster_processes(path) == []
        shutil.rmtree(path, ignore_errors=True)


def _get(url: str) -> tuple[int, bytes]:
    """A plain HTTP GET, as curl or a load balancer does it."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _urls(directory: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    capsys.readouterr()
    assert main(["dev", "status", "--dir", str(directory), "--format", "json"]) == 0
    nodes: list[dict[str, str]] = json.loads(capsys.readouterr().out)
    return nodes


def _counter(text: bytes, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def _log_entries(directory: Path, node: str, capsys: pytest.CaptureFixture[str]) -> list[dict]:  # type: ignore[type-arg]
    capsys.readouterr()
    assert main(["dev", "logs", node, "--dir", str(directory)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_metrics_move_after_a_signature(
    directory: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    nodes = _urls(directory, capsys)
    assert [n["metrics_url"].startswith("http://127.0.0.1:") for n in nodes] == [True] * 3
    for node in nodes:
        assert _get(node["ready_url"])[0] == 200
        assert _get(node["health_url"])[0] == 200
    assert main(["key", "create", "ops", "--threshold", "1", "--dir", str(directory)]) == 0
    message = tmp_path / "msg"
    message.write_bytes(b"wire 5 to 42")
    before = [_get(n["metrics_url"])[1] for n in nodes]
    assert main(["key", "sign", "ops", "--file", str(message), "--dir", str(directory)]) == 0
    after = [_get(n["metrics_url"])[1] for n in nodes]
    signed = [
        _counter(a, "keyshard_enclave_operations_total", operation="frost_sign", outcome="ok")
        - _counter(b, "keyshard_enclave_operations_total", operation="frost_sign", outcome="ok")
        for a, b in zip(after, before, strict=True)
    ]
    assert sorted(signed) == [0.0, 1.0, 1.0]  # two of three nodes signed, once each
    for text in after:
        assert _counter(text, "keyshard_enclave_up") == 1.0
        assert _counter(text, "keyshard_enclave_sealed_version") >= 2  # identity + the key
        assert _counter(text, "keyshard_enclave_key_epoch", key="ops") == 0.0


def test_a_refusal_appears_in_the_parents_log_as_json(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["key", "info", "no-such-key", "--dir", str(directory)]) == 2
    deadline = time.monotonic() + LOG_DEADLINE
    while True:  # the channel hands lines over as they come; wait for them, bounded
        refusals = [
            entry
            for entry in _log_entries(directory, "node-1", capsys)
            if entry.get("source") == "enclave" and entry.get("event") == "request_refused"
        ]
        if refusals or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert refusals, "no enclave refusal in node-1's parent log"
    assert refusals[-1]["code"] == "unknown_key"
    assert refusals[-1]["logger"].startswith("enclave.")
    entries = _log_entries(directory, "node-1", capsys)
    assert {entry["source"] for entry in entries} == {"parent", "enclave"}
    # the boot's polling of the status port is not a warning
    assert not [e for e in entries if e.get("event") == "connect_failed"]


def test_node_status_from_the_profile(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    profile = directory / "profile.json"
    assert main(["node", "status", "--profile", str(profile), "--format", "json"]) == 0
    nodes = json.loads(capsys.readouterr().out)
    assert [n["node_id"] for n in nodes] == ["node-1", "node-2", "node-3"]
    for node in nodes:
        assert (node["state"], node["release"]) == ("ready", 1)
        assert node["attestation_age_s"] is not None
        assert [k["name"] for k in node["keys"]] == ["ops"]


def test_restart_then_down_twice(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dev", "restart", "node-2", "--dir", str(directory)]) == 0
    nodes = _urls(directory, capsys)
    status, body = _get(nodes[1]["ready_url"])
    assert (status, json.loads(body)["state"]) == (200, "ready")
    assert main(["dev", "down", "--dir", str(directory)]) == 0
    assert not (directory / "profile.json").exists()
    assert main(["dev", "down", "--dir", str(directory)]) == 0
    assert main(["dev", "down", "--dir", str(directory / "never")]) == 0
    assert main(["dev", "logs", "node-9", "--dir", str(directory)]) == 1
