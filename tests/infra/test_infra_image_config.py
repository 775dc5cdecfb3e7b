"""tools/image_config.py: the image.json a Nitro release bakes in, read back by the enclave's loader.

Every positive case goes through :meth:`enclave.config.ImageConfig.load` (the boot path), so a format
change in the enclave fails here; every negative case asserts the culprit field and that nothing
was written.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from enclave.config import IMAGE_CONFIG_PATH, ImageConfig, parse_launch_args
from keyshard.client.credentials import ClientCredentials

REPO = Path(__file__).resolve().parents[2]
AWS_ROOT = REPO / "attestation" / "aws_nitro_root_g1.pem"
KEY = "arn:aws:kms:eu-west-1:111111111111:key/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
#: Another node, in another account and region: one image lists both.
KEY_B = "arn:aws:kms:us-east-2:222222222222:key/9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0"
NODES = (("a", KEY), ("b", KEY_B))


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "image_config", REPO / "tools" / "image_config.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["image_config"] = module
    spec.loader.exec_module(module)
    return module


ic = _load_tool()


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two client certificates made the way `keyshard` makes its own (self-signed P-256)."""
    base = tmp_path_factory.mktemp("clients")
    return (
        ClientCredentials.load_or_create(base / "ops").cert_path,
        ClientCredentials.load_or_create(base / "sdk", name="sdk").cert_path,
    )


def _inputs(clients: tuple[Path, Path], **changes: object) -> object:
    inputs = ic.ImageInputs(
        attestation_root_pem=AWS_ROOT.read_bytes(),
        nodes=NODES,
        client_cert_pems=tuple(path.read_bytes() for path in clients),
    )
    return dataclasses.replace(inputs, **changes)


def test_written_file_is_what_the_enclave_boots_with(
    tmp_path: Path, clients: tuple[Path, Path]
) -> None:
    out = tmp_path / "image" / IMAGE_CONFIG_PATH
    ic.write_image_config(_inputs(clients), out)
    loaded = ImageConfig.load(tmp_path / "image")
    assert loaded.attestation_root_pem == AWS_ROOT.read_bytes()
    assert dict(loaded.nodes) == {"a": KEY, "b": KEY_B}
    assert loaded.max_document_age_seconds == 300
    assert loaded.authorized_clients == tuple(path.read_bytes() for path in clients)
    # The EIF's command line is only `--mode nitro`, the same for both nodes; each node's key and
    # region come from the table once its parent names it.
    assert parse_launch_args(["--mode", "nitro"]).runtime_dir is None
    assert (loaded.node_key("a").kms_key_arn, loaded.node_key("a").region) == (KEY, "eu-west-1")
    assert (loaded.node_key("b").kms_key_arn, loaded.node_key("b").region) == (KEY_B, "us-east-2")
    assert ic.check_image_config(out) == loaded


def test_the_table_order_does_not_change_the_image(
    tmp_path: Path, clients: tuple[Path, Path]
) -> None:
    """Whoever lists the nodes in whichever order builds the same bytes, hence the same PCR0."""
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    ic.write_image_config(_inputs(clients), first)
    ic.write_image_config(_inputs(clients, nodes=tuple(reversed(NODES))), second)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"a={KEY}", ("a", KEY)),
        (f"a={KEY},eu-west-1", ("a", KEY)),
    ],
)
def test_parse_node(text: str, expected: tuple[str, str]) -> None:
    assert ic.parse_node(text) == expected


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        (KEY, "node"),
        ("a=", "node"),
        (f"={KEY}", "node"),
        (f"a={KEY},us-east-1", "nodes.a"),
        ("a=arn:aws:kms:eu-west-1:111111111111:alias/x", "nodes.a"),
        (f"a/b={KEY}", "node_id"),
    ],
)
def test_parse_node_refusals(text: str, culprit: str) -> None:
    with pytest.raises(ic.ImageConfigError) as caught:
        ic.parse_node(text)
    assert caught.value.field == culprit


def test_output_is_deterministic(tmp_path: Path, clients: tuple[Path, Path]) -> None:
    """Same inputs, same bytes: image.json is measured, so any jitter would be a new PCR0."""
    first, second = tmp_path / "1.json", tmp_path / "2.json"
    ic.write_image_config(_inputs(clients), first)
    ic.write_image_config(_inputs(clients), second)
    assert first.read_bytes() == second.read_bytes()


