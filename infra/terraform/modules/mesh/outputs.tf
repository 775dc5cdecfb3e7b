output "peers_of" {
  description = "For each node id, the list of its peers (id, endpoint, network_range), itself excluded."
  value       = local.peers_of
}

output "node_ids" {
  description = "The node ids in declaration order."
  value       = [for n in var.nodes : n.id]
}
