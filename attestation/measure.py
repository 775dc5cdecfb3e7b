"""PCR measurement of the emulated enclave: the code that runs is the code that is attested.

On real Nitro, ``nitro-cli build-enclave`` measures the enclave image file (EIF) and the NSM reports:

=====  =======================================  ==========================================
PCR    real Nitro (EIF)                          emulated Keyshard enclave (this module)
=====  =======================================  ==========================================
0      the whole image (kernel, ramdisks, cmd)   the whole image: every file of the enclave's
                                                 packages (``wire``, ``transport``,
                                                 ``attestation``, ``enclave``)
1      the Linux kernel and boot ramdisk         the "kernel and boot": the Python
                                                 implementation, version and platform
2      the application (user ramdisks)           the application: the ``enclave`` package
3      SHA384(0^48 || parent's IAM role ARN)     SHA384(0^48 || role name), if given
4      SHA384(0^48 || parent's instance id)      SHA384(0^48 || instance id), if given
8      the EIF signing certificate               zero (emulated images are not signed)
=====  =======================================  ==========================================

KMS key policies name PCR0 as ``kms:RecipientAttestation:ImageSha384``; here too
``Measurements.image_sha384 == pcr0``.

Exact definitions (all hashes SHA-384; ``u32``/``u64`` are big-endian lengths)::

    listing(packages) = for each file, sorted by its relative POSIX path p (as UTF-8 bytes):
                            u32(len(p)) || p || u64(len(content)) || content
    PCR0 = SHA384("keyshard/pcr0/image/v1"  || u32(len(packages)) || listing(packages))
    PCR1 = SHA384("keyshard/pcr1/runtime/v1" || for each of (implementation name, full
                  ``sys.version``, OS name, machine): u32(len(s)) || s)
    PCR2 = SHA384("keyshard/pcr2/application/v1" || u32(1) || listing(("enclave",)))

where the files of a package are every regular file under ``<root_dir>/<package>/``, skipping
``__pycache__`` directories and names starting with ``.`` (editor and VCS droppings are not part of
an installed package). A ``.pyc``/``.pyo`` anywhere else is refused: Python imports such a file as a
sourceless module, so it is code, and leaving it unmeasured would let it run under the released
PCR0. ``__pycache__`` holds caches of measured sources, which CPython loads when their header
matches the source's size and mtime — a header anyone who can write the image can forge — so a
runtime that trusts this measurement must not read an image's caches: the emulated launcher
(:class:`parent.launcher.ChildProcessLauncher`) gives every enclave boot a fresh private
``PYTHONPYCACHEPREFIX``, so CPython ignores the image's ``__pycache__`` and compiles the measured
sources. (A real EIF is measured whole, caches included.) ``p`` includes the package name, so moving
a file between packages changes PCR0. Symbolic links are refused: a link could point outside the
measured tree. One changed byte, one added, removed or renamed file changes PCR0 (and PCR2 if it is
in ``enclave``). The domain strings keep the three registers from ever colliding.
"""

from __future__ import annotations

import hashlib
import platform
import struct
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from attestation.errors import MeasurementError

__all__ = [
    "DEFAULT_PACKAGES",
    "PCR_SIZE",
    "Measurements",
    "extend_from_zero",
    "measure_image",
    "measure_packages",
    "measure_runtime",
    "pcr_map",
]

DEFAULT_PACKAGES: tuple[str, ...] = ("wire", "transport", "attestation", "enclave")
APPLICATION_PACKAGE = "enclave"
PCR_SIZE = 48
_BOOT_PCRS = 16
_BYTECODE_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True, slots=True)
class Measurements:
    """The three measured registers of an emulated enclave image (48 bytes each)."""

    pcr0: bytes
    pcr1: bytes
    pcr2: bytes

    @property
    def image_sha384(self) -> bytes:
        """What KMS calls ``ImageSha384``: PCR0."""
        return self.pcr0


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _files(root: Path, package: str) -> Iterable[tuple[str, Path]]:
    base = root / package
    if base.is_symlink() or not base.is_dir():
        raise MeasurementError(f"package directory {base} is missing or not a directory")
    for path in base.rglob("*"):
        relative = path.relative_to(root)
        if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink():
            raise MeasurementError(f"refusing to measure symbolic link {relative.as_posix()}")
        if path.is_dir():
            continue
        if path.suffix in _BYTECODE_SUFFIXES:
            # Outside __pycache__ (skipped above) bytecode is importable on its own (a sourceless
            # module): skipping it would leave code the enclave can run out of PCR0.
            raise MeasurementError(f"refusing to measure sourceless bytecode {relative.as_posix()}")
        if not path.is_file():
            raise MeasurementError(f"{relative.as_posix()} is not a regular file")
        yield relative.as_posix(), path


def measure_packages(root_dir: Path, packages: Iterable[str], domain: bytes) -> bytes:
    """SHA-384 over the canonical listing of ``packages`` (see the module docstring)."""
    names = tuple(packages)
    if len(set(names)) != len(names) or not names:
        raise MeasurementError("packages must be a non-empty list without duplicates")
    entries: list[tuple[bytes, Path]] = []
    for package in names:
        if not package or "/" in package or package.startswith("."):
            raise MeasurementError(f"invalid package name {package!r}")
        entries.extend((relative.encode(), path) for relative, path in _files(root_dir, package))
    entries.sort(key=lambda entry: entry[0])
    digest = hashlib.sha384(_field(domain))
    digest.update(struct.pack(">I", len(names)))
    for relative, path in entries:
        content = path.read_bytes()
        digest.update(_field(relative))
        digest.update(struct.pack(">Q", len(content)))
        digest.update(content)
    return digest.digest()


def measure_runtime() -> bytes:
    """PCR1: the interpreter and platform the image runs on (the emulated "kernel and boot")."""
    digest = hashlib.sha384(_field(b"keyshard/pcr1/runtime/v1"))
    for value in (sys.implementation.name, sys.version, platform.system(), platform.machine()):
        digest.update(_field(value.encode()))
    return digest.digest()


def measure_image(root_dir: Path | str, packages: Iterable[str] = DEFAULT_PACKAGES) -> Measurements:
    """Measure the enclave image rooted at ``root_dir`` (the directory holding the packages)."""
    root = Path(root_dir)
    names = tuple(packages)
    if APPLICATION_PACKAGE not in names:
        raise MeasurementError(f"the image must contain the {APPLICATION_PACKAGE!r} package")
    return Measurements(
        pcr0=measure_packages(root, names, b"keyshard/pcr0/image/v1"),
        pcr1=measure_runtime(),
        pcr2=measure_packages(root, (APPLICATION_PACKAGE,), b"keyshard/pcr2/application/v1"),
    )


def extend_from_zero(data: bytes) -> bytes:
    """A PCR extended once from zero: ``SHA384(0^48 || data)`` (how Nitro fills PCR3 and PCR4)."""
    return hashlib.sha384(bytes(PCR_SIZE) + data).digest()


def pcr_map(
    measurements: Measurements,
    *,
    role: str | None = None,
    instance_id: str | None = None,
) -> Mapping[int, bytes]:
    """PCR0-15 as an emulated NSM reports them: measured 0/1/2, optional 3/4, zeros elsewhere."""
    pcrs = dict.fromkeys(range(_BOOT_PCRS), bytes(PCR_SIZE))
    pcrs[0], pcrs[1], pcrs[2] = measurements.pcr0, measurements.pcr1, measurements.pcr2
    if role is not None:
        pcrs[3] = extend_from_zero(role.encode())
    if instance_id is not None:
        pcrs[4] = extend_from_zero(instance_id.encode())
    return pcrs
