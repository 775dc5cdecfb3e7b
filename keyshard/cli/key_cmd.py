"""``keyshard key create|info|approve|sign|encrypt|decrypt`` — threshold keys on a running cluster.

Every command opens attested channels to the nodes (TLS 1.3 with the cluster's admin client
certificate; each node's attestation document must bind the TLS key it presented) and lets the
client SDK (:mod:`keyshard.client.coordinator`) drive the protocol. The cluster profile and the
client credentials come from the dev cluster directory (``--dir`` or ``KEYSHARD_DEV_DIR``).

Messages, plaintexts and ciphertexts are read from ``--file`` or stdin, never from flag values;
binary output goes to ``--out`` or stdout. Exit codes: 0 success; 1 local error (no cluster, no
credentials, unreadable file, bad flags); 2 a node refused or failed (including a channel whose
attestation did not verify, and a signature share or partial decryption that did not verify).

Approval policies: ``create --approver HEX ... --quorum Q [--require sign,decrypt]`` fixes a policy
for the key's life; ``approve --key FILE`` signs one approval (JSON on stdout) with an approver's
private key read from a file; ``sign``/``decrypt --approval FILE`` (repeatable) hand approvals to
the nodes, each of which checks them on its own. This module also registers the ``approver`` group
(:mod:`keyshard.cli.approver_cmd`), its companion.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from enclave.mpc.ecdsa import EcdsaSignature
from enclave.mpc.errors import MpcError
from enclave.mpc.groups import SECP256K1
from enclave.service.derivation import derive
from enclave.service.errors import MalformedMessageError
from enclave.service.keystore import ECDSA_SUITE
from enclave.service.policy import (
    Approval,
    ApprovalPolicy,
    Operation,
    decryption_digest,
    message_digest,
)
from keyshard.cli import approver_cmd
from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR, EXIT_OK, EXIT_REMOTE_ERROR
from keyshard.client.approvals import (
    approval_from_json,
    approval_to_json,
    load_approver_key,
    sign_approval,
)
from keyshard.client.coordinator import Coordinator, KeyDescription
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import ClientError, CredentialsError
from keyshard.dev.profile import ClusterProfile, ProfileError

DEFAULT_DIR = ".keyshard/dev"
DIR_ENV = "KEYSHARD_DEV_DIR"
MAX_INPUT = 64 * 1024
DEFAULT_TTL = 900
MAX_TTL = 7 * 24 * 3600

_T = TypeVar("_T")


class _LocalError(Exception):
    pass


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approver_cmd.register(groups)
    group = groups.add_parser(
        "key",
        help="create threshold keys on a cluster; sign, encrypt and decrypt with them",
        description=(
            "Threshold keys held by the cluster's enclaves: created by DKG between the nodes, "
            "used by t+1 of them. No machine ever holds a whole key."
        ),
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", help="key name ([a-z0-9._-], up to 63)")
        parser.add_argument(
            "--dir",
            type=Path,
            default=Path(os.environ.get(DIR_ENV, DEFAULT_DIR)),
            help=f"dev cluster directory (env {DIR_ENV}; default {DEFAULT_DIR})",
        )

    create = verbs.add_parser("create", help="create a key by DKG among every node")
    common(create)
    create.add_argument(
        "--suite",
        choices=["ed25519", "secp256k1", ECDSA_SUITE],
        default="ed25519",
        help=f"FROST ed25519/secp256k1, or threshold ECDSA {ECDSA_SUITE} (needs n >= 2t+1)",
    )
    create.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="t: any t+1 nodes sign (default: a majority, (n-1)//2)",
    )
    create.add_argument(
        "--approver",
        action="append",
        default=[],
        metavar="HEX",
        help="an approver's Ed25519 public key (32 bytes hex; repeatable)",
    )
    create.add_argument("--quorum", type=int, default=None, help="approvals needed (q)")
    create.add_argument(
        "--require",
        default="sign,decrypt",
        help="operations that need approvals: sign, decrypt or sign,decrypt (default both)",
    )
    create.add_argument("--format", choices=["table", "json"], default="table")
    create.set_defaults(handler=_create)

    approve = verbs.add_parser(
        "approve", help="sign an approval for one message or ciphertext (JSON on stdout)"
    )
    common(approve)
    approve.add_argument("--key", type=Path, required=True, help="approver private key file (PEM)")
    approve.add_argument("--op", choices=["sign", "decrypt"], default="sign")
    approve.add_argument("--file", type=Path, default=None, help="input (default: stdin)")
    approve.add_argument(
        "--context", default="", help="decrypt: the associated data the ciphertext is bound to"
    )
    approve.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL, help=f"seconds valid (default {DEFAULT_TTL})"
    )
    approve.add_argument(
        "--public-key",
        default=None,
        metavar="HEX",
        help="the key's group public key (default: ask the cluster)",
    )
    _path_flag(approve)
    approve.set_defaults(handler=_approve)

    info = verbs.add_parser("info", help="the key's public key, as the nodes agree on it")
    common(info)
    info.add_argument("--format", choices=["table", "json"], default="table")
    info.set_defaults(handler=_info)

    sign = verbs.add_parser(
        "sign", help="sign a message (from --file or stdin): FROST, or ECDSA over SHA-256"
    )
    common(sign)
    sign.add_argument("--file", type=Path, default=None, help="message file (default: stdin)")
    sign.add_argument(
        "--format",
        choices=["hex", "json", "compact"],
        default="hex",
        help="hex (ECDSA: DER), json, compact (ECDSA: 64-byte r||s hex and the recovery id)",
    )
    _approval_flag(sign)
    _path_flag(sign)
    sign.set_defaults(handler=_sign)

    for verb, helptext, handler in (
        ("encrypt", "encrypt to the key (client-side; no node takes part)", _encrypt),
        ("decrypt", "threshold-decrypt with t+1 nodes", _decrypt),
    ):
        parser = verbs.add_parser(verb, help=helptext)
        common(parser)
        parser.add_argument("--file", type=Path, default=None, help="input (default: stdin)")
        parser.add_argument("--out", type=Path, default=None, help="output (default: stdout)")
        parser.add_argument(
            "--context",
            default="",
            help="public associated data bound to the ciphertext (must match to decrypt)",
        )
        if verb == "decrypt":
            _approval_flag(parser)
        parser.set_defaults(handler=handler)


def _approval_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--approval",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="an approval from `keyshard key approve` (repeatable)",
    )


def _path_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--path",
        default="",
        help="ECDSA keys: sign under the non-hardened BIP-32 child m/i/j/... (default: the key)",
    )


def _read_approvals(paths: list[Path]) -> list[bytes]:
    encoded = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise _LocalError(f"cannot read approval {path}") from None
        try:
            encoded.append(approval_from_json(text).encode())
        except ClientError as error:
            raise _LocalError(f"{path}: {error}") from None
    return encoded


def _policy(args: argparse.Namespace) -> ApprovalPolicy | None:
    if not args.approver:
        if args.quorum is not None:
            raise _LocalError("--quorum needs at least one --approver")
        return None
    try:
        approvers = tuple(bytes.fromhex(key) for key in args.approver)
        operations = frozenset(Operation(op.strip()) for op in args.require.split(","))
    except ValueError:
        raise _LocalError(
            "--approver takes hex keys; --require takes sign and/or decrypt"
        ) from None
    quorum = len(approvers) if args.quorum is None else args.quorum
    try:
        return ApprovalPolicy(approvers, quorum, operations)
    except MalformedMessageError as error:
        raise _LocalError(f"invalid approval policy: {error}") from None


def _read_input(path: Path | None) -> bytes:
    try:
        data = sys.stdin.buffer.read(MAX_INPUT + 1) if path is None else path.read_bytes()
    except OSError as error:
        raise _LocalError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_INPUT:
        raise _LocalError(f"input longer than {MAX_INPUT} bytes")
    return data


def _write_output(path: Path | None, data: bytes) -> None:
    if path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        path.write_bytes(data)
    except OSError as error:
        raise _LocalError(f"cannot write {path}: {error.strerror}") from None


def _run(args: argparse.Namespace, work: Callable[[Coordinator], Awaitable[_T]]) -> _T:
    try:
        profile = ClusterProfile.load(args.dir / "profile.json")
        credentials = ClientCredentials.in_directory(args.dir / "client")
    except (ProfileError, CredentialsError) as error:
        raise _LocalError(f"{error} (is a cluster running? `keyshard dev up`)") from None

    async def main() -> _T:
        async with Coordinator.from_profile(profile, credentials) as coordinator:
            return await work(coordinator)

    return asyncio.run(main())


def _guarded(args: argparse.Namespace, body: Callable[[], None]) -> int:
    try:
        body()
    except (_LocalError, MalformedMessageError) as error:  # the latter: refused before sending
        print(f"keyshard key {args.verb}: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    except (ClientError, MpcError) as error:
        print(f"keyshard key {args.verb}: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_REMOTE_ERROR
    return EXIT_OK


def _describe(key: KeyDescription) -> dict[str, Any]:
    return {
        "name": key.name,
        "suite": key.suite,
        "threshold": key.public.threshold,
        "signers_needed": key.public.threshold + 1,
        "public_key": key.public_key.hex(),
        "holders": dict(sorted(key.holders.items())),
        "policy": None
        if key.policy is None
        else {
            "approvers": [a.hex() for a in key.policy.approvers],
            "quorum": key.policy.quorum,
            "require": sorted(op.value for op in key.policy.operations),
        },
    }


def _render(args: argparse.Namespace, key: KeyDescription) -> None:
    described = _describe(key)
    if args.format == "json":
        print(json.dumps(described, indent=2))
        return
    for field in ("name", "suite", "threshold", "signers_needed", "public_key"):
        print(f"{field:<15} {described[field]}")
    print(f"{'holders':<15} {', '.join(f'{n}={i}' for n, i in described['holders'].items())}")
    print(f"{'policy':<15} {key.policy or 'none'}")
    for approver in [] if key.policy is None else key.policy.approvers:
        print(f"{'approver':<15} {approver.hex()}")


def _create(args: argparse.Namespace) -> int:
    def body() -> None:
        policy = _policy(args)
        key = _run(
            args,
            lambda c: c.create_key(
                args.name, suite=args.suite, threshold=args.threshold, policy=policy
            ),
        )
        _render(args, key)

    return _guarded(args, body)


def _info(args: argparse.Namespace) -> int:
    return _guarded(args, lambda: _render(args, _run(args, lambda c: c.describe_key(args.name))))


def _sign(args: argparse.Namespace) -> int:
    def body() -> None:
        message = _read_input(args.file)
        approvals = _read_approvals(args.approval)

        async def work(c: Coordinator) -> tuple[bytes | EcdsaSignature, bytes]:
            key = await c.describe_key(args.name)
            if key.suite == ECDSA_SUITE:
                signing_key = derive(key.public.group_public_key, args.path)[1].to_bytes()
                signed = await c.sign_ecdsa(args.name, message, approvals=approvals, path=args.path)
                return signed, signing_key
            if args.path:
                raise _LocalError("--path is for ECDSA keys")
            return await c.sign(args.name, message, approvals=approvals), key.public_key

        signature, signing_key = _run(args, work)
        if isinstance(signature, EcdsaSignature):
            _render_ecdsa(args, signature, signing_key)
        elif args.format == "json":
            print(json.dumps({"key": args.name, "signature": signature.hex()}))
        elif args.format == "compact":
            raise _LocalError("--format compact is for ECDSA keys")
        else:
            print(signature.hex())

    return _guarded(args, body)


def _render_ecdsa(args: argparse.Namespace, signature: EcdsaSignature, public: bytes) -> None:
    if args.format == "json":
        rendered = {
            "key": args.name,
            "path": args.path or "m",
            "public_key": public.hex(),
            "signature": signature.to_der().hex(),
            "compact": signature.to_compact().hex(),
            "recovery_id": signature.recovery_id,
            "hash": "sha256",
        }
        print(json.dumps(rendered))
    elif args.format == "compact":
        print(f"{signature.to_compact().hex()} {signature.recovery_id}")
    else:
        print(signature.to_der().hex())


def _encrypt(args: argparse.Namespace) -> int:
    def body() -> None:
        plaintext = _read_input(args.file)
        context = args.context.encode("utf-8")
        _write_output(args.out, _run(args, lambda c: c.encrypt(args.name, plaintext, context)))

    return _guarded(args, body)


def _decrypt(args: argparse.Namespace) -> int:
    def body() -> None:
        ciphertext = _read_input(args.file)
        context = args.context.encode("utf-8")
        approvals = _read_approvals(args.approval)
        _write_output(
            args.out,
            _run(args, lambda c: c.decrypt(args.name, ciphertext, context, approvals=approvals)),
        )

    return _guarded(args, body)


def _approve(args: argparse.Namespace) -> int:
    def body() -> None:
        if not 1 <= args.ttl <= MAX_TTL:
            raise _LocalError(f"--ttl must be 1..{MAX_TTL} seconds")
        try:
            private_key = load_approver_key(args.key)
        except ClientError as error:
            raise _LocalError(str(error)) from None
        data = _read_input(args.file)
        operation = Operation(args.op)
        if operation is Operation.SIGN:
            digest = message_digest(data)
        else:
            digest = decryption_digest(data, args.context.encode("utf-8"))
        if args.public_key is not None:
            try:
                group_public_key = bytes.fromhex(args.public_key)
            except ValueError:
                raise _LocalError("--public-key takes hex") from None
        else:
            group_public_key = _run(args, lambda c: c.describe_key(args.name)).public_key
        if args.path:  # approvals for a BIP-32 child name the child key, which is what signs
            try:
                root = SECP256K1.decode_point(group_public_key)
                group_public_key = derive(root, args.path)[1].to_bytes()
            except MpcError as error:
                raise _LocalError(f"--path: {error}") from None
        try:
            approval: Approval = sign_approval(
                private_key,
                key_name=args.name,
                group_public_key=group_public_key,
                operation=operation,
                digest=digest,
                not_after=int(time.time()) + args.ttl,
            )
        except MalformedMessageError as error:
            raise _LocalError(str(error)) from None
        print(approval_to_json(approval))

    return _guarded(args, body)
