from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck
from ks_common import first, flatten

USE_ROLES = (
    "roles/cloudkms.cryptokeydecrypter",
    "roles/cloudkms.cryptokeyencrypterdecrypter",
    "roles/cloudkms.cryptokeydecrypterviadelegation",
)


class GcpKmsBindingAttested(BaseResourceCheck):
    """On GCP a decrypting role goes only to an attested workload (a workload identity principal set
    selected by image digest) or to a Google service agent doing CMEK: Cloud Storage (the blob
    bucket) or Compute Engine (the boot disk)."""

    def __init__(self) -> None:
        super().__init__(
            name="Keyshard: Cloud KMS decrypt roles only for image-digest-bound workload identities",
            id="CKV_KS_7",
            categories=(CheckCategories.ENCRYPTION,),
            supported_resources=(
                "google_kms_crypto_key_iam_member",
                "google_kms_crypto_key_iam_binding",
                "google_kms_key_ring_iam_member",
                "google_kms_key_ring_iam_binding",
            ),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        role = str(first(conf.get("role"), "")).lower()
        if role not in USE_ROLES:
            return CheckResult.PASSED
        members = [str(m) for m in flatten(conf.get("member", [])) + flatten(conf.get("members", []))]
        for member in members:
            attested = member.startswith("principalSet://") and "/attribute.image_digest/" in member
            service_agent = "google_storage_project_service_account" in member or member.endswith(
                ("@gs-project-accounts.iam.gserviceaccount.com", "@compute-system.iam.gserviceaccount.com")
            )
            if not (attested or service_agent):
                return CheckResult.FAILED
        return CheckResult.PASSED


check = GcpKmsBindingAttested()
