"""The parent configuration terraform writes onto every AWS node, checked by the parent itself.

infra/ci-checks.sh renders modules/parent-config offline and requires it to equal the golden file;
here the golden file goes through :func:`parent.config.parse_config`, so a schema change in the
parent that the module does not follow fails a test instead of a boot.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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


def test_outbound_allow_list_is_kms_and_the_declared_peers_only() -> None:
    config = parse_config(_golden())
    assert config.allow == frozenset(
        {("kms.eu-west-1.amazonaws.com", 443), ("203.0.113.20", 7400), ("192.0.2.30", 7400)}
    )
    assert {(r.host, r.target_port) for r in config.outbound} == config.allow


def test_parent_refuses_a_route_outside_the_allow_list() -> None:
    document = _golden()
    document["allow"] = ["kms.eu-west-1.amazonaws.com:443"]
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert caught.value.field == "outbound[1].target"


def test_inbound_listens_on_the_client_and_peer_ports() -> None:
    config = parse_config(_golden())
    assert {(r.name, r.listen_port) for r in config.inbound} == {("client", 7443), ("peer", 7400)}
