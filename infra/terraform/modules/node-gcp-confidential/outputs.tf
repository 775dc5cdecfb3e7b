# The node interface, output side: exactly the outputs of node-aws-nitro (tests/infra checks it).

output "node_id" {
  description = "This node's identifier."
  value       = var.node_id
}

output "kind" {
  description = "The node kind: how clients verify this node's attestation."
  value       = "gcp-confidential-space"
}

output "status_endpoint" {
  description = "host:port of the status listener (enclave vsock 5000): readiness and public node information."
  value       = "${var.network.address_id}:${var.status_port}"
}

output "service_endpoint" {
  description = "host:port of the node service (enclave vsock 5001): mutually authenticated TLS 1.3 ended in the enclave."
  value       = "${var.network.address_id}:${var.service_port}"
}

output "operations_endpoint" {
  description = "The parent's HTTP operations endpoint: null, this kind runs no parent yet (infra/README.md \"Multi-cloud\")."
  value       = null
}

output "health_check" {
  description = "The node's HTTP health check: null, this kind runs no parent yet (infra/README.md \"Multi-cloud\")."
  value       = null
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
  description = <<-EOT
    This node's entry in the client's cluster profile, in the shape keyshard/client/profile.py reads
    (node_id, endpoint = status, enclave = vsock CID and status port, kms_key_arn, service_endpoint),
    plus kind (how a client verifies this node's attestation) and region, which that loader ignores.
  EOT
  value = {
    node_id          = var.node_id
    region           = local.region
    kind             = "gcp-confidential-space"
    endpoint         = "${var.network.address_id}:${var.status_port}"
    service_endpoint = "${var.network.address_id}:${var.service_port}"
    enclave          = { cid = 16, port = 5000 }
    kms_key_arn      = google_kms_crypto_key.sealing.id
  }
}
