"""Fixtures for transport tests: a short runtime directory (sun_path is only 107 bytes)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A fresh directory with a short path, so socket paths stay well under the sun_path limit."""
    path = Path(tempfile.mkdtemp(prefix="kst", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
