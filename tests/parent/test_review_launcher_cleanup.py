"""Review finding: an enclave that ``run-enclave`` started is terminated if ``start`` then fails.

``NitroCliLauncher.start`` runs ``run-enclave`` and then checks the result (CID, and through
``describe-enclaves`` that the enclave runs in production mode). When ``describe-enclaves`` failed,
``start`` raised with the enclave still running, and :class:`ParentNode` only stops an enclave
whose start *returned* — so the enclave was orphaned, its mode never checked. Every failure after
a successful ``run-enclave`` now terminates it before the error propagates.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from test_parent_launcher import ENCLAVE_ID, FAKE_NITRO

from parent.errors import LaunchError
from parent.launcher import NitroCliLauncher


@pytest.fixture
def nitro(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "nitro-cli"
    script.write_text(FAKE_NITRO)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (tmp_path / "enclave.eif").write_bytes(b"EIF")
    return bindir


def _commands(bindir: Path) -> list[str]:
    return [json.loads(line)[0] for line in (bindir / "argv.jsonl").read_text().splitlines()]


def test_failed_describe_after_run_terminates_the_enclave(
    nitro: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NITRO_FAIL", "describe-enclaves")
    launcher = NitroCliLauncher(tmp_path / "enclave.eif", cpu_count=2, memory_mib=512, cid=16)
    with pytest.raises(LaunchError, match="describe-enclaves failed"):
        asyncio.run(launcher.start())
    assert _commands(nitro) == ["run-enclave", "describe-enclaves", "terminate-enclave"]
    assert (nitro / "state").read_text() == "gone"
    calls = (nitro / "argv.jsonl").read_text().splitlines()
    assert json.loads(calls[-1]) == ["terminate-enclave", "--enclave-id", ENCLAVE_ID]


def test_a_successful_start_terminates_nothing(nitro: Path, tmp_path: Path) -> None:
    launcher = NitroCliLauncher(tmp_path / "enclave.eif", cpu_count=2, memory_mib=512, cid=16)
    info = asyncio.run(launcher.start())
    assert info.enclave_id == ENCLAVE_ID
    assert _commands(nitro) == ["run-enclave", "describe-enclaves"]
    assert (nitro / "state").read_text() == "RUNNING"
