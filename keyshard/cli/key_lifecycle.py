"""``keyshard key disable|enable|schedule-deletion|cancel-deletion|refresh`` — a key's life.

The verbs that change a key rather than use it, kept apart from :mod:`keyshard.cli.key_cmd` (which
registers them through :func:`register`, and whose cluster flags, SDK runner and rendering they
share). Each goes through the SDK to every holder of the key; each node checks the change itself
(the key's state, its epoch, and the approvals its policy requires).

* ``disable``/``enable``: a disabled key describes itself but signs and decrypts nothing (the
  nodes refuse with ``key_disabled``). Free: neither gives anyone a power the policy withholds.
* ``schedule-deletion --days N`` (7..30, default 30, as AWS KMS): the key serves nothing and,
  once the date comes, every node erases its share. Needs the policy's ``delete`` quorum
  (``keyshard key approve --op delete --days N``). ``cancel-deletion`` brings it back disabled.
* ``refresh NAME`` / ``refresh --all``: proactive refresh among every holder — the same public
  key, new shares, the next epoch; an interrupted refresh is finished or abandoned first.
* ``repair NAME --node N``: a holder that lost its share gets the same share back from t+1
  helpers.
* ``reshare NAME --to N1,N2,... --threshold T``: the same public key moves to a new committee
  and/or threshold; holders leaving the committee erase their shares once every new member has
  its own. Always needs the policy's quorum (``keyshard key approve --op reshare --to ...``).

Import cost: like ``key_cmd``, only the standard library and ``keyshard.cli`` at the top.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keyshard.cli.exit_codes import EXIT_OK
from keyshard.cli.output import emit

if TYPE_CHECKING:
    from keyshard.client.keys import KeyDescription
    from keyshard.client.sdk import AsyncClient

__all__ = ["EPILOGS", "committee", "register"]

#: The SDK's bounds (wire.messages), repeated so that --help imports nothing heavy.
MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 7, 30, 30

_STATE_FIELDS = (
    "fields: as `key info` (name, suite, threshold, holders, epoch, state, delete_at...)."
)

EPILOGS = {
    "disable": f"""\
examples:
  keyshard key disable treasury
  keyshard key disable treasury --format json --field state

Every holder refuses to sign or decrypt with the key (error code key_disabled) until
`keyshard key enable`. Nothing is erased; nonces and presignatures prepared for it are dropped.
{_STATE_FIELDS}""",
    "enable": f"""\
examples:
  keyshard key enable treasury

A key pending deletion cannot be enabled: cancel the deletion first (it comes back disabled).
{_STATE_FIELDS}""",
    "schedule-deletion": f"""\
examples:
  keyshard key schedule-deletion treasury --days 7
  keyshard key approve payouts --approver-key alice.pem --op delete --days 30 > alice.json
  keyshard key schedule-deletion payouts --approval alice.json --approval bob.json

After the waiting period ({MIN_DAYS}..{MAX_DAYS} days, default {DEFAULT_DAYS}) every node erases its
share of the key for good: nothing can then sign or decrypt with it, and no backup is made here.
Until then the key serves nothing and `keyshard key cancel-deletion` brings it back, disabled.
A key with an approval policy needs its quorum's `delete` approvals, for these --days.
{_STATE_FIELDS}""",
    "refresh": """\
examples:
  keyshard key refresh treasury
  keyshard key refresh --all                     every key (a scheduled job)
  keyshard key refresh payouts --approval alice.json   when the policy lists refresh

Every holder deals a zero-sharing to the others; each seals its new share beside the old one,
and only when every holder has confirmed the same transcript does each switch to the new share
and destroy the old one, with every nonce and presignature made with it. The public key does
not change; the epoch counts up. A refresh interrupted by a crash leaves every node able to
serve the old epoch or the new one, never a mix: run the command again to finish it (or, when
no node had switched, to abandon it and refresh anew). Needs every holder reachable.
fields: as `key info`; with --all, one row per key (name, epoch, or error).""",
    "repair": """\
examples:
  keyshard key repair treasury --node node-3
  keyshard key repair treasury --node node-3 --helper node-1 --helper node-2

