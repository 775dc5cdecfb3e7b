"""Invariants of infra/terraform, read from the HCL itself (no provider, no cloud, no network).

Each test names a known way a Terraform rollout of enclaves goes wrong: a node kind that quietly
takes different inputs, a key policy that lets the node role decrypt without attestation (or only
says so in the role policy), a wildcard principal, an all-zero (debug) PCR, a PCR fetched at plan
time, ingress wider than the declared clients, a listener or route the runtime does not serve. infra/ci-checks.sh adds what needs the terraform
binary (fmt, the validation blocks evaluated by terraform) and checkov.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from infra_hcl import (
    ENVS,
    MODULES,
    REPO,
    Module,
    all_module_dirs,
    as_list,
    conditions,
    load_module,
    node_module_dirs,
    principal_identifiers,
    statements,
)

from enclave.config import KMS_PROXY_PORT
from enclave.service.server import SERVICE_PORT
from enclave.status import CLIENT_PORT as STATUS_PORT

KEY_USE = (
    "kms:decrypt",
    "kms:encrypt",
    "kms:generatedatakey",
    "kms:generatedatakeywithoutplaintext",
    "kms:generatedatakeypair",
    "kms:reencryptfrom",
    "kms:reencryptto",
    "kms:creategrant",
)
ATTESTATION = "kms:RecipientAttestation:ImageSha384"
NODE_ROLE = "${aws_iam_role.node.arn}"


def uses_key(actions: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(use, a.lower()) for a in actions for use in KEY_USE)


def actions_of(module: Module, statement: dict[str, object]) -> list[str]:
    """A statement's actions, resolving a single ``${local.name}`` reference."""
    raw = statement.get("actions")
    if isinstance(raw, str):
        match = re.fullmatch(r"\$\{local\.(\w+)\}", raw)
        assert match, f"unresolvable actions expression {raw!r}"
        raw = module.locals[match.group(1)]
    assert isinstance(raw, list)
    return [str(a) for a in raw]


@pytest.fixture(scope="module")
def node_modules() -> dict[str, Module]:
    return {p.name: load_module(p) for p in node_module_dirs()}


@pytest.fixture(scope="module")
def aws() -> Module:
    return load_module(MODULES / "node-aws-nitro")


@pytest.fixture(scope="module")
def gcp() -> Module:
    return load_module(MODULES / "node-gcp-confidential")


@pytest.fixture(scope="module")
def env() -> Module:
    return load_module(ENVS / "example")


# --- one interface for every node kind -----------------------------------------------------------


def test_both_node_kinds_exist(node_modules: dict[str, Module]) -> None:
    assert {"node-aws-nitro", "node-gcp-confidential"} <= set(node_modules)


def test_every_node_module_has_the_same_variables(node_modules: dict[str, Module]) -> None:
    reference_name, reference = next(iter(node_modules.items()))
    assert len(reference.variables) >= 10
    for name, module in node_modules.items():
        assert module.variables.keys() == reference.variables.keys(), (name, reference_name)
        for var, body in module.variables.items():
            other = reference.variables[var]
            assert body.get("type") == other.get("type"), (name, var)
            assert body.get("default") == other.get("default"), (name, var)
            assert as_list(body.get("validation")) == as_list(other.get("validation")), (name, var)


def test_every_node_module_has_the_same_outputs(node_modules: dict[str, Module]) -> None:
    names = {name: set(m.outputs) for name, m in node_modules.items()}
    reference = next(iter(names.values()))
    assert {"node_id", "kind", "status_endpoint", "service_endpoint", "profile_entry"} <= reference
    assert not {name for name in reference if "peer" in name}
    for module in node_modules.values():
        entry = module.outputs["profile_entry"]["value"]
        # The fields keyshard/client/profile.py reads, plus kind and region (ignored by the loader).
        assert set(entry) == {
            "node_id",
            "kind",
            "region",
            "endpoint",
            "service_endpoint",
            "enclave",
            "kms_key_arn",
        }
        assert entry["endpoint"].endswith(":${var.status_port}")
        assert entry["service_endpoint"].endswith(":${var.service_port}")
        assert entry["enclave"] == {"cid": 16, "port": STATUS_PORT}
    assert all(outputs == reference for outputs in names.values()), names


