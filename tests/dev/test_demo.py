"""The demo is a smoke test too: each act must succeed and each refusal must name its reason."""

from __future__ import annotations

import io
from pathlib import Path

from keyshard.dev.demo import _Narrator, act_attestation, act_mpc_core


def test_attestation_act_refuses_for_the_right_reasons(tmp_path: Path) -> None:
    out = io.StringIO()
    act_attestation(_Narrator(out), tmp_path)
    text = out.getvalue()
    assert text.count("[refused]") == 5
    assert "SignatureInvalid" in text
    assert "UntrustedRoot" in text
    assert "policy rule 'debug'" in text
    assert "PcrMismatch: policy rule 'pcr': PCR0" in text
    assert "policy rule 'nonce'" in text


def test_mpc_act_signs_and_decrypts() -> None:
    out = io.StringIO()
    act_mpc_core(_Narrator(out))
    assert out.getvalue().count("[ok]") == 3
