"""``keyshard recovery-key generate`` and ``keyshard backup verify|reconstruct`` — offline, no cluster.

* ``recovery-key generate`` makes the offline recovery key pair a backup is encrypted to: the
  private key (PKCS#8 PEM, mode 0600) is meant for an offline safe, the public key (PEM) for
  ``keyshard key backup --recovery-key``.
* ``backup verify FILE`` checks, WITHOUT the recovery key, that the backup restores exactly its
  public key: the verification shares lie on one degree-t polynomial through the group key, and
  each holder's encrypted share is proven to decrypt to the discrete log of its verification
  share (:mod:`keyshard.client.backup`). Auditors run this; it needs nothing secret.
* ``backup reconstruct FILE --recovery-key recovery.pem --out key.pem`` is the EMERGENCY PATH:
  it assembles the whole private key on this machine — the one thing Keyshard otherwise never
  does. It verifies first, refuses a result that is not the backup's public key, writes a new
  0600 PEM, and asks for the key's name unless ``--yes``.

Backups and keys are read from files only, never from flag values. Exit 1 for anything refused
(all of it is local: a malformed or unverifiable backup, a wrong recovery key, an existing file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from keyshard.cli.errors import UsageError
from keyshard.cli.exit_codes import EXIT_OK
from keyshard.cli.output import add_output_flags, emit

if TYPE_CHECKING:
    from keyshard.client.backup import Backup

__all__ = ["MAX_BACKUP", "register"]

#: The largest backup file read: 16 holders x about 17 KiB of proof each, with room to spare.
MAX_BACKUP = 1024 * 1024
_MAX_KEY_FILE = 16 * 1024

EMERGENCY_BANNER = """\
*** EMERGENCY PATH: keyshard backup reconstruct ***
This assembles the WHOLE private key of {key!r} on this machine, outside every enclave.
Anyone who reads the output file holds the key. Use it only to recover from the loss of the
cluster; prefer `keyshard key restore` into attested enclaves when a cluster is available."""

_GENERATE_EPILOG = """\
examples:
  keyshard recovery-key generate --private recovery.pem --public recovery.pub
  keyshard key backup treasury --recovery-key recovery.pub --out treasury.backup

