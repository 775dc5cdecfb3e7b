"""``keyshard offline ...`` — FROST and ECDSA signatures with an offline holder, by files.

The files of :mod:`keyshard.client.offline` carry a signature between the online side and a node
that has no network, for FROST keys and (tagged ``ecdsa``) threshold ECDSA keys. Two verbs run on
each side, plus one before the node goes offline for ECDSA:

* air-gapped side, talking to its own node only (``--node``; a profile that lists it):
  ``commit`` publishes FROST nonce commitments; ``sign`` answers every package in ``--inbox``
  with a partial in ``--outbox`` (the node checks the approvals; a package it signed is refused
  again).
* online side, never addressing the offline node: ``prepare`` has the online holders sign a
  package carrying one published commitment or presignature; ``combine`` verifies and prints
  the signature.
* ECDSA, online side while the node is still reachable: ``presign`` makes presignatures with it
  (DJNPO20 presigning is three rounds among 2t+1 holders; they stay in the holders' enclave
  memory: single use, lost when a presigner reboots, expired after an hour). A node that is
  never reachable presigns by files: ``presign-open`` (online), then ``presign-step`` on each
  side in turn (five carryings) until the air-gapped side writes the presignatures' file.

Cluster flags, credentials and exit codes are those of ``keyshard key`` (its runner is shared).
Import cost: only the standard library and ``keyshard.cli`` at the top.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyshard.cli.errors import UsageError
from keyshard.cli.exit_codes import EXIT_OK, EXIT_REMOTE_ERROR
from keyshard.cli.output import add_output_flags, emit

if TYPE_CHECKING:
    from keyshard.client.offline import PackageFile, PartialFile
    from keyshard.client.sdk import AsyncClient

__all__ = ["register"]

HELP = "FROST and ECDSA signatures with a holder that has no network: files carried by hand"
MAX_FILE = 512 * 1024
_CLUSTER_NOTE = "the cluster flags, credentials and exit codes are those of `keyshard key`."

_EPILOGS = {
    "witness-request": f"""\
examples:
  keyshard offline witness-request --node node-3 --out node-3.witness-request

Air-gapped side, after the node booted: its fresh attestation document, for its peers to seal
their witness reports to. Until the reports come back the node serves no key (unwitnessed).
The documents are refused once older than 5 minutes: carry the files promptly.
fields: node, out. {_CLUSTER_NOTE}""",
    "witness-reports": f"""\
examples:
  keyshard offline witness-reports --request node-3.witness-request --out node-3.witness-reports

Online side: every reachable peer's report on the offline node, sealed to its boot's box key.
fields: node, peers, out. {_CLUSTER_NOTE}""",
    "witness-check": f"""\
examples:
  keyshard offline witness-check --node node-3 --reports node-3.witness-reports

Air-gapped side: the node weighs the reports; witnessed, it serves its keys for this boot.
A node whose peers saw newer sealed state refuses every key (rolled_back, exit 2).
fields: node, state, counted, needed. {_CLUSTER_NOTE}""",
    "commit": f"""\
examples:
  keyshard offline commit cold --node node-3 --count 16 --out cold.commitments

Air-gapped side: node-3 keeps the nonces (in memory: a restart forgets them, and packages built
on them are then refused, never signed twice) and the file carries their public commitments.
fields: key, node, count, out. {_CLUSTER_NOTE}""",
    "presign": f"""\
examples:
  keyshard offline presign vault --node node-3 --count 16 --out vault.presignatures

Online side, ECDSA keys, while node-3 is still reachable (before it goes offline): 2t+1 holders
including node-3 presign; the file describes the presignatures (public values only). Their
secret halves stay in each presigner's enclave memory: single use, lost when a presigner reboots
(packages on them are then refused, never signed twice), expired by the nodes after an hour.
They belong to this client's credentials: sign on the air-gapped side with the same ones.
fields: key, node, count, out. {_CLUSTER_NOTE}""",
    "presign-open": f"""\
examples:
  keyshard offline presign-open vault --node node-3 --count 16 --out run-1.presign

