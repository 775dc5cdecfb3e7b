"""The emulated environment: the KMS-compatible endpoint, the emulated hypervisor and the local cluster.

Nothing here runs in real mode. Emulation is for development and tests, not a security boundary: every
process runs as the same user on one machine, and the emulated hypervisor holds the emulated CA key.

The emulated KMS needs the ``emulation`` extra (``moto[server]``: moto, werkzeug, flask), which a plain
``pip install keyshard`` leaves out. :func:`missing_emulation_module` lets a caller (``keyshard dev``)
say so in one line before importing anything from here, instead of failing deep in an import.
This package's ``__init__`` stays light (stdlib only): every import of a ``keyshard.dev`` module runs it.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EMULATION_EXTRA", "EMULATION_MODULES", "missing_emulation_module"]

#: The optional dependency group (``pip install 'keyshard[emulation]'``) the emulated KMS needs.
EMULATION_EXTRA = "emulation"

#: Top-level modules of that extra the emulated environment imports, checked in this order.
EMULATION_MODULES = ("werkzeug", "moto", "flask", "prometheus_client")


def missing_emulation_module() -> str | None:
    """The first module of the ``emulation`` extra that is not installed, or None if all are.

    Looks the modules up without importing them, so the check costs no start-up time.
    """
    for name in EMULATION_MODULES:
        if importlib.util.find_spec(name) is None:
            return name
    return None
