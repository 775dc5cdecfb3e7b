variable "nodes" {
  description = <<-EOT
    Every node of the cluster as the operators declared it: id, the host peers and clients dial
    (a pre-allocated static address or a DNS name), and the network range its traffic comes from
    (normally that static address as a /32). Declared, not discovered: ingress is opened to exactly
    these ranges, and nothing is looked up at plan time.
  EOT
  type = list(object({
    id            = string
    host          = string
    network_range = string
  }))

  validation {
    condition     = length(var.nodes) >= 3
    error_message = "A Keyshard cluster has at least three nodes."
  }

  validation {
    condition     = length(distinct([for n in var.nodes : n.id])) == length(var.nodes)
    error_message = "Node ids must be distinct."
  }

  validation {
    condition     = alltrue([for n in var.nodes : can(cidrhost(n.network_range, 0))])
    error_message = "Every network_range must be a CIDR block."
  }

  validation {
    condition     = alltrue([for n in var.nodes : !contains(["0.0.0.0/0", "::/0"], n.network_range)])
    error_message = "A node's network_range may not be the whole internet."
  }

  validation {
    condition     = length(distinct([for n in var.nodes : n.network_range])) == length(var.nodes)
    error_message = "Two nodes may not share a network range: each node's ingress would admit the other's neighbours."
  }

  validation {
    condition     = alltrue([for n in var.nodes : can(regex("^[A-Za-z0-9.-]+$", n.host))])
    error_message = "A node host is a DNS name or an IPv4 address, without port or scheme."
  }
}

variable "peer_port" {
  description = "TCP port of the peer listener on every node."
  type        = number
  default     = 7400
}