def test_another_client_is_another_measured_file(
    tmp_path: Path, clients: tuple[Path, Path]
) -> None:
    """Adding a client changes image.json, hence PCR0: a new release, admitted alongside the old."""
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    ic.write_image_config(_inputs(clients, client_cert_pems=(clients[0].read_bytes(),)), one)
    ic.write_image_config(_inputs(clients), two)
    assert one.read_bytes() != two.read_bytes()


def _other_root(tmp_path: Path) -> bytes:
    return ClientCredentials.load_or_create(tmp_path / "fake-root").cert_path.read_bytes()


@pytest.mark.parametrize(
    ("changes", "culprit"),
    [
        ({"nodes": ()}, "nodes"),
        ({"nodes": (("a", KEY), ("a", KEY_B))}, "nodes.a"),
        ({"nodes": (("a", KEY), ("b", KEY))}, "nodes.b"),
        ({"nodes": (("a", "arn:aws:kms:eu-west-1:*:key/x"),)}, "nodes.a"),
        ({"nodes": (("a/b", KEY),)}, "node_id"),
        ({"client_cert_pems": ()}, "authorized_clients"),
        ({"client_cert_pems": (b"not a certificate",)}, "authorized_clients"),
        ({"max_document_age_seconds": 0}, "max_document_age_seconds"),
        ({"max_document_age_seconds": 3601}, "max_document_age_seconds"),
        ({"attestation_root_pem": b"-----BEGIN CERTIFICATE-----\n"}, "attestation_root_pem"),
    ],
)
def test_refusals_name_the_culprit_and_write_nothing(
    tmp_path: Path, clients: tuple[Path, Path], changes: dict[str, object], culprit: str
) -> None:
    out = tmp_path / "image.json"
    with pytest.raises(ic.ImageConfigError) as caught:
        ic.write_image_config(_inputs(clients, **changes), out)
    assert caught.value.field == culprit
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_root_other_than_aws_nitro(tmp_path: Path, clients: tuple[Path, Path]) -> None:
    """ImageConfig accepts any certificate (the emulator needs its own root); a release does not."""
    inputs = _inputs(clients, attestation_root_pem=_other_root(tmp_path))
    with pytest.raises(ic.ImageConfigError) as caught:
        ic.build_image_config(inputs)
    assert caught.value.field == "attestation_root_pem"
    assert ic.AWS_NITRO_ROOT_SHA256 in caught.value.message


def test_refuses_the_same_client_twice(clients: tuple[Path, Path]) -> None:
    pem = clients[0].read_bytes()
    with pytest.raises(ic.ImageConfigError) as caught:
        ic.build_image_config(_inputs(clients, client_cert_pems=(pem, pem)))
    assert caught.value.field == "authorized_clients[1]"


@pytest.mark.parametrize(
    ("edit", "culprit"),
    [
        (lambda d: d.pop("nodes"), "image.json"),
        (lambda d: d.update(nodes={}), "nodes"),
        (lambda d: d.update(nodes={"a": KEY, "b": KEY}), "nodes.b"),
        (lambda d: d.update(format=1), "format"),
        (lambda d: d.update(launch={"node_id": "a"}), "image.json"),
        (lambda d: d.update(extra=1), "image.json"),
        (lambda d: d.update(authorized_clients=[]), "authorized_clients"),
    ],
)
def test_check_refuses_an_edited_file(
    tmp_path: Path, clients: tuple[Path, Path], edit: object, culprit: str
) -> None:
    out = tmp_path / "image.json"
    ic.write_image_config(_inputs(clients), out)
    document = json.loads(out.read_text())
    assert callable(edit)
    edit(document)
    out.write_text(json.dumps(document))
    with pytest.raises(ic.ImageConfigError) as caught:
        ic.check_image_config(out)
    assert caught.value.field == culprit


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "image_config.py"), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


def _write_args(out: Path, clients: tuple[Path, Path]) -> list[str]:
    return [
        "write",
        "--out",
        str(out),
        "--attestation-root",
        str(AWS_ROOT),
        "--client-cert",
        str(clients[0]),
        "--client-cert",
        str(clients[1]),
        "--node",
        f"a={KEY},eu-west-1",
        "--node",
        f"b={KEY_B}",
    ]


def test_cli_writes_and_checks(tmp_path: Path, clients: tuple[Path, Path]) -> None:
    out = tmp_path / "image.json"
    written = _cli(*_write_args(out, clients))
    assert written.returncode == 0, written.stderr
    assert "2 node(s) (a, b), 2 authorised client(s)" in written.stdout
    checked = _cli("check", str(out))
    assert checked.returncode == 0, checked.stderr


