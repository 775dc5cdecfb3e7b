"""``keyshard key create|info|list|approve|sign|encrypt|decrypt`` — threshold keys on a cluster.

Every verb that reaches the cluster goes through the client SDK (:mod:`keyshard.client.sdk`): it
opens attested channels to the nodes (TLS 1.3 with the client certificate; each node's attestation
document must bind the TLS key it presented) and drives the protocol. This module only parses,
calls the SDK and renders (through :mod:`keyshard.cli.output`).

Which cluster, first match wins (each flag declared once, with its environment variable):

* ``--profile PATH`` — a cluster profile: what ``keyshard dev up`` writes, or what the Terraform
  ``cluster-profile`` module renders for a deployed cluster;
* ``--dir DIR`` — a dev cluster directory, shorthand for ``--profile DIR/profile.json``;
* ``$KEYSHARD_PROFILE``, then ``$KEYSHARD_DEV_DIR/profile.json``, then ``.keyshard/dev/profile.json``.

The client certificate and key: ``--cert``/``--key`` (or ``$KEYSHARD_CLIENT_CERT`` /
``$KEYSHARD_CLIENT_KEY``), both or neither; by default ``client/`` beside the profile (the dev
layout). The SDK resolves them (:func:`keyshard.client.sdk.resolve_credentials`).

Messages, plaintexts and ciphertexts are read from ``--file`` or stdin (at most
:data:`MAX_INPUT` bytes; ``encrypt`` takes up to the SDK's ``MAX_PLAINTEXT``, ``decrypt`` up to
its ``MAX_CIPHERTEXT``, so whatever ``encrypt`` writes ``decrypt`` reads), never from flag values;
binary output goes to ``--out`` or stdout.

Exit codes (:mod:`keyshard.cli.exit_codes`), from the SDK's error tree (``error.local``):
0 success; 1 a local error — no profile, no credentials, bad flags, an unreadable file, a hardened
BIP-32 path, a ciphertext that is truncated or does not decrypt under the given context; 2 a
remote error — the cluster is unreachable, a node refused (an existing key name, approvals short
of the quorum), no node holds the key, or a node answered out of protocol.

Import cost: the top level imports the standard library and ``keyshard.cli`` only; the SDK (and,
through it, the MPC core and cryptography) is imported inside the handlers, so ``keyshard key
--help`` stays cheap (``tests/cli/test_cli_lazy_imports.py``). Nothing here imports ``enclave``
directly (an import-linter contract): what the CLI needs of a key — its PEM form, its xpub, a
BIP-32 child — comes from :class:`keyshard.client.keys.KeyDescription`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from keyshard.cli.errors import CliError, RemoteError, UsageError
from keyshard.cli.exit_codes import EXIT_OK
from keyshard.cli.output import OutputFormat, add_output_flags, emit, output_format

if TYPE_CHECKING:
    from keyshard.client.errors import ClientError
    from keyshard.client.keys import KeyDescription
    from keyshard.client.sdk import AsyncClient
    from wire.approvals import ApprovalPolicy

__all__ = [
    "CERT_ENV",
    "DEFAULT_DIR",
    "DIR_ENV",
    "KEY_ENV",
    "MAX_INPUT",
    "PROFILE_ENV",
    "register",
]

#: The same names as :mod:`keyshard.client.sdk`'s (a test checks); repeated here so that
#: ``--help`` can name them without importing the SDK.
PROFILE_ENV = "KEYSHARD_PROFILE"
CERT_ENV = "KEYSHARD_CLIENT_CERT"
KEY_ENV = "KEYSHARD_CLIENT_KEY"
DIR_ENV = "KEYSHARD_DEV_DIR"
DEFAULT_DIR = ".keyshard/dev"
PROFILE_FILE = "profile.json"
MAX_INPUT = 64 * 1024
MAX_APPROVAL_FILE = 16 * 1024
DEFAULT_TTL = 900

_T = TypeVar("_T")

_CLUSTER_HELP = f"""\
the cluster (first match wins):
  --profile PATH     a cluster profile: written by `keyshard dev up`, or rendered by the
                     Terraform cluster-profile module for a deployed cluster
  --dir DIR          a dev cluster directory, meaning DIR/{PROFILE_FILE}
  ${PROFILE_ENV}, then ${DIR_ENV}/{PROFILE_FILE}, then {DEFAULT_DIR}/{PROFILE_FILE}
the client certificate and key (both or neither):
  --cert/--key FILE  else ${CERT_ENV} and ${KEY_ENV},
                     else client/ beside the profile (the dev layout)
exit codes: 0 success; 1 local error (flags, files, profile, credentials, input refused
            on this machine); 2 remote error (cluster unreachable, a node refused, no such key)."""

_KEY_FIELDS = (
    "fields: name, suite, threshold, signers_needed, public_key (hex), public_key_pem,\n"
    "        xpub (ecdsa-secp256k1 keys), xonly_public_key and taproot_output_key (bip340\n"
    "        keys), holders, committee, policy, epoch, state\n"
    "        (enabled, disabled, pending_deletion; mixed while a change reached some holders),\n"
    "        delete_at (UTC seconds, pending deletion), missing, other_epoch (holders an\n"
    "        interrupted refresh left at another epoch), exportable, exported, imported\n"
    "        (custody: booleans)."
)

_EPILOGS = {
    "create": f"""\
examples:
  keyshard key create treasury
  keyshard key create wallet --suite ecdsa-secp256k1 --format json
  keyshard key create payouts --approver HEX1 --approver HEX2 --quorum 2 --require sign
  keyshard key create vault --approver HEX1 --require decrypt --approval-lifetime 3600
  keyshard key create treasury --profile ./prod/profile.json --cert admin.pem --key admin-key.pem

suites: ed25519 (FROST, default), secp256k1 (FROST), ecdsa-secp256k1 (threshold ECDSA,
        needs n >= 2t+1 nodes; derives BIP-32 children), bip340 (BIP-340 Schnorr by FROST,
        BIP-445; Taproot output keys). ed25519 and secp256k1 keys also decrypt.
{_KEY_FIELDS}

