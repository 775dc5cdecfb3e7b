from __future__ import annotations

import pytest

from transport.address import ANY_CID, PARENT_CID, U32_MAX, VsockAddress
from transport.errors import AddressError


def test_valid_addresses_and_their_text() -> None:
    assert str(VsockAddress(PARENT_CID, 9000)) == "vsock:3:9000"
    assert str(VsockAddress(ANY_CID, 0)) == "vsock:any:0"
    assert VsockAddress(U32_MAX, U32_MAX).port == U32_MAX


@pytest.mark.parametrize(
    ("cid", "port", "culprit"),
    [(-1, 1, "cid"), (U32_MAX + 1, 1, "cid"), (3, -1, "port"), (3, U32_MAX + 1, "port")],
)
def test_out_of_range_is_refused(cid: int, port: int, culprit: str) -> None:
    with pytest.raises(AddressError, match=f"^{culprit} "):
        VsockAddress(cid, port)


@pytest.mark.parametrize("value", [True, 3.0, "3", None])
def test_non_int_fields_are_refused(value: object) -> None:
    with pytest.raises(AddressError, match="cid must be an int"):
        VsockAddress(value, 1)  # type: ignore[arg-type]
    with pytest.raises(AddressError, match="port must be an int"):
        VsockAddress(3, value)  # type: ignore[arg-type]
