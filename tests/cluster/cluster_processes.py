"""Running a dev cluster for a test module, and finding its processes to assert that none
survives ``down``."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from keyshard.dev.cluster import Cluster

#: The environment a test of the CLI clears, so that only its own flags choose the cluster.
CLUSTER_ENV = (
    "KEYSHARD_PROFILE",
    "KEYSHARD_DEV_DIR",
    "KEYSHARD_CLIENT_CERT",
    "KEYSHARD_CLIENT_KEY",
    "KEYSHARD_FORMAT",
)


@contextlib.contextmanager
def running_cluster(
    prefix: str, nodes: int = 3, *, kms_route: Callable[[int], int] | None = None
) -> Iterator[Cluster]:
    """A dev cluster of ``nodes``, up, under a short ``/tmp`` path (its Unix-socket paths stay
    under the 107-byte limit); on exit none of its processes may survive, and it is removed.
    ``kms_route``: as :class:`Cluster` takes it (a relay between the parents and the KMS)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        with Cluster(path, nodes, kms_route=kms_route) as running:
            running.up(timeout=90)
            yield running
        assert cluster_processes(path) == []
    finally:
        shutil.rmtree(path, ignore_errors=True)


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


def cli_json(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """What a CLI command just printed with ``--format json``: one JSON object."""
    value = json.loads(capsys.readouterr().out)
    assert isinstance(value, dict)
    return value