{_CLUSTER_HELP}""",
    "info": f"""\
examples:
  keyshard key info treasury
  keyshard key info treasury --field public_key_pem > treasury.pem
  keyshard key info wallet --field xpub
  KEYSHARD_PROFILE=./prod/profile.json keyshard key info treasury --format json

{_KEY_FIELDS}

{_CLUSTER_HELP}""",
    "list": f"""\
examples:
  keyshard key list
  keyshard key list --format json
  keyshard key list --profile ./prod/profile.json

fields: name (one row per key).

{_CLUSTER_HELP}""",
    "approve": f"""\
examples:
  keyshard key approve payouts --approver-key alice.pem --file tx.bin > alice.json
  keyshard key approve payouts --approver-key alice.pem --op backup --recovery-key recovery.pub
  keyshard key approve payouts --approver-key alice.pem --op restore --file payouts.backup
  keyshard key approve payouts --approver-key bob.pem --op decrypt --context q3 < sealed.bin
  keyshard key approve wallet --approver-key alice.pem --path m/0/7 --file tx.bin
  keyshard key approve payouts --approver-key alice.pem --public-key HEX --file tx.bin

Prints the approval (JSON) for `keyshard key sign|decrypt --approval FILE`. The approval names
the key's public key (the child's under --path); without --public-key the cluster is asked.
--ttl may not exceed the key's approval lifetime (its policy's; 7 days when the policy sets
none or, with --public-key, cannot be read). Nodes spend a decrypt approval on its first use.
fields: version, key, group_public_key, operation, digest, not_after, approver, signature.

{_CLUSTER_HELP}""",
    "sign": f"""\
examples:
  keyshard key sign treasury --file message.bin
  printf 'wire 5 to 42' | keyshard key sign treasury
  keyshard key sign payouts --file tx.bin --approval alice.json --approval bob.json
  keyshard key sign wallet --file tx.bin --path m/0/7 --format json
  keyshard key sign wallet --file tx.bin --field compact
  keyshard key sign btc --file sighash.bin --taproot          bip340 keys: BIP-340 Schnorr

Prints the signature in hex: FROST (RFC 9591 encoding), for ECDSA keys the DER signature of
SHA-256(message), for bip340 keys the 64-byte BIP-340 signature of the message itself (a
sighash), for the x-only key or with --taproot its BIP-341 output key. Signatures are verified
before they are printed.
fields: key, suite, public_key (the key that verifies), signature; ECDSA keys also path,
        r, s, compact (r||s hex), recovery_id, hash; bip340 keys internal_key, taproot.

{_CLUSTER_HELP}""",
    "encrypt": f"""\
examples:
  keyshard key encrypt treasury --file payroll.csv --out payroll.sealed --context q3
  printf 'secret' | keyshard key encrypt treasury > sealed.bin
  keyshard key encrypt treasury --file payroll.csv --out payroll.sealed --format json

Encryption runs on this machine (threshold ECIES to the key; no node takes part). --context is
public associated data: decryption must repeat it exactly. Input beyond the SDK's MAX_PLAINTEXT
(just under 256 KiB) is refused (exit 1): encrypt a data key for more (README: envelope
encryption). Keys that cannot decrypt (ECDSA) are refused.
fields (--format json): key, context, length, out; ciphertext (hex) when there is no --out.

{_CLUSTER_HELP}""",
    "decrypt": f"""\
examples:
  keyshard key decrypt treasury --file payroll.sealed --context q3 --out payroll.csv
  keyshard key decrypt payouts --file sealed.bin --approval alice.json --approval bob.json

t+1 nodes each return a proven partial decryption; they are combined on this machine.
A truncated or altered ciphertext, or the wrong --context, is refused here (exit 1).
fields (--format json): key, context, length, out; plaintext (hex) when there is no --out.

{_CLUSTER_HELP}""",
    "backup": f"""\
examples:
  keyshard key backup treasury --recovery-key recovery.pub --out treasury.backup
  keyshard key backup payouts --recovery-key recovery.pub --out payouts.backup \\
      --approval alice.json --approval bob.json
  keyshard backup verify treasury.backup

The recovery key pair comes from `keyshard recovery-key generate --private recovery.pem
--public recovery.pub` (keep recovery.pem offline).
Every reachable holder (at least t+1) encrypts its own share to the recovery public key with a
proof that anyone can check WITHOUT the recovery key (`keyshard backup verify`). The file is
verified here before it is written; an existing --out is never overwritten. A key with an
approval policy needs its quorum, with approvals naming this recovery key
(`keyshard key approve NAME --op backup --recovery-key recovery.pub`).
fields: key, suite, epoch, created, threshold, public_key, recovery_key, holders, parties, policy,
        out, length.

{_CLUSTER_HELP}""",
    "restore": f"""\
examples:
  keyshard key restore treasury.backup --recovery-key recovery.pem
  keyshard key restore payouts.backup --recovery-key recovery.pem --nodes node-4,node-5,node-6 \\
      --approval alice.json

The backup is verified first. Party i goes to the i-th node; its share is decrypted on this
machine and sealed to that node's box key from its attestation document, addressed to that node,
key and package (one share at a time; this machine never combines them). Every node seals its
share pending, then all commit. A party the backup holds no share of is recorded and reported
missing. The backup's approval policy becomes the key's; a key with a policy needs its quorum
for the restore (`keyshard key approve NAME --op restore --file FILE`).
{_KEY_FIELDS}

