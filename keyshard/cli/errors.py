"""Errors a command raises for the entry point to report: one line on stderr, then the exit code.

A handler that cannot go on raises; :func:`keyshard.cli.main.main` prints
``keyshard <group> <verb>: <message>`` on stderr and returns the error's exit code (see
:mod:`keyshard.cli.exit_codes`)::

    CliError                  exit_code = 1 unless a subclass says otherwise
    ├── UsageError            1: a flag value, a file or an environment setting cannot be used
    │   └── UnknownFieldError 1: --field names nothing in the command's result
    ├── MissingExtraError     1: the command needs an optional dependency group not installed
    └── RemoteError           2: a node, the KMS or a peer refused or failed

Messages are about public data only (flag values, file names, field names); never put a secret in
one. Handlers may still return an exit code themselves (a refusal that prints its own line).
"""

from __future__ import annotations

from collections.abc import Iterable

from keyshard.cli.exit_codes import EXIT_LOCAL_ERROR, EXIT_REMOTE_ERROR

__all__ = ["CliError", "MissingExtraError", "RemoteError", "UnknownFieldError", "UsageError"]


class CliError(Exception):
    """A command failed; ``str(error)`` is the whole message, ``exit_code`` what the process returns."""

    exit_code: int = EXIT_LOCAL_ERROR


class UsageError(CliError):
    """A flag value, a file or an environment setting the user gave cannot be used."""


class UnknownFieldError(UsageError):
    """``--field NAME`` names nothing in the result; the message lists the fields there are."""

    def __init__(self, name: str, available: Iterable[str]) -> None:
        self.name = name
        self.available = tuple(available)
        listed = ", ".join(self.available) if self.available else "none"
        super().__init__(f"unknown field {name!r} (fields: {listed})")


class MissingExtraError(CliError):
    """The command needs packages from an optional extra: the message says what to install."""

    def __init__(self, extra: str, missing: str) -> None:
        self.extra = extra
        self.missing = missing
        super().__init__(
            f"this command needs the {extra!r} extra ({missing} is not installed): "
            f"pip install 'keyshard[{extra}]'"
        )


class RemoteError(CliError):
    """A node, the KMS or a peer refused or failed."""

    exit_code = EXIT_REMOTE_ERROR
