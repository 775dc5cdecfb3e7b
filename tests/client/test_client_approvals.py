"""The approver's side of approval lifetimes (issue 9 item 8): the SDK keeps an approval's expiry
within what the key's nodes accept, and the CLI's ``key approve --ttl`` / ``key create
--approval-lifetime`` follow it (before anything reaches a node)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keyshard.cli import key_cmd
from keyshard.cli.main import main
from keyshard.client.approvals import approval_expiry, public_key_bytes
from keyshard.client.errors import InvalidInputError
from wire.approvals import (
    DEFAULT_APPROVAL_LIFETIME,
    MAX_APPROVAL_LIFETIME,
    ApprovalPolicy,
    Operation,
)

NOW = 1_800_000_000
APPROVER = public_key_bytes(Ed25519PrivateKey.generate())
SHORT = ApprovalPolicy((APPROVER,), 1, frozenset({Operation.SIGN, Operation.DECRYPT}), 600)


def test_the_expiry_stays_within_the_keys_approval_lifetime() -> None:
    """Item 8: the SDK refuses, locally, an approval the nodes would refuse as too long-lived."""
    assert approval_expiry(600, SHORT, now=NOW) == NOW + 600
    with pytest.raises(InvalidInputError, match=r"1\.\.600 seconds"):
        approval_expiry(601, SHORT, now=NOW)
    for policy in (
        None,
        ApprovalPolicy((APPROVER,), 1, frozenset({Operation.SIGN, Operation.DECRYPT})),
    ):
        # no policy known (an approver offline) or none given: the nodes' default
        assert approval_expiry(DEFAULT_APPROVAL_LIFETIME, policy, now=NOW) == (
            NOW + DEFAULT_APPROVAL_LIFETIME
        )
        with pytest.raises(InvalidInputError, match=str(DEFAULT_APPROVAL_LIFETIME)):
            approval_expiry(DEFAULT_APPROVAL_LIFETIME + 1, policy, now=NOW)
    with pytest.raises(InvalidInputError):
        approval_expiry(0, SHORT, now=NOW)


def _create_args(*argv: str) -> argparse.Namespace:
    groups = argparse.ArgumentParser(prog="keyshard").add_subparsers()
    key_cmd.register(groups)
    return groups.choices["key"].parse_args(["create", "payouts", *argv])


def test_key_create_takes_an_approval_lifetime() -> None:
    """Item 8: ``key create --approval-lifetime SECONDS`` puts the lifetime in the policy."""
    args = _create_args("--approver", APPROVER.hex(), "--approval-lifetime", "600")
    policy = key_cmd._policy(args)
    assert policy is not None
    assert policy.max_approval_lifetime == 600
    unset = key_cmd._policy(_create_args("--approver", APPROVER.hex()))
    assert unset is not None
    assert unset.max_approval_lifetime is None  # the version-1 encoding, the nodes' default


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--approval-lifetime", "600"], "--approval-lifetime needs at least one --approver"),
        (["--approver", APPROVER.hex(), "--approval-lifetime", "0"], "max_approval_lifetime"),
        (
            ["--approver", APPROVER.hex(), "--approval-lifetime", str(MAX_APPROVAL_LIFETIME + 1)],
            "max_approval_lifetime",
        ),
    ],
)
def test_bad_approval_lifetimes_are_local(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["key", "create", "payouts", "--dir", str(tmp_path / "none"), *argv])
    _, err = capsys.readouterr()
    assert code == 1
    assert message in err


def test_offline_approvals_are_capped_at_the_default_lifetime(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Item 8: with --public-key the CLI cannot read the policy: --ttl is capped at the nodes'
    default lifetime (a key with a shorter one refuses the approval when it is used)."""
    assert main(["approver", "keygen", "--out", str(tmp_path / "alice.pem")]) == 0
    (tmp_path / "tx").write_bytes(b"pay 7 to 9")
    approve = [
        "key", "approve", "payouts", "--approver-key", str(tmp_path / "alice.pem"),
        "--file", str(tmp_path / "tx"), "--public-key", "11" * 32, "--format", "json",
    ]  # fmt: skip
    capsys.readouterr()
    assert main([*approve, "--ttl", str(DEFAULT_APPROVAL_LIFETIME)]) == 0
    assert json.loads(capsys.readouterr().out)["operation"] == "sign"
    assert main([*approve, "--ttl", str(DEFAULT_APPROVAL_LIFETIME + 1)]) == 1
    assert f"1..{DEFAULT_APPROVAL_LIFETIME} seconds" in capsys.readouterr().err
