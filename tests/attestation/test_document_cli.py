"""``keyshard attestation inspect|verify`` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from attestation_test_ca import T0, make_chain, make_document
from attestation_vectors import (
    AWS_ROOT_SHA256,
    DATA_DIR,
    INVALID_SAMPLE,
    SAMPLE_BY_NAME,
    VALID_SAMPLES,
    Sample,
)
from cryptography.hazmat.primitives.serialization import Encoding

from attestation.codec import decode_document
from keyshard.cli.main import main

GOOD = SAMPLE_BY_NAME["evervault_beta_valid.bin"]
DEBUG = SAMPLE_BY_NAME["evervault_ga_valid.bin"]


def _path(sample: Sample) -> str:
    return str(DATA_DIR / sample.name)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["attestation", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("sample", VALID_SAMPLES, ids=lambda s: s.name)
def test_inspect_json_reports_the_manifest(
    capsys: pytest.CaptureFixture[str], sample: Sample
) -> None:
    code, out, _ = _run(capsys, "inspect", _path(sample), "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["module_id"] == sample.module_id
    assert shown["timestamp_ms"] == sample.timestamp_ms
    assert shown["debug_mode"] is sample.debug_mode
    assert shown["nonzero_pcrs"] == {str(i): v.hex() for i, v in sample.nonzero_pcrs.items()}
    assert [c["step"] for c in shown["certificates"]] == [0, 1, 2, 3, 4]
    assert shown["certificates"][4]["subject"].startswith("CN=aws.nitro-enclaves")
    lengths = [
        None if shown[k] is None else shown[k]["length"]
        for k in ("public_key", "user_data", "nonce")
    ]
    assert lengths == [sample.public_key_len, sample.user_data_len, sample.nonce_len]


def test_inspect_table_says_not_verified(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "inspect", _path(GOOD))
    assert code == 0
    assert out.startswith("NOT VERIFIED")
    assert GOOD.nonzero_pcrs[8].hex() in out
    assert "debug_mode    no" in out


def test_inspect_refuses_malformed_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(GOOD.data + b"\x00")
    code, out, err = _run(capsys, "inspect", str(bad))
    assert (code, out) == (1, "")
    assert err.strip() == "refused: malformed document: envelope: 1 trailing bytes"


def test_verify_genuine_at_its_timestamp(capsys: pytest.CaptureFixture[str]) -> None:
    pcr_flags = [f"--pcr={i}={v.hex()}" for i, v in GOOD.nonzero_pcrs.items()]
    code, out, err = _run(capsys, "verify", _path(GOOD), "--at", "doc", *pcr_flags)
    assert (code, err) == (0, "")
    assert out.startswith(f"verified: {GOOD.module_id}")
    assert AWS_ROOT_SHA256 in out


def test_verify_refuses_now_as_expired(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "verify", _path(GOOD))
    assert (code, out) == (1, "")
    assert err.startswith("refused: chain step 0: certificate expired at 2022-10-13T11:58:02")
    assert err.count("\n") == 1


def test_verify_refuses_the_altered_sample_for_its_signature(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(DATA_DIR / INVALID_SAMPLE)
    code, _, err = _run(capsys, "verify", path, "--at", "doc", "--allow-debug")
    assert code == 1
    assert err.startswith("refused: signature:")


def test_verify_debug_needs_allow_debug(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "verify", _path(DEBUG), "--at", "doc")
    assert code == 1
    assert err.startswith("refused: policy rule debug:")
    code, _, err = _run(capsys, "verify", _path(DEBUG), "--at", "doc", "--allow-debug")
    assert (code, err) == (0, "")


def test_verify_pcr_alternatives_and_mismatch(capsys: pytest.CaptureFixture[str]) -> None:
    right, wrong = GOOD.nonzero_pcrs[0].hex(), "ab" * 48
    code, _, _ = _run(
        capsys, "verify", _path(GOOD), "--at", "doc", f"--pcr=0={wrong}", f"--pcr=0={right}"
    )
    assert code == 0
    code, out, err = _run(
        capsys, "verify", _path(GOOD), "--at", "doc", f"--pcr=0={wrong}", "--json"
    )
    assert code == 1
    result = json.loads(out)
    assert result == {
        "verified": False,
        "check": "policy rule pcr",
        "error": "PcrMismatch",
        "message": result["message"],
    }
    assert err.startswith(f"refused: policy rule pcr: PCR0 is {right}")


def test_verify_nonce(capsys: pytest.CaptureFixture[str]) -> None:
    nonce = decode_document(GOOD.data).payload.nonce
    assert nonce is not None
    code, _, _ = _run(capsys, "verify", _path(GOOD), "--at", "doc", "--nonce", nonce.hex())
    assert code == 0
    code, _, err = _run(capsys, "verify", _path(GOOD), "--at", "doc", "--nonce", "00")
    assert code == 1
    assert err.startswith("refused: policy rule nonce:")


def test_verify_with_an_explicit_root_and_iso_instant(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chain = make_chain()
    doc = tmp_path / "doc.bin"
    doc.write_bytes(make_document(chain))
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root.public_bytes(Encoding.PEM))
    at = T0.isoformat()
    code, out, err = _run(capsys, "verify", str(doc), "--root", str(root), "--at", at, "--json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert result["verified"] is True
    assert result["checked_at"] == "2026-01-01T12:00:00Z"
    # The same document against the default (AWS) root: refused at the root step.
    code, _, err = _run(capsys, "verify", str(doc), "--at", at)
    assert code == 1
    assert err.startswith("refused: chain step 4: root certificate")
    # And a genuine document against the test root.
    code, _, err = _run(capsys, "verify", _path(GOOD), "--root", str(root), "--at", "doc")
    assert code == 1
    assert f"root certificate {AWS_ROOT_SHA256} is not pinned" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--at", "yesterday"], "is not 'now', 'doc' or an ISO 8601 time"),
        (["--at", "2026-01-01T00:00:00"], "has no UTC offset"),
        (["--pcr", "x=00"], "is not N=HEX"),
        (["--pcr", "0=zz"], "is not hex"),
        (["--pcr", "40=" + "00" * 48], "not in 0..31"),
        (["--nonce", "xyz"], "is not hex"),
        (["--root", "/nonexistent/root.pem"], "cannot read --root"),
    ],
)
def test_verify_bad_flags_exit_1(
    capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    code, out, err = _run(capsys, "verify", _path(GOOD), *flags)
    assert (code, out) == (1, "")
    assert err.startswith("keyshard attestation verify: ")
    assert message in err


def test_unreadable_file_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for verb in ("inspect", "verify"):
        code, _, err = _run(capsys, verb, str(tmp_path / "missing.bin"))
        assert code == 1
        assert "cannot read" in err


def test_root_file_without_pem_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bogus = tmp_path / "root.pem"
    bogus.write_text("not a certificate")
    code, _, err = _run(capsys, "verify", _path(GOOD), "--root", str(bogus))
    assert code == 1
    assert "holds no PEM certificate" in err


def test_cli_as_a_process_reads_stdin() -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "keyshard.cli.main", "attestation", "verify", "-", "--at", "doc"],
        input=GOOD.data,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.decode().startswith("verified:")
    refused = subprocess.run(
        [sys.executable, "-m", "keyshard.cli.main", "attestation", "verify", "-"],
        input=GOOD.data,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert refused.returncode == 1
    assert refused.stderr.decode().startswith("refused: chain step 0: certificate expired")


def test_inspect_shows_unparseable_certificates(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    doc = tmp_path / "doc.bin"
    doc.write_bytes(make_document(make_chain(), certificate=b"\x30\x00"))
    code, out, _ = _run(capsys, "inspect", str(doc), "--json")
    assert code == 0
    assert json.loads(out)["certificates"][0] == {
        "step": 0,
        "error": "not a valid DER certificate",
        "length": 2,
    }
    code, out, _ = _run(capsys, "inspect", str(doc))
    assert "step 0      not a valid DER certificate" in out


def test_group_help_lists_both_verbs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["attestation", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "inspect" in out
    assert "verify" in out
