"""tools/release_manifest.py and infra/image/build-eif.sh: measurements in, manifest out, and
every refusal that keeps a debug or mis-sized PCR out of a key policy."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "infra"
BUILD_EIF = REPO / "infra" / "image" / "build-eif.sh"
DIGEST = "sha256:" + hashlib.sha256(b"test image").hexdigest()


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "release_manifest", REPO / "tools" / "release_manifest.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["release_manifest"] = module
    spec.loader.exec_module(module)
    return module


rm = _load_tool()


def pcr(label: str) -> str:
    return hashlib.sha384(label.encode()).hexdigest()


def nitro_output(pcrs: dict[str, str], algorithm: str = "Sha384 { ... }") -> str:
    measurements = {"HashAlgorithm": algorithm, **{f"PCR{k}": v for k, v in pcrs.items()}}
    return "Start building the Enclave Image...\n" + json.dumps(
        {"Measurements": measurements}, indent=2
    )


GOOD = {"0": pcr("0"), "1": pcr("1"), "2": pcr("2")}


# --- parsing nitro-cli's output ---------------------------------------------------------------


def test_parses_build_enclave_output_after_progress_lines() -> None:
    text = (DATA / "nitro_cli_build_enclave.txt").read_text()
    measurements = rm.parse_nitro_cli_output(text)
    assert set(measurements.pcrs) == {"0", "1", "2"}
    assert measurements.pcrs["0"] == pcr("fixture unsigned PCR0")
    assert not measurements.signed


def test_parses_signed_build_with_pcr8() -> None:
    measurements = rm.parse_nitro_cli_output(
        (DATA / "nitro_cli_build_enclave_signed.txt").read_text()
    )
    assert measurements.signed
    assert measurements.pcrs["8"] == pcr("fixture signed PCR8")


def test_parses_describe_eif_json_without_progress() -> None:
    measurements = rm.parse_nitro_cli_output((DATA / "nitro_cli_describe_eif.json").read_text())
    assert measurements.pcrs["2"] == pcr("fixture describe PCR2")


@pytest.mark.parametrize(
    ("pcrs", "culprit"),
    [
        ({**GOOD, "0": "0" * 96}, "Measurements.PCR0"),
        ({**GOOD, "8": "0" * 96}, "Measurements.PCR8"),
        ({**GOOD, "1": pcr("1")[:64]}, "Measurements.PCR1"),
        ({**GOOD, "2": pcr("2").upper()}, "Measurements.PCR2"),
        ({"0": GOOD["0"], "2": GOOD["2"]}, "Measurements.PCR1"),
        ({**GOOD, "4": pcr("4")}, "Measurements.PCR4"),
    ],
    ids=["zero-pcr0", "zero-pcr8", "sha256-sized", "uppercase", "missing-pcr1", "extra-pcr4"],
)
def test_refuses_unsafe_measurements(pcrs: dict[str, str], culprit: str) -> None:
    with pytest.raises(rm.ManifestError) as caught:
        rm.parse_nitro_cli_output(nitro_output(pcrs))
    assert caught.value.field == culprit


def test_refuses_other_hash_algorithm() -> None:
    with pytest.raises(rm.ManifestError) as caught:
        rm.parse_nitro_cli_output(nitro_output(GOOD, algorithm="Sha256 { ... }"))
    assert caught.value.field == "Measurements.HashAlgorithm"


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("Enclave Image successfully created.\n", "nitro-cli output"),
        ('{"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": ', "nitro-cli output"),
        (nitro_output(GOOD) + "\n{}", "nitro-cli output"),
        ('{"Other": {}}', "Measurements"),
        (
            '{"Measurements": {"HashAlgorithm": "Sha384 { ... }", "Extra": "x"}}',
            "Measurements.Extra",
        ),
    ],
    ids=["no-json", "truncated", "trailing-object", "no-measurements", "non-pcr-key"],
)
def test_refuses_malformed_output(text: str, culprit: str) -> None:
    with pytest.raises(rm.ManifestError) as caught:
        rm.parse_nitro_cli_output(text)
    assert caught.value.field == culprit


@given(
    st.lists(st.binary(min_size=1, max_size=32), min_size=3, max_size=3, unique=True), st.booleans()
)
def test_any_valid_measurements_round_trip(seeds: list[bytes], signed: bool) -> None:
    pcrs = {str(i): hashlib.sha384(s).hexdigest() for i, s in zip((0, 1, 2), seeds, strict=True)}
    if signed:
        pcrs["8"] = hashlib.sha384(b"cert" + seeds[0]).hexdigest()
    manifest = rm.Manifest("1.2.3", DIGEST, rm.parse_nitro_cli_output(nitro_output(pcrs)))
    again = rm.manifest_from_json(json.loads(json.dumps(manifest.to_json())))
    assert again == manifest
    assert again.measurements.signed is signed


# --- the manifest document ---------------------------------------------------------------------


def test_committed_manifest_is_a_marked_example() -> None:
    path = REPO / "release" / "manifest.json"
    with pytest.raises(rm.ExampleManifestError) as caught:
        rm.load_manifest(path)
    assert caught.value.field == "example"
    manifest = rm.load_manifest(path, allow_example=True)
    assert manifest.example is True
    assert all(v.strip("0") for v in manifest.measurements.pcrs.values())


def test_schema_file_matches_the_loader() -> None:
    schema = json.loads((REPO / "release" / "manifest.schema.json").read_text())
    assert set(schema["required"]) == rm._TOP_LEVEL_REQUIRED
    assert set(schema["properties"]) == rm._TOP_LEVEL_REQUIRED | rm._TOP_LEVEL_OPTIONAL
    assert set(schema["properties"]["pcrs"]["properties"]) == set(
        rm.REQUIRED_PCRS + rm.OPTIONAL_PCRS
    )
    assert schema["properties"]["schema"]["const"] == rm.SCHEMA


def _document(**changes: object) -> dict[str, object]:
    base: dict[str, object] = rm.Manifest("0.2.0", DIGEST, rm.Measurements(GOOD)).to_json()
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("changes", "culprit"),
    [
        ({"schema": "keyshard.release-manifest.v2"}, "schema"),
        ({"hash_algorithm": "SHA256"}, "hash_algorithm"),
        ({"version": "latest"}, "version"),
        ({"image_digest": "sha256:" + "A" * 64}, "image_digest"),
        ({"example": "no"}, "example"),
        ({"pcrs": {**GOOD, "0": "0" * 96}}, "pcrs.0"),
        ({"pcr": GOOD}, "pcr"),
        ({"build": {"tool": "nitro-cli"}}, "build"),
        (
            {"build": {"tool": "nitro-cli", "source_date_epoch": True, "git_commit": "a" * 40}},
            "build.source_date_epoch",
        ),
        (
            {"build": {"tool": "nitro-cli", "source_date_epoch": 1, "git_commit": "HEAD"}},
            "build.git_commit",
        ),
    ],
)
def test_loader_refuses_bad_documents(changes: dict[str, object], culprit: str) -> None:
    with pytest.raises(rm.ManifestError) as caught:
        rm.manifest_from_json(_document(**changes))
    assert caught.value.field == culprit


def test_loader_refuses_missing_field_and_duplicate_keys(tmp_path: Path) -> None:
    document = _document()
    del document["image_digest"]
    with pytest.raises(rm.ManifestError) as caught:
        rm.manifest_from_json(document)
    assert caught.value.field == "image_digest"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(_document())[:-1] + ', "version": "9.9.9"}')
    with pytest.raises(rm.ManifestError) as caught:
        rm.load_manifest(path)
    assert caught.value.field == "version"


def test_written_manifest_is_deterministic_and_loads_back(tmp_path: Path) -> None:
    build = rm.BuildInfo("nitro-cli", 1_700_000_000, "c" * 40)
    manifest = rm.Manifest("0.2.0", DIGEST, rm.Measurements({**GOOD, "8": pcr("8")}), build=build)
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    rm.write_manifest(first, manifest)
    rm.write_manifest(second, manifest)
    assert first.read_bytes() == second.read_bytes()
    assert rm.load_manifest(first) == manifest
    assert list(json.loads(first.read_text())["pcrs"]) == ["0", "1", "2", "8"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.json", "b.json"]  # no temporary left behind


# --- the CLI and build-eif.sh -------------------------------------------------------------------


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, check=False, env=env, timeout=60
    )


def test_cli_writes_manifest_from_nitro_cli_output(tmp_path: Path) -> None:
    out = tmp_path / "manifest.json"
    result = _run(
        sys.executable, "tools/release_manifest.py", "from-nitro-cli",
        "--measurements", str(DATA / "nitro_cli_build_enclave_signed.txt"),
        "--version", "0.3.0", "--image-digest", DIGEST, "--git-commit", "d" * 40,
        "--source-date-epoch", "1700000000", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    manifest = rm.load_manifest(out)
    assert manifest.version == "0.3.0"
    assert manifest.measurements.pcrs["8"] == pcr("fixture signed PCR8")
    assert manifest.build == rm.BuildInfo("nitro-cli", 1700000000, "d" * 40)


def test_cli_refuses_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "out.txt"
    bad.write_text(nitro_output({**GOOD, "0": "0" * 96}))
    out = tmp_path / "manifest.json"
    result = _run(
        sys.executable, "tools/release_manifest.py", "from-nitro-cli", "--measurements", str(bad),
        "--version", "0.3.0", "--image-digest", DIGEST, "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 1
    assert "Measurements.PCR0" in result.stderr
    assert "all zeros" in result.stderr
    assert not out.exists()


def test_build_eif_refuses_without_nitro_cli(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    env = {**os.environ, "NITRO_CLI": str(tmp_path / "no-nitro-cli")}
    result = _run(
        "bash", str(BUILD_EIF), "--version", "0.3.0", "--manifest", str(manifest), env=env
    )
    assert result.returncode == 3
    assert "nitro-cli not found" in result.stderr
    assert "unchanged" in result.stderr
    assert not manifest.exists()


def test_build_eif_refuses_without_docker(tmp_path: Path) -> None:
    env = {**os.environ, "NITRO_CLI": "true", "DOCKER": str(tmp_path / "no-docker")}
    result = _run("bash", str(BUILD_EIF), "--manifest", str(tmp_path / "m.json"), env=env)
    assert result.returncode == 3
    assert "docker not found" in result.stderr


def test_build_eif_records_measurements_from_another_host(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    result = _run(
        "bash", str(BUILD_EIF), "--from-measurements", str(DATA / "nitro_cli_build_enclave.txt"),
        "--image-digest", DIGEST, "--version", "0.4.0", "--manifest", str(manifest),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    loaded = rm.load_manifest(manifest)
    assert loaded.version == "0.4.0"
    assert loaded.image_digest == DIGEST
    assert loaded.measurements.pcrs["1"] == pcr("fixture unsigned PCR1")


def test_build_eif_keeps_old_manifest_when_measurements_are_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text("previous release\n")
    bad = tmp_path / "bad.txt"
    bad.write_text(nitro_output({**GOOD, "2": "0" * 96}))
    result = _run(
        "bash", str(BUILD_EIF), "--from-measurements", str(bad), "--image-digest", DIGEST,
        "--version", "0.4.0", "--manifest", str(manifest),
    )  # fmt: skip
    assert result.returncode == 1
    assert "Measurements.PCR2" in result.stderr
    assert manifest.read_text() == "previous release\n"


def test_build_eif_usage_errors(tmp_path: Path) -> None:
    result = _run(
        "bash", str(BUILD_EIF), "--from-measurements", str(DATA / "nitro_cli_build_enclave.txt")
    )
    assert result.returncode == 2
    assert "--image-digest" in result.stderr
    assert _run("bash", str(BUILD_EIF), "--bogus").returncode == 2
