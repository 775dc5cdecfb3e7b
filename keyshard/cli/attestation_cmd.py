"""``keyshard attestation inspect|verify`` — look at and check Nitro attestation documents.

``inspect`` decodes a document (strictly) and shows what it *claims*, without verifying anything.
``verify`` checks the signature and the chain to a pinned root (the AWS Nitro root unless ``--root``
is given) at a chosen instant, then the policy given by the flags. Exit codes: 0 verified, 1 any
refusal or local error; a refusal prints one ``refused: <check>: <reason>`` line on stderr.

Both print through :mod:`keyshard.cli.output` (``--format text|json``, ``--field NAME``); ``--json``
is kept, hidden, as the older spelling of ``--format json``. The ``attestation`` package and
cryptography are imported inside the handlers, so ``keyshard attestation --help`` stays cheap
(see :mod:`keyshard.cli.main`).
"""

# ruff: noqa: PLC0415 -- handlers import their machinery themselves (keyshard.cli.main, rule 3)

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyshard.cli.errors import UsageError
from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR, EXIT_OK
from keyshard.cli.output import OutputFormat, add_output_flags, emit

if TYPE_CHECKING:
    from attestation.document import SignedDocument
    from attestation.errors import AttestationError
    from attestation.policy import AttestationPolicy
    from attestation.roots import TrustedRoots
    from attestation.verifier import Instant

_INSPECT_EPILOG = """\
examples:
  keyshard attestation inspect doc.bin
  keyshard attestation inspect doc.bin --format json
  keyshard attestation inspect - --field module_id < doc.bin
  keyshard attestation inspect doc.bin --field nonzero_pcrs.0

fields (--field, --format json): module_id, timestamp, timestamp_ms, digest, debug_mode,
  pcr_count, nonzero_pcrs, certificates, public_key, user_data, nonce (a.b for nested values).
exit codes: 0 decoded; 1 malformed document or local error.
"""

