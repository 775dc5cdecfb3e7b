"""The release manifest: the single source of the measurements that key policies and clients pin.

``release/manifest.json`` records, for one enclave release, its version, the OCI image digest it was
built from, and the PCRs that ``nitro-cli build-enclave`` measured (PCR0/1/2, and PCR8 when the EIF
is signed). Terraform reads it from disk to write the KMS key policies (``kms:RecipientAttestation``
conditions); clients read it to build their attestation policy. So this module is strict in both
directions: it only writes what it can validate, and it refuses to load anything it would not write.

Fail-closed rules, each a known way to end up trusting the wrong enclave:

* an all-zero PCR is refused: debug-mode enclaves report PCR0/1/2/8 as zeros, so a policy pinning
  zeros admits any debug enclave, whose memory the parent can read;
* every PCR is exactly 48 bytes (96 lowercase hex characters) of SHA-384, the only algorithm
  ``nitro-cli`` uses (``"HashAlgorithm": "Sha384 { ... }"``);
* PCR0, PCR1 and PCR2 are all required; PCR8 is optional; no other index is accepted;
* unknown fields are refused, so a typo never silently drops a pin;
* a manifest written without a real build carries ``"example": true`` and is refused by
  :func:`load_manifest` unless the caller explicitly allows examples.

The module is standard-library only: ``infra/image/build-eif.sh`` runs it on a build host with the
system Python, outside any virtualenv.

Usage::

    python3 tools/release_manifest.py from-nitro-cli --measurements build.json \\
        --version 0.2.0 --image-digest sha256:... --out release/manifest.json
    python3 tools/release_manifest.py check release/manifest.json [--allow-example]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = "keyshard.release-manifest.v1"
HASH_ALGORITHM = "SHA384"
REQUIRED_PCRS = ("0", "1", "2")
OPTIONAL_PCRS = ("8",)
PCR_HEX_LENGTH = 96  # SHA-384: 48 bytes

_PCR_HEX = re.compile(r"^[0-9a-f]{96}$")
_IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Semantic version, optionally with a pre-release tag: it names files and cloud labels downstream.
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")

_TOP_LEVEL_REQUIRED = frozenset(
    {"schema", "example", "version", "image_digest", "hash_algorithm", "pcrs"}
)
_TOP_LEVEL_OPTIONAL = frozenset({"build"})
_BUILD_FIELDS = frozenset({"tool", "source_date_epoch", "git_commit"})


class ManifestError(ValueError):
    """A manifest, or the ``nitro-cli`` output it is made from, is malformed or unsafe.

    ``field`` names the culprit (``"pcrs.0"``, ``"image_digest"``, ``"Measurements.HashAlgorithm"``)
    so an operator can fix the input; the values involved are public measurements, never secrets.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ExampleManifestError(ManifestError):
    """The manifest is marked as an example: its PCRs match no real image."""


@dataclass(frozen=True, slots=True)
class Measurements:
    """PCRs of one EIF, keyed by decimal index ("0", "1", "2", optionally "8"), lowercase hex."""

    pcrs: Mapping[str, str]

    def __post_init__(self) -> None:
        _check_pcrs(self.pcrs, "pcrs")

    @property
    def signed(self) -> bool:
        """Whether the EIF was signed (PCR8 is the hash of the signing certificate)."""
        return "8" in self.pcrs


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """How the release was built: enough to reproduce it, nothing that varies between builders."""

    tool: str
    source_date_epoch: int
    git_commit: str

    def __post_init__(self) -> None:
        if not self.tool or len(self.tool) > 64:
            raise ManifestError("build.tool", "must be a non-empty name of at most 64 characters")
        if isinstance(self.source_date_epoch, bool) or not isinstance(self.source_date_epoch, int):
            raise ManifestError("build.source_date_epoch", "must be an integer")
        if self.source_date_epoch < 0:
            raise ManifestError("build.source_date_epoch", "must not be negative")
        if not isinstance(self.git_commit, str) or not _COMMIT.match(self.git_commit):
            raise ManifestError("build.git_commit", "must be a 40-character lowercase hex commit")


