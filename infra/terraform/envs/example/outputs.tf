locals {
  nodes = [module.node_a, module.node_b, module.node_c]
}

output "cluster_profile" {
  description = <<-EOT
    The client's cluster profile (JSON), in the shape `keyshard dev up` writes for an emulated
    cluster (version 1), with mode "real": save it as the cluster's profile file. expected_pcrs is the
    current release; accepted_releases also lists the previous one while an upgrade rolls.
  EOT
  value = jsonencode({
    version   = 1
    mode      = "real"
    cluster   = var.cluster_name
    threshold = var.threshold
    release   = local.manifest.version
    # SHA-256 of the DER of the AWS Nitro Enclaves root (CN=aws.nitro-enclaves), pinned by clients.
    attestation_root  = { sha256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b" }
    expected_pcrs     = local.releases[0].pcrs
    accepted_releases = local.releases
    nodes             = [for n in local.nodes : n.profile_entry]
  })
}

output "sealing_keys" {
  description = "Each node's attestation-gated sealing key."
  value       = { for n in local.nodes : n.node_id => n.sealing_key_id }
}

output "blob_stores" {
  description = "Each node's sealed-blob store."
  value       = { for n in local.nodes : n.node_id => n.blob_store_uri }
}
