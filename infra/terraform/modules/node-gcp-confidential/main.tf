# node-gcp-confidential: one Keyshard node as a Confidential Space workload on GCP.
#
# Same interface as node-aws-nitro (variables.tf and the outputs are identical), different root of
# trust: the whole Confidential VM (AMD SEV) is the TEE, Google's Confidential Space image launches
# exactly the container named by digest in var.artifact_uri, and Google's attestation service issues
# an OIDC token whose claims name that digest. The sealing key is usable only by a workload identity
# pool principal whose attribute.image_digest is one of var.releases' image digests, on a production
# (non-debug, STABLE) Confidential Space image. PCRs in var.releases are ignored here; the
# image_digest is the measurement. Nothing is fetched from the network at plan time.
#
# Status: formatted and statically checked (checkov, tests/infra), not yet applied against a real
# project; the Keyshard enclave code still needs a Confidential Space attestation backend (token from
# the launcher's socket instead of /dev/nsm) before such a node can join a cluster.

data "google_project" "current" {}
data "google_client_config" "current" {}

locals {
  name    = "${var.cluster_name}-${var.node_id}"
  short   = substr(replace(local.name, "/[^a-z0-9-]/", ""), 0, 24)
  current = var.releases[0]

  image_digests = sort(distinct([for r in var.releases : r.image_digest]))
  region        = data.google_client_config.current.region

  # The attestation policy the workload identity provider enforces on every token exchange.
  attestation_condition = join(" && ", [
    "assertion.swname == 'CONFIDENTIAL_SPACE'",
    "'STABLE' in assertion.submods.confidential_space.support_attributes",
    "assertion.dbgstat == 'disabled-since-boot'",
    "assertion.submods.container.image_digest in [${join(", ", [for d in local.image_digests : "'${d}'"])}]",
    "'${google_service_account.node.email}' in assertion.google_service_accounts",
  ])

  labels = merge(var.tags, {
    "keyshard-cluster" = var.cluster_name
    "keyshard-node"    = var.node_id
    "keyshard-release" = replace(local.current.version, ".", "-")
  })
}

resource "google_service_account" "node" {
  account_id   = substr("ks-${local.short}", 0, 30)
  display_name = "Keyshard node ${local.name} (Confidential Space workload)"
}

resource "google_project_iam_member" "node_workload_user" {
  project = data.google_project.current.project_id
  role    = "roles/confidentialcomputing.workloadUser"
  member  = "serviceAccount:${google_service_account.node.email}"
}

resource "google_project_iam_member" "node_log_writer" {
  project = data.google_project.current.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.node.email}"
}

resource "google_iam_workload_identity_pool" "node" {
  workload_identity_pool_id = local.short
  display_name              = substr("Keyshard ${local.name}", 0, 32)
  description               = "Confidential Space attestations of Keyshard node ${local.name}"
}

resource "google_iam_workload_identity_pool_provider" "attestation" {
  workload_identity_pool_id          = google_iam_workload_identity_pool.node.workload_identity_pool_id
  workload_identity_pool_provider_id = "attestation-verifier"
  display_name                       = "Confidential Space"
  attribute_condition                = local.attestation_condition

  attribute_mapping = {
    "google.subject"         = "assertion.sub"
    "attribute.image_digest" = "assertion.submods.container.image_digest"
  }

  oidc {
    issuer_uri        = "https://confidentialcomputing.googleapis.com/"
    allowed_audiences = ["https://sts.googleapis.com"]
  }
}
