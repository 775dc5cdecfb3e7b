from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.data.base_check import BaseDataCheck
from ks_common import effect, principal_identifiers, statements


class NoWildcardAllowPrincipal(BaseDataCheck):
    """A wildcard principal is only ever acceptable in a Deny (deny everyone but ...)."""

    def __init__(self) -> None:
        super().__init__(
            name="Keyshard: no wildcard principal in an Allow statement",
            id="CKV_KS_2",
            categories=(CheckCategories.IAM,),
            supported_data=("aws_iam_policy_document",),
        )

    def scan_data_conf(self, conf: dict[str, Any]) -> CheckResult:
        for statement in statements(conf):
            if effect(statement) == "Allow" and "*" in principal_identifiers(statement):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = NoWildcardAllowPrincipal()
