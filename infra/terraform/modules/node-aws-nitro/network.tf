# Ingress opens the peer port only to the declared peers' ranges (from the mesh module) and the client
# port only to the declared client ranges. Egress: the peers' peer port, and HTTPS for the AWS APIs
# (KMS, S3, CloudWatch, STS), which the parent's outbound proxy narrows further to an allow-list.

resource "aws_security_group" "node" {
  name_prefix = "${local.name}-"
  description = "Keyshard node ${local.name}: peers and clients only"
  vpc_id      = var.network.network_id
  tags        = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "peer" {
  for_each = toset(local.peer_ranges)

  security_group_id = aws_security_group.node.id
  description       = "Keyshard peer traffic from a declared peer"
  ip_protocol       = "tcp"
  from_port         = var.peer_port
  to_port           = var.peer_port
  cidr_ipv4         = each.value
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "client" {
  for_each = toset(var.client_cidrs)

  security_group_id = aws_security_group.node.id
  description       = "Keyshard client API from a declared client range"
  ip_protocol       = "tcp"
  from_port         = var.client_port
  to_port           = var.client_port
  cidr_ipv4         = each.value
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "peer" {
  for_each = toset(local.peer_ranges)

  security_group_id = aws_security_group.node.id
  description       = "Keyshard peer traffic to a declared peer"
  ip_protocol       = "tcp"
  from_port         = var.peer_port
  to_port           = var.peer_port
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
