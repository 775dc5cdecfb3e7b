from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.data.base_check import BaseDataCheck


class NoNetworkDataSources(BaseDataCheck):
    """Measurements come from the release manifest on disk. A data source that fetches from an
    arbitrary URL or runs a program at plan time could swap the PCRs a key policy pins."""

    def __init__(self) -> None:
        super().__init__(
            name="Keyshard: nothing fetched from the network or a program at plan time",
            id="CKV_KS_4",
            categories=(CheckCategories.SUPPLY_CHAIN,),
            supported_data=("http", "external"),
        )

    def scan_data_conf(self, conf: dict[str, Any]) -> CheckResult:
        return CheckResult.FAILED


check = NoNetworkDataSources()
