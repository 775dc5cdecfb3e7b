"""``keyshard node status`` — see any cluster's nodes: state, release, sealed version, keys, pools.

Works from a profile alone (``--profile``, ``--dir``, or the environment, as ``keyshard key``):
the status port answers without a client certificate and says only public things. For each node:
its state (``booting``, ``ready``, ``failed`` with the reason, or ``unreachable``), which of the
profile's accepted releases its PCR0 is (``1`` is the first set listed; ``-`` none of them), its
sealed-state version, how long ago it attested, and per key the share epoch and the FROST nonces
and ECDSA presignatures waiting in its memory.

Exit codes: 0 every node ready; 1 no profile (a local error); 2 a node is not ready or unreachable.
"""

# ruff: noqa: PLC0415 -- handlers import their machinery themselves (keyshard.cli.main, rule 3)

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from keyshard.cli.errors import UsageError
from keyshard.cli.exit_codes import EXIT_OK, EXIT_REMOTE_ERROR
from keyshard.cli.output import add_output_flags, emit, format_table

if TYPE_CHECKING:
    from keyshard.client.nodes import NodeReport

__all__ = ["register"]

_STATUS_EPILOG = """\
examples:
  keyshard node status                                 the dev cluster in .keyshard/dev
  keyshard node status --profile prod/profile.json     a deployed cluster
  keyshard node status --format json --field keys

fields (--field, --format json; one record per node): node_id, endpoint, state, reason,
  release, pcr0, sealed_version, attestation_age_s, uptime_s, operations, keys, error.
exit codes: 0 every node ready; 1 no profile; 2 a node is not ready or unreachable.
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser(
        "node",
        help="see a cluster's nodes: state, release, keys and pool levels",
        description="See the nodes of any cluster a profile names (dev or deployed).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)
    status = verbs.add_parser(
        "status",
        help="each node's state, release, sealed version, keys and pools",
        description=(
            "Ask every node of the profile over its status port (no client certificate needed)\n"
            "for its state, release, sealed version, and per key its epoch and pool levels."
        ),
        epilog=_STATUS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = status.add_mutually_exclusive_group()
    where.add_argument("--profile", type=Path, default=None, metavar="PATH", help="cluster profile")
    where.add_argument(
        "--dir", type=Path, default=None, metavar="DIR", help="dev cluster directory"
    )
    status.add_argument("--timeout", type=float, default=5.0, help="seconds per node (default 5)")
    add_output_flags(status)
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _no_profile, _profile_path
    from keyshard.client.errors import ProfileError
    from keyshard.client.nodes import survey
    from keyshard.client.profile import ClusterProfile

    path = _profile_path(args)
    if not path.exists():
        raise _no_profile(path)
    try:
        profile = ClusterProfile.load(path)
    except ProfileError as error:
        raise UsageError(str(error)) from None
    reports = asyncio.run(survey(profile, timeout=args.timeout))
    emit(args, [report.to_json() for report in reports], lambda: _table(reports))
    ready = all(r.telemetry is not None and r.telemetry.state.value == "ready" for r in reports)
    return EXIT_OK if ready else EXIT_REMOTE_ERROR


def _table(reports: list[NodeReport]) -> str:
    rows = [["NODE", "ENDPOINT", "STATE", "RELEASE", "SEALED", "ATTESTED", "KEYS", "DETAIL"]]
    for report in reports:
        t = report.telemetry
        keys = ""
        if t is not None:
            keys = " ".join(
                f"{k.name}(epoch {k.epoch}, nonces {k.frost_nonces}, presig {k.presignatures})"
                for k in t.keys
            )
        rows.append(
            [
                report.node.node_id,
                f"{report.node.host}:{report.node.port}",
                "unreachable" if t is None else t.state.value,
                "-" if report.release is None else str(report.release),
                "" if t is None else str(t.sealed_version),
                "" if t is None or t.attestation_age_s is None else f"{t.attestation_age_s}s ago",
                keys,
                (report.error or "") if t is None else (t.reason or ""),
            ]
        )
    return format_table(rows)
