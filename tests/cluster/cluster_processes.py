"""Finding a cluster's processes, to assert that none survives ``down``."""

from __future__ import annotations

from pathlib import Path


def cluster_processes(directory: Path) -> list[int]:
    """Every live process whose command line mentions the cluster directory."""
    found = []
    marker = str(directory).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
