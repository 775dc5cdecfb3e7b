"""The CLI frame: exit codes scripts can rely on (0 ok, 1 local error, 2 remote error)."""

from __future__ import annotations

import pytest

from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR
from keyshard.cli.main import main


@pytest.mark.parametrize("argv", [["no-such-group"], ["attestation", "verify"], []])
def test_usage_errors_are_local_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == EXIT_LOCAL_ERROR
    assert "usage:" in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--help"])
    assert excinfo.value.code == 0
    assert "attestation" in capsys.readouterr().out
