"""``keyshard key``: help, flags, profile and credential resolution, exit codes — without a cluster.

A cluster that is not running is a real profile whose nodes' ports nobody listens on: every
connection is refused, as after ``keyshard dev down``. What needs running nodes (signing,
decryption, the xpub of a real key) is in ``tests/cluster/test_key_cli.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from attestation.roots import certificate_fingerprint
from keyshard.cli import key_cmd
from keyshard.cli.key_cmd import MAX_INPUT
from keyshard.cli.main import main
from keyshard.cli.output import FORMAT_ENV
from keyshard.client import sdk
from keyshard.client.credentials import ClientCredentials
from keyshard.client.keys import SUITE_NAMES
from keyshard.client.profile import ClusterProfile, NodeEntry
from wire.tls import self_signed_certificate

REPO = Path(__file__).resolve().parents[2]
VERBS = (
    "create",
    "info",
    "list",
    "approve",
    "sign",
    "encrypt",
    "decrypt",
    "disable",
    "enable",
    "schedule-deletion",
    "cancel-deletion",
    "refresh",
    "repair",
    "reshare",
    "export",
    "unwrap",
    "import",
    "backup",
    "restore",
    "policy",
)
ENVIRONMENT = (
    key_cmd.PROFILE_ENV,
    key_cmd.DIR_ENV,
    key_cmd.CERT_ENV,
    key_cmd.KEY_ENV,
    FORMAT_ENV,
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No cluster named by the environment, and no .keyshard/dev in the working directory."""
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_profile(directory: Path, *, nodes: int = 3) -> Path:
    """A valid profile (pinned root, PCRs) of a cluster none of whose nodes is running, with
    client credentials beside it as ``keyshard dev up`` lays them out."""
    directory.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = self_signed_certificate(root_key, "test root", dt.datetime.now(dt.UTC))
    der = root.public_bytes(serialization.Encoding.DER)
    profile = ClusterProfile(
        mode="emulated",
        region="us-east-1",
        kms_endpoint="http://127.0.0.1:1",
        root_pem=root.public_bytes(serialization.Encoding.PEM),
        root_sha256=certificate_fingerprint(der),
        root_path=str(directory / "root.pem"),
        expected_pcrs=({0: bytes(48), 1: bytes(48), 2: bytes(48)},),
        nodes=tuple(
            NodeEntry(f"node-{i}", "127.0.0.1", _free_port(), 16, 5000, "arn", _free_port())
            for i in range(1, nodes + 1)
        ),
    )
    path = directory / "profile.json"
    profile.write(path)
    ClientCredentials.load_or_create(directory / "client")
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["key", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _key_verbs() -> dict[str, argparse.ArgumentParser]:
    groups = argparse.ArgumentParser(prog="keyshard").add_subparsers()
    key_cmd.register(groups)
    [action] = [
        a for a in groups.choices["key"]._actions if isinstance(a, argparse._SubParsersAction)
    ]
    return dict(action.choices)


# -- help -----------------------------------------------------------------------------------


def test_every_verb_has_a_description_examples_and_the_output_flags() -> None:
    verbs = _key_verbs()
    assert tuple(verbs) == VERBS
    policy = verbs.pop("policy")  # a group: its actions are the verbs
    for action in policy._subparsers._group_actions[0].choices.values():  # type: ignore[union-attr]
        verbs[f"policy {action.prog.rsplit(' ', 1)[-1]}"] = action
    for name, verb in verbs.items():
        shown = verb.format_help()
        assert verb.description, name
        assert verb.formatter_class is argparse.RawDescriptionHelpFormatter, name
        assert f"examples:\n  keyshard key {name}" in shown, name
        for flag in ("--format", "--field", "--profile", "--dir", "--cert", "--key"):
            assert flag in shown, (name, flag)
        assert "Terraform" in shown, name


def test_the_help_names_every_key_suite_and_the_sdk_environment() -> None:
    shown = _key_verbs()["create"].format_help()
    for suite in SUITE_NAMES:
        assert suite in shown
    assert (key_cmd.PROFILE_ENV, key_cmd.CERT_ENV, key_cmd.KEY_ENV) == (
        sdk.PROFILE_ENV,
        sdk.CERT_ENV,
        sdk.KEY_ENV,
    )


_PROBE = """
import json, sys
from keyshard.cli.main import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""
HEAVY = ("enclave", "attestation", "cryptography", "boto3", "moto", "keyshard.client", "wire")


@pytest.mark.parametrize("verb", [None, *VERBS])
def test_help_imports_no_sdk_enclave_or_crypto(verb: str | None) -> None:
    argv = ["key", "--help"] if verb is None else ["key", verb, "--help"]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=60,
    )
    modules = json.loads(done.stdout.splitlines()[-1])
    loaded = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert loaded == []


# -- which cluster ----------------------------------------------------------------------------


def test_no_profile_is_local_and_explains_the_dev_and_the_terraform_case(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(capsys, "info", "treasury")
    assert (code, out) == (1, "")
    assert err.startswith("keyshard key info: no cluster profile at .keyshard/dev/profile.json.")
    assert err.count("\n") == 1
    for hint in ("keyshard dev up", "--dir", "Terraform", "--profile", "KEYSHARD_PROFILE"):
        assert hint in err


def test_the_profile_comes_from_the_flags_then_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def named(*argv: str) -> str:
        code, _, err = _run(capsys, "list", *argv)
        assert code == 1
        return err.split("no cluster profile at ")[1].split(". ")[0]

    monkeypatch.setenv(key_cmd.DIR_ENV, "from-dir-env")
    assert named() == "from-dir-env/profile.json"
    monkeypatch.setenv(key_cmd.PROFILE_ENV, "from-env.json")
    assert named() == "from-env.json"
    assert named("--dir", "d") == "d/profile.json"
    assert named("--profile", "p.json") == "p.json"
    code, _, err = _run_parser_error(capsys, "list", "--profile", "p.json", "--dir", "d")
    assert code == 1
    assert "not allowed with argument" in err


def _run_parser_error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(["key", *argv])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_a_malformed_profile_is_local(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "profile.json"
    bad.write_text('{"version": 2}')
    code, out, err = _run(capsys, "info", "k", "--profile", str(bad))
    assert (code, out) == (1, "")
    assert "malformed profile" in err


def test_credentials_both_or_neither_and_where_they_are_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    profile = _write_profile(tmp_path / "cluster")
    client = tmp_path / "cluster" / "client"
    cert, key = client / "client-cert.pem", client / "client-key.pem"
    for half in (["--cert", str(cert)], ["--key", str(key)]):
        code, _, err = _run(capsys, "list", "--profile", str(profile), *half)
        assert code == 1
        assert "both the client certificate and its key" in err

    monkeypatch.setenv(key_cmd.CERT_ENV, str(cert))
    code, _, err = _run(capsys, "list", "--profile", str(profile))
    assert code == 1
    assert f"set both {key_cmd.CERT_ENV} and {key_cmd.KEY_ENV}" in err
    code, _, err = _run(capsys, "list", "--profile", str(profile), "--key", str(key))
    assert code == 1, "a key by flag never pairs with a certificate from the environment"
    assert "both the client certificate and its key" in err
    monkeypatch.delenv(key_cmd.CERT_ENV)

    moved = tmp_path / "elsewhere"
    client.rename(moved)
    code, _, err = _run(capsys, "list", "--profile", str(profile))
    assert code == 1
    assert "no client credentials at" in err
    assert "--cert/--key" in err
    code, _, err = _run(
        capsys, "list", "--profile", str(profile), "--cert", str(moved / "client-key.pem"),
        "--key", str(moved / "client-cert.pem"),
    )  # fmt: skip
    assert code == 1, "unusable credentials are a local error, whatever the SDK calls them"


# -- a cluster that is not running ------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "treasury"],
        ["list"],
        ["create", "treasury"],
        ["encrypt", "treasury", "--file", "input"],
        ["decrypt", "treasury", "--file", "input"],
        ["sign", "treasury", "--file", "input"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_stopped_cluster_is_a_remote_error(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "input").write_bytes(b"x")
    _write_profile(tmp_path / "dev")
    code, out, err = _run(capsys, *argv, "--dir", str(tmp_path / "dev"))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "unreachable" in err
    assert "no such key" not in err


def test_the_dev_dir_environment_reaches_the_same_cluster(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _write_profile(tmp_path / "dev")
    monkeypatch.setenv(key_cmd.DIR_ENV, str(tmp_path / "dev"))
    code, _, err = _run(capsys, "list")
    assert code == 2
    assert err.startswith("keyshard key list: cluster unreachable")


# -- input checked before the cluster is asked --------------------------------------------------


def test_input_longer_than_the_limit_is_refused_locally(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _write_profile(tmp_path / "dev")
    big = tmp_path / "big"
    # encrypt reads up to the plaintext limit, decrypt up to the longest ciphertext (issue 9
    # item 11: whatever encrypt writes, decrypt reads)
    limits = {"sign": MAX_INPUT, "encrypt": sdk.MAX_PLAINTEXT, "decrypt": sdk.MAX_CIPHERTEXT}
    for verb, limit in limits.items():
        big.write_bytes(bytes(limit + 1))
        code, out, err = _run(capsys, verb, "k", "--dir", str(tmp_path / "dev"), "--file", str(big))
        assert (code, out) == (1, "")
        assert f"longer than {limit} bytes" in err
    code, _, err = _run(capsys, "sign", "k", "--file", str(tmp_path / "absent"))
    assert code == 1
    assert "cannot read" in err


def test_bad_policy_flags_are_local(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _write_profile(tmp_path / "dev")
    d = ["--dir", str(tmp_path / "dev")]
    assert _run(capsys, "create", "p", *d, "--approver", "zz")[0] == 1
    assert _run(capsys, "create", "p", *d, "--quorum", "1")[0] == 1
    approver = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )
    code, _, err = _run(capsys, "create", "p", *d, "--approver", approver, "--quorum", "2")
    assert code == 1
    assert "quorum" in err
    code, _, err = _run(capsys, "create", "p", *d, "--approver", approver, "--require", "read")
    assert code == 1


def test_a_malformed_approval_file_is_local(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _write_profile(tmp_path / "dev")
    (tmp_path / "m").write_bytes(b"m")
    (tmp_path / "approval.json").write_text('{"version": 1}')
    code, _, err = _run(
        capsys, "sign", "k", "--dir", str(tmp_path / "dev"), "--file", str(tmp_path / "m"),
        "--approval", str(tmp_path / "approval.json"),
    )  # fmt: skip
    assert code == 1
    assert "approval.json" in err


# -- approve, offline --------------------------------------------------------------------------


def test_approve_offline_with_the_public_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["approver", "keygen", "--out", str(tmp_path / "alice.pem")]) == 0
    approver = capsys.readouterr().out.strip()
    (tmp_path / "tx").write_bytes(b"pay 7 to 9")
    public = "11" * 32
    approve = [
        "approve", "payouts", "--approver-key", str(tmp_path / "alice.pem"),
        "--file", str(tmp_path / "tx"), "--public-key", public,
    ]  # fmt: skip
    code, out, _ = _run(capsys, *approve)
    assert code == 0
    approval = json.loads(out)
    assert (approval["key"], approval["operation"], approval["approver"]) == (
        "payouts",
        "sign",
        approver,
    )
    assert approval["group_public_key"] == public
    # json is the default for an approval (the same fields; the expiry and hence the signature
    # move on with the clock, so two runs a second apart differ only there)
    again = json.loads(_run(capsys, *approve, "--format", "json")[1])
    timeless = ("not_after", "signature")
    assert {k: v for k, v in again.items() if k not in timeless} == {
        k: v for k, v in approval.items() if k not in timeless
    }
    assert _run(capsys, *approve, "--field", "operation")[1] == "sign\n"

    code, out, err = _run(capsys, *approve, "--path", "m/0/7")
    assert (code, out) == (1, "")
    assert "--path" in err
    code, _, err = _run(capsys, *approve[:-2], "--public-key", "zz")
    assert code == 1
    code, _, err = _run(
        capsys, "approve", "p", "--approver-key", str(tmp_path / "none.pem"), "--public-key", public
    )
    assert code == 1
    assert "cannot read approver key" in err
    code, _, _ = _run(capsys, *approve, "--ttl", "0")
    assert code == 1


def test_a_decrypt_approval_takes_any_ciphertext_encrypt_can_write(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Issue 9 item 11: a ciphertext over the 64 KiB input cap (as `encrypt` writes for a large
    plaintext) can still be approved for decryption; a sign approval keeps the input cap."""
    from keyshard.client.sdk import MAX_CIPHERTEXT  # noqa: PLC0415 -- the SDK's own limit

    assert main(["approver", "keygen", "--out", str(tmp_path / "alice.pem")]) == 0
    capsys.readouterr()
    (tmp_path / "big.bin").write_bytes(b"\x02" * (MAX_CIPHERTEXT - 1))
    approve = [
        "approve", "payouts", "--approver-key", str(tmp_path / "alice.pem"),
        "--file", str(tmp_path / "big.bin"), "--public-key", "11" * 32,
    ]  # fmt: skip
    code, out, err = _run(capsys, *approve, "--op", "decrypt", "--context", "q3")
    assert code == 0, err
    assert json.loads(out)["operation"] == "decrypt"
    code, _, err = _run(capsys, *approve, "--op", "sign")
    assert code == 1


def test_a_reshare_approval_names_the_epoch_the_sorted_committee_and_its_threshold(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from wire.approvals import Operation, lifecycle_digest, reshare_detail  # noqa: PLC0415

    assert main(["approver", "keygen", "--out", str(tmp_path / "alice.pem")]) == 0
    capsys.readouterr()
    approve = [
        "approve", "payouts", "--approver-key", str(tmp_path / "alice.pem"), "--op", "reshare",
        "--public-key", "11" * 32, "--epoch", "3",
    ]  # fmt: skip
    code, out, err = _run(capsys, *approve, "--to", "node-5,node-1,node-2", "--threshold", "1")
    assert code == 0, err
    detail = reshare_detail(["node-1", "node-2", "node-5"], 1)
    assert json.loads(out)["digest"] == lifecycle_digest(Operation.RESHARE, 3, detail).hex()
    code, _, err = _run(capsys, *approve)
    assert code == 1
    assert "--to NODES --threshold T" in err
