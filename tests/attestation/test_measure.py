"""PCR measurement: the documented definition recomputed independently, and every change to the
image's code changes the right registers (and nothing irrelevant does)."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attestation.errors import MeasurementError
from attestation.measure import (
    DEFAULT_PACKAGES,
    Measurements,
    extend_from_zero,
    measure_image,
    pcr_map,
)

REPO = Path(__file__).resolve().parents[2]


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


BASE = {
    "wire/__init__.py": b"",
    "transport/__init__.py": b"",
    "transport/framing.py": b"FRAME = 1\n",
    "attestation/__init__.py": b'"""doc"""\n',
    "attestation/roots.pem": b"-----BEGIN CERTIFICATE-----\n",
    "enclave/__init__.py": b"",
    "enclave/mpc/frost.py": b"def sign(): ...\n",
    "enclave/py.typed": b"",
}


def reference_listing_digest(domain: bytes, root: Path, packages: tuple[str, ...]) -> bytes:
    """The module docstring's definition, written out independently of the implementation."""
    files = []
    for package in packages:
        for dirpath, dirnames, filenames in os.walk(root / package):
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                    continue
                full = Path(dirpath) / name
                files.append((full.relative_to(root).as_posix().encode(), full.read_bytes()))
    files.sort()
    h = hashlib.sha384(struct.pack(">I", len(domain)) + domain)
    h.update(struct.pack(">I", len(packages)))
    for path, content in files:
        h.update(struct.pack(">I", len(path)) + path + struct.pack(">Q", len(content)) + content)
    return h.digest()


def test_definition_matches_the_docstring(tmp_path: Path) -> None:
    root = make_tree(tmp_path, BASE)
    measured = measure_image(root)
    assert measured.pcr0 == reference_listing_digest(
        b"keyshard/pcr0/image/v1", root, DEFAULT_PACKAGES
    )
    assert measured.pcr2 == reference_listing_digest(
        b"keyshard/pcr2/application/v1", root, ("enclave",)
    )
    runtime = hashlib.sha384(struct.pack(">I", 24) + b"keyshard/pcr1/runtime/v1")
    for value in (sys.implementation.name, sys.version, platform.system(), platform.machine()):
        runtime.update(struct.pack(">I", len(value.encode())) + value.encode())
    assert measured.pcr1 == runtime.digest()
    assert measured.image_sha384 == measured.pcr0
    assert {len(measured.pcr0), len(measured.pcr1), len(measured.pcr2)} == {48}


def test_measurement_is_deterministic_and_location_independent(tmp_path: Path) -> None:
    one = measure_image(make_tree(tmp_path / "one", BASE))
    two = measure_image(make_tree(tmp_path / "elsewhere" / "two", BASE))
    assert one == two


@pytest.mark.parametrize(
    ("relative", "pcr2_changes"),
    [
        ("enclave/mpc/frost.py", True),
        ("enclave/py.typed", True),
        ("attestation/__init__.py", False),
        ("attestation/roots.pem", False),
        ("transport/framing.py", False),
    ],
)
def test_one_changed_byte_changes_pcr0_and_pcr2_only_for_the_application(
    tmp_path: Path, relative: str, pcr2_changes: bool
) -> None:
    before = measure_image(make_tree(tmp_path / "a", BASE))
    changed = dict(BASE)
    content = bytearray(changed[relative] or b"\x00")
    content[0] ^= 0x01
    changed[relative] = bytes(content)
    after = measure_image(make_tree(tmp_path / "b", changed))
    assert after.pcr0 != before.pcr0
    assert (after.pcr2 != before.pcr2) is pcr2_changes
    assert after.pcr1 == before.pcr1


@pytest.mark.parametrize(
    "edit",
    [
        lambda files: files.update({"enclave/new.py": b""}),
        lambda files: files.pop("transport/framing.py"),
        lambda files: files.update({"enclave/mpc/frost2.py": files.pop("enclave/mpc/frost.py")}),
        lambda files: files.update({"attestation/framing.py": files.pop("transport/framing.py")}),
        lambda files: files.update({"enclave/mpc/__init__.py": b""}),
    ],
    ids=["add", "remove", "rename", "move-between-packages", "add-empty"],
)
def test_adding_removing_renaming_or_moving_a_file_changes_pcr0(
    tmp_path: Path, edit: object
) -> None:
    before = measure_image(make_tree(tmp_path / "a", BASE))
    files = dict(BASE)
    edit(files)  # type: ignore[operator]
    after = measure_image(make_tree(tmp_path / "b", files))
    assert after.pcr0 != before.pcr0


