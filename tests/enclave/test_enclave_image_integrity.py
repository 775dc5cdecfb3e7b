"""The enclave refuses to run project code loaded from outside its measured image."""

from __future__ import annotations

import types
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from enclave.errors import ImageIntegrityError
from enclave.image import ImageOnlyFinder, check_loaded_modules, image_root


def module(name: str, path: str | None) -> types.ModuleType:
    created = types.ModuleType(name)
    created.__file__ = path
    return created


def test_modules_inside_the_image_pass(tmp_path: Path) -> None:
    modules = {
        "enclave": module("enclave", str(tmp_path / "enclave/__init__.py")),
        "transport.unix": module("transport.unix", str(tmp_path / "transport/unix.py")),
        "json": module("json", "/usr/lib/python3/json/__init__.py"),  # not a project package
    }
    assert check_loaded_modules(tmp_path, modules) == 2


def test_a_module_from_elsewhere_is_refused(tmp_path: Path) -> None:
    modules = {
        "enclave.boot": module("enclave.boot", str(tmp_path / "enclave/boot.py")),
        "attestation.codec": module("attestation.codec", "/work/checkout/attestation/codec.py"),
    }
    with pytest.raises(ImageIntegrityError) as info:
        check_loaded_modules(tmp_path, modules)
    assert info.value.module == "attestation.codec"
    assert info.value.path == "/work/checkout/attestation/codec.py"


def test_a_symlink_escaping_the_image_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("")
    (tmp_path / "image" / "enclave").mkdir(parents=True)
    link = tmp_path / "image" / "enclave" / "evil.py"
    link.symlink_to(outside)
    with pytest.raises(ImageIntegrityError):
        check_loaded_modules(
            tmp_path / "image", {"enclave.evil": module("enclave.evil", str(link))}
        )


def test_code_without_a_file_is_refused_but_namespace_packages_pass(tmp_path: Path) -> None:
    with pytest.raises(ImageIntegrityError):
        check_loaded_modules(tmp_path, {"enclave.x": module("enclave.x", None)})
    namespace = module("enclave", None)
    spec = ModuleSpec("enclave", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    namespace.__spec__ = spec
    assert check_loaded_modules(tmp_path, {"enclave": namespace}) == 0


def test_this_test_process_runs_the_checkout() -> None:
    assert check_loaded_modules(image_root()) >= 3


def test_import_guard_resolves_inside_the_image_only(tmp_path: Path) -> None:
    image = tmp_path / "image"
    (image / "enclave").mkdir(parents=True)
    (image / "enclave" / "__init__.py").write_text("")
    (image / "enclave" / "present.py").write_text("")
    outside = tmp_path / "outside.py"
    outside.write_text("")
    (image / "enclave" / "escape.py").symlink_to(outside)
    finder = ImageOnlyFinder(image)
    package = finder.find_spec("enclave", None)
    assert package is not None
    assert package.origin == str(image / "enclave" / "__init__.py")
    search = [str(image / "enclave")]
    present = finder.find_spec("enclave.present", search)
    assert present is not None
    assert present.origin == str(image / "enclave" / "present.py")
    with pytest.raises(ModuleNotFoundError, match="not part of the enclave image"):
        finder.find_spec("enclave.absent", search)
    with pytest.raises(ModuleNotFoundError):
        finder.find_spec("transport", None)
    with pytest.raises(ImportError, match="outside the enclave image"):
        finder.find_spec("enclave.escape", search)
    assert finder.find_spec("json", None) is None  # not a project package: not its business