The private key (PKCS#8 PEM, mode 0600) opens every backup made to this key: keep it offline.
Neither file is ever overwritten.
fields: private_key_file, public_key_file, recovery_key (hex of the raw X25519 public key).
"""

_VERIFY_EPILOG = """\
examples:
  keyshard backup verify treasury.backup
  keyshard backup verify treasury.backup --format json

Needs no recovery key and no cluster. Exit 0: the backup restores exactly the public key it
names (printed); exit 1: it does not, with the check that failed.
fields: key, suite, epoch, created, threshold, public_key, recovery_key, holders, parties, policy,
        verified.
"""

_RECONSTRUCT_EPILOG = """\
examples:
  keyshard backup reconstruct treasury.backup --recovery-key recovery.pem --out treasury.pem

EMERGENCY PATH. Writes the private key as PEM (mode 0600, never overwritten): PKCS#8 EC for
secp256k1 keys (OpenSSL reads it); for Ed25519 keys the secret scalar in a block labelled
KEYSHARD ED25519 SECRET SCALAR (a DKG key has no RFC 8032 seed). Refuses unless the assembled
key's public key is the backup's. Asks for the key's name unless --yes.
fields: key, suite, public_key, out, emergency.
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    recovery = groups.add_parser(
        "recovery-key",
        help="the offline recovery key pair that key backups are encrypted to",
        description="Make the offline X25519 key pair that `keyshard key backup` encrypts to.",
    )
    recovery_verbs = recovery.add_subparsers(dest="verb", metavar="<verb>", required=True)
    generate = recovery_verbs.add_parser(
        "generate",
        help="create a recovery key pair (two PEM files)",
        description="Create an X25519 recovery key pair: private PEM (0600) and public PEM.",
        epilog=_GENERATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument("--private", type=Path, required=True, help="private key file (0600)")
    generate.add_argument("--public", type=Path, required=True, help="public key file")
    add_output_flags(generate)
    generate.set_defaults(handler=_generate)

    backup = groups.add_parser(
        "backup",
        help="verify a key backup without the recovery key; the emergency reconstruct",
        description="Offline checks of `keyshard key backup` files, and the emergency path.",
    )
    verbs = backup.add_subparsers(dest="verb", metavar="<verb>", required=True)
    verify = verbs.add_parser(
        "verify",
        help="check a backup restores exactly its public key (no recovery key needed)",
        description=(
            "Check, with public data only, that a backup restores exactly the public key it\n"
            "names: every encrypted share is proven to be the share of its verification share,\n"
            "and the verification shares are those of the group public key."
        ),
        epilog=_VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("file", type=Path, help="the backup file")
    add_output_flags(verify)
    verify.set_defaults(handler=_verify)

    reconstruct = verbs.add_parser(
        "reconstruct",
        help="EMERGENCY: assemble the whole private key offline from a backup",
        description=(
            "EMERGENCY PATH: assemble the whole private key on this machine from a backup and\n"
            "the recovery private key. Prefer restoring into enclaves."
        ),
        epilog=_RECONSTRUCT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reconstruct.add_argument("file", type=Path, help="the backup file")
    reconstruct.add_argument(
        "--recovery-key", type=Path, required=True, metavar="FILE", help="recovery private PEM"
    )
    reconstruct.add_argument(
        "--out", type=Path, required=True, help="private key PEM to write (0600, never overwritten)"
    )
    reconstruct.add_argument(
        "--yes", action="store_true", help="do not ask for the key's name to confirm"
    )
    add_output_flags(reconstruct)
    reconstruct.set_defaults(handler=_reconstruct)


def _read(path: Path, limit: int) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None
    if len(data) > limit:
        raise UsageError(f"{path} is longer than {limit} bytes")
    return data


def _generate(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import write_new_file  # noqa: PLC0415 -- lazy
    from keyshard.client.backup import (  # noqa: PLC0415 -- lazy SDK
        generate_recovery_key,
        load_recovery_public_key,
    )

    for path in (args.private, args.public):
        if path.exists():
            raise UsageError(f"{path} exists: refusing to overwrite it")
    private, public = generate_recovery_key()
    write_new_file(args.private, private, 0o600)
    write_new_file(args.public, public)
    raw = load_recovery_public_key(public)
    record = {
        "private_key_file": str(args.private),
        "public_key_file": str(args.public),
        "recovery_key": raw.hex(),
    }
    emit(args, record, f"recovery key {raw.hex()}: private {args.private}, public {args.public}")
    return EXIT_OK


def _load_backup(path: Path) -> Backup:
    from keyshard.client.backup import Backup  # noqa: PLC0415 -- lazy SDK
    from keyshard.client.errors import BackupError  # noqa: PLC0415 -- lazy SDK

    data = _read(path, MAX_BACKUP)
    try:
        backup = Backup.decode(data)
        backup.verify()
    except BackupError as error:
        raise UsageError(f"{path}: {error}") from None
    return backup


def _verify(args: argparse.Namespace) -> int:
    backup = _load_backup(args.file)
    record = backup.summary() | {"verified": True}
    emit(
        args,
        record,
        f"verified: {args.file} restores {backup.key_name} ({backup.suite.name}, epoch "
        f"{backup.epoch}), public key {record['public_key']}, from any "
        f"{backup.public.threshold + 1} of the shares of {', '.join(s.node for s in backup.shares)}",
    )
    return EXIT_OK


def _confirm(key_name: str) -> None:
    if not sys.stdin.isatty():
        raise UsageError("reconstruct asks for confirmation: pass --yes when not interactive")
    print(f"type the key's name ({key_name}) to assemble it: ", end="", file=sys.stderr)
    sys.stderr.flush()
    if sys.stdin.readline().strip() != key_name:
        raise UsageError("not confirmed: nothing was written")


def _reconstruct(args: argparse.Namespace) -> int:
    from keyshard.cli.key_cmd import write_new_file  # noqa: PLC0415 -- lazy
    from keyshard.client.backup import (  # noqa: PLC0415 -- lazy SDK
        load_recovery_private_key,
        private_key_pem,
    )
    from keyshard.client.errors import BackupError  # noqa: PLC0415 -- lazy SDK

    if args.out.exists():
        raise UsageError(f"{args.out} exists: refusing to overwrite it")
    backup = _load_backup(args.file)
    print(EMERGENCY_BANNER.format(key=backup.key_name), file=sys.stderr)
    if not args.yes:
        _confirm(backup.key_name)
    try:
        recovery = load_recovery_private_key(_read(args.recovery_key, _MAX_KEY_FILE))
        secret = backup.reconstruct(recovery)
    except BackupError as error:
        raise UsageError(str(error)) from None
    write_new_file(args.out, private_key_pem(backup.suite, secret), 0o600)
    public_key = backup.public.group_public_key.to_bytes().hex()
    record = {
        "key": backup.key_name,
        "suite": backup.suite.name,
        "public_key": public_key,
        "out": str(args.out),
        "emergency": True,
    }
    emit(
        args,
        record,
        f"EMERGENCY PATH: the private key of {backup.key_name} (public key {public_key}) is in "
        f"{args.out} (mode 0600). Destroy it when the recovery is done.",
    )
    return EXIT_OK
