"""``keyshard <group> <verb> [flags] [args]`` — the command line, in the manner of Vault's CLI.

Results go to stdout, diagnostics to stderr. Commands stay thin: parse, call the library, render
(through :mod:`keyshard.cli.output`). A handler returns an exit code or raises
:class:`~keyshard.cli.errors.CliError`, which :func:`main` reports as one line
``keyshard <group> <verb>: <message>`` on stderr:

* ``0`` — success;
* ``1`` — a local error (bad arguments, unreadable file, a check that failed on this machine);
* ``2`` — a remote error (a node, the KMS or a peer refused or failed).

Start-up: only the group named on the command line is imported
------------------------------------------------------------------
The groups' machinery (SDK, enclave and MPC code, boto3, the emulator) costs most of a second to
import, and the emulator is an optional extra. So this module knows each group from :data:`GROUPS`
(name, module, one-line help) and imports nothing else up front:

* ``keyshard --help`` and ``keyshard --version`` import no group module: the list of groups comes
  from :data:`GROUPS`;
* ``keyshard <group> ...`` imports that group's module and calls its ``register(groups)``; every
  other group gets a placeholder parser with its help line only (so a typo still lists choices).

A group module must therefore keep ``import <module>`` and ``register`` cheap:

1. its top level imports only the standard library and the light CLI modules
   (:mod:`~keyshard.cli.exit_codes`, :mod:`~keyshard.cli.errors`, :mod:`~keyshard.cli.output`) —
   never ``keyshard.client``, ``keyshard.dev.*``, ``attestation``, ``enclave``, ``parent``,
   ``transport``, boto3 or cryptography (``tests/cli/test_lazy_imports.py`` checks ``--help`` of
   every group in a fresh interpreter);
2. ``register(groups)`` adds the group's parser, with the same ``help=`` as its :data:`GROUPS`
   entry (a test checks), and its verbs, each with ``handler=`` set;
3. each handler imports what it needs inside its body (``# noqa: PLC0415``), so a missing optional
   dependency surfaces in the one command that needs it.

A module may register several groups: placeholders are
added only for names that the selected module did not register.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, NoReturn

from keyshard.cli.errors import CliError
from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR, EXIT_OK

Handler = Callable[[argparse.Namespace], int]


class Group(NamedTuple):
    """A command group: ``keyshard <name> ...`` is handled by ``module.register``."""

    name: str
    module: str
    help: str


#: Every command group, in the order ``keyshard --help`` lists them.
GROUPS: tuple[Group, ...] = (
    Group(
        "key",
        "keyshard.cli.key_cmd",
        "create threshold keys on a cluster; sign, encrypt and decrypt with them",
    ),
    Group(
        "approver", "keyshard.cli.approver_cmd", "approver keys for keys with an approval policy"
    ),
    Group(
        "attestation",
        "keyshard.cli.attestation_cmd",
        "inspect and verify Nitro attestation documents",
    ),
    Group(
        "dev",
        "keyshard.cli.dev_cmd",
        "run an emulated local cluster (emulated KMS, NSM and enclaves)",
    ),
    Group(
        "backup",
        "keyshard.cli.backup_cmd",
        "verify a key backup without the recovery key; the emergency reconstruct",
    ),
    Group(
        "recovery-key",
        "keyshard.cli.backup_cmd",
        "the offline recovery key pair that key backups are encrypted to",
    ),
    Group(
        "gateway",
        "keyshard.cli.gateway_cmd",
        "serve the AWS KMS API (boto3, AWS CLI) over the cluster's threshold keys",
    ),
    Group(
        "node",
        "keyshard.cli.node_cmd",
        "see a cluster's nodes: state, release, keys and pool levels",
    ),
    Group(
        "offline",
        "keyshard.cli.offline_cmd",
        "FROST and ECDSA signatures with a holder that has no network: files carried by hand",
    ),
    Group(
        "audit",
        "keyshard.cli.audit_cmd",
        "verify receipts and the nodes' signed audit logs; print stored records",
    ),
)

_DESCRIPTION = """\
Keyshard: threshold keys held by attested enclaves. No node ever holds a whole key;
every secret reaches an enclave only after its attestation document is verified."""
_EPILOG = """\
examples:
  keyshard dev up --nodes 3              start an emulated three-node cluster
  keyshard key create payments           create a threshold key by DKG
  keyshard attestation verify doc.bin    verify an attestation document
  keyshard <group> --help                the verbs of a group

output: --format text|json (env KEYSHARD_FORMAT) and --field NAME where a command prints a result.
exit codes: 0 success, 1 local error, 2 remote error.
"""


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; here 2 means a *remote* error, so usage errors exit 1."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_LOCAL_ERROR, f"{self.prog}: error: {message}\n")


class _VersionAction(argparse.Action):
    """``--version``: reads the installed version only when asked (importlib.metadata is not free)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version"
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> NoReturn:
        from keyshard import __version__  # noqa: PLC0415 -- only --version pays for the lookup

        print(f"keyshard {__version__}")
        parser.exit()


def selected_group(argv: Sequence[str]) -> str | None:
    """The group named on the command line: the first argument that is not a flag.

    The top-level parser has no flag that takes a value, so this is what argparse will choose.
    """
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: the named group fully registered, the others as placeholders.

    ``build_parser()`` with no ``argv`` registers every group (for documentation and tests).
    """
    parser = _Parser(
        prog="keyshard",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    groups = parser.add_subparsers(dest="group", metavar="<group>", required=True)
    wanted = None if argv is None else selected_group(argv)
    for group in GROUPS:
        if (argv is None or group.name == wanted) and group.name not in groups.choices:
            importlib.import_module(group.module).register(groups)
    for group in GROUPS:
        if group.name not in groups.choices:
            groups.add_parser(group.name, help=group.help)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    words = ["keyshard", getattr(args, "group", None), getattr(args, "verb", None)]
    return " ".join(word for word in words if isinstance(word, str))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.parse_args([*arguments, "--help"])
        return EXIT_LOCAL_ERROR
    try:
        return handler(args)
    except CliError as error:
        print(f"{_command_name(args)}: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("keyshard: interrupted", file=sys.stderr)
        return EXIT_LOCAL_ERROR
    except BrokenPipeError:  # `keyshard ... | head`: the reader left; not an error of ours
        # stdout is unusable now: point it at devnull so the interpreter's final flush is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