{_CLUSTER_HELP}""",
}


# -- parsers ------------------------------------------------------------------------------


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser(
        "key",
        help="create threshold keys on a cluster; sign, encrypt and decrypt with them",
        description=(
            "Threshold keys held by a cluster's enclaves: created by DKG between the nodes,\n"
            "used by t+1 of them (2t+1 for threshold ECDSA). No machine ever holds a whole key.\n\n"
            + _CLUSTER_HELP
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    def verb(name: str, summary: str, description: str, *, named: bool = True) -> Any:
        parser = verbs.add_parser(
            name,
            help=summary,
            description=description,
            epilog=_EPILOGS[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if named:
            parser.add_argument("name", help="key name ([a-z0-9._-], up to 63)")
        _cluster_flags(parser)
        add_output_flags(parser)
        return parser

    create = verb(
        "create",
        "create a key by DKG among every node",
        "Create a threshold key by distributed key generation among every node of the cluster.\n"
        "An approval policy, if given, is fixed for the key's life.",
    )
    create.add_argument(
        "--suite",
        default="ed25519",
        help=(
            "ed25519 (default), secp256k1, ecdsa-secp256k1 (threshold ECDSA, n >= 2t+1), or "
            "bip340 (BIP-340 Schnorr by FROST, BIP-445; Taproot)"
        ),
    )
    create.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="t: any t+1 nodes sign (default: the largest t with a majority signing)",
    )
    create.add_argument(
        "--approver",
        action="append",
        default=[],
        metavar="HEX",
        help="an approver's Ed25519 public key (32 bytes hex; repeatable)",
    )
    create.add_argument("--quorum", type=int, default=None, help="approvals needed (default: all)")
    create.add_argument(
        "--require",
        default="sign,decrypt",
        help=(
            "operations that need approvals, of sign, decrypt, refresh, repair (default "
            "sign,decrypt); "
            "reshare, backup, restore and delete need them always"
        ),
    )
    create.add_argument(
        "--policy-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the approval policy as JSON: approver groups, quorums, mandatory nodes "
        "(see `keyshard key policy --help`); instead of --approver/--quorum/--require",
    )
    create.add_argument(
        "--approval-lifetime",
        type=int,
        default=None,
        metavar="SECONDS",
        help="the longest an approval may live (default 7 days, at most 30 days)",
    )
    create.set_defaults(handler=_create)

    info = verb(
        "info",
        "a key's public key (hex, PEM, xpub) as its holders agree on it",
        "Describe a key as its holders agree on it: suite, threshold, holders, policy, and the\n"
        "public key in hex, as PEM (SubjectPublicKeyInfo) and, for keys that derive BIP-32\n"
        "children, as an extended public key (xpub) a wallet can derive the same children from.",
    )
    info.set_defaults(handler=_info)

    listing = verb(
        "list",
        "the names of the keys the cluster holds",
        "List the names of the keys any reachable node holds.",
        named=False,
    )
    listing.set_defaults(handler=_list)

    _register_approve(verb)

    sign = verb(
        "sign",
        "sign a message (from --file or stdin): FROST, or ECDSA over SHA-256",
        "Sign a message read from --file or stdin with t+1 nodes (FROST), or 2t+1 nodes\n"
        "(threshold ECDSA over SHA-256 of the message, optionally under a BIP-32 child).",
    )
    sign.add_argument("--file", type=Path, default=None, help="message file (default: stdin)")
    _approval_flag(sign)
    _path_flag(sign)
    sign.add_argument(
        "--taproot",
        action="store_true",
        help="bip340 keys: sign for the BIP-341 Taproot output key of this internal key",
    )
    sign.add_argument(
        "--taproot-root",
        default="",
        metavar="HEX",
        help="with --taproot: the script tree's 32-byte merkle root (default: key path only)",
    )
    sign.set_defaults(handler=_sign)

    encrypt = verb(
        "encrypt",
        "encrypt to a key (on this machine; no node takes part)",
        "Encrypt data read from --file or stdin to a FROST key, bound to a public context.",
    )
    decrypt = verb(
        "decrypt",
        "threshold-decrypt with t+1 nodes",
        "Decrypt a ciphertext read from --file or stdin with t+1 nodes' partial decryptions.",
    )
    for parser, handler in ((encrypt, _encrypt), (decrypt, _decrypt)):
        parser.add_argument("--file", type=Path, default=None, help="input (default: stdin)")
        parser.add_argument("--out", type=Path, default=None, help="output (default: stdout)")
        parser.add_argument(
            "--context",
            default="",
            help="public associated data bound to the ciphertext (must match to decrypt)",
        )
        parser.set_defaults(handler=handler)
    _approval_flag(decrypt)

    from keyshard.cli import key_lifecycle  # noqa: PLC0415 -- the verbs that change a key

    _EPILOGS.update(
        {name: f"{text}\n\n{_CLUSTER_HELP}" for name, text in key_lifecycle.EPILOGS.items()}
    )
    key_lifecycle.register(verb, _approval_flag)
    from keyshard.cli import key_custody  # noqa: PLC0415 -- export, unwrap, import

    key_custody.register(verb, _approval_flag, create)
    _register_backup_verbs(verb)
    from keyshard.cli import key_policy  # noqa: PLC0415 -- who approves what, and its changes

    key_policy.register(verbs, _cluster_flags, _approval_flag, _CLUSTER_HELP)


def _register_approve(verb: Callable[..., Any]) -> None:
    """``key approve``: an approver signs one approval, on a machine that may be offline."""
    approve = verb(
        "approve",
        "sign an approval for one message or ciphertext (JSON on stdout)",
        "Sign, with an approver's private key, an approval of one message (sign) or one\n"
        "ciphertext and context (decrypt) for a key with an approval policy.",
    )
    approve.add_argument(
        "--approver-key",
        type=Path,
        required=True,
        metavar="FILE",
        help="the approver's private key (PEM, from `keyshard approver keygen`)",
    )
    approve.add_argument(
        "--op",
        choices=[
            "sign",
            "decrypt",
            "refresh",
            "reshare",
            "delete",
            "backup",
            "restore",
            "update-policy",
            "repair",
            "export",
        ],
        default="sign",
        help=(
            "what is approved (default sign); refresh/reshare/delete name the key's epoch, "
            "backup a recovery key, restore a backup file, update-policy a policy file, "
            "export a recipient (--to)"
        ),
    )
    approve.add_argument(
        "--node",
        default=None,
        help="--op repair: the node whose share is repaired",
    )
    approve.add_argument(
        "--threshold",
        type=int,
        default=None,
        help="--op reshare: the new committee's t (t+1 sign)",
    )
    approve.add_argument(
        "--recovery-key",
        type=Path,
        default=None,
        metavar="FILE",
        help="backup: the recovery public key (PEM) the backup will be encrypted to",
    )
    approve.add_argument(
        "--policy-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="update-policy: the new policy (JSON, as `key create --policy-file`)",
    )
    approve.add_argument(
        "--to",
        default=None,
        metavar="FILE|NODES",
        help=(
            "--op export: the recipient's X25519 public key (PEM) the export goes to; "
            "--op reshare: the new committee, comma-separated node ids"
        ),
    )
    approve.add_argument(
        "--days",
        type=int,
        default=30,
        help="--op delete: the waiting days of the deletion approved (default 30)",
    )
    approve.add_argument(
        "--epoch",
        type=int,
        default=None,
        help="refresh/reshare/delete: the key's epoch (default: ask the cluster)",
    )
    approve.add_argument("--file", type=Path, default=None, help="what to approve (default: stdin)")
    approve.add_argument(
        "--context", default="", help="decrypt: the associated data the ciphertext is bound to"
    )
    approve.add_argument(
        "--ttl",
        type=int,
        default=DEFAULT_TTL,
        help=f"seconds valid (default {DEFAULT_TTL}; at most the key's approval lifetime)",
    )
    approve.add_argument(
        "--public-key",
        default=None,
        metavar="HEX",
        help="the public key the approval names (default: ask the cluster)",
    )
    _path_flag(approve)
    approve.set_defaults(handler=_approve)


def _register_backup_verbs(verb: Callable[..., Any]) -> None:
    """``key backup`` and ``key restore`` (the offline verbs are ``keyshard backup ...``)."""
    backup = verb(
        "backup",
        "back up a key: each holder's share verifiably encrypted to a recovery key",
        "Back up a key: every reachable holder encrypts its share to an offline recovery key,\n"
        "with a proof anyone can check without that key (`keyshard backup verify`).",
    )
    backup.add_argument(
        "--recovery-key",
        type=Path,
        required=True,
        metavar="FILE",
        help="the recovery public key (PEM, from `keyshard recovery-key generate`)",
    )
    backup.add_argument(
        "--out", type=Path, required=True, help="the backup file to write (never overwritten)"
    )
    _approval_flag(backup)
    backup.set_defaults(handler=_backup)

    restore = verb(
        "restore",
        "re-deal a backup's shares into this cluster's attested enclaves",
        "Restore a key from a backup into the enclaves of this (possibly new) cluster: each\n"
        "share is decrypted here with the recovery key and sealed at once to its new node's\n"
        "attested box key. The key keeps its public key and approval policy.",
        named=False,
    )
    restore.add_argument("file", type=Path, help="the backup file (from `keyshard key backup`)")
    restore.add_argument(
        "--recovery-key",
        type=Path,
        required=True,
        metavar="FILE",
        help="the recovery PRIVATE key (PEM) the backup is encrypted to",
    )
    restore.add_argument(
        "--nodes",
        default=None,
        metavar="N1,N2,...",
        help="the new holders, party 1 first (default: the cluster's first n nodes, sorted)",
    )
    _approval_flag(restore)
    restore.set_defaults(handler=_restore)


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"cluster profile (dev or Terraform-rendered; env {PROFILE_ENV})",
    )
    where.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"dev cluster directory: DIR/{PROFILE_FILE} (env {DIR_ENV}; default {DEFAULT_DIR})",
    )
    parser.add_argument(
        "--cert",
        "--client-cert",
        dest="cert",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"client TLS certificate (env {CERT_ENV}; default: client/ beside the profile)",
    )
    parser.add_argument(
        "--key",
        "--client-key",
        dest="key",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"client TLS private key (env {KEY_ENV}; with --cert)",
    )


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
        help="ecdsa-secp256k1 keys: the non-hardened BIP-32 child m/i/j/... (default: the key)",
    )


# -- the cluster, and its errors -----------------------------------------------------------


def _profile_path(args: argparse.Namespace) -> Path:
    """The profile named by the flags or the environment (first match wins; module docstring)."""
    if args.profile is not None:
        return Path(args.profile)
    if args.dir is not None:
        return Path(args.dir) / PROFILE_FILE
    if os.environ.get(PROFILE_ENV):
        return Path(os.environ[PROFILE_ENV])
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR) / PROFILE_FILE


def _no_profile(path: Path) -> UsageError:
    return UsageError(
        f"no cluster profile at {path}. For a local dev cluster, run `keyshard dev up` (it "
        f"writes {DEFAULT_DIR}/{PROFILE_FILE}; --dir or {DIR_ENV} for another directory). For a "
        "deployed cluster, pass the profile the Terraform cluster-profile module rendered with "
        f"--profile PATH or {PROFILE_ENV}, and the client certificate and key with --cert/--key "
        f"or {CERT_ENV}/{KEY_ENV}."
    )


def _client(args: argparse.Namespace) -> AsyncClient:
    """The SDK client for the cluster the flags name. Building it reaches no node, so every
    failure here is local (exit 1), whatever class the SDK raises it as."""
    from keyshard.client.errors import ClientError  # noqa: PLC0415 -- lazy SDK
    from keyshard.client.sdk import AsyncClient  # noqa: PLC0415 -- lazy SDK

    path = _profile_path(args)
    if not path.exists():
        raise _no_profile(path)
    try:
        return AsyncClient.from_profile(path, cert=args.cert, key=args.key)
    except ClientError as error:
        raise UsageError(str(error)) from None


def _run(args: argparse.Namespace, work: Callable[[AsyncClient], Awaitable[_T]]) -> _T:
    """Run ``work`` against the cluster; SDK errors become exit 1 or 2 (``error.local``)."""
    from keyshard.client.errors import ClientError  # noqa: PLC0415 -- lazy SDK

    client = _client(args)

    async def main() -> _T:
        async with client:
            return await work(client)

    try:
        return asyncio.run(main())
    except ClientError as error:
        raise _cli_error(error, args) from None


def _cli_error(error: ClientError, args: argparse.Namespace) -> CliError:
    """The one line a user reads: "no such key" and "unreachable" never look alike."""
    from keyshard.client import errors  # noqa: PLC0415 -- lazy SDK

    if error.local:
        return UsageError(str(error))
    message = str(error)
    if isinstance(error, errors.KeyNotFoundError):
        message = (
            f"no such key: no reachable node of the cluster holds {error.name!r} "
            "(`keyshard key list` shows the keys it holds)"
        )
    elif isinstance(error, errors.UnavailableError) and error.have == 0:
        message = (
            f"cluster unreachable: no node answered (profile {_profile_path(args)}): is the "
            "cluster running, and do its nodes accept this client certificate?"
        )
    elif isinstance(error, errors.UnavailableError):
        message = f"too few nodes reachable: {error}"
    elif isinstance(error, errors.BindingError):
        message = f"node refused as unattested: {error}"
    elif isinstance(error, errors.ChannelError):
        message = f"node unreachable: {error}"
    elif isinstance(error, errors.ProtocolError) and error.culprit is not None:
        message = f"protocol failure: {error} (culprit: {error.culprit})"
    elif isinstance(error, errors.ProtocolError):
        message = f"protocol failure: {error}"
    return RemoteError(message)


def _local(work: Callable[[], _T]) -> _T:
    """Run SDK code that reaches no node (approval files, approver keys, policies): whatever it
    raises is about this machine's input, so exit 1."""
    from keyshard.client.errors import ClientError  # noqa: PLC0415 -- lazy SDK
    from wire.errors import MalformedMessageError  # noqa: PLC0415 -- lazy

    try:
        return work()
    except (ClientError, MalformedMessageError) as error:
        raise UsageError(str(error)) from None