For a holder that lost its share (its sealed blob deleted or corrupt, `key info` lists it as
MISSING): t+1 other holders give it back the same share at its recorded position by the
repairable threshold scheme (Laing-Stinson, as the Zcash Foundation's FROST), each helper
seeing only random values from the others and the node only random-looking sums. The node
checks the result against its public verification share before sealing it, and never replaces
a share it can still read. Free unless the key's policy lists repair.
fields: as `key info`.""",
    "reshare": """\
examples:
  keyshard key reshare treasury --to node-1,node-2,node-4,node-5 --threshold 2
  keyshard key approve payouts --approver-key alice.pem --op reshare \\
      --to node-1,node-2,node-4,node-5 --threshold 2 > alice.json
  keyshard key reshare payouts --to node-1,node-2,node-4,node-5 --threshold 2 \\
      --approval alice.json --approval bob.json

Every holder deals its share, weighted, to the new committee (nodes joining it hold no record
of the key yet: they take its public record — suite, policy, package — only when every old
holder sent the same). Each new member seals its new share and confirms; only when every member
confirmed the same transcript does each switch, at the next epoch; then holders leaving the
committee erase their shares. The public key does not change; --threshold is t (t+1 sign; an
ECDSA key needs n >= 2t+1). New shares do not combine with old ones. A reshare interrupted by a
crash leaves the old committee or the new one serving, never a mix: run the command again to
finish it (or, when no new member had switched, to abandon it — with every node reachable — and
reshare anew). Needs every holder and every new member reachable.
fields: as `key info`.""",
    "cancel-deletion": f"""\
examples:
  keyshard key cancel-deletion treasury && keyshard key enable treasury

The key comes back disabled (as AWS KMS does): enable it to use it.
{_STATE_FIELDS}""",
}


def register(
    verb: Callable[..., Any], approval_flag: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add the lifecycle verbs; ``verb`` is :func:`key_cmd.register`'s parser factory."""
    disable = verb(
        "disable", "refuse every use of a key until enabled", "Disable a key on every holder."
    )
    disable.set_defaults(handler=_state_handler("disable"))
    enable = verb(
        "enable", "let a disabled key be used again", "Enable a disabled key on every holder."
    )
    enable.set_defaults(handler=_state_handler("enable"))
    schedule = verb(
        "schedule-deletion",
        "erase a key's shares on every node after a waiting period",
        "Schedule the deletion of a key: after --days every node erases its share.",
    )
    schedule.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        help=f"waiting period in days, {MIN_DAYS}..{MAX_DAYS} (default {DEFAULT_DAYS})",
    )
    approval_flag(schedule)
    schedule.set_defaults(handler=_schedule)
    cancel = verb(
        "cancel-deletion",
        "stop a scheduled deletion (the key comes back disabled)",
        "Cancel a key's scheduled deletion on every holder; the key is then disabled.",
    )
    cancel.set_defaults(handler=_state_handler("cancel_deletion"))
    refresh = verb(
        "refresh",
        "new shares of the same key on every holder (the next epoch)",
        "Refresh a key's shares among every holder: the same public key, new shares, the old\n"
        "ones destroyed once every holder has its new one.",
        named=False,
    )
    refresh.add_argument("name", nargs="?", help="key name (or --all)")
    refresh.add_argument("--all", action="store_true", help="refresh every key of the cluster")
    approval_flag(refresh)
    refresh.set_defaults(handler=_refresh)
    repair = verb(
        "repair",
        "give a holder that lost its share the same share back, from t+1 helpers",
        "Repair a holder's lost share of a key from t+1 other holders (no node learns\n"
        "another's share).",
    )
    repair.add_argument("--node", required=True, help="the holder that lost its share")
    repair.add_argument(
        "--helper",
        action="append",
        default=None,
        help="a helping holder (repeatable; default: t+1 reachable holders)",
    )
    approval_flag(repair)
    repair.set_defaults(handler=_repair)
    reshare = verb(
        "reshare",
        "move a key to a new committee and/or threshold (the same public key)",
        "Reshare a key to a new committee and/or threshold: the same public key, new shares on\n"
        "the new committee, the old ones erased once every new member has its own.",
    )
    reshare.add_argument(
        "--to", required=True, metavar="NODES", help="the new committee, comma-separated node ids"
    )
    reshare.add_argument(
        "--threshold", type=int, required=True, help="the new t (t+1 holders sign)"
    )
    approval_flag(reshare)
    reshare.set_defaults(handler=_reshare)


