"""The demo is a smoke test too: each act must succeed and each refusal must name its reason."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from keyshard.dev.demo import _Narrator, act_attestation, act_cluster, act_mpc_core


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


@pytest.mark.slow
def test_cluster_act_boots_recovers_and_refuses_a_modified_enclave(tmp_path: Path) -> None:
    out = io.StringIO()
    act_cluster(_Narrator(out), tmp_path, nodes=3)
    text = out.getvalue()
    assert text.count(": ready, sealed state v1") == 3
    assert "node-2 restarted: re-attested, unsealed its state" in text
    assert "node-3 rebooted from an image with one byte changed" in text
    assert "AccessDeniedException" in text
    assert "cluster stopped" in text
