"""Building the emulated enclave image: copy the enclave's packages, add its trust anchors, measure.

``nitro-cli build-enclave`` turns a container into an EIF and prints its PCRs; the emulated
equivalent is a directory ``<dir>/image`` holding exactly the packages the enclave imports
(``transport``, ``attestation``, ``enclave`` — see :data:`enclave.image.IMAGE_PACKAGES`) plus
``enclave/image.json`` (:class:`enclave.config.ImageConfig`: the pinned attestation root and the
trusted KMS key prefix). The enclave child runs *from* that directory and refuses to run code from
anywhere else, and the hypervisor measures the same directory, so one changed byte in the image is
one changed PCR0 and a KMS key policy pinned to the built measurements refuses it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from attestation.measure import Measurements, measure_image, pcr_map
from enclave.config import IMAGE_CONFIG_PATH, ImageConfig
from enclave.image import IMAGE_PACKAGES, image_root

__all__ = ["BuiltImage", "build_image", "source_root"]

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".*")


@dataclass(frozen=True, slots=True)
class BuiltImage:
    root: Path
    measurements: Measurements

    @property
    def pcrs(self) -> Mapping[int, bytes]:
        return pcr_map(self.measurements)


def source_root() -> Path:
    """The directory holding this checkout's enclave packages (where images are built from)."""
    return image_root()


def build_image(
    destination: Path, config: ImageConfig, *, source: Path | None = None
) -> BuiltImage:
    """Create (or replace) the image at ``destination`` and return it with its measurements."""
    origin = source_root() if source is None else source
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for package in IMAGE_PACKAGES:
        shutil.copytree(origin / package, destination / package, ignore=_IGNORED)
    (destination / IMAGE_CONFIG_PATH).write_text(config.to_json() + "\n", encoding="utf-8")
    return BuiltImage(destination, measure_image(destination, IMAGE_PACKAGES))


def remeasure(root: Path) -> BuiltImage:
    """The measurements of an existing image directory."""
    return BuiltImage(root, measure_image(root, IMAGE_PACKAGES))
