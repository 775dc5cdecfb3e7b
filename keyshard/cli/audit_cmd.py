"""``keyshard audit``: check receipts and stored audit logs offline; print stored records.

``verify`` needs only the profile's pinned root and released PCRs: each receipt's document must
chain to the root, measure a release and bind the key that signed the record; each log must be one
unbroken chain signed by the key its node's document binds, and hold every record a receipt of
that node witnessed (a log cut at its tail fails there). With ``--witnessed FILE`` (from
``checkpoints``) each log must also hold every record the node's peers witnessed as its
checkpoint, and a log of a node no peer vouched for fails: the tail truncation a parent could
otherwise hide. The first failure is named (file, node, record position and seq) and the exit
code is 1. ``witness`` has every node's current checkpoint witnessed by its peers (cheap: cron
it); ``checkpoints`` collects the peers' signed records as JSON lines. ``tail`` and ``export``
print what the dev cluster's parents stored (``nodes/*/blobs``), as JSON lines.
"""

# ruff: noqa: PLC0415 -- handlers import their machinery themselves (keyshard.cli.main, rule 3)

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from keyshard.cli.errors import UsageError
from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR, EXIT_OK

if TYPE_CHECKING:
    from keyshard.client.channel import NodeTrust
    from keyshard.client.checkpoints import Witnessed
    from keyshard.client.receipts import Receipt
    from wire.audit import SignedRecord

__all__ = ["register"]

