from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck
from ks_common import first, flatten

REQUIRED = (
    "CONFIDENTIAL_SPACE",  # assertion.swname: a Confidential Space VM, not any OIDC token
    "STABLE",  # a supported production image
    "disabled-since-boot",  # assertion.dbgstat: never the debug image
    "assertion.submods.container.image_digest",  # the workload is pinned by digest
)


class GcpAttestationProvider(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Keyshard: workload identity provider admits only production Confidential Space by digest",
            id="CKV_KS_8",
            categories=(CheckCategories.IAM,),
            supported_resources=("google_iam_workload_identity_pool_provider",),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        condition = " ".join(str(c) for c in flatten(conf.get("attribute_condition", [])))
        if not all(term in condition for term in REQUIRED) or "dbgstat == 'enable'" in condition:
            return CheckResult.FAILED
        oidc = first(conf.get("oidc"), {})
        issuer = str(first(oidc.get("issuer_uri"), "")) if isinstance(oidc, dict) else ""
        if issuer.rstrip("/") != "https://confidentialcomputing.googleapis.com":
            return CheckResult.FAILED
        return CheckResult.PASSED


check = GcpAttestationProvider()