def test_profile_entries_have_the_same_shape(node_modules: dict[str, Module]) -> None:
    shapes = {name: set(m.outputs["profile_entry"]["value"]) for name, m in node_modules.items()}
    assert len({frozenset(s) for s in shapes.values()}) == 1, shapes


# --- KMS: attestation in the key policy itself, never an unconditional grant -------------------


def test_every_aws_kms_key_has_an_explicit_policy_document(aws: Module) -> None:
    keys = aws.resources_of("aws_kms_key")
    assert {"sealing", "storage", "logs"} <= set(keys)
    documents = aws.data_of("aws_iam_policy_document")
    for name, key in keys.items():
        match = re.fullmatch(
            r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", str(key.get("policy"))
        )
        assert match, (
            f"aws_kms_key.{name} has no explicit policy (the default policy delegates to IAM)"
        )
        assert match.group(1) in documents


def test_sealing_key_policy_admits_the_node_role_only_with_attestation(aws: Module) -> None:
    key = aws.resources_of("aws_kms_key")["sealing"]
    assert key["policy"] == "${data.aws_iam_policy_document.sealing_key.json}"
    document = aws.data_of("aws_iam_policy_document")["sealing_key"]
    grants = [
        s
        for s in statements(document)
        if s.get("effect", "Allow") == "Allow"
        and NODE_ROLE in principal_identifiers(s)
        and uses_key(actions_of(aws, s))
    ]
    assert grants, (
        "the sealing key policy grants the node role nothing: the enclave could never unseal"
    )
    for statement in grants:
        pinned = [c for c in conditions(statement) if c["variable"] == ATTESTATION]
        assert pinned, statement.get("sid")
        assert pinned[0]["test"] in ("StringEquals", "StringEqualsIgnoreCase")
        assert pinned[0]["values"] == "${local.image_sha384}"
    # ... and the values are PCR0 of the releases handed in, not something else.
    assert aws.locals["image_sha384"] == '${sort(distinct([for r in var.releases : r.pcrs["0"]]))}'
    assert 'r.pcrs["8"]' in aws.locals["pcr8"]


def test_sealing_key_policy_denies_every_unattested_use(aws: Module) -> None:
    document = aws.data_of("aws_iam_policy_document")["sealing_key"]
    denies = [s for s in statements(document) if s.get("effect") == "Deny"]
    assert any(
        c["variable"] == ATTESTATION and c["test"].startswith("StringNotEquals")
        for s in denies
        for c in conditions(s)
    )
    denied = {a.lower() for s in denies for a in actions_of(aws, s)}
    assert {"kms:decrypt", "kms:generatedatakey", "kms:creategrant"} <= denied


def test_no_aws_policy_grants_key_use_unconditionally(node_modules: dict[str, Module]) -> None:
    accepted = (ATTESTATION, "kms:ViaService")
    checked = 0
    for name, module in node_modules.items():
        for doc_name, document in module.data_of("aws_iam_policy_document").items():
            for statement in statements(document):
                if statement.get("effect", "Allow") != "Allow" or not uses_key(
                    actions_of(module, statement)
                ):
                    continue
                checked += 1
                variables = {c["variable"] for c in conditions(statement)}
                assert any(
                    v in accepted or v.startswith("kms:EncryptionContext:") for v in variables
                ), (
                    name,
                    doc_name,
                    statement.get("sid"),
                )
    assert checked >= 4