@dataclass(frozen=True, slots=True)
class Manifest:
    """One release: what it is called, what it was built from, what it measures to."""

    version: str
    image_digest: str
    measurements: Measurements
    example: bool = False
    build: BuildInfo | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not _VERSION.match(self.version):
            raise ManifestError("version", "must be a semantic version such as 1.2.3")
        if not isinstance(self.image_digest, str) or not _IMAGE_DIGEST.match(self.image_digest):
            raise ManifestError("image_digest", "must be sha256:<64 lowercase hex>")
        if not isinstance(self.example, bool):
            raise ManifestError("example", "must be true or false")

    def to_json(self) -> dict[str, Any]:
        """The manifest document, keys in a fixed order so that equal manifests are equal bytes."""
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "example": self.example,
            "version": self.version,
            "image_digest": self.image_digest,
            "hash_algorithm": HASH_ALGORITHM,
            "pcrs": {
                index: self.measurements.pcrs[index]
                for index in sorted(self.measurements.pcrs, key=int)
            },
        }
        if self.build is not None:
            document["build"] = {
                "tool": self.build.tool,
                "source_date_epoch": self.build.source_date_epoch,
                "git_commit": self.build.git_commit,
            }
        return document


def _check_pcrs(pcrs: Mapping[str, Any], where: str) -> None:
    if not isinstance(pcrs, Mapping):
        raise ManifestError(where, "must be an object mapping PCR index to hex")
    for index in REQUIRED_PCRS:
        if index not in pcrs:
            raise ManifestError(f"{where}.{index}", "is required")
    for index, value in pcrs.items():
        if index not in REQUIRED_PCRS + OPTIONAL_PCRS:
            raise ManifestError(f"{where}.{index}", "only PCR 0, 1, 2 and 8 are pinned")
        if not isinstance(value, str) or not _PCR_HEX.match(value):
            raise ManifestError(
                f"{where}.{index}", f"must be {PCR_HEX_LENGTH} lowercase hex characters (SHA-384)"
            )
        if value.strip("0") == "":
            raise ManifestError(
                f"{where}.{index}", "is all zeros, the value of a debug-mode enclave"
            )


def parse_nitro_cli_output(text: str) -> Measurements:
    """Extract the measurements from what ``nitro-cli build-enclave`` (or ``describe-eif``) printed.

    nitro-cli prints progress lines ("Start building the Enclave Image...") and then a JSON object
    ``{"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": ..., "PCR1": ..., "PCR2": ...}}``,
    with ``PCR8`` added for a signed image. The JSON object starts at the first line that begins with
    ``{``; anything after it is refused, as is any hash algorithm other than SHA-384.
    """
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("{")), None)
    if start is None:
        raise ManifestError("nitro-cli output", "contains no JSON object")
    body = "".join(lines[start:])
    try:
        document, end = json.JSONDecoder().raw_decode(body.lstrip())
    except json.JSONDecodeError as exc:
        raise ManifestError("nitro-cli output", f"is not valid JSON ({exc.msg})") from None
    if body.lstrip()[end:].strip():
        raise ManifestError("nitro-cli output", "has trailing data after the JSON object")
    if not isinstance(document, dict) or not isinstance(document.get("Measurements"), dict):
        raise ManifestError("Measurements", "is missing")
    measured: dict[str, Any] = document["Measurements"]
    algorithm = measured.get("HashAlgorithm")
    if not isinstance(algorithm, str) or not algorithm.startswith("Sha384"):
        raise ManifestError("Measurements.HashAlgorithm", f"must be Sha384, got {algorithm!r}")
    pcrs: dict[str, Any] = {}
    for key, value in measured.items():
        if key == "HashAlgorithm":
            continue
        match = re.fullmatch(r"PCR([0-9]{1,2})", key)
        if match is None:
            raise ManifestError(f"Measurements.{key}", "is not a PCR")
        pcrs[str(int(match.group(1)))] = value
    try:
        return Measurements(pcrs=pcrs)
    except ManifestError as exc:
        raise ManifestError(exc.field.replace("pcrs.", "Measurements.PCR"), exc.reason) from None


