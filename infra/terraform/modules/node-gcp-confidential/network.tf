# Ingress to this node's service account only, from the declared peers (peer port) and the declared
# client ranges (client port). Nothing else is opened; GCP's implied deny-ingress rule does the rest.

resource "google_compute_firewall" "peer" {
  count = length(local.peer_ranges) > 0 ? 1 : 0

  name                    = "keyshard-${local.name}-peer"
  network                 = var.network.network_id
  direction               = "INGRESS"
  source_ranges           = local.peer_ranges
  target_service_accounts = [google_service_account.node.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.peer_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

resource "google_compute_firewall" "client" {
  count = length(var.client_cidrs) > 0 ? 1 : 0

  name                    = "keyshard-${local.name}-client"
  network                 = var.network.network_id
  direction               = "INGRESS"
  source_ranges           = var.client_cidrs
  target_service_accounts = [google_service_account.node.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.client_port)]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
