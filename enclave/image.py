"""Where the running enclave's code comes from, and proof that it all comes from there.

The image root is the directory holding the ``transport``, ``attestation`` and ``enclave``
packages the enclave runs; the emulated hypervisor measures exactly that directory into PCR0/PCR2
(:mod:`attestation.measure`), as ``nitro-cli`` measures an EIF. The measurement means something only
if every line of project code the enclave executes was loaded from there. In emulation the same
interpreter may also know a development checkout (an editable install), so two checks keep the enclave honest:

* :class:`ImageOnlyFinder`, installed first on ``sys.meta_path`` by the entry point before any other
  project import, resolves project modules *only* inside the image: a module missing from the image
  is a ``ModuleNotFoundError``, never a silent import from the checkout (which the editable
  install's finder would otherwise provide, even for a single missing submodule);
* :func:`check_loaded_modules` re-checks every loaded project module at boot, and the boot
  sequence refuses to run if any came from anywhere else.

The image's trust anchors (:class:`enclave.config.ImageConfig`) live *inside* the ``enclave``
package (``enclave/image.json``), so they are covered by PCR0 and PCR2 too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from types import ModuleType

from enclave.errors import ImageIntegrityError

__all__ = ["IMAGE_PACKAGES", "ImageOnlyFinder", "check_loaded_modules", "image_root"]

#: The packages an image holds (the measured set).
IMAGE_PACKAGES: tuple[str, ...] = ("wire", "transport", "attestation", "enclave")


def image_root() -> Path:
    """The directory that holds the running ``enclave`` package."""
    return Path(__file__).resolve().parent.parent


def check_loaded_modules(
    root: Path,
    modules: Mapping[str, ModuleType] | None = None,
    packages: Iterable[str] = IMAGE_PACKAGES,
) -> int:
    """Raise :class:`ImageIntegrityError` for a project module loaded from outside ``root``.

    Returns how many project modules were checked. A project module without a file is refused (it
    cannot have been measured) unless it is a namespace package, which runs no code of its own:
    its submodules are checked one by one.
    """
    loaded = sys.modules if modules is None else modules
    resolved_root = root.resolve()
    top_levels = frozenset(packages)
    checked = 0
    for name, module in list(loaded.items()):
        if name.split(".", 1)[0] not in top_levels:
            continue
        origin = getattr(module, "__file__", None)
        if not origin:
            spec = getattr(module, "__spec__", None)
            if spec is not None and spec.origin is None and spec.submodule_search_locations:
                continue
            raise ImageIntegrityError(name, "<no file>")
        path = Path(origin).resolve()
        if not path.is_relative_to(resolved_root):
            raise ImageIntegrityError(name, str(path))
        checked += 1
    return checked


class ImageOnlyFinder(MetaPathFinder):
    """A meta-path finder that resolves the image's packages inside the image root, or not at all."""

    def __init__(self, root: Path, packages: Iterable[str] = IMAGE_PACKAGES) -> None:
        self._root = root.resolve()
        self._packages = frozenset(packages)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname.split(".", 1)[0] not in self._packages:
            return None
        search = [str(self._root)] if "." not in fullname else list(path or [])
        spec = PathFinder.find_spec(fullname, search)
        if spec is None:
            raise ModuleNotFoundError(f"{fullname} is not part of the enclave image", name=fullname)
        locations = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
        for location in locations:
            if not Path(location).resolve().is_relative_to(self._root):
                raise ImportError(f"{fullname} resolves outside the enclave image", name=fullname)
        return spec

    @classmethod
    def install(cls, root: Path | None = None) -> ImageOnlyFinder:
        """Put the guard first on ``sys.meta_path`` (idempotent)."""
        for finder in sys.meta_path:
            if isinstance(finder, cls):
                return finder
        finder = cls(image_root() if root is None else root)
        sys.meta_path.insert(0, finder)
        return finder
