"""The parent configuration terraform writes onto every AWS node, checked by the parent itself.

infra/ci-checks.sh renders modules/parent-config offline and requires it to equal the golden file;
here the golden file goes through :func:`parent.config.parse_config`, so a schema change in the
parent that the module does not follow fails a test instead of a boot.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enclave.config import KMS_PROXY_PORT
from enclave.service.server import SERVICE_PORT
from enclave.status import CLIENT_PORT as STATUS_PORT
from parent.config import Mode, NitroSpec, parse_config
from parent.errors import ConfigError

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "infra" / "parent_config_rendered.json"


def _golden() -> dict[str, object]:
    document = json.loads(GOLDEN.read_text())
    assert isinstance(document, dict)
    return document


def test_rendered_config_is_accepted_by_the_parent() -> None:
    config = parse_config(_golden())
    assert config.mode is Mode.REAL
    assert isinstance(config.launcher, NitroSpec)
    assert config.launcher.cpu_count == 2
    # The one per-node value: which row of the image's cluster table this node is.
    assert config.node_id == "a"


def test_outbound_allow_list_is_this_regions_kms_only() -> None:
    """Nodes never dial each other (the client relays envelopes): KMS is the only way out."""
    config = parse_config(_golden())
    assert config.allow == frozenset({("kms.eu-west-1.amazonaws.com", 443)})
    assert [(r.name, r.port, r.host, r.target_port) for r in config.outbound] == [
        ("kms", KMS_PROXY_PORT, "kms.eu-west-1.amazonaws.com", 443)
    ]


def test_parent_refuses_a_route_outside_the_allow_list() -> None:
    document = _golden()
    document["outbound"] = [
        *document["outbound"],  # type: ignore[misc]
        {"name": "peer-b", "port": 6001, "target": "203.0.113.20:7400"},
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert caught.value.field == "outbound[1].target"


def test_inbound_forwards_to_the_enclaves_status_and_service_ports() -> None:
    """The listeners reach exactly the ports the enclave serves (status 5000, node service 5001)."""
    config = parse_config(_golden())
    assert {(r.name, r.listen_port, r.enclave_port) for r in config.inbound} == {
        ("status", 7400, STATUS_PORT),
        ("service", 7443, SERVICE_PORT),
    }


def test_operations_endpoint_asks_the_enclaves_status_port() -> None:
    """The HTTP /metrics, /health, /ready listener; its probe reaches the enclave's status port."""
    config = parse_config(_golden())
    assert config.operations is not None
    assert (config.operations.listen_port, config.operations.status_port) == (9100, STATUS_PORT)


def test_operations_refuses_unknown_fields_and_bad_ports() -> None:
    for bad, field in (
        ({"listen": "0.0.0.0:9100", "path": "/m"}, "operations.path"),
        ({"listen": "0.0.0.0:9100", "status_port": 0}, "operations.status_port"),
        ({"listen": "nowhere"}, "operations.listen"),
    ):
        document = _golden()
        document["operations"] = bad
        with pytest.raises(ConfigError) as caught:
            parse_config(document)
        assert caught.value.field == field