def test_cli_reads_the_table_from_a_file(tmp_path: Path, clients: tuple[Path, Path]) -> None:
    table = tmp_path / "nodes.json"
    table.write_text(json.dumps({"b": KEY_B, "a": KEY}))
    by_file, by_flags = tmp_path / "file.json", tmp_path / "flags.json"
    args = _write_args(by_file, clients)
    args = args[: args.index("--node")] + ["--nodes", str(table)]
    assert _cli(*args).returncode == 0
    assert _cli(*_write_args(by_flags, clients)).returncode == 0
    assert by_file.read_bytes() == by_flags.read_bytes()
    table.write_text('{"a": "%s", "a": "%s"}' % (KEY, KEY_B))
    duplicated = _cli(*args)
    assert duplicated.returncode == 1
    assert "nodes.a: node id given twice" in duplicated.stderr
    both = _cli(*_write_args(by_file, clients), "--nodes", str(table))
    assert both.returncode == 2


def test_cli_refusal_and_usage_exit_codes(tmp_path: Path, clients: tuple[Path, Path]) -> None:
    out = tmp_path / "image.json"
    args = _write_args(out, clients)
    args[args.index("--node") + 1] = f"a={KEY},us-east-2"
    refused = _cli(*args)
    assert refused.returncode == 1
    assert "nodes.a: region us-east-2 is not the key's region eu-west-1" in refused.stderr
    assert not out.exists()
    assert _cli("write", "--out", str(out)).returncode == 2
    missing = _cli("check", str(tmp_path / "absent.json"))
    assert missing.returncode == 1
    assert "image.json" in missing.stderr


# --- infra/image/build-eif.sh writes and checks image.json before anything is built ------------

BUILD_EIF = REPO / "infra" / "image" / "build-eif.sh"


def _build_eif(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """build-eif.sh with stand-ins for nitro-cli and a reachable docker daemon.

    The committed base-images.lock is unpinned, so the script always stops before docker build:
    what is exercised is everything it does before (the image config step).
    """
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\nexit 0\n")
    docker.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "NITRO_CLI": "true",
        "DOCKER": str(docker),
        "PYTHON": sys.executable,
    }
    return subprocess.run(
        ["bash", str(BUILD_EIF), "--out-dir", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
    )


def test_build_eif_requires_an_image_config(tmp_path: Path) -> None:
    result = _build_eif(tmp_path)
    assert result.returncode == 2
    assert "enclave/image.json" in result.stderr


def test_build_eif_writes_a_valid_image_config_first(
    tmp_path: Path, clients: tuple[Path, Path]
) -> None:
    args = _write_args(tmp_path / "unused.json", clients)[3:]  # drop "write --out X"
    args = [a for a in args if a not in ("--attestation-root", str(AWS_ROOT))]  # the default
    result = _build_eif(tmp_path, *args)
    written = tmp_path / "out" / "image.json"
    assert written.is_file(), result.stderr
    staged = tmp_path / "staged"
    (staged / "enclave").mkdir(parents=True)
    (staged / IMAGE_CONFIG_PATH).write_bytes(written.read_bytes())
    assert ImageConfig.load(staged).attestation_root_pem == AWS_ROOT.read_bytes()
    # It then stops at the clean-tree or base-image pin check, never at the image config.
    assert result.returncode == 1
    assert "image config" not in result.stderr


def test_build_eif_refuses_a_bad_image_config_and_builds_nothing(
    tmp_path: Path, clients: tuple[Path, Path]
) -> None:
    args = _write_args(tmp_path / "unused.json", clients)[3:]
    args[args.index("--node") + 1] = f"a={KEY},us-east-2"
    result = _build_eif(tmp_path, *args)
    assert result.returncode == 1
    assert "nodes.a" in result.stderr
    assert "the image config was refused; nothing was built" in result.stderr
    assert not (tmp_path / "out" / "image.json").exists()


def test_build_eif_checks_a_given_image_config(tmp_path: Path, clients: tuple[Path, Path]) -> None:
    good = tmp_path / "image.json"
    ic.write_image_config(_inputs(clients), good)
    accepted = _build_eif(tmp_path, "--image-config", str(good))
    assert (tmp_path / "out" / "image.json").read_bytes() == good.read_bytes(), accepted.stderr
    document = json.loads(good.read_text())
    document["authorized_clients"] = []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    refused = _build_eif(tmp_path, "--image-config", str(bad))
    assert refused.returncode == 1
    assert "authorized_clients" in refused.stderr
    both = _build_eif(tmp_path, "--image-config", str(good), "--node", f"a={KEY}")
    assert both.returncode == 2