# -- input and output ---------------------------------------------------------------------


def _read_limited(handle: BinaryIO, limit: int, what: str) -> bytes:
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise UsageError(f"{what} is longer than {limit} bytes")
    return data


def _read_input(path: Path | None, limit: int = MAX_INPUT) -> bytes:
    """The input (``--file`` or stdin), refused beyond ``limit`` bytes without reading further."""
    if path is None:
        return _read_limited(sys.stdin.buffer, limit, "stdin")
    try:
        with path.open("rb") as handle:
            return _read_limited(handle, limit, str(path))
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def _write_output(path: Path | None, data: bytes) -> None:
    if path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        path.write_bytes(data)
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None


def _read_approvals(paths: list[Path]) -> list[bytes]:
    from keyshard.client.approvals import approval_from_json  # noqa: PLC0415 -- lazy SDK

    encoded = []
    for path in paths:
        try:
            text = _read_input(path, MAX_APPROVAL_FILE).decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"{path} is not an approval (not UTF-8 text)") from None
        try:
            approval = _local(lambda: approval_from_json(text))  # noqa: B023 -- called at once
        except UsageError as error:
            raise UsageError(f"{path}: {error}") from None
        encoded.append(approval.encode())
    return encoded


def _binary_result(
    args: argparse.Namespace, data: bytes, field: str, record: dict[str, object]
) -> None:
    """``data`` raw to ``--out`` or stdout (text); or a record for ``--format json``/``--field``,
    which carries ``data`` in hex only when no ``--out`` took it."""
    if args.field is None and output_format(args) is OutputFormat.TEXT:
        _write_output(args.out, data)
        return
    if args.out is not None:
        _write_output(args.out, data)
    record |= {"length": len(data), "out": None if args.out is None else str(args.out)}
    if args.out is None:
        record[field] = data.hex()
    emit(args, record)


