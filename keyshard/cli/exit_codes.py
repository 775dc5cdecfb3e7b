"""The exit codes every ``keyshard`` command uses, in the manner of Vault's CLI.

* ``EXIT_OK`` (0) — success;
* ``EXIT_LOCAL_ERROR`` (1) — a local error: bad arguments, an unreadable file, a check that failed on
  this machine (an attestation document refused by ``keyshard attestation verify`` is one);
* ``EXIT_REMOTE_ERROR`` (2) — a node, the KMS or a peer refused or failed.

One module owns them so that no command can drift from the contract scripts rely on.
"""

from __future__ import annotations

__all__ = ["EXIT_LOCAL_ERROR", "EXIT_OK", "EXIT_REMOTE_ERROR"]

EXIT_OK = 0
EXIT_LOCAL_ERROR = 1
EXIT_REMOTE_ERROR = 2
