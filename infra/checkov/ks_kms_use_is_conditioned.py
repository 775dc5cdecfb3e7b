from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.data.base_check import BaseDataCheck
from ks_common import ATTESTATION_VARIABLE, condition_variables, effect, statements, uses_key

# A key-use grant must be bound to something: an attested enclave (the sealing key), a calling AWS
# service (S3 for SSE-KMS), or an encryption context (CloudWatch Logs of one log group).
ACCEPTED = (ATTESTATION_VARIABLE, "kms:viaservice")
ACCEPTED_PREFIXES = ("kms:encryptioncontext:",)


class KmsUseIsConditioned(BaseDataCheck):
    def __init__(self) -> None:
        super().__init__(
            name="Keyshard: no unconditional KMS Decrypt/GenerateDataKey/CreateGrant grant",
            id="CKV_KS_1",
            categories=(CheckCategories.ENCRYPTION,),
            supported_data=("aws_iam_policy_document",),
        )

    def scan_data_conf(self, conf: dict[str, Any]) -> CheckResult:
        for statement in statements(conf):
            if effect(statement) != "Allow" or not uses_key(statement):
                continue
            variables = condition_variables(statement)
            if not any(v in ACCEPTED or v.startswith(ACCEPTED_PREFIXES) for v in variables):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = KmsUseIsConditioned()