def _key_record(key: KeyDescription) -> dict[str, object]:
    from keyshard.client.governance import policy_to_json  # noqa: PLC0415 -- lazy SDK

    record: dict[str, object] = {
        "name": key.name,
        "suite": key.suite.name,
        "threshold": key.threshold,
        "signers_needed": key.signers_needed,
        "public_key": key.public_key.hex(),
        "public_key_pem": key.public_key_pem(),
    }
    xpub = key.xpub()
    if xpub is not None:
        record["xpub"] = xpub
    xonly = key.xonly_public_key()
    if xonly is not None:
        record["xonly_public_key"] = xonly.hex()
        record["taproot_output_key"] = (key.taproot_output_key() or b"").hex()
    policy = key.policy
    record |= {
        "holders": dict(sorted(key.holders.items())),
        "policy": policy_to_json(policy),
        "epoch": key.epoch,
        "missing": list(key.missing),
        "committee": sorted({*key.holders, *key.missing, *key.other_epoch}),
        "other_epoch": list(key.other_epoch),
        "state": key.state,
        "delete_at": key.delete_at,
        "exportable": key.exportable,
        "exported": key.exported,
        "imported": key.imported,
    }
    return record


def _key_text(record: Mapping[str, Any]) -> str:
    holders: Mapping[str, int] = record["holders"]
    policy: Mapping[str, Any] | None = record["policy"]
    rows = [
        ("name", record["name"]),
        ("suite", record["suite"]),
        ("threshold", f"{record['threshold']} (any {record['signers_needed']} holders sign)"),
        ("public_key", record["public_key"]),
    ]
    if "xpub" in record:
        rows.append(("xpub", record["xpub"]))
    if "xonly_public_key" in record:
        rows.append(("xonly", record["xonly_public_key"]))
        rows.append(("taproot", record["taproot_output_key"]))
    rows.append(("holders", ", ".join(f"{node}={index}" for node, index in holders.items())))
    rows.append(("epoch", str(record.get("epoch", 0))))
    state = str(record.get("state", "enabled"))
    if record.get("delete_at"):
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record["delete_at"]))
        state = f"{state} (erased at {when})"
    rows.append(("state", state))
    custody = [flag for flag in ("exportable", "exported", "imported") if record.get(flag)]
    rows.append(("custody", ", ".join(custody) or "never leaves the cluster"))
    if record["missing"]:
        lost = ", ".join(record["missing"])
        rows.append(("MISSING", f"{lost}: recorded holder(s) that lost their share"))
    if record.get("other_epoch"):
        behind = ", ".join(record["other_epoch"])
        rows.append(
            (
                "OTHER EPOCH",
                f"{behind}: an interrupted refresh or reshare (`key refresh` or `key reshare` ends it)",
            )
        )
    if policy is None:
        rows.append(("policy", "none"))
    else:
        rows.append(("policy", policy["summary"]))
        rows += [("approver", approver) for approver in policy["approvers"]]
        for group, members in policy.get("groups", {}).items():
            rows += [(f"  {group}", approver) for approver in members["approvers"]]
    lines = [f"{field:<12}  {value}" for field, value in rows]
    return "\n".join(lines) + "\n" + str(record["public_key_pem"]).rstrip("\n")


