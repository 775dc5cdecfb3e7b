"""``keyshard key export|unwrap|import`` — a key leaving or entering the cluster's custody.

Registered by :mod:`keyshard.cli.key_cmd` (whose cluster flags, SDK runner and rendering these
verbs share). What each node checks is in :mod:`enclave.service.custody`; the client's side in
:mod:`keyshard.client.custody`.

* ``export NAME --to recipient.pub --out FILE --approval ...``: every holder wraps its
  re-randomised share for the recipient's X25519 key (HPKE); FILE is the bundle (0600), which
  only the recipient's private key opens. With ``--unwrap-with recipient.key`` the bundle is
  opened here instead and FILE is the key's PEM (0600). Only for a key created ``--exportable``,
  with its policy's quorum of ``export`` approvals naming that recipient
  (``keyshard key approve NAME --op export --to recipient.pub``); the key reads exported forever.
* ``unwrap --bundle FILE --recipient-key recipient.key --out key.pem``: on the recipient's
  machine, no cluster: open, add up, check against the key's public key, write the PEM (0600).
* ``import NAME --file key.pem``: split the key with Feldman VSS; each share goes sealed to the
  box key of its node's attested boot. The key reads imported.

Import cost: like ``key_cmd``, only the standard library and ``keyshard.cli`` at the top.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keyshard.cli.errors import UsageError
from keyshard.cli.exit_codes import EXIT_OK
from keyshard.cli.output import emit

if TYPE_CHECKING:
    from keyshard.client.keys import KeyDescription
    from keyshard.client.sdk import AsyncClient

__all__ = ["EPILOGS", "exportable_flag", "policy_flags", "recipient_of", "register"]

#: The largest key or bundle file read (a bundle of 16 holders is under 3 KiB).
MAX_FILE = 64 * 1024

EPILOGS = {
    "export": """\
examples:
  keyshard key export vault --to recipient.pub --out vault.export --approval a.json --approval b.json
  keyshard key export vault --to recipient.pub --unwrap-with recipient.key --out vault.pem ...

the recipient's key, and an approver's approval of this export (README: key export):
  openssl genpkey -algorithm X25519 -out recipient.key
  openssl pkey -in recipient.key -pubout -out recipient.pub
  keyshard key approve vault --approver-key alice.pem --op export --to recipient.pub > a.json

Only a key created with --exportable can leave the cluster, and only with its policy's quorum of
export approvals naming this recipient and the key's epoch; every holder checks them, spends
them, and flags the key "exported" for good before it answers. Every holder must be reachable.
fields: key, suite, public_key, recipient (hex), holders, out, pem (true when --out is a PEM).""",
    "unwrap": """\
examples:
  keyshard key unwrap --bundle vault.export --recipient-key recipient.key --out vault.pem

Runs on the recipient's machine with no cluster. The key is checked against the public key
the bundle names (compare it with `keyshard key info NAME --field public_key`).
secp256k1 keys are written as PKCS#8 (OpenSSL reads them); Ed25519 keys as a Keyshard expanded
key (README: key export) since a FROST Ed25519 key is a scalar, not an RFC 8032 seed.
fields: key, suite, public_key, out.""",
    "import": """\
examples:
  keyshard key import legacy --file outside.pem
  keyshard key import legacy2 --file outside.pem --threshold 1 --format json
  keyshard key import wallet --file btc.pem --suite ecdsa-secp256k1 --approver HEX --exportable

Accepts an unencrypted PKCS#8 Ed25519 key, a PKCS#8 or SEC 1 secp256k1 key, or a key file
`keyshard key unwrap` wrote. The key is split here with Feldman VSS and each share is sealed to
its node's attested per-boot key; every node checks its share against the commitments. The file
still holds the whole key: destroy it once the import is done if the cluster alone should.
fields: as `key info` (imported: true).""",
}


def policy_flags(parser: argparse.ArgumentParser) -> None:
    """The approval-policy flags of ``key create``, for a key made another way (import)."""
    parser.add_argument("--approver", action="append", default=[], metavar="HEX")
    parser.add_argument("--quorum", type=int, default=None, help="approvals needed (default: all)")
    parser.add_argument("--require", default="sign,decrypt", help="operations needing approvals")
    parser.add_argument("--approval-lifetime", type=int, default=None, metavar="SECONDS")
    exportable_flag(parser)


def exportable_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--exportable",
        action="store_true",
        help="its policy's quorum may export the key (needs --approver; never by default)",
    )


def register(
    verb: Callable[..., Any],
    approval_flag: Callable[[argparse.ArgumentParser], None],
    create: argparse.ArgumentParser,
) -> None:
    """Add the custody verbs (and ``key create --exportable``); ``verb`` is
    :func:`key_cmd.register`'s parser factory, which reads each verb's epilog."""
    from keyshard.cli.key_cmd import _CLUSTER_HELP, _EPILOGS  # noqa: PLC0415 -- shared help

    _EPILOGS.update({name: f"{text}\n\n{_CLUSTER_HELP}" for name, text in EPILOGS.items()})
    exportable_flag(create)
    export = verb(
        "export",
        "wrap an exportable key's shares for a recipient (needs its export approvals)",
        "Export a key created --exportable: every holder wraps its re-randomised share for the\n"
        "recipient's X25519 public key (HPKE, RFC 9180).",
    )
    export.add_argument("--to", type=Path, required=True, metavar="FILE", help="recipient.pub")
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="written 0600")
    export.add_argument(
        "--unwrap-with",
        type=Path,
        default=None,
        metavar="FILE",
        help="the recipient's private key: write the key's PEM to --out instead of the bundle",
    )
    approval_flag(export)
    export.set_defaults(handler=_export)

    unwrap = verb(
        "unwrap",
        "open an export bundle with the recipient's key; write the key's PEM",
        "Reconstruct an exported key from its bundle on the recipient's machine (no cluster).",
        named=False,
    )
    unwrap.add_argument("--bundle", type=Path, required=True, metavar="FILE")
    unwrap.add_argument("--recipient-key", type=Path, required=True, metavar="FILE")
    unwrap.add_argument("--out", type=Path, required=True, metavar="FILE", help="written 0600")
    unwrap.set_defaults(handler=_unwrap)

    imported = verb(
        "import",
        "split an outside private key (PEM) among the nodes",
        "Import a private key: split with Feldman VSS, each share sealed to an attested node.",
    )
    imported.add_argument("--file", type=Path, required=True, metavar="FILE", help="key PEM")
    imported.add_argument(
        "--suite",
        default=None,
        help="ed25519 for Ed25519 keys; ecdsa-secp256k1 (default) or secp256k1 for secp256k1",
    )
    imported.add_argument("--threshold", type=int, default=None, help="t: any t+1 nodes sign")
    policy_flags(imported)
    imported.set_defaults(handler=_import)


def _read(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE + 1)
    except OSError as error:
        raise UsageError(f"cannot read {what} {path}: {error.strerror}") from None
    if len(data) > MAX_FILE:
        raise UsageError(f"{path} is longer than {MAX_FILE} bytes: not a {what}")
    return data


def recipient_of(path: Path) -> bytes:
    """The raw X25519 key of a recipient's public key file (what export approvals name)."""
    from keyshard.cli.key_cmd import _local  # noqa: PLC0415 -- shared
    from keyshard.client import custody  # noqa: PLC0415 -- lazy SDK

    return _local(lambda: custody.load_recipient_public_key(_read(path, "public key")))


