"""``keyshard approver keygen --out FILE`` — an approver's Ed25519 key pair.

The private key is written to ``--out`` (PKCS#8 PEM, created with mode 0600, never overwritten);
the public key is printed in hex, for ``keyshard key create --approver HEX``. Registered by
:mod:`keyshard.cli.key_cmd` (approvals exist only for keys).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR, EXIT_OK
from keyshard.client.approvals import generate_approver_key
from keyshard.client.errors import ClientError


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser(
        "approver",
        help="approver keys for keys with an approval policy",
        description="Approvers sign approvals the nodes require before signing or decrypting.",
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)
    keygen = verbs.add_parser("keygen", help="create an approver key pair")
    keygen.add_argument("--out", type=Path, required=True, help="private key file (0600 PEM)")
    keygen.add_argument("--format", choices=["hex", "json"], default="hex")
    keygen.set_defaults(handler=_keygen)


def _keygen(args: argparse.Namespace) -> int:
    try:
        public = generate_approver_key(args.out)
    except (ClientError, OSError) as error:
        print(f"keyshard approver keygen: {error}", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    if args.format == "json":
        print(json.dumps({"public_key": public.hex(), "private_key_file": str(args.out)}))
    else:
        print(public.hex())
    return EXIT_OK
