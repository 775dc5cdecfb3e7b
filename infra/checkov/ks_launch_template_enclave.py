from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck
from ks_common import first, flatten


class LaunchTemplateEnclave(BaseResourceCheck):
    """Nitro Enclaves on, IMDSv2 only with hop limit 1, every EBS volume encrypted."""

    def __init__(self) -> None:
        super().__init__(
            name="Keyshard: launch template enables enclaves, IMDSv2 only, encrypted volumes",
            id="CKV_KS_5",
            categories=(CheckCategories.GENERAL_SECURITY,),
            supported_resources=("aws_launch_template",),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        enclave = first(conf.get("enclave_options"), {})
        if not isinstance(enclave, dict) or first(enclave.get("enabled")) is not True:
            return CheckResult.FAILED
        metadata = first(conf.get("metadata_options"), {})
        if not isinstance(metadata, dict) or first(metadata.get("http_tokens")) != "required":
            return CheckResult.FAILED
        if first(metadata.get("http_put_response_hop_limit"), 1) != 1:
            return CheckResult.FAILED
        mappings = [m for m in flatten(conf.get("block_device_mappings", [])) if isinstance(m, dict)]
        for mapping in mappings:
            ebs = first(mapping.get("ebs"), {})
            if not isinstance(ebs, dict) or first(ebs.get("encrypted")) is not True:
                return CheckResult.FAILED
        return CheckResult.PASSED


check = LaunchTemplateEnclave()