_VERIFY_EPILOG = """\
checks, in order (the first failure is reported as "refused: <check>: <reason>"):
  malformed document   strict COSE_Sign1 / payload decoding
  chain step N         certificate N (0 = leaf, then cabundle upwards to the pinned root):
                       validity at --at, CA constraints, issuer signature, pinned root
  signature            ES384 signature of the document with the leaf key
  policy rule R        debug, pcr, nonce (as given by the flags)

examples:
  keyshard attestation verify doc.bin --at doc --pcr 0=ec74bf... --pcr 0=1f44c8...
  keyshard attestation verify doc.bin --root local-cloud-root.pem --allow-debug --format json
  keyshard attestation verify doc.bin --at doc --field root_sha256

fields (--field, --format json): verified, checked_at, root_sha256 and those of 'inspect';
  on a refusal: verified (false), check, error, message.
exit codes: 0 verified; 1 refused or local error (unreadable file, bad flag value).
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser(
        "attestation",
        help="inspect and verify Nitro attestation documents",
        description="Inspect and verify AWS Nitro (or emulated) attestation documents.",
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    inspect = verbs.add_parser(
        "inspect",
        help="show what a document claims (no verification)",
        description=(
            "Decode an attestation document strictly and show its fields: module id, timestamp,\n"
            "digest, non-zero PCRs and debug mode, the certificate chain, and the lengths and hex\n"
            "of public_key, user_data and nonce. Nothing is verified: use 'verify' for that."
        ),
        epilog=_INSPECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("file", metavar="FILE", help="raw COSE_Sign1 document ('-' for stdin)")
    _add_format_flags(inspect)
    inspect.set_defaults(handler=_inspect)

    verify = verbs.add_parser(
        "verify",
        help="verify signature, chain to a pinned root, and a policy",
        description=(
            "Verify an attestation document: strict decoding, the certificate chain to a pinned\n"
            "root (by SHA-256 fingerprint; the AWS Nitro root unless --root is given), every\n"
            "certificate valid at the chosen instant, the ES384 signature, then the policy."
        ),
        epilog=_VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("file", metavar="FILE", help="raw COSE_Sign1 document ('-' for stdin)")
    verify.add_argument(
        "--root",
        metavar="PEM",
        action="append",
        default=[],
        help="pin this root certificate instead of the AWS Nitro root (repeatable)",
    )
    verify.add_argument(
        "--pcr",
        metavar="N=HEX",
        action="append",
        default=[],
        help="require PCR N to equal HEX; repeat an index to allow alternatives (upgrades)",
    )
    verify.add_argument(
        "--allow-debug", action="store_true", help="accept debug-mode enclaves (PCR0/1/2/8 zero)"
    )
    verify.add_argument(
        "--at",
        metavar="WHEN",
        default="now",
        help="instant to check certificates at: 'now' (default), 'doc' (the document's own "
        "timestamp, for stored documents) or an ISO 8601 time with offset",
    )
    verify.add_argument("--nonce", metavar="HEX", help="require the document's nonce to be HEX")
    _add_format_flags(verify)
    verify.set_defaults(handler=_verify)


def _add_format_flags(parser: argparse.ArgumentParser) -> None:
    add_output_flags(parser)
    parser.add_argument(  # the older spelling, kept for scripts written against it
        "--json",
        dest="format",
        action="store_const",
        const=OutputFormat.JSON,
        help=argparse.SUPPRESS,
    )


def _read(path: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _iso(instant: _dt.datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


def _hex_field(value: bytes | None) -> dict[str, Any] | None:
    return None if value is None else {"length": len(value), "hex": value.hex()}


def _certificate_summary(step: int, der: bytes) -> dict[str, Any]:
    from cryptography import x509

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return {"step": step, "error": "not a valid DER certificate", "length": len(der)}
    return {
        "step": step,
        "subject": cert.subject.rfc4514_string(),
        "not_before": _iso(cert.not_valid_before_utc),
        "not_after": _iso(cert.not_valid_after_utc),
    }


def _summary(document: SignedDocument) -> dict[str, Any]:
    payload = document.payload
    chain = [payload.certificate, *reversed(payload.cabundle)]
    return {
        "module_id": payload.module_id,
        "timestamp": _iso(payload.timestamp),
        "timestamp_ms": payload.timestamp_ms,
        "digest": payload.digest,
        "debug_mode": payload.is_debug_mode,
        "pcr_count": len(payload.pcrs),
        "nonzero_pcrs": {str(i): v.hex() for i, v in sorted(payload.pcrs.items()) if any(v)},
        "certificates": [_certificate_summary(step, der) for step, der in enumerate(chain)],
        "public_key": _hex_field(payload.public_key),
        "user_data": _hex_field(payload.user_data),
        "nonce": _hex_field(payload.nonce),
    }


def _inspect_text(summary: dict[str, Any]) -> str:
    rows = [
        ("module_id", summary["module_id"]),
        ("timestamp", f"{summary['timestamp']} ({summary['timestamp_ms']} ms)"),
        ("digest", summary["digest"]),
        ("debug_mode", "yes (PCR0/1/2/8 are zero)" if summary["debug_mode"] else "no"),
        ("pcrs", f"{summary['pcr_count']} present, non-zero:"),
    ]
    rows += [(f"  PCR{i}", value) for i, value in summary["nonzero_pcrs"].items()]
    rows.append(("certificates", "step 0 = leaf, last = root"))
    for cert in summary["certificates"]:
        if "error" in cert:
            rows.append((f"  step {cert['step']}", cert["error"]))
        else:
            rows.append((f"  step {cert['step']}", cert["subject"]))
            rows.append(("", f"valid {cert['not_before']} .. {cert['not_after']}"))
    for name in ("public_key", "user_data", "nonce"):
        field = summary[name]
        rows.append(
            (name, "absent" if field is None else f"{field['length']} bytes {field['hex']}")
        )
    width = max(len(label) for label, _ in rows)
    lines = ["NOT VERIFIED: this shows what the document claims. Use 'verify' to check it."]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    from attestation.codec import decode_document
    from attestation.errors import DocumentFormatError

    data = _read(args.file)
    try:
        document = decode_document(data)
    except DocumentFormatError as exc:
        print(f"refused: malformed document: {exc}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    summary = _summary(document)
    emit(args, summary, lambda: _inspect_text(summary))
    return EXIT_OK


def _parse_at(text: str) -> Instant:
    if text == "now":
        return "now"
    if text in ("doc", "document"):
        return "document"
    try:
        instant = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r} is not 'now', 'doc' or an ISO 8601 time") from None
    if instant.tzinfo is None:
        raise UsageError(f"--at {text!r} has no UTC offset (add 'Z' or '+00:00')")
    return instant


def _parse_hex(flag: str, text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not hex") from None


def _parse_policy(args: argparse.Namespace) -> AttestationPolicy:
    from attestation.policy import AttestationPolicy

    pcrs: dict[int, list[bytes]] = {}
    for item in args.pcr:
        index_text, sep, value_text = item.partition("=")
        if not sep or not index_text.isdigit():
            raise UsageError(f"--pcr {item!r} is not N=HEX")
        pcrs.setdefault(int(index_text), []).append(_parse_hex("--pcr", value_text))
    nonce = None if args.nonce is None else _parse_hex("--nonce", args.nonce)
    try:
        return AttestationPolicy(pcrs=pcrs, allow_debug=args.allow_debug, nonce=nonce)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _parse_roots(paths: list[str]) -> TrustedRoots:
    from attestation.roots import TrustedRoots, load_pem_root

    if not paths:
        return TrustedRoots.aws()
    roots = []
    for path in paths:
        try:
            roots.append(load_pem_root(path))
        except OSError as exc:
            raise UsageError(f"cannot read --root {path}: {exc.strerror}") from None
        except ValueError:
            raise UsageError(f"--root {path} holds no PEM certificate") from None
    return TrustedRoots.of(roots)


def _check_name(error: AttestationError) -> str:
    from attestation.errors import (
        ChainInvalid,
        DocumentFormatError,
        PolicyViolation,
        SignatureInvalid,
    )

    if isinstance(error, DocumentFormatError):
        return "malformed document"
    if isinstance(error, ChainInvalid):
        return f"chain step {error.step}"
    if isinstance(error, SignatureInvalid):
        return "signature"
    if isinstance(error, PolicyViolation):
        return f"policy rule {error.rule}"
    return type(error).__name__


def _refusal_detail(error: AttestationError) -> str:
    from attestation.errors import ChainInvalid, PolicyViolation, SignatureInvalid

    if isinstance(error, ChainInvalid | PolicyViolation | SignatureInvalid):
        return error.reason
    return str(error)


def _verify(args: argparse.Namespace) -> int:
    from attestation.errors import AttestationError
    from attestation.verifier import AttestationVerifier

    data = _read(args.file)
    at = _parse_at(args.at)
    policy = _parse_policy(args)
    roots = _parse_roots(args.root)
    try:
        verified = AttestationVerifier(roots).verify(data, at=at)
        policy.check(verified, now=verified.checked_at)
    except AttestationError as exc:
        message = f"{_check_name(exc)}: {_refusal_detail(exc)}"
        print(f"refused: {message}", file=sys.stderr)
        refusal = {
            "verified": False,
            "check": _check_name(exc),
            "error": type(exc).__name__,
            "message": message,
        }
        emit(args, refusal, "")  # text: the refusal line on stderr says it all
        return EXIT_LOCAL_ERROR
    result = {
        "verified": True,
        "checked_at": _iso(verified.checked_at),
        "root_sha256": verified.root_fingerprint,
        **_summary(verified.document),
    }
    text = (
        f"verified: {verified.payload.module_id} at {_iso(verified.checked_at)} "
        f"(root {verified.root_fingerprint})"
    )
    emit(args, result, text)
    return EXIT_OK
