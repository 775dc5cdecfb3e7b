# Example environment: three nodes (t = 1) in three AWS accounts and three regions, fed from the
# release manifest on disk — node kinds that can join today (a GCP Confidential Space node cannot
# yet: infra/README.md "Multi-cloud"). Each node opens its status and node-service ports to the
# declared client ranges only, and its HTTP operations port (/metrics, /health, /ready) to the
# operators' ranges only; nodes never connect to each other (the client coordinates and relays the
# envelopes), so no node admits another node's address.

locals {
  manifest   = jsondecode(file(var.manifest_path))
  also_admit = var.also_admit_manifest_path == "" ? null : jsondecode(file(var.also_admit_manifest_path))

  # The node modules deploy releases[0] and admit every entry in the key policies.
  releases = [for m in compact([var.manifest_path, var.also_admit_manifest_path]) : {
    version      = jsondecode(file(m)).version
    image_digest = jsondecode(file(m)).image_digest
    pcrs         = jsondecode(file(m)).pcrs
  }]

  eif_uri        = "s3://${var.release_bucket}/keyshard-${local.manifest.version}.eif"
  parent_package = { uri = "s3://${var.release_bucket}/keyshard-parent-${local.manifest.version}.tar", sha256 = var.parent_package_sha256 }
}

# Refuse the example manifest unless explicitly allowed, and refuse a manifest with the wrong schema.
resource "terraform_data" "release_guard" {
  input = local.manifest.version

  lifecycle {
    precondition {
      condition     = try(local.manifest.schema, "") == "keyshard.release-manifest.v1"
      error_message = "The manifest is not a keyshard.release-manifest.v1 document."
    }
    precondition {
      condition     = !try(local.manifest.example, true) || var.allow_example_manifest
      error_message = "This manifest is marked as an example: its PCRs match no real image. Build a release (make eif) or set allow_example_manifest for a dry run."
    }
    precondition {
      condition     = local.also_admit == null || try(local.also_admit.version, "") != local.manifest.version
      error_message = "The also-admitted manifest must be a different release."
    }
  }
}

module "node_a" {
  source    = "../../modules/node-aws-nitro"
  providers = { aws = aws.node_a }

  cluster_name         = var.cluster_name
  node_id              = "a"
  releases             = local.releases
  artifact_uri         = local.eif_uri
  parent_package       = local.parent_package
  network              = { network_id = var.node_a.vpc_id, subnet_id = var.node_a.subnet_id, address_id = var.node_a.eip_allocation_id }
  status_port          = 7400
  service_port         = 7443
  operations_port      = 9100
  client_cidrs         = var.client_cidrs
  operator_cidrs       = var.operator_cidrs
  key_admin_principals = var.node_a.key_admins
  machine_type         = var.node_a.instance_type
}

module "node_b" {
  source    = "../../modules/node-aws-nitro"
  providers = { aws = aws.node_b }

  cluster_name         = var.cluster_name
  node_id              = "b"
  releases             = local.releases
  artifact_uri         = local.eif_uri
  parent_package       = local.parent_package
  network              = { network_id = var.node_b.vpc_id, subnet_id = var.node_b.subnet_id, address_id = var.node_b.eip_allocation_id }
  status_port          = 7400
  service_port         = 7443
  operations_port      = 9100
  client_cidrs         = var.client_cidrs
  operator_cidrs       = var.operator_cidrs
  key_admin_principals = var.node_b.key_admins
  machine_type         = var.node_b.instance_type
}

module "node_c" {
  source    = "../../modules/node-aws-nitro"
  providers = { aws = aws.node_c }

  cluster_name         = var.cluster_name
  node_id              = "c"
  releases             = local.releases
  artifact_uri         = local.eif_uri
  parent_package       = local.parent_package
  network              = { network_id = var.node_c.vpc_id, subnet_id = var.node_c.subnet_id, address_id = var.node_c.eip_allocation_id }
  status_port          = 7400
  service_port         = 7443
  operations_port      = 9100
  client_cidrs         = var.client_cidrs
  operator_cidrs       = var.operator_cidrs
  key_admin_principals = var.node_c.key_admins
  machine_type         = var.node_c.instance_type
}