def test_node_role_policy_repeats_the_attestation_condition(aws: Module) -> None:
    document = aws.data_of("aws_iam_policy_document")["node"]
    sealing = [
        s
        for s in statements(document)
        if "${aws_kms_key.sealing.arn}" in as_list(s.get("resources"))
    ]
    use = [s for s in sealing if uses_key(actions_of(aws, s))]
    assert use
    assert all(any(c["variable"] == ATTESTATION for c in conditions(s)) for s in use)


def test_key_administrators_manage_but_never_use_or_delegate(aws: Module) -> None:
    admin = [a.lower() for a in aws.locals["key_admin_actions"]]
    assert not uses_key(admin)
    assert "kms:*" not in admin
    assert "*" not in admin
    assert "kms:putkeypolicy" in admin  # needed to roll an upgrade


def test_gcp_sealing_key_is_bound_to_attested_image_digests_only(gcp: Module) -> None:
    bindings = gcp.resources_of("google_kms_crypto_key_iam_member")
    sealing = [
        b for b in bindings.values() if b["crypto_key_id"] == "${google_kms_crypto_key.sealing.id}"
    ]
    assert sealing
    for binding in sealing:
        assert binding["member"].startswith("principalSet://iam.googleapis.com/")
        assert "/attribute.image_digest/${each.value}" in binding["member"]
        assert binding["for_each"] == "${toset(local.image_digests)}"
    condition = gcp.locals["attestation_condition"]
    for term in (
        "CONFIDENTIAL_SPACE",
        "'STABLE' in",
        "disabled-since-boot",
        "container.image_digest in",
    ):
        assert term in condition


# --- no wildcard principals, nothing fetched at plan time, no all-zero PCR ----------------------


def test_no_wildcard_principal_in_any_allow() -> None:
    seen = 0
    for directory in all_module_dirs():
        module = load_module(directory)
        for document in module.data_of("aws_iam_policy_document").values():
            for statement in statements(document):
                seen += 1
                if statement.get("effect", "Allow") == "Allow":
                    assert "*" not in principal_identifiers(statement), (
                        directory,
                        statement.get("sid"),
                    )
        for kind in (
            "google_kms_crypto_key_iam_member",
            "google_storage_bucket_iam_member",
            "google_project_iam_member",
            "google_kms_key_ring_iam_member",
        ):
            for body in module.resources_of(kind).values():
                assert body["member"] not in ("allUsers", "allAuthenticatedUsers"), (
                    directory,
                    kind,
                )
    assert seen >= 10


def test_nothing_is_fetched_from_the_network_at_plan_time() -> None:
    for directory in all_module_dirs():
        module = load_module(directory)
        kinds = {kind for kind, _ in module.data}
        assert not kinds & {
            "http",
            "external",
            "aws_s3_object",
            "google_storage_bucket_object_content",
        }, directory
        for name, call in module.modules.items():
            assert str(call["source"]).startswith("../"), (
                f"{directory}: module {name} comes from elsewhere"
            )
    env = load_module(ENVS / "example")
    assert env.locals["manifest"] == "${jsondecode(file(var.manifest_path))}"


ZERO_PCR = re.compile(r"(?<![0-9a-fA-F])0{96}(?![0-9a-fA-F])")


def test_no_all_zero_pcr_anywhere_in_infra_or_release() -> None:
    roots = [REPO / "infra", REPO / "release", REPO / "tests" / "infra" / "fixtures"]
    scanned = 0
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.suffix not in {
                ".tf",
                ".tfvars",
                ".json",
                ".example",
                ".tftpl",
                ".md",
            }:
                continue
            if path.name.startswith("bad-"):  # fixtures that terraform must refuse
                continue
            scanned += 1
            assert not ZERO_PCR.search(path.read_text(encoding="utf-8")), path
    assert scanned > 20


def _validation_regexes(module: Module) -> list[str]:
    return [
        pattern
        for validation in as_list(module.variables["releases"]["validation"])
        for pattern in re.findall(r'regex(?:all)?\("([^"]+)"', validation["condition"])
    ]


