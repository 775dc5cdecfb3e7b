"""Write the enclave's ``enclave/image.json`` for a Nitro release, validated by the enclave itself.

``image.json`` is part of the measured image (PCR0/PCR2): it holds the trust anchors the enclave
pins and the cluster table (:class:`enclave.config.ImageConfig`, format 2) — the attestation root,
every node id with the KMS key ARN that seals that node's state, the oldest attestation document it
admits from a peer, and the client certificates the node service admits. ONE image serves every
node of the cluster (one PCR0 for clients to pin and peers to compare); each parent names its node
at boot (``parent-config``'s ``node_id``), and the enclave uses the table's key for that id only.
``infra/image/build-eif.sh`` calls this tool before ``docker build``; the Dockerfile copies the
result to ``/opt/keyshard/app/enclave/image.json`` (``enclave.config.IMAGE_CONFIG_PATH`` under the
image root).

The format is never re-implemented here: the document is produced by ``ImageConfig.to_json`` and
read back through ``ImageConfig.load``, the same code the enclave runs at boot, so a format change
in the enclave breaks this tool's tests instead of a release.

On top of what the enclave accepts, a *release* refuses (fail closed, each a way to ship an image
that trusts the wrong party or cannot serve):

* an attestation root other than the AWS Nitro Enclaves root (pinned by the SHA-256 of its DER) —
  an emulated or home-made root would let anyone forge attestation documents;
* a node id given twice, or one KMS key listed for two nodes (each key's policy must admit exactly
  one node's role, which is what makes a parent naming another node's id useless);
* a ``--node ID=KEY_ARN,REGION`` whose region is not the key's own;
* no authorised client (the node service would not start) or the same client twice;
* a ``--peer-release`` manifest that is an example, malformed (``tools/release_manifest.py``'s own
  validation), or given twice.

``--peer-release MANIFEST.json`` (repeatable) lists another release's PCR set in ``peer_releases``:
this image's enclave then admits nodes of that release as DKG/presign peers besides its own. Give
the PREVIOUS release's manifest when building release N+1 (release N cannot list N+1: its
measurements do not exist yet), see infra/README.md "Rolling an upgrade".

Usage::

    python tools/image_config.py write --out build/image/image.json \\
        --attestation-root attestation/aws_nitro_root_g1.pem \\
        --client-cert ops.pem [--client-cert ...] [--max-document-age 300] \\
        [--peer-release release/previous.json ...] \\
        (--node a=arn:aws:kms:eu-west-1:111111111111:key/...[,eu-west-1] [--node b=...] ...
         | --nodes nodes.json)      # nodes.json: {"a": "arn:aws:kms:...", "b": "arn:..."}
    python tools/image_config.py check build/image/image.json

Run it with the project's Python (``.venv/bin/python``: it imports ``enclave.config``, which needs
``cryptography``). Exit codes: 0 written/valid, 1 refused (nothing written), 2 bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from enclave.config import IMAGE_CONFIG_PATH, ImageConfig, NodeKey
from enclave.errors import ConfigError

__all__ = [
    "AWS_NITRO_ROOT_SHA256",
    "ImageConfigError",
    "ImageInputs",
    "build_image_config",
    "check_image_config",
    "main",
    "parse_node",
    "peer_release_pcrs",
    "write_image_config",
]

#: SHA-256 of the DER of the AWS Nitro Enclaves root G1 (CN=aws.nitro-enclaves), as AWS publishes it.
AWS_NITRO_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"


class ImageConfigError(Exception):
    """An input a release must not ship; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ImageInputs:
    """The explicit inputs of a cluster's ``image.json`` (PEMs as bytes, as read from files)."""

    attestation_root_pem: bytes
    #: node id -> that node's KMS key ARN, in the order given (the file is written sorted).
    nodes: tuple[tuple[str, str], ...]
    client_cert_pems: tuple[bytes, ...]
    max_document_age_seconds: int = 300
    #: Whole PCR sets of other releases this image admits as peers (from release manifests).
    peer_releases: tuple[Mapping[int, bytes], ...] = ()


def parse_node(text: str) -> tuple[str, str]:
    """``ID=KEY_ARN`` or ``ID=KEY_ARN,REGION`` (the region, if given, must be the key's own)."""
    node_id, sep, rest = text.partition("=")
    if not sep or not node_id or not rest:
        raise ImageConfigError("node", f"{text!r} is not ID=KEY_ARN[,REGION]")
    arn, _, region = rest.partition(",")
    try:
        row = NodeKey(node_id, arn)
    except ConfigError as error:
        raise ImageConfigError(error.field, error.reason) from None
    if region and region != row.region:
        raise ImageConfigError(
            f"nodes.{node_id}", f"region {region} is not the key's region {row.region}"
        )
    return node_id, arn


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
    owners: dict[str, str] = {}
    for node_id, arn in config.nodes.items():
        if arn in owners:
            raise ImageConfigError(
                f"nodes.{node_id}", f"uses the key of node {owners[arn]}: one key per node"
            )
        owners[arn] = node_id
    if not config.authorized_clients:
        raise ImageConfigError("authorized_clients", "at least one client certificate is needed")
    seen: set[str] = set()
    for index, pem in enumerate(config.authorized_clients):
        digest = _der_sha256(pem, f"authorized_clients[{index}]")
        if digest in seen:
            raise ImageConfigError(f"authorized_clients[{index}]", "duplicate certificate")
        seen.add(digest)
    releases: list[dict[int, bytes]] = []
    for index, release in enumerate(config.peer_releases):
        if dict(release) in releases:
            raise ImageConfigError(f"peer_releases[{index}]", "the same release is listed twice")
        releases.append(dict(release))


