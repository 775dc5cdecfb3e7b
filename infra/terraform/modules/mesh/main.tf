# mesh: from the declared node list, each node's view of its peers (everyone but itself). The node
# modules turn that view into ingress rules (peer port open to exactly these ranges) and into the
# parent's outbound allow-list (exactly these endpoints).

locals {
  peers = [for n in var.nodes : {
    id            = n.id
    endpoint      = "${n.host}:${var.peer_port}"
    network_range = n.network_range
  }]

  peers_of = {
    for n in var.nodes : n.id => [for p in local.peers : p if p.id != n.id]
  }
}
