"""The demo is a smoke test too: each act must succeed and each refusal must name its reason."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyshard.dev.demo import _Narrator, act_attestation, act_cluster, act_node_service


def test_attestation_act_refuses_for_the_right_reasons(tmp_path: Path) -> None:
    out = io.StringIO()
    act_attestation(_Narrator(out), tmp_path)
    text = out.getvalue()
    assert text.count("[refused]") == 5
    assert "SignatureInvalid" in text
    assert "UntrustedRoot" in text
    assert "policy rule 'debug'" in text
    assert "PcrMismatch: policy rule 'pcr': PCR0" in text
    assert "policy rule 'nonce'" in text


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: the emulated vsock's Unix sockets live below it, and
    pytest's own (longer under xdist) can pass the 107-byte sun_path limit."""
    path = Path(tempfile.mkdtemp(prefix="ksd-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_cluster_and_node_service_acts(short_dir: Path) -> None:
    """Act 2 (boot, recover, refuse a modified enclave), then act 3 on the same cluster: DKG,
    signing and decryption between the enclaves, and an unlisted client refused."""
    out = io.StringIO()
    act_cluster(_Narrator(out), short_dir, nodes=3, then=act_node_service)
    text = out.getvalue()
    assert text.count(": ready, sealed state v1") == 3
    assert "node-2 restarted: re-attested, unsealed its state" in text
    assert "node-3 rebooted from an image with one byte changed" in text
    assert "AccessDeniedException" in text
    assert "node-3 rebooted from the released image: ready again" in text
    assert text.count(": attested TLS 1.3 channel; its document binds TLS key") == 3
    assert "DKG between the 3 enclaves, threshold 1 (any 2 sign): Ed25519 key" in text
    assert "FROST signature by node-1 and node-2 verified by OpenSSL's Ed25519" in text
    assert "threshold decryption by node-2 and node-3" in text
    assert "[refused] a client whose certificate is not in the measured image" in text
    assert text.index("3. The node service") < text.index("cluster stopped")