def test_release_validations_refuse_all_zero_and_missized_pcrs(aws: Module) -> None:
    """Apply the validation blocks' own patterns (RE2 syntax that Python's re reads the same way);
    infra/ci-checks.sh additionally has terraform evaluate them on fixtures."""
    patterns = _validation_regexes(aws)
    shape = re.compile(next(p for p in patterns if "{96}" in p))
    nonzero = re.compile(next(p for p in patterns if p == "[1-9a-f]"))
    good = "ab" * 48
    assert shape.search(good)
    assert nonzero.search(good)
    assert not nonzero.search("0" * 96)
    assert not shape.search("ab" * 32)  # SHA-256 sized
    assert not shape.search("AB" * 48)  # uppercase
    assert not shape.search("ab" * 48 + "00")
    conditions_text = " ".join(
        v["condition"] for v in as_list(aws.variables["releases"]["validation"])
    )
    for required in ('"0", "1", "2"', '"0", "1", "2", "8"', 'contains(keys(r.pcrs), "8")'):
        assert required in conditions_text


# --- the environment: one node per account, clients only, no node-to-node traffic ---------------


def test_environment_instantiates_each_node_once_in_its_own_account(env: Module) -> None:
    nodes = {name: call for name, call in env.modules.items() if "/modules/node-" in call["source"]}
    ids = [call["node_id"] for call in nodes.values()]
    assert len(ids) in (3, 5)
    assert len(set(ids)) == len(ids)
    assert "mesh" not in env.modules
    for call in nodes.values():
        assert "peers" not in call
        assert "peer_port" not in call
        assert call["client_cidrs"] == "${var.client_cidrs}"
        assert call["releases"] == "${local.releases}"
        assert call["providers"], "each node must get its own provider alias (its own account)"
    providers = [str(call["providers"]) for call in nodes.values()]
    assert len(set(providers)) == len(providers), "two nodes share an account/provider"


def test_environment_releases_come_from_manifest_files(env: Module) -> None:
    releases = env.locals["releases"]
    assert "jsondecode(file(m)).pcrs" in releases
    assert "var.manifest_path, var.also_admit_manifest_path" in releases


def test_no_module_declares_peers_or_a_peer_port() -> None:
    """Nodes never dial each other today: nothing may open or route a peer port (infra/README.md)."""
    for directory in all_module_dirs():
        module = load_module(directory)
        assert not [v for v in module.variables if "peer" in v], directory
        assert not [o for o in module.outputs if "peer" in o], directory
    assert not (MODULES / "mesh").exists()


def test_aws_ingress_only_from_declared_clients(aws: Module) -> None:
    ingress = aws.resources_of("aws_vpc_security_group_ingress_rule")
    assert set(ingress) == {"status", "service", "operations"}
    for name, rule in ingress.items():
        sources = "operator_cidrs" if name == "operations" else "client_cidrs"
        assert rule["for_each"] == f"${{toset(var.{sources})}}"
        assert rule["from_port"] == rule["to_port"] == f"${{var.{name}_port}}"
        assert rule["cidr_ipv4"] == "${each.value}"
    assert not aws.resources_of("aws_security_group_rule")
    assert "ingress" not in aws.resources_of("aws_security_group")["node"]
    egress = aws.resources_of("aws_vpc_security_group_egress_rule")
    assert set(egress) == {"aws_apis"}
    assert egress["aws_apis"]["from_port"] == egress["aws_apis"]["to_port"] == 443


def test_gcp_ingress_only_from_declared_clients(gcp: Module) -> None:
    firewalls = gcp.resources_of("google_compute_firewall")
    assert set(firewalls) == {"client"}
    client = firewalls["client"]
    assert client["source_ranges"] == "${var.client_cidrs}"
    assert client["direction"] == "INGRESS"
    assert as_list(client["allow"])[0]["ports"] == [
        "${tostring(var.status_port)}",
        "${tostring(var.service_port)}",
    ]


