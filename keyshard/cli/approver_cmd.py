"""``keyshard approver keygen --out FILE`` — an approver's Ed25519 key pair.

The private key is written to ``--out`` (PKCS#8 PEM, created with mode 0600, never overwritten);
the public key is printed in hex, for ``keyshard key create --approver HEX``. Output goes through
:mod:`keyshard.cli.output` (``--format json`` adds the key file; ``--field public_key``). The
client SDK is imported inside the handler, so ``keyshard approver --help`` stays cheap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR, EXIT_OK
from keyshard.cli.output import add_output_flags, emit

_KEYGEN_EPILOG = """\
examples:
  keyshard approver keygen --out alice.pem
  keyshard key create payouts --approver "$(keyshard approver keygen --out bob.pem)" --quorum 1
  keyshard approver keygen --out carol.pem --format json

fields (--field, --format json): public_key (hex), private_key_file.
exit codes: 0 written; 1 the file exists (never overwritten) or cannot be written.
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser(
        "approver",
        help="approver keys for keys with an approval policy",
        description="Approvers sign approvals the nodes require before signing or decrypting.",
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)
    keygen = verbs.add_parser(
        "keygen",
        help="create an approver key pair",
        description=(
            "Create an Ed25519 approver key pair: the private key goes to --out (PKCS#8 PEM,\n"
            "mode 0600, never overwritten), the public key is printed in hex for\n"
            "'keyshard key create --approver HEX'."
        ),
        epilog=_KEYGEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keygen.add_argument("--out", type=Path, required=True, help="private key file (0600 PEM)")
    add_output_flags(keygen)
    keygen.set_defaults(handler=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    from keyshard.client.approvals import generate_approver_key  # noqa: PLC0415 -- lazy SDK
    from keyshard.client.errors import ClientError  # noqa: PLC0415 -- lazy SDK

    try:
        public = generate_approver_key(args.out)
    except (ClientError, OSError) as error:
        print(f"keyshard approver keygen: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    emit(args, {"public_key": public.hex(), "private_key_file": str(args.out)}, public.hex())
    return EXIT_OK
