# The node interface, output side: every node kind returns exactly these outputs (tests/infra checks
# it), so the environment builds the client's cluster profile the same way whatever the cloud.

data "aws_eip" "node" {
  id = var.network.address_id
}

output "node_id" {
  description = "This node's identifier."
  value       = var.node_id
}

output "kind" {
  description = "The node kind: how clients verify this node's attestation."
  value       = "aws-nitro"
}

output "status_endpoint" {
  description = "host:port of the status listener (enclave vsock 5000): readiness and public node information."
  value       = "${data.aws_eip.node.public_ip}:${var.status_port}"
}

output "service_endpoint" {
  description = "host:port of the node service (enclave vsock 5001): mutually authenticated TLS 1.3 ended in the enclave."
  value       = "${data.aws_eip.node.public_ip}:${var.service_port}"
}

output "operations_endpoint" {
  description = "The parent's HTTP operations endpoint: Prometheus metrics, liveness and readiness URLs (reachable from operator_cidrs only)."
  value = {
    metrics_url = "http://${data.aws_eip.node.public_ip}:${var.operations_port}/metrics"
    health_url  = "http://${data.aws_eip.node.public_ip}:${var.operations_port}/health"
    ready_url   = "http://${data.aws_eip.node.public_ip}:${var.operations_port}/ready"
  }
}

output "health_check" {
  description = <<-EOT
    The node's health check, in the shape of a load balancer target group's health_check block (or
    an uptime checker's): HTTP GET /ready on the operations port answers 200 once the enclave serves
    and 503 while it boots, after it failed or when it does not answer; /health (liveness) is 503
    only once the node failed. The checker's source must be in operator_cidrs.
  EOT
  value = {
    protocol      = "HTTP"
    port          = var.operations_port
    path          = "/ready"
    matcher       = "200"
    liveness_path = "/health"
  }
}

output "node_identity" {
  description = "The cloud identity the node acts as (IAM role ARN)."
  value       = aws_iam_role.node.arn
}

output "sealing_key_id" {
  description = "The attestation-gated sealing key (KMS key ARN)."
  value       = aws_kms_key.sealing.arn
}

output "blob_store_uri" {
  description = "Where the parent keeps sealed blobs."
  value       = "s3://${aws_s3_bucket.blobs.id}"
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
    kind             = "aws-nitro"
    endpoint         = "${data.aws_eip.node.public_ip}:${var.status_port}"
    service_endpoint = "${data.aws_eip.node.public_ip}:${var.service_port}"
    enclave          = { cid = 16, port = 5000 }
    kms_key_arn      = aws_kms_key.sealing.arn
  }
}