# -- handlers -----------------------------------------------------------------------------


def _policy(args: argparse.Namespace) -> ApprovalPolicy | None:
    """The :class:`~wire.approvals.ApprovalPolicy` the flags ask for, or None."""
    from wire.approvals import ApprovalPolicy, Operation  # noqa: PLC0415 -- lazy

    if getattr(args, "policy_file", None) is not None:  # `key import` takes the flags only
        if args.approver or args.quorum is not None or args.approval_lifetime is not None:
            raise UsageError("--policy-file replaces --approver, --quorum, --approval-lifetime")
        from keyshard.cli.key_policy import read_policy_file  # noqa: PLC0415

        return read_policy_file(args.policy_file)
    if not args.approver:
        if args.quorum is not None:
            raise UsageError("--quorum needs at least one --approver")
        if args.approval_lifetime is not None:
            raise UsageError("--approval-lifetime needs at least one --approver")
        return None
    try:
        approvers = tuple(bytes.fromhex(key) for key in args.approver)
        operations = frozenset(Operation(op.strip()) for op in args.require.split(","))
    except ValueError:
        raise UsageError(
            "--approver takes hex keys; --require takes operations (sign, decrypt, refresh, ...)"
        ) from None
    quorum = len(approvers) if args.quorum is None else args.quorum
    lifetime = args.approval_lifetime
    return _local(lambda: ApprovalPolicy(approvers, quorum, operations, lifetime))


def _create(args: argparse.Namespace) -> int:
    policy = _policy(args)
    if args.exportable and policy is None:
        raise UsageError("--exportable needs an approval policy (--approver)")
    key = _run(
        args,
        lambda c: c.create_key(
            args.name,
            suite=args.suite,
            threshold=args.threshold,
            policy=policy,
            exportable=args.exportable,
        ),
    )
    record = _key_record(key)
    emit(args, record, lambda: _key_text(record))
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    record = _key_record(_run(args, lambda c: c.describe_key(args.name)))
    emit(args, record, lambda: _key_text(record))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    names = _run(args, lambda c: c.list_keys())
    emit(args, [{"name": name} for name in names], "\n".join(names))
    return EXIT_OK


def _sign(args: argparse.Namespace) -> int:
    message = _read_input(args.file)
    approvals = _read_approvals(args.approval)

    async def work(c: AsyncClient) -> dict[str, object]:
        key = await c.describe_key(args.name)
        # The path is checked (and the signing key derived) before any presigning is spent.
        public = key.child_public_key(args.path)
        record: dict[str, object] = {"key": args.name, "suite": key.suite.name}
        if key.suite.scheme.value == "bip340":
            return await _sign_bip340(c, key, message, approvals, args)
        if args.taproot or args.taproot_root:
            raise UsageError("--taproot is for bip340 keys")
        if key.suite.scheme.value == "ecdsa":
            signed = await c.sign_ecdsa(args.name, message, approvals=approvals, path=args.path)
            record |= {
                "path": args.path or "m",
                "public_key": public.hex(),
                "signature": signed.to_der().hex(),
                "r": signed.r.to_bytes(32, "big").hex(),
                "s": signed.s.to_bytes(32, "big").hex(),
                "compact": signed.to_compact().hex(),
                "recovery_id": signed.recovery_id,
                "hash": "sha256",
            }
        else:
            signature = await c.sign(args.name, message, approvals=approvals)
            record |= {"public_key": public.hex(), "signature": signature.hex()}
        _check_signature(key, args.path, record, message)
        return record

    record = _run(args, work)
    emit(args, record, str(record["signature"]))
    return EXIT_OK


async def _sign_bip340(
    client: AsyncClient,
    key: KeyDescription,
    message: bytes,
    approvals: list[bytes],
    args: argparse.Namespace,
) -> dict[str, object]:
    """A BIP-340 signature (64 bytes), for the x-only key or its Taproot output key."""
    if args.path:
        raise UsageError("bip340 keys sign without a BIP-32 path (--taproot for Taproot)")
    try:
        root = bytes.fromhex(args.taproot_root)
    except ValueError:
        raise UsageError("--taproot-root takes 32 bytes of hex") from None
    if root and (len(root) != 32 or not args.taproot):
        raise UsageError("--taproot-root takes 32 bytes of hex, with --taproot")
    signing_key = key.taproot_output_key(root) if args.taproot else key.xonly_public_key()
    signature = await client.sign_bip340(
        args.name, message, taproot=args.taproot, merkle_root=root, approvals=approvals
    )
    return {
        "key": args.name,
        "suite": key.suite.name,
        "public_key": (signing_key or b"").hex(),
        "internal_key": (key.xonly_public_key() or b"").hex(),
        "taproot": args.taproot,
        "signature": signature.hex(),
    }


