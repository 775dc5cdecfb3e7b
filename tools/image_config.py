"""Write the enclave's ``enclave/image.json`` for a Nitro release, validated by the enclave itself.

``image.json`` is part of the measured image (PCR0/PCR2): it holds the trust anchors the enclave
pins (:class:`enclave.config.ImageConfig`) — the attestation root, the KMS key ARN prefix of the
account/region whose keys it accepts, the oldest attestation document it admits from a peer, the
launch values a Nitro EIF cannot take on its command line, and the client certificates the node
service admits. ``infra/image/build-eif.sh`` calls this tool before ``docker build``; the Dockerfile
copies the result to ``/opt/keyshard/app/enclave/image.json`` (``enclave.config.IMAGE_CONFIG_PATH``
under the image root).

The format is never re-implemented here: the document is produced by ``ImageConfig.to_json`` and
read back through ``ImageConfig.load`` and ``LaunchConfig.check_against``, the same code the enclave
runs at boot, so a format change in the enclave breaks this tool's tests instead of a release.

On top of what the enclave accepts, a *release* refuses (fail closed, each a way to ship an image
that trusts the wrong party or cannot serve):

* an attestation root other than the AWS Nitro Enclaves root (pinned by the SHA-256 of its DER) —
  an emulated or home-made root would let anyone forge attestation documents;
* a KMS prefix wider than one account in one region (``arn:aws:kms:<region>:<account>:key/``);
* no authorised client (the node service would not start) or the same client twice;
* missing launch values: a Nitro EIF's command line is baked into it, so ``node_id``,
  ``kms_key_id``, ``region`` and ``cid`` must all be in the image.

Usage::

    python tools/image_config.py write --out build/image/image.json \\
        --attestation-root attestation/aws_nitro_root_g1.pem \\
        --kms-key-arn-prefix arn:aws:kms:eu-west-1:111111111111:key/ \\
        --client-cert ops.pem [--client-cert ...] [--max-document-age 300] \\
        --node-id a --kms-key-id arn:aws:kms:eu-west-1:111111111111:key/... \\
        --region eu-west-1 [--cid 16]
    python tools/image_config.py check build/image/image.json

Run it with the project's Python (``.venv/bin/python``: it imports ``enclave.config``, which needs
``cryptography``). Exit codes: 0 written/valid, 1 refused (nothing written), 2 bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from enclave.config import IMAGE_CONFIG_PATH, ImageConfig, parse_launch_args
from enclave.errors import ConfigError

__all__ = [
    "AWS_NITRO_ROOT_SHA256",
    "DEFAULT_CID",
    "ImageConfigError",
    "ImageInputs",
    "build_image_config",
    "check_image_config",
    "main",
    "write_image_config",
]

#: SHA-256 of the DER of the AWS Nitro Enclaves root G1 (CN=aws.nitro-enclaves), as AWS publishes it.
AWS_NITRO_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
#: The enclave CID the parent's launcher gives (parent-config's enclave_cid default).
DEFAULT_CID = 16

_PREFIX = re.compile(r"arn:aws(-[a-z]+)*:kms:[a-z]{2}(-[a-z]+)+-\d:\d{12}:key/")


class ImageConfigError(Exception):
    """An input a release must not ship; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ImageInputs:
    """The explicit inputs of one image's ``image.json`` (PEMs as bytes, as read from files)."""

    attestation_root_pem: bytes
    kms_key_arn_prefix: str
    client_cert_pems: tuple[bytes, ...]
    node_id: str
    kms_key_id: str
    region: str
    cid: int = DEFAULT_CID
    max_document_age_seconds: int = 300