def manifest_from_json(document: Any, *, allow_example: bool = False) -> Manifest:
    """Validate a manifest document strictly (unknown or missing fields are errors)."""
    if not isinstance(document, dict):
        raise ManifestError("manifest", "must be a JSON object")
    keys = set(document)
    missing = sorted(_TOP_LEVEL_REQUIRED - keys)
    if missing:
        raise ManifestError(missing[0], "is required")
    unknown = sorted(keys - _TOP_LEVEL_REQUIRED - _TOP_LEVEL_OPTIONAL)
    if unknown:
        raise ManifestError(unknown[0], "is not a manifest field")
    if document["schema"] != SCHEMA:
        raise ManifestError("schema", f"must be {SCHEMA!r}")
    if document["hash_algorithm"] != HASH_ALGORITHM:
        raise ManifestError("hash_algorithm", f"must be {HASH_ALGORITHM!r}")
    build = None
    if "build" in document:
        raw = document["build"]
        if not isinstance(raw, dict) or set(raw) != _BUILD_FIELDS:
            raise ManifestError("build", f"must have exactly the fields {sorted(_BUILD_FIELDS)}")
        build = BuildInfo(
            tool=raw["tool"],
            source_date_epoch=raw["source_date_epoch"],
            git_commit=raw["git_commit"],
        )
    manifest = Manifest(
        version=document["version"],
        image_digest=document["image_digest"],
        measurements=Measurements(pcrs=document["pcrs"]),
        example=document["example"],
        build=build,
    )
    if manifest.example and not allow_example:
        raise ExampleManifestError(
            "example", "this manifest is an example; its PCRs match no real image"
        )
    return manifest


def load_manifest(path: Path, *, allow_example: bool = False) -> Manifest:
    """Read and validate a manifest file (duplicate JSON keys are refused)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ManifestError(key, "appears twice")
            result[key] = value
        return result

    try:
        document = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise ManifestError("manifest", f"is not valid JSON ({exc.msg})") from None
    return manifest_from_json(document, allow_example=allow_example)


def write_manifest(path: Path, manifest: Manifest) -> None:
    """Write the manifest atomically (temporary file, fsync, rename): never a half-written file."""
    data = json.dumps(manifest.to_json(), indent=2) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="release_manifest", description=__doc__.split("\n\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    make = verbs.add_parser(
        "from-nitro-cli", help="write a manifest from nitro-cli build-enclave output"
    )
    make.add_argument(
        "--measurements", type=Path, required=True, help="file holding nitro-cli's output"
    )
    make.add_argument("--version", required=True)
    make.add_argument("--image-digest", required=True)
    make.add_argument("--git-commit", help="40-hex commit the release was built from")
    make.add_argument("--source-date-epoch", type=int, help="SOURCE_DATE_EPOCH used for the build")
    make.add_argument("--out", type=Path, required=True)
    check = verbs.add_parser("check", help="validate a manifest")
    check.add_argument("path", type=Path)
    check.add_argument("--allow-example", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 on success, 1 on any refusal (the reason on stderr)."""
    args = _build_parser().parse_args(argv)
    try:
        if args.verb == "from-nitro-cli":
            measurements = parse_nitro_cli_output(args.measurements.read_text(encoding="utf-8"))
            build = None
            if args.git_commit is not None or args.source_date_epoch is not None:
                if args.git_commit is None or args.source_date_epoch is None:
                    raise ManifestError("build", "give both --git-commit and --source-date-epoch")
                build = BuildInfo("nitro-cli", args.source_date_epoch, args.git_commit)
            manifest = Manifest(
                args.version, args.image_digest, measurements, example=False, build=build
            )
            write_manifest(args.out, manifest)
            print(
                f"wrote {args.out}: release {manifest.version}, PCRs {sorted(measurements.pcrs, key=int)}"
            )
        else:
            manifest = load_manifest(args.path, allow_example=args.allow_example)
            print(
                f"{args.path}: release {manifest.version} ok{' (EXAMPLE)' if manifest.example else ''}"
            )
    except (ManifestError, OSError) as exc:
        print(f"release_manifest: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
