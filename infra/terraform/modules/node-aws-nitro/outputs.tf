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

output "peer_endpoint" {
  description = "host:port where peers reach this node."
  value       = "${data.aws_eip.node.public_ip}:${var.peer_port}"
}

output "client_endpoint" {
  description = "host:port where clients reach this node."
  value       = "${data.aws_eip.node.public_ip}:${var.client_port}"
}

output "network_range" {
  description = "The CIDR this node's traffic comes from (what peers declare for it)."
  value       = "${data.aws_eip.node.public_ip}/32"
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
  description = "This node's entry in the client's cluster profile (the shape keyshard dev writes)."
  value = {
    node_id       = var.node_id
    kind          = "aws-nitro"
    endpoint      = "${data.aws_eip.node.public_ip}:${var.client_port}"
    peer_endpoint = "${data.aws_eip.node.public_ip}:${var.peer_port}"
    sealing_key   = aws_kms_key.sealing.arn
  }
}