def _check_signature(
    key: KeyDescription, path: str, record: Mapping[str, object], message: bytes
) -> None:
    """Verify what is about to be printed, independently of the SDK, where ``cryptography`` can
    (Ed25519, ECDSA over SHA-256); the SDK has verified every signature already (FROST
    secp256k1 has no independent verifier here). A failure is the cluster's: exit 2."""
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415 -- lazy
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: PLC0415

    public = serialization.load_pem_public_key(key.public_key_pem(path).encode("ascii"))
    signature = bytes.fromhex(str(record["signature"]))
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, message)
        elif isinstance(public, ec.EllipticCurvePublicKey) and "recovery_id" in record:
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise RemoteError(
            f"the cluster returned a signature that does not verify under {key.name!r}"
        ) from None


def _encrypt(args: argparse.Namespace) -> int:
    from keyshard.client.sdk import MAX_PLAINTEXT  # noqa: PLC0415 -- lazy SDK

    plaintext = _read_input(args.file, MAX_PLAINTEXT)  # the one limit, refused before any work
    ciphertext = _run(
        args, lambda c: c.encrypt(args.name, plaintext, context=args.context.encode("utf-8"))
    )
    _binary_result(args, ciphertext, "ciphertext", {"key": args.name, "context": args.context})
    return EXIT_OK


def _decrypt(args: argparse.Namespace) -> int:
    from keyshard.client.sdk import MAX_CIPHERTEXT  # noqa: PLC0415 -- lazy SDK

    ciphertext = _read_input(args.file, MAX_CIPHERTEXT)  # whatever encrypt wrote
    approvals = _read_approvals(args.approval)
    plaintext = _run(
        args,
        lambda c: c.decrypt(
            args.name, ciphertext, context=args.context.encode("utf-8"), approvals=approvals
        ),
    )
    _binary_result(args, plaintext, "plaintext", {"key": args.name, "context": args.context})
    return EXIT_OK


def _approve(args: argparse.Namespace) -> int:
    from keyshard.client.approvals import (  # noqa: PLC0415 -- lazy SDK
        load_approver_key,
    )
    from wire.approvals import Operation  # noqa: PLC0415 -- lazy

    if args.public_key is not None and args.path:
        raise UsageError(
            "--path derives the child key from what the cluster reports: omit --public-key, "
            "or give the child's public key as --public-key without --path"
        )
    private_key = _local(lambda: load_approver_key(args.approver_key))
    operation = Operation(args.op)
    if operation in (Operation.SIGN, Operation.DECRYPT):
        digest, public_key, policy = _use_target(args, operation)
    else:
        digest, public_key, policy = _management_target(args, operation)
    return _emit_approval(
        args, private_key, operation=operation, digest=digest, public_key=public_key, policy=policy
    )


def _use_target(
    args: argparse.Namespace, operation: Any
) -> tuple[bytes, bytes, ApprovalPolicy | None]:
    """A sign or decrypt approval's digest (of the message, or the ciphertext and context), the
    key it names (a BIP-32 child's for --path) and the key's policy (None offline)."""
    from keyshard.client.sdk import MAX_CIPHERTEXT  # noqa: PLC0415 -- lazy SDK
    from wire.approvals import Operation, decryption_digest, message_digest  # noqa: PLC0415

    # a decrypt approval names a ciphertext: whatever `encrypt` wrote must be approvable
    limit = MAX_CIPHERTEXT if operation is Operation.DECRYPT else MAX_INPUT
    data = _read_input(args.file, limit)
    if operation is Operation.SIGN:
        digest = message_digest(data)
    else:
        digest = decryption_digest(data, args.context.encode("utf-8"))
    if args.public_key is not None:  # offline: the nodes' default lifetime caps the expiry
        return digest, _hex_arg("--public-key", args.public_key), None
    # approvals for a BIP-32 child name the child key, which is what signs
    public_key, policy = _run(args, lambda c: _approval_target(c, args.name, args.path))
    return digest, public_key, policy


def _management_target(
    args: argparse.Namespace, operation: Any
) -> tuple[bytes, bytes, ApprovalPolicy | None]:
    """The digest, key and policy of an approval that manages the key rather than uses it."""
    from wire.approvals import Operation  # noqa: PLC0415 -- lazy

    if operation is Operation.RESTORE:  # the backup file (--file) names key and package
        digest, (public_key, policy) = _restore_approval_target(args.file)
        return digest, public_key, policy
    if operation is Operation.BACKUP:  # the approval names the recovery key
        digest = _backup_approval_digest(args.recovery_key)
        if args.public_key is not None:
            return digest, _hex_arg("--public-key", args.public_key), None
        public_key, policy = _run(args, lambda c: _approval_target(c, args.name, ""))
        return digest, public_key, policy
    if operation is Operation.UPDATE_POLICY:
        from keyshard.cli.key_policy import update_approval_target  # noqa: PLC0415

        return update_approval_target(args, _run)
    return _lifecycle_target(args, operation)


