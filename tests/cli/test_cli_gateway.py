"""``keyshard gateway``: refusals before anything starts, each one line and exit 1."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from keyshard.cli.main import main


def _run(tmp_path: Path, *flags: str) -> int:
    return main(
        [
            "gateway",
            "--profile",
            str(tmp_path / "profile.json"),
            "--config",
            str(tmp_path / "gateway.json"),
            "--state",
            str(tmp_path / "state"),
            *flags,
        ]
    )


def test_plain_http_off_loopback_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(tmp_path, "--listen", "0.0.0.0:8443") == 1
    assert "loopback" in capsys.readouterr().err


def test_a_missing_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, "--listen", "127.0.0.1:0") == 1
    assert "gateway.json" in capsys.readouterr().err


def test_the_gateway_extra_is_named_when_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "h11" else real(name, *a)
    )
    assert _run(tmp_path) == 1
    assert "pip install 'keyshard[gateway]'" in capsys.readouterr().err


@pytest.mark.parametrize("seconds", ["-1", "nan"])
def test_a_witness_interval_below_zero_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    assert _run(tmp_path, "--listen", "127.0.0.1:0", "--witness-every", seconds) == 1
    assert "--witness-every" in capsys.readouterr().err
