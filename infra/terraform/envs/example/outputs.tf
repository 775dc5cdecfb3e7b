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
    The client's cluster profile (JSON, version 1 of keyshard/dev/profile.py, the shape `keyshard dev
    up` writes), with mode "real": save it as the client's profile file. Clients pin expected_pcrs
    (the release the nodes run); accepted_releases is informative (see infra/README.md, upgrades).
  EOT
  value       = module.cluster_profile.profile_json
}

output "sealing_keys" {
  description = "Each node's attestation-gated sealing key."
  value       = { for n in local.nodes : n.node_id => n.sealing_key_id }
}

output "blob_stores" {
  description = "Each node's sealed-blob store."
  value       = { for n in local.nodes : n.node_id => n.blob_store_uri }
}

output "image_config_inputs" {
  description = <<-EOT
    For each AWS node, the launch values its EIF's enclave/image.json must bake in (a Nitro EIF's
    command line is fixed): pass them to tools/image_config.py write (--node-id, --region,
    --kms-key-id, --kms-key-arn-prefix) when building that node's image (infra/README.md, step 1).
  EOT
  value = {
    for n in local.nodes : n.node_id => {
      node_id            = n.node_id
      region             = n.profile_entry.region
      kms_key_id         = n.sealing_key_id
      kms_key_arn_prefix = regex("^arn:aws[-a-z]*:kms:[^:]+:[0-9]{12}:key/", n.sealing_key_id)
    } if n.kind == "aws-nitro"
  }
}
