from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.data.base_check import BaseDataCheck
from ks_common import ATTESTATION_VARIABLE, conditions, effect, first, statements, uses_key

ALLOW_TESTS = {"stringequals", "stringequalsignorecase"}
DENY_TESTS = {"stringnotequals", "stringnotequalsignorecase"}


def _has(statement: dict[str, Any], tests: set[str]) -> bool:
    return any(
        str(first(c.get("variable"), "")).lower() == ATTESTATION_VARIABLE
        and str(first(c.get("test"), "")).lower() in tests
        for c in conditions(statement)
    )


class SealingKeyPinsAttestation(BaseDataCheck):
    """The sealing key's own policy (by convention the document named ``sealing_key``) must admit
    Decrypt only with the ImageSha384 condition, and deny every unattested use outright."""

    def __init__(self) -> None:
        super().__init__(
            name="Keyshard: the sealing key policy itself pins kms:RecipientAttestation:ImageSha384",
            id="CKV_KS_3",
            categories=(CheckCategories.ENCRYPTION,),
            supported_data=("aws_iam_policy_document",),
        )

    def scan_data_conf(self, conf: dict[str, Any]) -> CheckResult:
        address = str(conf.get("__address__", ""))
        if not address.endswith("aws_iam_policy_document.sealing_key"):
            return CheckResult.UNKNOWN
        allows = [s for s in statements(conf) if effect(s) == "Allow" and uses_key(s)]
        denies = [s for s in statements(conf) if effect(s) == "Deny" and uses_key(s)]
        if not allows or not all(_has(s, ALLOW_TESTS) for s in allows):
            return CheckResult.FAILED
        if not any(_has(s, DENY_TESTS) for s in denies):
            return CheckResult.FAILED
        return CheckResult.PASSED


check = SealingKeyPinsAttestation()