def _export(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _local, _read_approvals, _run  # noqa: PLC0415 -- shared
    from keyshard.client import custody  # noqa: PLC0415 -- lazy SDK

    recipient = recipient_of(args.to)
    private = None
    if args.unwrap_with is not None:
        private = _local(lambda: custody.load_recipient_key(_read(args.unwrap_with, "private key")))
    if args.out.exists():
        raise UsageError(f"{args.out} exists; refusing to overwrite it")
    approvals = _read_approvals(args.approval)

    async def work(client: AsyncClient) -> custody.ExportBundle:
        return await client.export_key(args.name, recipient, approvals=approvals)

    bundle = _run(args, work)
    if private is None:
        _local(lambda: custody.write_secret_file(args.out, bundle.encode()))
    else:
        _write_pem(args, bundle, private)
    record = {
        "key": bundle.key_name,
        "suite": bundle.suite.name,
        "public_key": bundle.public_key.hex(),
        "recipient": recipient.hex(),
        "holders": sorted(bundle.shares),
        "out": str(args.out),
        "pem": private is not None,
    }
    emit(args, record, f"{'key' if private else 'bundle'} written to {args.out}")
    return EXIT_OK


def _write_pem(args: argparse.Namespace, bundle: Any, private: Any) -> None:
    from keyshard.cli.errors import RemoteError  # noqa: PLC0415
    from keyshard.cli.key_cmd import _local  # noqa: PLC0415 -- shared
    from keyshard.client import custody  # noqa: PLC0415 -- lazy SDK
    from keyshard.client.errors import InvalidInputError, ProtocolError  # noqa: PLC0415

    try:
        scalar = custody.unwrap(bundle, private)
    except InvalidInputError as error:  # another recipient's bundle: this machine's input
        raise UsageError(str(error)) from None
    except ProtocolError as error:  # a wrapped share is wrong: the cluster's doing, exit 2
        raise RemoteError(f"protocol failure: {error}") from None
    key = custody.exported_key(bundle.suite.group, scalar)
    _local(lambda: custody.write_secret_file(args.out, custody.private_key_pem(key)))


def _unwrap(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _local  # noqa: PLC0415 -- shared
    from keyshard.client import custody  # noqa: PLC0415 -- lazy SDK

    bundle = _local(lambda: custody.ExportBundle.decode(_read(args.bundle, "bundle")))
    private = _local(lambda: custody.load_recipient_key(_read(args.recipient_key, "private key")))
    _write_pem(args, bundle, private)
    record = {
        "key": bundle.key_name,
        "suite": bundle.suite.name,
        "public_key": bundle.public_key.hex(),
        "out": str(args.out),
    }
    emit(args, record, f"key {bundle.key_name} ({bundle.public_key.hex()}) written to {args.out}")
    return EXIT_OK


def _import(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import _key_record, _key_text, _local, _policy, _run  # noqa: PLC0415
    from keyshard.client import custody  # noqa: PLC0415 -- lazy SDK

    policy = _policy(args)
    if args.exportable and policy is None:
        raise UsageError("--exportable needs an approval policy (--approver)")
    private = _local(lambda: custody.load_private_key(_read(args.file, "private key")))

    async def work(client: AsyncClient) -> KeyDescription:
        return await client.import_key(
            args.name,
            private,
            suite=args.suite,
            threshold=args.threshold,
            policy=policy,
            exportable=args.exportable,
        )

    record = _key_record(_run(args, work))
    emit(args, record, lambda: _key_text(record))
    return EXIT_OK
