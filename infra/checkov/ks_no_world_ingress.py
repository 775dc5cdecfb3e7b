from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck
from ks_common import first, flatten

WORLD = {"0.0.0.0/0", "::/0"}


class NoWorldIngress(BaseResourceCheck):
    """Node ports open only to the declared client ranges, never to the whole internet."""

    def __init__(self) -> None:
        super().__init__(
            name="Keyshard: no ingress from 0.0.0.0/0 or ::/0",
            id="CKV_KS_6",
            categories=(CheckCategories.NETWORKING,),
            supported_resources=(
                "aws_vpc_security_group_ingress_rule",
                "aws_security_group_rule",
                "aws_security_group",
                "google_compute_firewall",
            ),
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        if self.entity_type == "aws_vpc_security_group_ingress_rule":
            ranges = flatten(conf.get("cidr_ipv4", [])) + flatten(conf.get("cidr_ipv6", []))
        elif self.entity_type == "aws_security_group_rule":
            if first(conf.get("type")) != "ingress":
                return CheckResult.PASSED
            ranges = flatten(conf.get("cidr_blocks", [])) + flatten(conf.get("ipv6_cidr_blocks", []))
        elif self.entity_type == "aws_security_group":
            ranges = []
            for rule in flatten(conf.get("ingress", [])):
                if isinstance(rule, dict):
                    ranges += flatten(rule.get("cidr_blocks", [])) + flatten(rule.get("ipv6_cidr_blocks", []))
        else:
            if str(first(conf.get("direction"), "INGRESS")).upper() != "INGRESS":
                return CheckResult.PASSED
            ranges = flatten(conf.get("source_ranges", []))
        return CheckResult.FAILED if WORLD.intersection(map(str, ranges)) else CheckResult.PASSED


check = NoWorldIngress()
