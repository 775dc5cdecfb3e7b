"""Fixtures shared by the CLI tests that run against a module's dev cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from cluster_processes import CLUSTER_ENV

from keyshard.dev.cluster import Cluster


@pytest.fixture
def directory(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The module's cluster directory (its ``cluster`` fixture), with the environment that
    could choose another cluster cleared: only the test's own flags name it."""
    for name in CLUSTER_ENV:
        monkeypatch.delenv(name, raising=False)
    return cluster.directory
