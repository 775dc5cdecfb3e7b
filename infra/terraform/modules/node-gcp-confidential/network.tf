# Ingress to this node's service account only: the status port and the node-service port, from the
# declared client ranges. No peer rule: nodes never connect to each other (the client relays the
# envelopes). Nothing else is opened; GCP's implied deny-ingress rule does the rest. The node
# interface's operations_port / operator_cidrs open nothing here: this kind runs no parent yet
# (see infra/README.md "Multi-cloud"), so there is no /metrics, /health or /ready to reach.

resource "google_compute_firewall" "client" {
  count = length(var.client_cidrs) > 0 ? 1 : 0

  name                    = "keyshard-${local.name}-client"
  network                 = var.network.network_id
  direction               = "INGRESS"
  source_ranges           = var.client_cidrs
  target_service_accounts = [google_service_account.node.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.status_port), tostring(var.service_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