_VERIFY_EPILOG = """\
examples:
  keyshard audit verify receipts.jsonl --profile cluster.json
  keyshard audit verify receipts.jsonl --dir .keyshard   (and every node's stored log)
  keyshard audit export --dir .keyshard --node node-1 > node-1.jsonl
  keyshard audit verify node-1.jsonl --document node-1.doc --profile cluster.json
  keyshard audit witness --profile cluster.json             (peers witness each node's head)
  keyshard audit checkpoints --profile cluster.json --out checkpoints.jsonl
  keyshard audit verify --dir .keyshard --witnessed checkpoints.jsonl

Tail truncation: a log cut at its end is still one valid chain. --witnessed FILE holds each log to
the checkpoints the node's PEERS witnessed (each signed by the peer's attested identity key, the
file checked offline like receipts): the log must CONTAIN that seq with that hash (it may have
grown since), and a node without a witnessed checkpoint in FILE fails. Collect the checkpoints
before exporting the logs you verify (a newer checkpoint than the export fails as a cut).

A PATH is a receipts file (JSON lines from the SDK's receipts), a log exported as JSON lines, or a
directory holding a node's stored log (the parent's blob directory). A log's document comes from
--document, else the directory's audit-attestation.cbor (beside an exported file too).
exit codes: 0 everything verified, 1 a check failed (named) or a usage error.
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser(
        "audit",
        help="verify receipts and the nodes' signed audit logs; print stored records",
        description="The audit trail the enclaves keep and the receipts they sign.",
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)
    verify = verbs.add_parser(
        "verify",
        help="check receipts and whole logs offline against the nodes' attestation documents",
        epilog=_VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="RECEIPT_OR_LOG",
        help="receipts files, logs, blob directories (with --dir and no log: every node's log)",
    )
    where = verify.add_mutually_exclusive_group()
    where.add_argument("--profile", type=Path, default=None, metavar="PATH", help="cluster profile")
    where.add_argument(
        "--dir", type=Path, default=None, metavar="DIR", help="dev cluster directory"
    )
    verify.add_argument(
        "--document", type=Path, default=None, metavar="FILE", help="the node's document for a log"
    )
    verify.add_argument(
        "--witnessed",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="require each log to hold the checkpoints its peers witnessed (from 'checkpoints')",
    )
    verify.set_defaults(handler=_verify)
    witness = verbs.add_parser(
        "witness",
        help="have each node's current audit checkpoint witnessed by its peers",
        description=(
            "Ask every node for its signed audit checkpoint (the head of the records its parent\n"
            "stored) and hand it to its peers, which keep the highest: from then on a stored log\n"
            "cut below it fails 'keyshard audit verify --witnessed'. Changes of key state do this\n"
            "anyway; run it on a schedule to protect a quiet cluster's tails (two requests per\n"
            "node, no key touched)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _cluster_flags(witness)
    witness.set_defaults(handler=_witness)
    checkpoints = verbs.add_parser(
        "checkpoints",
        help="collect the peers' signed records of each node's audit checkpoint",
        description=(
            "Ask every node for its record of each peer's highest audit checkpoint, signed by\n"
            "the witness's attested identity key; each is checked against the profile and\n"
            "written as a JSON line (with the witness's attestation document) for\n"
            "'keyshard audit verify --witnessed FILE', which checks it again offline."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    checkpoints.add_argument(
        "--out", type=Path, default=None, metavar="FILE", help="write here (default: stdout)"
    )
    _cluster_flags(checkpoints)
    checkpoints.set_defaults(handler=_checkpoints)
    receipts = verbs.add_parser(
        "receipts",
        help="fetch this client's receipts for a signed message or a decrypted ciphertext",
        description=(
            "Ask every node for its signed record of this client's successful signature of\n"
            "--message, or decryption of --ciphertext (with its --context); each is verified\n"
            "against the profile and printed as a JSON line for 'keyshard audit verify'."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = receipts.add_mutually_exclusive_group(required=True)
    what.add_argument("--message", type=Path, metavar="FILE", help="the message that was signed")
    what.add_argument("--ciphertext", type=Path, metavar="FILE", help="the decrypted ciphertext")
    receipts.add_argument("--context", default="", help="the ciphertext's context")
    _cluster_flags(receipts)
    receipts.set_defaults(handler=_receipts)
    for verb, text in (
        ("tail", "print the newest stored records of each node (JSON lines)"),
        ("export", "print every stored record of each node (JSON lines)"),
    ):
        parser = verbs.add_parser(verb, help=text, description=text)
        parser.add_argument(
            "--dir", type=Path, required=True, metavar="DIR", help="dev cluster directory"
        )
        parser.add_argument("--node", default=None, help="only this node id")
        if verb == "tail":
            parser.add_argument("-n", type=int, default=10, help="records per node (default 10)")
        parser.set_defaults(handler=_print_records, verb_name=verb)


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    from keyshard.cli.key_cmd import _cluster_flags as flags

    flags(parser)


def _receipts(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _run
    from keyshard.client.receipts import dumps
    from wire.approvals import decryption_digest, message_digest

    path = args.message or args.ciphertext
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    if args.message is not None:
        digest = message_digest(data)
    else:
        digest = decryption_digest(data, args.context.encode())
    found = _run(args, lambda client: client.receipts([digest]))
    sys.stdout.write(dumps(found))
    return EXIT_OK if found else EXIT_LOCAL_ERROR


def _witness(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _run

    held = _run(args, lambda client: client.witness_audit_checkpoints())
    print(f"audit checkpoints witnessed: {held} (node, peer) records held")
    return EXIT_OK


def _checkpoints(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _run
    from keyshard.client.checkpoints import dumps

    found = _run(args, lambda client: client.audit_checkpoints())
    text = dumps(found)
    if args.out is None:
        sys.stdout.write(text)
    else:
        try:
            args.out.write_text(text)
        except OSError as error:
            raise UsageError(f"cannot write {args.out}: {error.strerror}") from None
    heads: dict[str, dict[int, list[str]]] = {}
    for entry in found:
        seqs = heads.setdefault(entry.checkpoint.node_id, {})
        seqs.setdefault(entry.checkpoint.seq, []).append(entry.witness_id)
    for node_id, seqs in sorted(heads.items()):
        shown = ", ".join(f"seq {s} by {', '.join(sorted(w))}" for s, w in sorted(seqs.items()))
        print(f"{node_id}: {shown}", file=sys.stderr)
    return EXIT_OK if found else EXIT_LOCAL_ERROR


def _witnessed(args: argparse.Namespace, trust: NodeTrust) -> tuple[list[Witnessed], bool]:
    """The checked entries of every --witnessed file, and whether one was refused (named)."""
    from keyshard.client.checkpoints import loads, verify_witnessed
    from keyshard.client.receipts import ReceiptError

    entries, failed = [], False
    for path in args.witnessed:
        try:
            found = loads(path.read_text())
        except OSError as error:
            raise UsageError(f"cannot read {path}: {error.strerror}") from None
        except ReceiptError as error:
            raise UsageError(f"{path}: {error}") from None
        for entry in found:
            try:
                verify_witnessed(entry, trust)
            except ReceiptError as error:
                print(f"checkpoint refused: {path}: {error}")
                failed = True
                continue
            entries.append(entry)
    return entries, failed


def _trust(args: argparse.Namespace) -> NodeTrust:
    from keyshard.cli.key_cmd import _no_profile, _profile_path
    from keyshard.client.channel import NodeTrust
    from keyshard.client.errors import ProfileError
    from keyshard.client.profile import ClusterProfile

    path = _profile_path(args)
    if not path.exists():
        raise _no_profile(path)
    try:
        return NodeTrust.from_profile(ClusterProfile.load(path))
    except ProfileError as error:
        raise UsageError(str(error)) from None


def _stored(directory: Path) -> tuple[list[str], bytes | None]:
    from parent.auditstore import read_log
    from parent.blobstore import LocalDirBlobStore

    return read_log(LocalDirBlobStore(directory))


def _load(path: Path) -> tuple[list[Receipt], list[str], bytes | None]:
    """A path's receipts, log lines and (for a log) the stored document beside it."""
    from keyshard.client.receipts import Receipt
    from parent.auditstore import DOCUMENT_BLOB

    if path.is_dir():
        lines, document = _stored(path)
        return [], lines, document
    try:
        text = path.read_text()
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    receipts, lines = [], []
    for line in (line for line in text.splitlines() if line.strip()):
        try:
            entry = json.loads(line)
        except ValueError:
            lines.append(line)  # the log check names it
            continue
        if isinstance(entry, dict) and "kind" in entry:
            receipts.append(Receipt.from_json(entry))
        else:
            lines.append(line)
    beside = path.parent / DOCUMENT_BLOB
    return receipts, lines, beside.read_bytes() if lines and beside.is_file() else None


