locals {
  nodes = [module.node_a, module.node_b, module.node_c]
}

output "cluster_profile" {
  description = "The client's cluster profile (JSON): save it as the cluster's profile file."
  value = jsonencode({
    format    = "keyshard.cluster-profile.v1"
    cluster   = var.cluster_name
    threshold = var.threshold
    # SHA-256 of the DER of the AWS Nitro Enclaves root (CN=aws.nitro-enclaves), pinned by clients.
    aws_nitro_root_sha256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    release               = local.manifest.version
    nodes                 = [for n in local.nodes : n.profile_entry]
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
