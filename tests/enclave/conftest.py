"""Fixtures the node-service tests share: one emulated attestation root per test module, the
client credentials an image lists, and a client's trust in the released image."""

from __future__ import annotations

import pytest
from service_fixtures import RELEASED, verifier_for

from attestation.emulated_ca import EmulatedCa
from keyshard.client.channel import NodeTrust
from keyshard.client.credentials import ClientCredentials


@pytest.fixture(scope="module")
def ca() -> EmulatedCa:
    return EmulatedCa.ephemeral()


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> ClientCredentials:
    """The client the image lists."""
    return ClientCredentials.load_or_create(tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def trust(ca: EmulatedCa) -> NodeTrust:
    return NodeTrust(verifier_for(ca), (RELEASED,))
