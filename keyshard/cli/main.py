"""``keyshard <group> <verb> [flags] [args]`` — the command line, in the manner of Vault's CLI.

Each command group lives in its own module exposing ``register(subparsers)``; the group's verbs set
``handler`` on their parser. A handler returns an exit code:

* ``0`` — success;
* ``1`` — a local error (bad arguments, unreadable file, a check that failed on this machine);
* ``2`` — a remote error (a node, the KMS or a peer refused or failed).

Results go to stdout, diagnostics to stderr. Commands stay thin: parse, call the library, render.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import NoReturn

from keyshard.cli import attestation_cmd, dev_cmd, key_cmd
from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR

Handler = Callable[[argparse.Namespace], int]


def _command_groups() -> list[ModuleType]:
    """The command-group modules, in the order ``--help`` lists them."""
    return [attestation_cmd, dev_cmd, key_cmd]


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; here 2 means a *remote* error, so usage errors exit 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_LOCAL_ERROR, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="keyshard",
        description=(
            "Keyshard: threshold keys held by attested enclaves. No node ever holds a whole key; "
            "every secret reaches an enclave only after its attestation document is verified."
        ),
        epilog="Exit codes: 0 success, 1 local error, 2 remote error.",
    )
    groups = parser.add_subparsers(dest="group", metavar="<group>", required=True)
    for module in _command_groups():
        module.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return EXIT_LOCAL_ERROR
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("keyshard: interrupted", file=sys.stderr)
        return EXIT_LOCAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