def _emit_key(args: argparse.Namespace, key: KeyDescription) -> int:
    from keyshard.cli.key_cmd import _key_record, _key_text  # noqa: PLC0415 -- shared rendering

    record = _key_record(key)
    emit(args, record, lambda: _key_text(record))
    return EXIT_OK


def _state_handler(action: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        from keyshard.cli.key_cmd import _run  # noqa: PLC0415 -- shared runner

        async def work(client: AsyncClient) -> KeyDescription:
            return await client.coordinator.set_key_state(args.name, action)

        return _emit_key(args, _run(args, work))

    return handler


def _schedule(args: argparse.Namespace) -> int:
    from keyshard.cli.errors import UsageError  # noqa: PLC0415
    from keyshard.cli.key_cmd import _read_approvals, _run  # noqa: PLC0415 -- shared runner

    if not MIN_DAYS <= args.days <= MAX_DAYS:
        raise UsageError(f"--days must be {MIN_DAYS}..{MAX_DAYS}")
    approvals = _read_approvals(args.approval)

    async def work(client: AsyncClient) -> KeyDescription:
        return await client.schedule_key_deletion(args.name, days=args.days, approvals=approvals)

    return _emit_key(args, _run(args, work))


def _refresh(args: argparse.Namespace) -> int:
    from keyshard.cli.errors import RemoteError, UsageError  # noqa: PLC0415
    from keyshard.cli.key_cmd import _read_approvals, _run  # noqa: PLC0415 -- shared runner

    if (args.name is None) == (not args.all):
        raise UsageError("name one key, or --all")
    approvals = _read_approvals(args.approval)
    if not args.all:

        async def one(client: AsyncClient) -> KeyDescription:
            return await client.refresh_key(args.name, approvals=approvals)

        return _emit_key(args, _run(args, one))

    async def every(client: AsyncClient) -> list[dict[str, object]]:
        from keyshard.client.errors import ClientError  # noqa: PLC0415 -- lazy SDK

        rows: list[dict[str, object]] = []
        for name in await client.list_keys():
            try:
                key = await client.refresh_key(name, approvals=approvals)
            except ClientError as error:  # one key's refusal does not stop the others
                rows.append({"name": name, "epoch": None, "error": str(error)})
            else:
                rows.append({"name": name, "epoch": key.epoch, "error": None})
        return rows

    rows = _run(args, every)
    text = "\n".join(
        f"{r['name']}  epoch {r['epoch']}"
        if r["error"] is None
        else f"{r['name']}  FAILED: {r['error']}"
        for r in rows
    )
    emit(args, rows, text)
    failed = [r for r in rows if r["error"] is not None]
    if failed:
        raise RemoteError(f"{len(failed)} of {len(rows)} key(s) not refreshed")
    return EXIT_OK


def _repair(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _read_approvals, _run  # noqa: PLC0415 -- shared runner

    approvals = _read_approvals(args.approval)

    async def work(client: AsyncClient) -> KeyDescription:
        return await client.coordinator.repair_key(
            args.name, args.node, helpers=args.helper, approvals=approvals
        )

    return _emit_key(args, _run(args, work))


def committee(value: str) -> list[str]:
    """``--to``: the comma-separated node ids of a new committee."""
    from keyshard.cli.errors import UsageError  # noqa: PLC0415

    nodes = [n.strip() for n in value.split(",") if n.strip()]
    if len(nodes) < 2 or len(set(nodes)) != len(nodes):
        raise UsageError("--to names at least two distinct nodes, comma-separated")
    return nodes


def _reshare(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _read_approvals, _run  # noqa: PLC0415 -- shared runner

    nodes = committee(args.to)
    approvals = _read_approvals(args.approval)

    async def work(client: AsyncClient) -> KeyDescription:
        return await client.reshare_key(
            args.name, nodes=nodes, threshold=args.threshold, approvals=approvals
        )

    return _emit_key(args, _run(args, work))