def _der_sha256(pem: bytes, field: str) -> str:
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ImageConfigError(field, "not a PEM X.509 certificate") from None
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def _release_checks(config: ImageConfig) -> None:
    """What a release refuses beyond the enclave's own parser (see the module docstring)."""
    root = _der_sha256(config.attestation_root_pem, "attestation_root_pem")
    if root != AWS_NITRO_ROOT_SHA256:
        raise ImageConfigError(
            "attestation_root_pem", f"is {root}, not the AWS Nitro root {AWS_NITRO_ROOT_SHA256}"
        )
    if not _PREFIX.fullmatch(config.kms_key_arn_prefix):
        raise ImageConfigError(
            "kms_key_arn_prefix", "must be exactly arn:aws:kms:<region>:<12-digit account>:key/"
        )
    if not config.authorized_clients:
        raise ImageConfigError("authorized_clients", "at least one client certificate is needed")
    seen: set[str] = set()
    for index, pem in enumerate(config.authorized_clients):
        digest = _der_sha256(pem, f"authorized_clients[{index}]")
        if digest in seen:
            raise ImageConfigError(f"authorized_clients[{index}]", "duplicate certificate")
        seen.add(digest)
    missing = sorted({"node_id", "kms_key_id", "region", "cid"} - set(config.launch))
    if missing:
        raise ImageConfigError("launch", f"missing {missing}: a Nitro EIF bakes its command line")
    try:
        parse_launch_args(["--mode", "nitro"], config.launch).check_against(config)
    except ConfigError as error:
        raise ImageConfigError(f"launch.{error.field}", error.reason) from None


def build_image_config(inputs: ImageInputs) -> ImageConfig:
    """The validated :class:`ImageConfig` for ``inputs``; raises :class:`ImageConfigError`."""
    try:
        config = ImageConfig(
            kms_key_arn_prefix=inputs.kms_key_arn_prefix,
            attestation_root_pem=inputs.attestation_root_pem,
            max_document_age_seconds=inputs.max_document_age_seconds,
            launch={
                "node_id": inputs.node_id,
                "kms_key_id": inputs.kms_key_id,
                "region": inputs.region,
                "cid": inputs.cid,
            },
            authorized_clients=inputs.client_cert_pems,
        )
    except ConfigError as error:
        raise ImageConfigError(error.field, error.reason) from None
    _release_checks(config)
    # Through the enclave's own loader: what it cannot read back, the enclave could not boot with.
    return _load_text(config.to_json() + "\n")


def _load_text(text: str) -> ImageConfig:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / IMAGE_CONFIG_PATH
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
        try:
            return ImageConfig.load(Path(scratch))
        except ConfigError as error:
            raise ImageConfigError(error.field, error.reason) from None


def check_image_config(path: Path) -> ImageConfig:
    """Load ``path`` exactly as the enclave would, then apply the release checks."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ImageConfigError("image.json", f"cannot read {path}") from None
    config = _load_text(text)
    _release_checks(config)
    return config


def write_image_config(inputs: ImageInputs, out: Path) -> ImageConfig:
    """Validate, then write ``out`` atomically (nothing is written when a check refuses)."""
    config = build_image_config(inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out.parent, prefix=".image-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(config.to_json() + "\n")
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return config


def _read(path: str, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        raise ImageConfigError(field, f"cannot read {path}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/image_config.py", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write image.json from explicit inputs")
    write.add_argument("--out", required=True)
    write.add_argument("--attestation-root", required=True, help="PEM file of the AWS Nitro root")
    write.add_argument("--kms-key-arn-prefix", required=True)
    write.add_argument("--client-cert", action="append", default=[], help="PEM file (repeat)")
    write.add_argument("--max-document-age", type=int, default=300, help="seconds")
    write.add_argument("--node-id", required=True)
    write.add_argument("--kms-key-id", required=True)
    write.add_argument("--region", required=True)
    write.add_argument("--cid", type=int, default=DEFAULT_CID)
    check = commands.add_parser("check", help="validate an existing image.json")
    check.add_argument("path")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:
        return 0 if exit_.code == 0 else 2
    try:
        if args.command == "check":
            config = check_image_config(Path(args.path))
        else:
            inputs = ImageInputs(
                attestation_root_pem=_read(args.attestation_root, "attestation_root_pem"),
                kms_key_arn_prefix=args.kms_key_arn_prefix,
                client_cert_pems=tuple(
                    _read(path, f"authorized_clients[{i}]")
                    for i, path in enumerate(args.client_cert)
                ),
                node_id=args.node_id,
                kms_key_id=args.kms_key_id,
                region=args.region,
                cid=args.cid,
                max_document_age_seconds=args.max_document_age,
            )
            config = write_image_config(inputs, Path(args.out))
    except ImageConfigError as error:
        print(f"image_config: refused: {error}", file=sys.stderr)
        return 1
    print(
        f"image.json valid: node {config.launch['node_id']}, "
        f"{len(config.authorized_clients)} authorised client(s), "
        f"keys under {config.kms_key_arn_prefix}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