def _hex_arg(flag: str, value: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise UsageError(f"{flag} takes hex") from None


def _lifecycle_detail(args: argparse.Namespace, operation: Any) -> bytes:
    """The parameters a lifecycle approval names besides the epoch: the repaired node, the
    deletion's waiting days, or the export's recipient key."""
    from wire.approvals import Operation  # noqa: PLC0415 -- lazy

    if args.to is not None and operation not in (Operation.EXPORT, Operation.RESHARE):
        raise UsageError("--to is for --op export and --op reshare")
    if operation is Operation.RESHARE:
        return _reshare_detail(args)
    if operation is Operation.REPAIR:
        if not args.node:
            raise UsageError("--op repair names the node repaired: --node NODE")
        return str(args.node).encode()
    if operation is Operation.DELETE:
        if not 7 <= args.days <= 30:
            raise UsageError("--days must be 7..30")
        return int(args.days).to_bytes(2, "big")
    if operation is Operation.EXPORT:
        if args.to is None:
            raise UsageError("--op export needs --to: the recipient's public key it goes to")
        from keyshard.cli.key_custody import recipient_of  # noqa: PLC0415 -- lazy

        return recipient_of(Path(args.to))
    return b""


def _lifecycle_target(
    args: argparse.Namespace, operation: Any
) -> tuple[bytes, bytes, ApprovalPolicy | None]:
    """A lifecycle approval's digest (operation, epoch, parameters), the key's public key and
    policy: asked of the cluster unless --public-key and --epoch are both given."""
    from wire.approvals import lifecycle_digest  # noqa: PLC0415 -- lazy

    if args.path:
        raise UsageError("--path is for sign approvals")
    detail = _lifecycle_detail(args, operation)
    policy: ApprovalPolicy | None = None
    if args.public_key is not None and args.epoch is not None:
        try:
            public_key = bytes.fromhex(args.public_key)
        except ValueError:
            raise UsageError("--public-key takes hex") from None
        epoch = args.epoch
    else:
        key = _run(args, lambda c: c.describe_key(args.name))
        public_key, policy, epoch = key.public_key, key.policy, key.epoch
        if args.epoch is not None and args.epoch != epoch:
            raise UsageError(f"the key is at epoch {epoch}, not {args.epoch}")
    try:
        digest = lifecycle_digest(operation, epoch, detail)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return digest, public_key, policy


def _reshare_detail(args: argparse.Namespace) -> bytes:
    """--op reshare: what the approval names besides the epoch — the new committee in the
    identifier order the SDK uses (sorted) and its threshold."""
    from keyshard.cli.key_lifecycle import committee  # noqa: PLC0415
    from wire.approvals import reshare_detail  # noqa: PLC0415 -- lazy

    if args.to is None or args.threshold is None:
        raise UsageError("--op reshare names the new committee: --to NODES --threshold T")
    try:
        return reshare_detail(sorted(committee(args.to)), args.threshold)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _emit_approval(
    args: argparse.Namespace,
    private_key: Any,
    *,
    operation: Any,
    digest: bytes,
    public_key: bytes,
    policy: ApprovalPolicy | None,
) -> int:
    from keyshard.client.approvals import (  # noqa: PLC0415 -- lazy SDK
        approval_expiry,
        approval_to_json,
        sign_approval,
    )

    not_after = _local(lambda: approval_expiry(args.ttl, policy, now=int(time.time())))
    approval = _local(
        lambda: sign_approval(
            private_key,
            key_name=args.name,
            group_public_key=public_key,
            operation=operation,
            digest=digest,
            not_after=not_after,
        )
    )
    text = approval_to_json(approval)
    record: dict[str, object] = json.loads(text)  # the file format is the record: one source
    emit(args, record, text)
    return EXIT_OK


async def _approval_target(
    client: AsyncClient, name: str, path: str
) -> tuple[bytes, ApprovalPolicy | None]:
    """The public key an approval names (the child's under ``path``) and the key's policy."""
    key = await client.describe_key(name)
    return key.child_public_key(path), key.policy


# -- backup -------------------------------------------------------------------------------


def _recovery_public_key(path: Path) -> bytes:
    from keyshard.client.backup import load_recovery_public_key  # noqa: PLC0415 -- lazy SDK

    pem = _read_input(path, MAX_APPROVAL_FILE)
    return _local(lambda: load_recovery_public_key(pem))


def _backup_approval_digest(path: Path | None) -> bytes:
    from wire.approvals import backup_digest  # noqa: PLC0415 -- lazy

    if path is None:
        raise UsageError("--op backup needs --recovery-key FILE (the key the backup names)")
    return backup_digest(_recovery_public_key(path))


def write_new_file(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a file that must not exist yet, created with ``mode`` (never widened by
    the umask's absence: the mode is set on the open descriptor)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise UsageError(f"{path} exists: refusing to overwrite it") from None
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)


def _backup(args: argparse.Namespace) -> int:
    recovery_key = _recovery_public_key(args.recovery_key)
    approvals = _read_approvals(args.approval)
    if args.out.exists():  # before the cluster does any work
        raise UsageError(f"{args.out} exists: refusing to overwrite it")
    backup = _run(args, lambda c: c.backup_key(args.name, recovery_key, approvals=approvals))
    data = backup.encode()
    write_new_file(args.out, data)
    record = backup.summary() | {"out": str(args.out), "length": len(data)}
    holders = ", ".join(share.node for share in backup.shares)
    emit(
        args,
        record,
        f"backed up {args.name} ({backup.suite.name}, epoch {backup.epoch}) to {args.out}: "
        f"shares of {holders}, verified",
    )
    return EXIT_OK


def _read_backup(path: Path | None) -> Any:
    """A backup file, decoded and verified (exit 1 for anything wrong with it)."""
    from keyshard.cli.backup_cmd import MAX_BACKUP  # noqa: PLC0415 -- lazy
    from keyshard.client.backup import Backup  # noqa: PLC0415 -- lazy SDK

    if path is None:
        raise UsageError("the backup file is read from --file")
    data = _read_input(path, MAX_BACKUP)

    def load() -> Backup:
        backup = Backup.decode(data)
        backup.verify()
        return backup

    return _local(load)


def _restore_approval_target(
    path: Path | None,
) -> tuple[bytes, tuple[bytes, ApprovalPolicy | None]]:
    """The digest a restore approval signs and, from the backup, the key and policy it names."""
    from wire.approvals import restore_digest  # noqa: PLC0415 -- lazy

    backup = _read_backup(path)
    public = backup.public
    return restore_digest(public.to_bytes()), (public.group_public_key.to_bytes(), backup.policy)


def _restore(args: argparse.Namespace) -> int:
    from keyshard.client.backup import load_recovery_private_key  # noqa: PLC0415 -- lazy SDK

    backup = _read_backup(args.file)
    pem = _read_input(args.recovery_key, MAX_APPROVAL_FILE)
    recovery = _local(lambda: load_recovery_private_key(pem))
    nodes = None if args.nodes is None else [n.strip() for n in args.nodes.split(",")]
    approvals = _read_approvals(args.approval)
    key = _run(args, lambda c: c.restore_key(backup, recovery, nodes=nodes, approvals=approvals))
    record = _key_record(key)
    emit(args, record, lambda: _key_text(record))
    return EXIT_OK
