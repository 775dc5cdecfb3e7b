"""``keyshard node status`` on a Terraform-rendered profile whose nodes do not answer: every node
is reported unreachable (exit 2), and a missing profile is a local error (exit 1)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from keyshard.cli.main import main

RENDERED = Path(__file__).resolve().parents[1] / "data" / "infra" / "cluster_profile_rendered.json"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_nodes_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = json.loads(RENDERED.read_text())
    for node in profile["nodes"]:
        port = _closed_port()  # nothing listens: refused at once
        node["endpoint"] = f"127.0.0.1:{port}"
        node["service_endpoint"] = f"127.0.0.1:{port + 1 if port < 65535 else port - 1}"
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    code = main(["node", "status", "--profile", str(path), "--format", "json", "--timeout", "5"])
    assert code == 2
    nodes = json.loads(capsys.readouterr().out)
    assert [n["node_id"] for n in nodes] == [n["node_id"] for n in profile["nodes"]]
    assert {n["state"] for n in nodes} == {"unreachable"}
    assert all(n["error"] == "ConnectionRefusedError" for n in nodes)
    assert main(["node", "status", "--profile", str(path)]) == 2
    assert "unreachable" in capsys.readouterr().out


def test_no_profile_is_a_local_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node", "status", "--profile", str(tmp_path / "none.json")]) == 1
    assert "no cluster profile" in capsys.readouterr().err
