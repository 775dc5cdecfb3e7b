"""Review finding: a ``host:port`` in the parent's config takes only an ASCII decimal port.

``_host_port`` accepted any ``str.isdigit()`` text and handed it to ``int()``: non-ASCII digits
(fullwidth or Arabic-Indic "443") silently became port 443, so the allow list a reviewer reads is not the one that
is enforced, and a port of more than 4300 digits escaped as a bare ``ValueError`` instead of a
:class:`ConfigError` naming the field. Ports are now canonical ASCII decimal (at most five
digits, no leading zero).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from parent.config import parse_config
from parent.errors import ConfigError

BASE: dict[str, Any] = {
    "mode": "real",
    "enclave_cid": 16,
    "outbound": [{"name": "kms", "port": 8443, "target": "kms.eu-west-1.amazonaws.com:443"}],
    "allow": ["kms.eu-west-1.amazonaws.com:443"],
    "blob_store": {"kind": "local", "dir": "/tmp/review-blobs"},
}


@pytest.mark.parametrize("port", ["\uff14\uff14\uff13", "\u0664\u0664\u0663", "9" * 5000, "0443"])
def test_allow_entry_with_a_non_ascii_or_overlong_port_is_refused(port: str) -> None:
    raw = copy.deepcopy(BASE)
    raw["allow"] = [f"kms.eu-west-1.amazonaws.com:{port}"]
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert caught.value.field == "allow[0]"


def test_ascii_ports_still_parse() -> None:
    config = parse_config(copy.deepcopy(BASE))
    assert ("kms.eu-west-1.amazonaws.com", 443) in config.allow