def _verify(args: argparse.Namespace) -> int:
    from keyshard.client.receipts import ReceiptError, verify_receipt

    trust = _trust(args)
    witnessed, failed = _witnessed(args, trust)
    loaded = [(path, *_load(path)) for path in args.paths]
    if args.dir is not None and not any(lines for _, _, lines, _ in loaded):
        # no log named: every node's log the dev cluster's parents stored
        for blobs in sorted((Path(args.dir) / "nodes").glob("*/blobs")):
            if any(blobs.glob("audit-log.*")):
                loaded.append((blobs, *_load(blobs)))
    if not loaded:
        raise UsageError("nothing to verify: name receipts or logs (or a dev cluster's --dir)")
    receipts = [r for _, found, _, _ in loaded for r in found]
    for receipt in receipts:
        try:
            record = verify_receipt(receipt, trust)
        except ReceiptError as error:
            print(f"receipt refused: {error}")
            failed = True
            continue
        print(
            f"receipt ok: {receipt.node_id} seq {record.seq} {record.op} {record.key} "
            f"{record.outcome} digest {record.digest.hex()[:16]}..."
        )
    given = args.document.read_bytes() if args.document is not None else None
    for path, _, lines, stored_document in loaded:
        if lines and not _verify_log(
            path,
            lines,
            given or stored_document,
            trust=trust,
            receipts=receipts,
            witnessed=witnessed if args.witnessed else None,
        ):
            failed = True
    return EXIT_LOCAL_ERROR if failed else EXIT_OK


def _verify_log(
    path: Path,
    lines: list[str],
    document: bytes | None,
    *,
    trust: NodeTrust,
    receipts: list[Receipt],
    witnessed: list[Witnessed] | None,
) -> bool:
    """Check one log (chain, signatures, receipts' and peers' checkpoints; ``witnessed`` None:
    no checkpoints file was given); print the verdict."""
    from keyshard.client.checkpoints import check_witnessed
    from keyshard.client.receipts import ReceiptError, check_checkpoints, identity_key
    from wire.audit import AuditVerificationError, parse_json_lines, verify_log

    node_id = None
    try:
        records = parse_json_lines(lines)
        node_id = records[0].record().node_id if records else None
        if document is None:
            raise ReceiptError("no attestation document for this log (--document)")
        public = identity_key(document, trust, node_id)
        checked = verify_log(records, public, node_id=node_id)
        check_checkpoints(records, [r for r in receipts if r.node_id == node_id])
        vouched = []
        if witnessed is not None and node_id is not None:
            vouched = check_witnessed(records, public, node_id, witnessed)
            if not vouched:
                raise ReceiptError(
                    f"no peer-witnessed checkpoint of {node_id} in --witnessed: its tail is "
                    "unprotected (run 'keyshard audit witness', then 'checkpoints')"
                )
    except (AuditVerificationError, ReceiptError) as error:
        print(f"log refused: {path}: {node_id or 'unknown node'}: {error}")
        return False
    print(f"log ok: {path}: {node_id}, {len(checked)} records, seq 0..{len(checked) - 1}")
    if vouched:
        highest = max(e.checkpoint.seq for e in vouched)
        witnesses = ", ".join(sorted({e.witness_id for e in vouched}))
        print(f"  reaches the checkpoints its peers witnessed (up to seq {highest}: {witnesses})")
    return True


def _records(args: argparse.Namespace) -> dict[str, list[SignedRecord]]:
    from wire.audit import AuditVerificationError, parse_json_lines

    nodes = Path(args.dir) / "nodes"
    if not nodes.is_dir():
        raise UsageError(f"no dev cluster nodes under {args.dir}")
    found: dict[str, list[SignedRecord]] = {}
    for blobs in sorted(nodes.glob("*/blobs")):
        lines, _ = _stored(blobs)
        try:
            records = parse_json_lines(lines)
        except AuditVerificationError as error:
            raise UsageError(f"{blobs}: {error}") from None
        for signed in records:
            node_id = signed.record().node_id
            if args.node is None or node_id == args.node:
                found.setdefault(node_id, []).append(signed)
    return found


def _print_records(args: argparse.Namespace) -> int:
    for records in _records(args).values():
        shown = records[-args.n :] if args.verb_name == "tail" and args.n > 0 else records
        for signed in shown:
            sys.stdout.write(json.dumps(signed.to_json(), sort_keys=True) + "\n")
    return EXIT_OK