def peer_release_pcrs(path: Path) -> dict[int, bytes]:
    """The PCR set of the release manifest at ``path``, validated by tools/release_manifest.py.

    Example manifests are refused: their PCRs match no real image, and listing them would only
    widen what the enclave admits.
    """
    name = "_keyshard_release_manifest"
    manifests = sys.modules.get(name)
    if manifests is None:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().with_name("release_manifest.py")
        )
        if spec is None or spec.loader is None:
            raise ImageConfigError("peer_releases", "tools/release_manifest.py is missing")
        manifests = importlib.util.module_from_spec(spec)
        # Registered before it runs: its dataclasses resolve their module through sys.modules.
        sys.modules[name] = manifests
        spec.loader.exec_module(manifests)
    try:
        manifest = manifests.load_manifest(path)
    except OSError:
        raise ImageConfigError("peer_releases", f"cannot read {path}") from None
    except manifests.ManifestError as error:
        raise ImageConfigError("peer_releases", f"{path}: {error}") from None
    pcrs: Mapping[str, str] = manifest.measurements.pcrs
    return {int(index): bytes.fromhex(value) for index, value in pcrs.items()}


def build_image_config(inputs: ImageInputs) -> ImageConfig:
    """The validated :class:`ImageConfig` for ``inputs``; raises :class:`ImageConfigError`."""
    table: dict[str, str] = {}
    for node_id, arn in inputs.nodes:
        if node_id in table:
            raise ImageConfigError(f"nodes.{node_id}", "node id given twice")
        table[node_id] = arn
    try:
        config = ImageConfig(
            attestation_root_pem=inputs.attestation_root_pem,
            nodes=table,
            max_document_age_seconds=inputs.max_document_age_seconds,
            authorized_clients=inputs.client_cert_pems,
            peer_releases=inputs.peer_releases,
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


def _nodes_file(path: str) -> tuple[tuple[str, str], ...]:
    """A JSON object ``{"node id": "key ARN", ...}`` (duplicate ids refused, not merged)."""

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        names = [name for name, _ in pairs]
        for name in names:
            if names.count(name) > 1:
                raise ImageConfigError(f"nodes.{name}", "node id given twice")
        return dict(pairs)

    try:
        raw = json.loads(_read(path, "nodes"), object_pairs_hook=no_duplicates)
    except ValueError:
        raise ImageConfigError("nodes", f"{path} is not JSON") from None
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise ImageConfigError("nodes", f"{path} must map node ids to KMS key ARNs")
    return tuple(parse_node(f"{node_id}={arn}") for node_id, arn in raw.items())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/image_config.py", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write image.json from explicit inputs")
    write.add_argument("--out", required=True)
    write.add_argument("--attestation-root", required=True, help="PEM file of the AWS Nitro root")
    write.add_argument("--client-cert", action="append", default=[], help="PEM file (repeat)")
    write.add_argument("--max-document-age", type=int, default=300, help="seconds")
    write.add_argument(
        "--peer-release",
        action="append",
        default=[],
        help="release manifest JSON of another release admitted as peer (repeat)",
    )
    table = write.add_mutually_exclusive_group(required=True)
    table.add_argument("--node", action="append", help="ID=KEY_ARN[,REGION] (repeat per node)")
    table.add_argument("--nodes", help='JSON file {"ID": "KEY_ARN", ...}')
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
            nodes = (
                _nodes_file(args.nodes)
                if args.nodes is not None
                else tuple(parse_node(text) for text in args.node)
            )
            inputs = ImageInputs(
                attestation_root_pem=_read(args.attestation_root, "attestation_root_pem"),
                nodes=nodes,
                client_cert_pems=tuple(
                    _read(path, f"authorized_clients[{i}]")
                    for i, path in enumerate(args.client_cert)
                ),
                max_document_age_seconds=args.max_document_age,
                peer_releases=tuple(peer_release_pcrs(Path(p)) for p in args.peer_release),
            )
            config = write_image_config(inputs, Path(args.out))
    except ImageConfigError as error:
        print(f"image_config: refused: {error}", file=sys.stderr)
        return 1
    print(
        f"image.json valid: {len(config.nodes)} node(s) ({', '.join(config.nodes)}), "
        f"{len(config.authorized_clients)} authorised client(s), "
        f"{len(config.peer_releases)} peer release(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
