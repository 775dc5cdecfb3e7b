locals {
  nodes = [module.node_a, module.node_b, module.node_c]
}

module "cluster_profile" {
  source = "../../modules/cluster-profile"

  cluster_name         = var.cluster_name
  threshold            = var.threshold
  region               = var.node_a.region
  attestation_root_pem = file("${path.module}/../../../../attestation/aws_nitro_root_g1.pem")
  releases             = local.releases
  nodes                = [for n in local.nodes : n.profile_entry]
}

output "cluster_profile" {
  description = <<-EOT
    The client's cluster profile (JSON, version 2 of keyshard/client/profile.py, the shape `keyshard dev
    up` writes), with mode "real": save it as the client's profile file. Clients pin expected_pcrs
    (the release the nodes run); accepted_releases is informative (see infra/README.md, upgrades).
  EOT
  value       = module.cluster_profile.profile_json
}

output "operations_endpoints" {
  description = "Each node's HTTP operations endpoint (metrics, health and readiness URLs), reachable from operator_cidrs only: point Prometheus and the uptime checks here."
  value       = { for n in local.nodes : n.node_id => n.operations_endpoint }
}

output "health_checks" {
  description = "Each node's health check, in the shape a load balancer target group or an uptime checker takes."
  value       = { for n in local.nodes : n.node_id => n.health_check }
}

output "sealing_keys" {
  description = "Each node's attestation-gated sealing key."
  value       = { for n in local.nodes : n.node_id => n.sealing_key_id }
}

output "blob_stores" {
  description = "Each node's sealed-blob store."
  value       = { for n in local.nodes : n.node_id => n.blob_store_uri }
}

output "image_cluster_table" {
  description = <<-EOT
    The cluster table the ONE enclave image of every node bakes into enclave/image.json: node id
    => that node's sealing key ARN. Write it to a file (terraform output -json image_cluster_table >
    nodes.json) and pass it to tools/image_config.py write --nodes nodes.json (or build-eif.sh
    --nodes nodes.json); infra/README.md, step 1. Each parent names its own row (parent config
    node_id) at boot.
  EOT
  value = {
    for n in local.nodes : n.node_id => n.sealing_key_id if n.kind == "aws-nitro"
  }
}
