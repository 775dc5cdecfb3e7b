"""The cluster profile terraform publishes, read by the client's own loader.

infra/ci-checks.sh renders modules/cluster-profile offline and requires it to equal the golden file;
here the golden file goes through :meth:`keyshard.client.profile.ClusterProfile.load` and
:meth:`keyshard.client.coordinator.Coordinator.from_profile`, so a profile format change in the
client that the module does not follow fails a test instead of a client's first connection.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enclave.service.server import SERVICE_PORT
from enclave.status import CLIENT_PORT as STATUS_PORT
from keyshard.client.credentials import ClientCredentials
from keyshard.client.errors import ConfigurationError
from keyshard.client.profile import ClusterProfile, ProfileError
from keyshard.client.sdk import AsyncClient

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "data" / "infra" / "cluster_profile_rendered.json"
AWS_ROOT_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"


def test_rendered_profile_loads_with_the_clients_loader() -> None:
    profile = ClusterProfile.load(GOLDEN)
    assert profile.mode == "real"
    assert profile.root_sha256 == AWS_ROOT_SHA256
    assert profile.root_pem == (REPO / "attestation" / "aws_nitro_root_g1.pem").read_bytes()
    assert [n.node_id for n in profile.nodes] == ["a", "b", "c"]
    for node in profile.nodes:
        assert (node.port, node.service_port) == (7400, 7443)
        assert (node.enclave_cid, node.enclave_port) == (16, STATUS_PORT)
        assert node.enclave_port != SERVICE_PORT


def test_clients_pin_every_accepted_release_as_a_whole_set() -> None:
    """expected_pcrs lists each accepted release's set (newest first), pinned set-wise."""
    document = json.loads(GOLDEN.read_text())
    profile = ClusterProfile.load(GOLDEN)
    accepted = [release["pcrs"] for release in document["accepted_releases"]]
    assert len(accepted) == 2
    assert [{str(i): v.hex() for i, v in s.items()} for s in profile.expected_pcrs] == accepted
    policy = profile.policy()
    assert policy.pcrs == {}
    assert [dict(s) for s in policy.pcr_sets] == [dict(s) for s in profile.expected_pcrs]


def test_a_version_1_single_set_profile_still_loads(tmp_path: Path) -> None:
    document = json.loads(GOLDEN.read_text())
    document["version"] = 1
    document["expected_pcrs"] = document["accepted_releases"][1]["pcrs"]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(document))
    profile = ClusterProfile.load(path)
    assert [{str(i): v.hex() for i, v in s.items()} for s in profile.expected_pcrs] == [
        document["expected_pcrs"]
    ]


@pytest.mark.parametrize(
    ("version", "pcrs", "culprit"),
    [
        (2, {"0": "00"}, "not a list of sets"),
        (1, [{"0": "00"}], "malformed profile"),
        (2, [], "no accepted release"),
        (2, [{"0": "a0" * 48, "1": "b1" * 48}], r"lacks PCR\[2\]"),
        (3, [], "unknown profile version 3"),
    ],
)
def test_malformed_expected_pcrs_are_refused(
    tmp_path: Path, version: int, pcrs: object, culprit: str
) -> None:
    document = json.loads(GOLDEN.read_text())
    document["version"] = version
    document["expected_pcrs"] = pcrs
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ProfileError, match=culprit):
        ClusterProfile.load(path)


def test_an_sdk_client_can_be_built_from_it(tmp_path: Path) -> None:
    credentials = ClientCredentials.load_or_create(tmp_path)
    client = AsyncClient(ClusterProfile.load(GOLDEN), credentials)
    assert client.coordinator.node_ids == sorted(n.node_id for n in client.profile.nodes)


def test_a_node_without_service_endpoint_is_refused_by_the_sdk(tmp_path: Path) -> None:
    document = json.loads(GOLDEN.read_text())
    del document["nodes"][1]["service_endpoint"]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match="no service endpoint for b"):
        AsyncClient(ClusterProfile.load(path), ClientCredentials.load_or_create(tmp_path))


def test_another_root_pem_under_the_pinned_fingerprint_is_refused(tmp_path: Path) -> None:
    document = json.loads(GOLDEN.read_text())
    other = ClientCredentials.load_or_create(tmp_path / "other").cert_path.read_text()
    document["attestation_root"]["pem"] = other
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ProfileError, match=f"profile pins {AWS_ROOT_SHA256}"):
        ClusterProfile.load(path)
