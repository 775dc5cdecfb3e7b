# The node interface, output side: exactly the outputs of node-aws-nitro (tests/infra checks it).

output "node_id" {
  description = "This node's identifier."
  value       = var.node_id
}

output "kind" {
  description = "The node kind: how clients verify this node's attestation."
  value       = "gcp-confidential-space"
}

output "peer_endpoint" {
  description = "host:port where peers reach this node."
  value       = "${var.network.address_id}:${var.peer_port}"
}

output "client_endpoint" {
  description = "host:port where clients reach this node."
  value       = "${var.network.address_id}:${var.client_port}"
}

output "network_range" {
  description = "The CIDR this node's traffic comes from (what peers declare for it)."
  value       = "${var.network.address_id}/32"
}

output "node_identity" {
  description = "The cloud identity the node acts as (service account email)."
  value       = google_service_account.node.email
}

output "sealing_key_id" {
  description = "The attestation-gated sealing key (Cloud KMS key id)."
  value       = google_kms_crypto_key.sealing.id
}

output "blob_store_uri" {
  description = "Where the parent keeps sealed blobs."
  value       = "gs://${google_storage_bucket.blobs.name}"
}

output "accepted_releases" {
  description = "The releases whose measurements the sealing key admits, newest first."
  value       = var.releases
}

output "profile_entry" {
  description = "This node's entry in the client's cluster profile (the shape keyshard dev writes)."
  value = {
    node_id       = var.node_id
    kind          = "gcp-confidential-space"
    endpoint      = "${var.network.address_id}:${var.client_port}"
    peer_endpoint = "${var.network.address_id}:${var.peer_port}"
    sealing_key   = google_kms_crypto_key.sealing.id
  }
}
