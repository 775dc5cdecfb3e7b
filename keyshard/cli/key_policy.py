"""``keyshard key policy show|update`` — who must approve what, and how that changes.

A key's approval policy is fixed at creation and bound into its DKG. It changes only by
``key policy update``, with approvals that the key's CURRENT policy accepts for the operation
``update-policy`` — so the approvers in charge decide who comes after them, and every node
checks that on its own. Each node keeps the policies a key had (``key policy show``).

The ceremony, with approvers on machines that need no access to the cluster::

    keyshard key policy update-digest treasury --policy-file new.json   # (optional) what is signed
    keyshard key approve treasury --op update-policy --policy-file new.json \\
        --approver-key alice.pem > alice.json                           # on each approver's machine
    keyshard key policy update treasury --policy-file new.json --approval alice.json ...

Import cost: like ``key_cmd``, only the standard library and ``keyshard.cli`` at the top.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyshard.cli.errors import UsageError
from keyshard.cli.exit_codes import EXIT_OK
from keyshard.cli.output import add_output_flags, emit

if TYPE_CHECKING:
    from keyshard.client.keys import KeyDescription
    from keyshard.client.sdk import AsyncClient
    from wire.approvals import ApprovalPolicy

__all__ = ["read_policy_file", "register", "update_approval_target"]

#: The largest policy file read (a policy has at most 32 approvers).
_MAX_POLICY_FILE = 64 * 1024

POLICY_FILE_HELP = """\
policy file (JSON):
  {
    "groups": {
      "treasury":   {"approvers": ["<hex>", "<hex>", "<hex>"], "quorum": 2},
      "compliance": {"approvers": ["<hex>"], "quorum": 1}
    },
    "require": ["sign", "decrypt"],
    "mandatory_nodes": ["node-3"],
    "approval_lifetime": 86400
  }
Every group must reach its own quorum ("2 of treasury AND 1 of compliance"); "quorum" (optional)
counts distinct approvers overall (default: the groups' quorums summed). "approvers" (optional)
lists approvers outside groups. "mandatory_nodes" take part in every signature and decryption. Approver keys
are the hex public keys `keyshard approver keygen` prints. Unknown fields are refused."""

_EPILOGS = {
    "show": """\
examples:
  keyshard key policy show treasury
  keyshard key policy show treasury --format json --field history

fields (--format json): name, current (the policy as a policy file, plus summary),
history (earlier policies, oldest first, each with replaced_at in UTC).""",
    "update": f"""\
examples:
  keyshard key policy update treasury --policy-file new.json --approval alice.json \\
      --approval bob.json --approval carol.json
  keyshard key approve treasury --op update-policy --policy-file new.json \\
      --approver-key alice.pem > alice.json   # each approver, beforehand

Every holder checks the approvals against the key's CURRENT policy (operation update-policy,
naming this update's number and the new policy) before it applies the new one; an approval
moves the policy once. A key without a policy takes one without approvals. --none removes the
policy (with the current policy's approvals).

{POLICY_FILE_HELP}""",
}


def read_policy_file(path: Path) -> ApprovalPolicy:
    """The policy a JSON file describes; :class:`UsageError` naming what is wrong."""
    from keyshard.client.errors import InvalidInputError  # noqa: PLC0415 -- lazy SDK
    from keyshard.client.governance import policy_from_json  # noqa: PLC0415 -- lazy SDK

    try:
        with path.open("rb") as handle:
            data = handle.read(_MAX_POLICY_FILE + 1)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > _MAX_POLICY_FILE:
        raise UsageError(f"{path} is larger than a policy ({_MAX_POLICY_FILE} bytes)")
    try:
        return policy_from_json(data.decode("utf-8"))
    except (InvalidInputError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: {error}") from None


def register(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser],
    cluster_flags: Callable[[argparse.ArgumentParser], None],
    approval_flag: Callable[[argparse.ArgumentParser], None],
    cluster_help: str,
) -> None:
    """Add ``key policy show|update`` under the ``key`` group's ``verbs`` (``cluster_help``
    ends each action's help, as it ends every key verb's)."""
    group = verbs.add_parser(
        "policy",
        help="show a key's approval policy and its history; update it with approvals",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  keyshard key policy show treasury\n"
        "  keyshard key policy update treasury --policy-file new.json --approval alice.json\n\n"
        + POLICY_FILE_HELP,
    )
    actions = group.add_subparsers(dest="policy_verb", metavar="<action>", required=True)

    def action(name: str, summary: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(
            name,
            help=summary,
            description=summary[0].upper() + summary[1:] + ".",
            epilog=f"{_EPILOGS[name]}\n\n{cluster_help}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("name", help="key name")
        cluster_flags(parser)
        add_output_flags(parser)
        return parser

    show = action("show", "the key's current approval policy and the ones it replaced")
    show.set_defaults(handler=_show)
    update = action("update", "replace the key's approval policy, with the current one's approvals")
    target = update.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--policy-file",
        "--file",
        dest="policy_file",
        type=Path,
        metavar="FILE",
        help="the new policy (JSON, see below)",
    )
    target.add_argument("--none", action="store_true", help="remove the key's policy")
    approval_flag(update)
    update.set_defaults(handler=_update)


def _new_policy(args: argparse.Namespace) -> ApprovalPolicy | None:
    return None if getattr(args, "none", False) else read_policy_file(args.policy_file)


def _show(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _run  # noqa: PLC0415 -- shared runner
    from keyshard.client.governance import PolicyRecord, policy_to_json  # noqa: PLC0415

    history: list[PolicyRecord] = _run(args, lambda c: c.policy_history(args.name))
    *earlier, current = history
    record: dict[str, Any] = {
        "name": args.name,
        "current": policy_to_json(current.policy),
        "history": [
            {"policy": policy_to_json(r.policy), "replaced_at": r.replaced_at} for r in earlier
        ],
    }

    def text() -> str:
        def summary(entry: dict[str, Any] | None) -> str:
            return "none" if entry is None else str(entry["summary"])

        lines = [f"current       {summary(record['current'])}"]
        for entry in reversed(record["history"]):
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(entry["replaced_at"]))
            lines.append(f"until {when}  {summary(entry['policy'])}")
        return "\n".join(lines)

    emit(args, record, text)
    return EXIT_OK


def _update(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _key_record, _key_text, _read_approvals, _run  # noqa: PLC0415

    policy = _new_policy(args)
    approvals = _read_approvals(args.approval)

    async def work(client: AsyncClient) -> KeyDescription:
        return await client.update_policy(args.name, policy, approvals=approvals)

    record = _key_record(_run(args, work))
    emit(args, record, lambda: _key_text(record))
    return EXIT_OK


def update_approval_target(
    args: argparse.Namespace, run: Callable[..., Any]
) -> tuple[bytes, bytes, ApprovalPolicy | None]:
    """``key approve --op update-policy``: the digest (this update's number and the new
    policy), the key's public key and current policy — asked of the cluster."""
    from wire.approvals import policy_update_digest  # noqa: PLC0415 -- lazy

    if args.policy_file is None:
        raise UsageError("--op update-policy needs --policy-file (the new policy)")
    new = read_policy_file(args.policy_file).encode()

    async def target(client: AsyncClient) -> tuple[bytes, ApprovalPolicy | None, int]:
        key = await client.describe_key(args.name, refresh=True)
        updates = len(await client.policy_history(args.name)) - 1
        return key.public_key, key.policy, updates

    public_key, policy, updates = run(args, target)
    return policy_update_digest(updates, new), public_key, policy
