# Ingress: the status port and the node-service port, each only from the declared client ranges;
# the parent's HTTP operations port (/metrics, /health, /ready) only from the operators' ranges.
# There is no peer ingress or egress: nodes never connect to each other (the client relays the
# crypto_box envelopes of a DKG or a signature). Egress: HTTPS for the AWS APIs (KMS, S3, CloudWatch,
# STS), which the parent's outbound proxy narrows further to this region's KMS endpoint for the
# enclave.

resource "aws_security_group" "node" {
  name_prefix = "${local.name}-"
  description = "Keyshard node ${local.name}: clients only"
  vpc_id      = var.network.network_id
  tags        = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "status" {
  for_each = toset(var.client_cidrs)

  security_group_id = aws_security_group.node.id
  description       = "Keyshard status (health, attestation) from a declared client range"
  ip_protocol       = "tcp"
  from_port         = var.status_port
  to_port           = var.status_port
  cidr_ipv4         = each.value
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "service" {
  for_each = toset(var.client_cidrs)

  security_group_id = aws_security_group.node.id
  description       = "Keyshard node service (mTLS ended in the enclave) from a declared client range"
  ip_protocol       = "tcp"
  from_port         = var.service_port
  to_port           = var.service_port
  cidr_ipv4         = each.value
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "operations" {
  for_each = toset(var.operator_cidrs)

  security_group_id = aws_security_group.node.id
  description       = "Keyshard operations (HTTP /metrics, /health, /ready) from a declared operator range"
  ip_protocol       = "tcp"
  from_port         = var.operations_port
  to_port           = var.operations_port
  cidr_ipv4         = each.value
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "aws_apis" {
  security_group_id = aws_security_group.node.id
  description       = "HTTPS to AWS regional endpoints (KMS, S3, CloudWatch, STS)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}

resource "aws_eip_association" "node" {
  allocation_id = var.network.address_id
  instance_id   = aws_instance.node.id
}