def test_framing_is_unambiguous(tmp_path: Path) -> None:
    """Moving bytes between a file's name and its content, or between files, changes PCR0."""
    a = measure_image(make_tree(tmp_path / "a", {**BASE, "enclave/ab": b"c"}))
    b = measure_image(make_tree(tmp_path / "b", {**BASE, "enclave/a": b"bc"}))
    c = measure_image(make_tree(tmp_path / "c", {**BASE, "enclave/a": b"b", "enclave/b": b"c"}))
    assert len({a.pcr0, b.pcr0, c.pcr0}) == 3


def test_caches_dotfiles_and_bytecode_are_ignored(tmp_path: Path) -> None:
    before = measure_image(make_tree(tmp_path / "a", BASE))
    noisy = {
        **BASE,
        "enclave/__pycache__/frost.cpython-311.pyc": b"\x00bytecode",
        "enclave/.frost.py.swp": b"editor",
        "transport/.hidden/x.py": b"x = 1",
    }
    after = measure_image(make_tree(tmp_path / "b", noisy))
    assert after == before


def test_symlinks_are_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "img", BASE)
    outside = tmp_path / "outside.py"
    outside.write_bytes(b"evil = True\n")
    (root / "enclave" / "linked.py").symlink_to(outside)
    with pytest.raises(MeasurementError, match=r"symbolic link enclave/linked\.py"):
        measure_image(root)
    (root / "enclave" / "linked.py").unlink()
    (root / "transport" / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(MeasurementError, match="symbolic link transport/linkdir"):
        measure_image(root)


@pytest.mark.parametrize(
    ("packages", "culprit"),
    [
        (("transport", "attestation"), "must contain the 'enclave' package"),
        (("enclave", "missing"), "missing or not a directory"),
        (("enclave", "enclave"), "without duplicates"),
        (("enclave", "../etc"), "invalid package name"),
        (("enclave", ".git"), "invalid package name"),
    ],
)
def test_bad_package_lists_are_refused(
    tmp_path: Path, packages: tuple[str, ...], culprit: str
) -> None:
    root = make_tree(tmp_path, BASE)
    with pytest.raises(MeasurementError, match=culprit):
        measure_image(root, packages)


def test_the_repository_itself_measures(tmp_path: Path) -> None:
    """The real enclave image: and a copy with one byte changed in the enclave package differs."""
    measured = measure_image(REPO)
    copy = tmp_path / "copy"
    for package in DEFAULT_PACKAGES:
        shutil.copytree(REPO / package, copy / package, symlinks=True)
    assert measure_image(copy) == measured
    target = copy / "enclave" / "__init__.py"
    target.write_bytes(target.read_bytes() + b"\n")
    changed = measure_image(copy)
    assert changed.pcr0 != measured.pcr0
    assert changed.pcr2 != measured.pcr2


def test_pcr_map_has_sixteen_48_byte_registers() -> None:
    measured = Measurements(pcr0=b"\x01" * 48, pcr1=b"\x02" * 48, pcr2=b"\x03" * 48)
    pcrs = pcr_map(measured)
    assert sorted(pcrs) == list(range(16))
    assert all(len(v) == 48 for v in pcrs.values())
    assert [pcrs[i] for i in (0, 1, 2)] == [measured.pcr0, measured.pcr1, measured.pcr2]
    assert all(pcrs[i] == bytes(48) for i in range(3, 16))


def test_pcr3_and_pcr4_are_extended_from_zero_like_nitro() -> None:
    measured = Measurements(pcr0=b"\x01" * 48, pcr1=b"\x02" * 48, pcr2=b"\x03" * 48)
    pcrs = pcr_map(measured, role="arn:aws:iam::123456789012:role/node", instance_id="i-0abc")
    expected_role = hashlib.sha384(b"\x00" * 48 + b"arn:aws:iam::123456789012:role/node").digest()
    assert pcrs[3] == expected_role
    assert pcrs[4] == hashlib.sha384(b"\x00" * 48 + b"i-0abc").digest()
    assert extend_from_zero(b"i-0abc") == pcrs[4]
    assert pcrs[8] == bytes(48)


@settings(max_examples=25)
@given(st.binary(min_size=1, max_size=64), st.integers(0, 63))
def test_any_single_byte_flip_in_the_application_changes_pcr0_and_pcr2(
    content: bytes, position: int
) -> None:
    position %= len(content)
    flipped = bytearray(content)
    flipped[position] ^= 0xFF
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        a = measure_image(make_tree(root / "a", {**BASE, "enclave/x.py": content}))
        b = measure_image(make_tree(root / "b", {**BASE, "enclave/x.py": bytes(flipped)}))
    assert a.pcr0 != b.pcr0
    assert a.pcr2 != b.pcr2
