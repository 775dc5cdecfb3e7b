"""``keyshard key create|info|sign|encrypt|decrypt`` — threshold keys on a running cluster.

Every command opens attested channels to the nodes (TLS 1.3 with the cluster's admin client
certificate; each node's attestation document must bind the TLS key it presented) and lets the
client SDK (:mod:`keyshard.client.coordinator`) drive the protocol. The cluster profile and the
client credentials come from the dev cluster directory (``--dir`` or ``KEYSHARD_DEV_DIR``).

Messages, plaintexts and ciphertexts are read from ``--file`` or stdin, never from flag values;
binary output goes to ``--out`` or stdout. Exit codes: 0 success; 1 local error (no cluster, no
credentials, unreadable file, bad flags); 2 a node refused or failed (including a channel whose
attestation did not verify, and a signature share or partial decryption that did not verify).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from enclave.mpc.errors import MpcError
from keyshard.client.coordinator import Coordinator, KeyDescription
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import ClientError, CredentialsError
from keyshard.dev.profile import ClusterProfile, ProfileError

EXIT_OK = 0
EXIT_LOCAL_ERROR = 1
EXIT_REMOTE_ERROR = 2
DEFAULT_DIR = ".keyshard/dev"
DIR_ENV = "KEYSHARD_DEV_DIR"
MAX_INPUT = 64 * 1024

_T = TypeVar("_T")


class _LocalError(Exception):
    pass


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    create.add_argument("--suite", choices=["ed25519", "secp256k1"], default="ed25519")
    create.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="t: any t+1 nodes sign (default: a majority, (n-1)//2)",
    )
    create.add_argument("--format", choices=["table", "json"], default="table")
    create.set_defaults(handler=_create)

    info = verbs.add_parser("info", help="the key's public key, as the nodes agree on it")
    common(info)
    info.add_argument("--format", choices=["table", "json"], default="table")
    info.set_defaults(handler=_info)

    sign = verbs.add_parser("sign", help="FROST-sign a message (from --file or stdin)")
    common(sign)
    sign.add_argument("--file", type=Path, default=None, help="message file (default: stdin)")
    sign.add_argument("--format", choices=["hex", "json"], default="hex")
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
        parser.set_defaults(handler=handler)


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
    except _LocalError as error:
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
    }


def _render(args: argparse.Namespace, key: KeyDescription) -> None:
    described = _describe(key)
    if args.format == "json":
        print(json.dumps(described, indent=2))
        return
    for field in ("name", "suite", "threshold", "signers_needed", "public_key"):
        print(f"{field:<15} {described[field]}")
    print(f"{'holders':<15} {', '.join(f'{n}={i}' for n, i in described['holders'].items())}")


def _create(args: argparse.Namespace) -> int:
    def body() -> None:
        key = _run(
            args,
            lambda c: c.create_key(args.name, suite=args.suite, threshold=args.threshold),
        )
        _render(args, key)

    return _guarded(args, body)


def _info(args: argparse.Namespace) -> int:
    return _guarded(args, lambda: _render(args, _run(args, lambda c: c.describe_key(args.name))))


def _sign(args: argparse.Namespace) -> int:
    def body() -> None:
        message = _read_input(args.file)
        signature = _run(args, lambda c: c.sign(args.name, message))
        if args.format == "json":
            print(json.dumps({"key": args.name, "signature": signature.hex()}))
        else:
            print(signature.hex())

    return _guarded(args, body)


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
        _write_output(args.out, _run(args, lambda c: c.decrypt(args.name, ciphertext, context)))

    return _guarded(args, body)