Online side, ECDSA keys whose holder node-3 has no network: open a presigning run by files
(stage 1: the session and the online presigners' attestation documents). Then, in turn:
  keyshard offline presign-step --node node-3 --file run-1.presign --out run-2.presign  (air gap)
  keyshard offline presign-step --file run-2.presign --out run-3.presign                (online)
  keyshard offline presign-step --node node-3 --file run-3.presign --out run-4.presign  (air gap)
  keyshard offline presign-step --file run-4.presign --out run-5.presign                (online)
  keyshard offline presign-step --node node-3 --file run-5.presign --out vault.presignatures
The documents are refused once older than 5 minutes: carry stages 1 and 2 promptly. A refused
step ends the run on that node: open another. fields: key, node, stage, out. {_CLUSTER_NOTE}""",
    "presign-step": f"""\
examples:
  keyshard offline presign-step --node node-3 --file run-1.presign --out run-2.presign
  keyshard offline presign-step --file run-2.presign --out run-3.presign

The next stage of a presigning run by files (see `keyshard offline presign-open --help`):
--node on the air-gapped side (odd stages), none online (even stages). The air-gapped side's
answer to stage 5 is the presignatures' file for `keyshard offline prepare --presignatures`.
The envelopes in the files are sealed to each node's boot key: the files hold no secret.
fields: key, node, stage (6: the presignatures' file), out. {_CLUSTER_NOTE}""",
    "prepare": f"""\
examples:
  keyshard offline prepare cold --commitments cold.commitments --index 0 --file tx.bin \\
      --approval alice.json --approval bob.json --out inbox/tx-0.package
  keyshard offline prepare vault --presignatures vault.presignatures --index 0 --file tx.bin \\
      --approval alice.json --approval bob.json --out inbox/tx-0.package

Online side: the online holders sign at once; their shares travel in the package file.
Use each commitment or presignature index once (node-3 refuses a spent one).
fields: key, node, index, out. {_CLUSTER_NOTE}""",
    "sign": f"""\
examples:
  keyshard offline sign --node node-3 --inbox inbox --outbox outbox

Air-gapped side: every *.package in --inbox without a partial in --outbox is shown (key,
SHA-256 of the message) and signed by the node, which checks the approvals the package carries;
a refused package writes nothing and makes the command exit 2 after the others.
fields: one row per package: package, partial, error. {_CLUSTER_NOTE}""",
    "combine": f"""\
examples:
  keyshard offline combine --package inbox/tx-0.package --partial outbox/tx-0.partial

Online side: prints the signature (hex) only if it verifies under the key. ECDSA: DER (SHA-256
of the message, low-S), with compact (r || s) and recovery_id in --format json.
fields: key, public_key, signature (ECDSA also: compact, recovery_id, hash). {_CLUSTER_NOTE}""",
}


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from keyshard.cli.key_cmd import _approval_flag, _cluster_flags  # noqa: PLC0415 -- shared

    group = groups.add_parser(
        "offline",
        help=HELP,
        description=(
            "Sign with a key one of whose holders has no network: the offline node publishes\n"
            "FROST nonce commitments in advance (ECDSA: presignatures made with it while it\n"
            "was reachable); packages and partials travel as files."
        ),
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    def verb(name: str, summary: str, description: str) -> Any:
        parser = verbs.add_parser(
            name,
            help=summary,
            description=description,
            epilog=_EPILOGS[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _cluster_flags(parser)
        add_output_flags(parser)
        return parser

    commit = verb("commit", "air-gapped: publish nonce commitments", "Publish nonce commitments.")
    commit.add_argument("name", help="key name")
    commit.add_argument("--node", required=True, help="the offline node (this side's node)")
    commit.add_argument("--count", type=int, default=16, help="commitments (1..256, default 16)")
    commit.add_argument("--out", type=Path, required=True, metavar="FILE")
    commit.set_defaults(handler=_commit)

    _presign_verbs(verb)

    prepare = verb(
        "prepare", "online: sign with the online holders; write the package", "Prepare a package."
    )
    prepare.add_argument("name", help="key name")
    published = prepare.add_mutually_exclusive_group(required=True)
    published.add_argument(
        "--commitments", type=Path, metavar="FILE", help="FROST: the node's published commitments"
    )
    published.add_argument(
        "--presignatures",
        dest="commitments",
        type=Path,
        metavar="FILE",
        help="ECDSA: the file `offline presign` wrote",
    )
    prepare.add_argument(
        "--index", type=int, default=0, help="which commitment or presignature (default 0)"
    )
    prepare.add_argument("--file", type=Path, required=True, metavar="FILE", help="message")
    prepare.add_argument("--out", type=Path, required=True, metavar="FILE")
    _approval_flag(prepare)
    prepare.set_defaults(handler=_prepare)

    sign = verb("sign", "air-gapped: answer packages with partials", "Sign packages offline.")
    sign.add_argument("--node", required=True, help="the offline node (this side's node)")
    sign.add_argument("--inbox", type=Path, required=True, metavar="DIR")
    sign.add_argument("--outbox", type=Path, required=True, metavar="DIR")
    sign.set_defaults(handler=_sign)

    combine = verb("combine", "online: combine a package and its partial", "Combine a signature.")
    combine.add_argument("--package", type=Path, required=True, metavar="FILE")
    combine.add_argument("--partial", type=Path, required=True, metavar="FILE")
    combine.set_defaults(handler=_combine)

    request = verb(
        "witness-request", "air-gapped: the node's document for its peers", "Ask for witnesses."
    )
    request.add_argument("--node", required=True, help="the offline node (this side's node)")
    request.add_argument("--out", type=Path, required=True, metavar="FILE")
    request.set_defaults(handler=_witness_request)

    reports = verb(
        "witness-reports", "online: the peers' sealed reports", "Collect witness reports."
    )
    reports.add_argument("--request", type=Path, required=True, metavar="FILE")
    reports.add_argument("--out", type=Path, required=True, metavar="FILE")
    reports.set_defaults(handler=_witness_reports)

    check = verb("witness-check", "air-gapped: show the node its reports", "Check witnesses.")
    check.add_argument("--node", required=True, help="the offline node (this side's node)")
    check.add_argument("--reports", type=Path, required=True, metavar="FILE")
    check.set_defaults(handler=_witness_check)


def _presign_verbs(verb: Callable[[str, str, str], Any]) -> None:
    """The ECDSA presigning verbs: ``presign`` (node reachable) and ``presign-open`` /
    ``presign-step`` (by files)."""
    presign = verb(
        "presign",
        "online, ECDSA: presign with the node before it goes offline",
        "Make presignatures with a holder about to go offline.",
    )
    presign.add_argument("name", help="key name (ecdsa-secp256k1)")
    presign.add_argument("--node", required=True, help="the holder that will go offline")
    presign.add_argument("--count", type=int, default=16, help="presignatures (1..256, default 16)")
    presign.add_argument("--out", type=Path, required=True, metavar="FILE")
    presign.set_defaults(handler=_presign)

    opening = verb(
        "presign-open",
        "online, ECDSA: open a presigning run by files",
        "Open a presigning run with a holder that has no network.",
    )
    opening.add_argument("name", help="key name (ecdsa-secp256k1)")
    opening.add_argument("--node", required=True, help="the offline holder")
    opening.add_argument("--count", type=int, default=16, help="presignatures (1..32, default 16)")
    opening.add_argument("--out", type=Path, required=True, metavar="FILE")
    opening.set_defaults(handler=_presign_open)

    stepping = verb(
        "presign-step",
        "either side, ECDSA: the next stage of a presigning run",
        "Answer one stage of a presigning run by files.",
    )
    stepping.add_argument("--node", help="air-gapped side: the offline node (this side's node)")
    stepping.add_argument("--file", type=Path, required=True, metavar="FILE")
    stepping.add_argument("--out", type=Path, required=True, metavar="FILE")
    stepping.set_defaults(handler=_presign_step)


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE + 1)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_FILE:
        raise UsageError(f"{path} is longer than {MAX_FILE} bytes")
    return data


def _write(path: Path, data: bytes) -> None:
    from keyshard.cli.key_cmd import _local  # noqa: PLC0415 -- shared
    from keyshard.client.custody import write_secret_file  # noqa: PLC0415 -- lazy SDK

    _local(lambda: write_secret_file(path, data))  # never overwrites a file


def _commit(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _run  # noqa: PLC0415 -- shared runner

    if args.out.exists():
        raise UsageError(f"{args.out} exists; refusing to overwrite it")
    published = _run(args, lambda c: c.coordinator.offline_commit(args.node, args.name, args.count))
    _write(args.out, published.encode())
    record = {"key": args.name, "node": args.node, "count": len(published.commitments)}
    emit(args, record | {"out": str(args.out)}, f"{record['count']} commitments in {args.out}")
    return EXIT_OK


def _presign(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _run  # noqa: PLC0415 -- shared runner

    if args.out.exists():
        raise UsageError(f"{args.out} exists; refusing to overwrite it")
    published = _run(
        args, lambda c: c.coordinator.offline_presign(args.name, args.node, args.count)
    )
    _write(args.out, published.encode())
    record = {"key": args.name, "node": args.node, "count": len(published.commitments)}
    text = f"{record['count']} presignatures with {args.node} in {args.out}"
    emit(args, record | {"out": str(args.out)}, text)
    return EXIT_OK


def _presign_open(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _run  # noqa: PLC0415 -- shared runner

    if args.out.exists():
        raise UsageError(f"{args.out} exists; refusing to overwrite it")
    run = _run(args, lambda c: c.coordinator.offline_presign_open(args.name, args.node, args.count))
    _write(args.out, run.encode())
    record = {"key": args.name, "node": args.node, "stage": run.stage, "out": str(args.out)}
    emit(args, record, f"presigning run with {args.node}, stage 1, in {args.out}")
    return EXIT_OK


def _presign_step(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _local, _run  # noqa: PLC0415 -- shared
    from keyshard.client.offline import PresignRunFile  # noqa: PLC0415 -- lazy SDK

    run = _local(lambda: PresignRunFile.decode(_read(args.file)))
    if args.out.exists():
        raise UsageError(f"{args.out} exists; refusing to overwrite it")
    answer = _run(args, lambda c: c.coordinator.offline_presign_step(run, args.node))
    _write(args.out, answer.encode())
    stage = answer.stage if isinstance(answer, PresignRunFile) else run.stage + 1
    record = {"key": run.key_name, "node": run.node_id, "stage": stage, "out": str(args.out)}
    if isinstance(answer, PresignRunFile):
        side = "the air-gapped side" if answer.air_gapped_turn else "the online side"
        text = f"stage {stage} of the presigning run in {args.out}: carry it to {side}"
    else:
        text = f"{len(answer.commitments)} presignatures with {run.node_id} in {args.out}"
    emit(args, record, text)
    return EXIT_OK


def _prepare(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _local, _read_approvals, _read_input, _run  # noqa: PLC0415
    from keyshard.client.offline import CommitmentsFile  # noqa: PLC0415 -- lazy SDK

    commitments = _local(lambda: CommitmentsFile.decode(_read(args.commitments)))
    message = _read_input(args.file)
    approvals = _read_approvals(args.approval)
    if args.out.exists():
        raise UsageError(f"{args.out} exists; refusing to overwrite it")

    async def work(c: AsyncClient) -> PackageFile:
        return await c.coordinator.prepare_offline(
            args.name, message, commitments, index=args.index, approvals=approvals
        )

    package = _run(args, work)
    _write(args.out, package.encode())
    record = {"key": args.name, "node": package.node_id, "index": args.index}
    emit(args, record | {"out": str(args.out)}, f"package for {package.node_id} in {args.out}")
    return EXIT_OK


def _sign(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415
    from functools import partial as bind  # noqa: PLC0415

    from keyshard.cli.key_cmd import _cli_error, _client, _local  # noqa: PLC0415 -- shared
    from keyshard.client.errors import ClientError  # noqa: PLC0415 -- lazy SDK
    from keyshard.client.offline import PackageFile  # noqa: PLC0415 -- lazy SDK

    if not args.inbox.is_dir() or not args.outbox.is_dir():
        raise UsageError("--inbox and --outbox must be directories")
    packages = [
        (path, _local(bind(PackageFile.decode, _read(path))))
        for path in sorted(args.inbox.glob("*.package"))
        if not (args.outbox / f"{path.stem}.partial").exists()
    ]
    client = _client(args)
    rows: list[dict[str, object]] = []

    async def work() -> None:
        async with client:
            for path, package in packages:
                row: dict[str, object] = {
                    "package": str(path),
                    "key": package.key_name,
                    "message_sha256": _local(package.message_sha256).hex(),
                }
                try:
                    partial: PartialFile = await client.coordinator.offline_sign(args.node, package)
                except ClientError as error:
                    row |= {"partial": None, "error": str(_cli_error(error, args))}
                else:
                    target = args.outbox / f"{path.stem}.partial"
                    _write(target, partial.encode())
                    row |= {"partial": str(target), "error": None}
                rows.append(row)

    asyncio.run(work())
    lines = []
    for row in rows:
        what = f"{row['package']} ({row['key']}, message sha256 {row['message_sha256']})"
        done = f"signed -> {row['partial']}" if row["error"] is None else f"refused: {row['error']}"
        lines.append(f"{what}: {done}")
    emit(args, rows, "\n".join(lines) or "nothing to sign")
    return EXIT_OK if all(row["error"] is None for row in rows) else EXIT_REMOTE_ERROR


def _combine(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _local, _run  # noqa: PLC0415 -- shared
    from keyshard.client.offline import ECDSA, PackageFile, PartialFile  # noqa: PLC0415 -- lazy SDK

    package = _local(lambda: PackageFile.decode(_read(args.package)))
    partial = _local(lambda: PartialFile.decode(_read(args.partial)))
    record: dict[str, object] = {"key": package.key_name, "public_key": package.public_key.hex()}
    if package.scheme == ECDSA:
        signed = _run(args, lambda c: c.coordinator.combine_offline_ecdsa(package, partial))
        record |= {
            "signature": signed.to_der().hex(),
            "compact": signed.to_compact().hex(),
            "recovery_id": signed.recovery_id,
            "hash": "sha256",
        }
    else:
        signature = _run(args, lambda c: c.coordinator.combine_offline(package, partial))
        record["signature"] = signature.hex()
    emit(args, record, str(record["signature"]))
    return EXIT_OK


def _witness_request(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _run  # noqa: PLC0415 -- shared runner

    if args.out.exists():
        raise UsageError(f"{args.out} exists; refusing to overwrite it")
    request = _run(args, lambda c: c.coordinator.offline_witness_request(args.node))
    _write(args.out, request.encode())
    emit(args, {"node": args.node, "out": str(args.out)}, f"document of {args.node} in {args.out}")
    return EXIT_OK


def _witness_reports(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _local, _run  # noqa: PLC0415 -- shared
    from keyshard.client.offline import WitnessRequestFile  # noqa: PLC0415 -- lazy SDK

    request = _local(lambda: WitnessRequestFile.decode(_read(args.request)))
    if args.out.exists():
        raise UsageError(f"{args.out} exists; refusing to overwrite it")
    reports = _run(args, lambda c: c.coordinator.offline_witness_reports(request))
    _write(args.out, reports.encode())
    peers = sorted(reports.envelopes)
    record = {"node": reports.node_id, "peers": peers, "out": str(args.out)}
    emit(args, record, f"reports of {', '.join(peers)} on {reports.node_id} in {args.out}")
    return EXIT_OK


def _witness_check(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _local, _run  # noqa: PLC0415 -- shared
    from keyshard.client.offline import WitnessReportsFile  # noqa: PLC0415 -- lazy SDK

    reports = _local(lambda: WitnessReportsFile.decode(_read(args.reports)))
    verdict = _run(args, lambda c: c.coordinator.offline_witness_check(args.node, reports))
    record = {
        "node": args.node,
        "state": verdict.state,
        "counted": verdict.counted,
        "needed": verdict.needed,
    }
    counted = f"{verdict.counted} peer report(s), {verdict.needed} needed"
    emit(args, record, f"{args.node}: {verdict.state} ({counted})")
    return EXIT_OK if verdict.state == "witnessed" else EXIT_REMOTE_ERROR
