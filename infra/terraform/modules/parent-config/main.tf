# parent-config: the parent's configuration file (schema: parent/config.py), real mode.
#
# Inbound: two TCP listeners forward to the enclave's two vsock services —
#   "status"  -> enclave port 5000 (enclave/status.py CLIENT_PORT): readiness and public
#                node information (node id, reported PCRs); no secret crosses it;
#   "service" -> enclave port 5001 (enclave/service/server.py SERVICE_PORT): the node service, TLS 1.3
#                with mutual authentication terminated INSIDE the enclave; the parent relays records
#                it cannot read, and only clients pinned in the measured image.json get past the
#                handshake.
# Both are used by clients (the SDK/CLI and operators' tooling). Nodes never connect to each other:
# the client coordinates a DKG or a signature and relays crypto_box envelopes between the enclaves,
# so there is no peer listener and no outbound peer route.
#
# Operations: the parent's own HTTP listener (not a route to the enclave): Prometheus /metrics,
# /health and /ready, which ask the enclave's status port (vsock 5000) for its telemetry.
#
# Node id: the one per-node value the enclave takes from the parent (see local.config.node_id).
#
# Outbound: exactly this region's KMS endpoint (TLS stays end to end, the parent sees ciphertext);
# the allow-list repeats that one target, so a compromised enclave image could not make the parent
# dial anywhere else either.

locals {
  # vsock ports inside the node (enclave side); keyshard/dev/node_config.py uses the same constants.
  enclave_status_port  = 5000
  enclave_service_port = 5001
  kms_vsock_port       = 8000

  kms_target = "kms.${var.region}.amazonaws.com:443"

  config = {
    mode        = "real"
    enclave_cid = var.enclave_cid
    # Which row of the image's cluster table this node is: every node runs the same EIF, and the
    # parent hands this id to the enclave at boot (host services GetLaunch). The enclave uses the
    # table's key for it, so a wrong id only fails the boot (the other key refuses this role).
    node_id = var.node_id
    inbound = [
      { name = "status", listen = "0.0.0.0:${var.status_port}", enclave_port = local.enclave_status_port },
      { name = "service", listen = "0.0.0.0:${var.service_port}", enclave_port = local.enclave_service_port },
    ]
    outbound    = [{ name = "kms", port = local.kms_vsock_port, target = local.kms_target }]
    allow       = [local.kms_target]
    limits      = { max_connections = 256, idle_timeout = 300, connect_timeout = 10 }
    blob_store  = { kind = "s3", bucket = var.blob_bucket, prefix = "sealed/", region = var.region }
    credentials = { kind = "imds" }
    launcher    = { kind = "nitro", eif_path = var.eif_path, cpu_count = var.enclave_cpus, memory_mib = var.enclave_memory_mib }
    operations  = { listen = "0.0.0.0:${var.operations_port}", status_port = local.enclave_status_port }
  }
}