# --- the instance -------------------------------------------------------------------------------


def test_launch_template_enclave_imdsv2_encrypted(aws: Module) -> None:
    template = aws.resources_of("aws_launch_template")["node"]
    assert as_list(template["enclave_options"])[0]["enabled"] is True
    metadata = as_list(template["metadata_options"])[0]
    assert metadata["http_tokens"] == "required"
    assert metadata["http_put_response_hop_limit"] == 1
    for mapping in as_list(template["block_device_mappings"]):
        assert as_list(mapping["ebs"])[0]["encrypted"] is True
    assert "key_name" not in template  # no SSH key


def test_blob_bucket_policy_admits_only_the_node_role(aws: Module) -> None:
    document = aws.data_of("aws_iam_policy_document")["blobs"]
    deny = next(s for s in statements(document) if s.get("sid") == "OnlyNodeRoleTouchesObjects")
    assert deny["effect"] == "Deny"
    (condition,) = conditions(deny)
    assert condition["test"] == "ArnNotEquals"
    assert condition["variable"] == "aws:PrincipalArn"
    assert condition["values"] == [NODE_ROLE]
    public = aws.resources_of("aws_s3_bucket_public_access_block")["blobs"]
    assert all(
        public[k] is True
        for k in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )


def test_user_data_checks_the_parent_package_hash() -> None:
    template = (MODULES / "node-aws-nitro" / "templates" / "user_data.sh.tftpl").read_text()
    assert "set -euo pipefail" in template
    assert "sha256sum --check --strict" in template
    assert template.index("sha256sum --check") < template.index("pip install")
    assert "/etc/nitro_enclaves/allocator.yaml" in template
    assert "python -m parent --config /etc/keyshard/parent.json" in template
    assert "${parent_config_json}" in template


def test_every_tf_file_parses() -> None:
    files = list((REPO / "infra" / "terraform").rglob("*.tf"))
    assert len(files) > 20
    for directory in {f.parent for f in files}:
        load_module(Path(directory))


def test_parent_config_serves_the_enclaves_ports_and_reaches_only_kms(aws: Module) -> None:
    call = aws.modules["parent_config"]
    assert call["source"] == "../parent-config"
    assert (call["status_port"], call["service_port"]) == (
        "${var.status_port}",
        "${var.service_port}",
    )
    parent = load_module(MODULES / "parent-config")
    assert not parent.resources
    assert not parent.data
    assert (parent.locals["enclave_status_port"], parent.locals["enclave_service_port"]) == (
        STATUS_PORT,
        SERVICE_PORT,
    )
    assert parent.locals["kms_vsock_port"] == KMS_PROXY_PORT
    assert parent.locals["config"]["allow"] == ["${local.kms_target}"]
    assert parent.locals["kms_target"] == "kms.${var.region}.amazonaws.com:443"


def test_cluster_profile_pins_the_shipped_aws_root_and_the_manifest(env: Module) -> None:
    """The profile's root fingerprint is the SHA-256 of the AWS Nitro root the package ships."""
    pem = (REPO / "attestation" / "aws_nitro_root_g1.pem").read_bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    profile = load_module(MODULES / "cluster-profile")
    assert profile.locals["root_sha256"] == digest.finalize().hex()
    assert profile.locals["profile"]["expected_pcrs"] == "${[for r in var.releases : r.pcrs]}"
    call = env.modules["cluster_profile"]
    assert call["nodes"] == "${[for n in local.nodes : n.profile_entry]}"
    assert call["releases"] == "${local.releases}"
    assert "attestation/aws_nitro_root_g1.pem" in call["attestation_root_pem"]
    assert env.outputs["cluster_profile"]["value"] == "${module.cluster_profile.profile_json}"
    assert env.locals["nodes"] == ["${module.node_a}", "${module.node_b}", "${module.node_c}"]
