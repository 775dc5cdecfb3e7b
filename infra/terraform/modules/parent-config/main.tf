# parent-config: the parent's configuration file (schema: parent/config.py), real mode.
#
# Inbound: clients and peers reach the enclave through two TCP listeners. Outbound: the enclave
# reaches exactly this region's KMS endpoint (TLS stays end to end, the parent sees ciphertext) and
# each declared peer, each on its own vsock port; the allow-list repeats those targets and nothing
# else, so a compromised enclave image could not make the parent dial anywhere new either.

locals {
  # vsock ports inside the node (enclave side): see enclave/status.py (CLIENT_PORT) and
  # enclave/config.py (KMS_PROXY_PORT). Peer routes are numbered from 6001 in the mesh's order.
  enclave_client_port = 5000
  enclave_peer_port   = 5001
  kms_vsock_port      = 8000
  first_peer_vsock    = 6001

  kms_target = "kms.${var.region}.amazonaws.com:443"
  peers      = var.peers

  config = {
    mode        = "real"
    enclave_cid = var.enclave_cid
    inbound = [
      { name = "client", listen = "0.0.0.0:${var.client_port}", enclave_port = local.enclave_client_port },
      { name = "peer", listen = "0.0.0.0:${var.peer_port}", enclave_port = local.enclave_peer_port },
    ]
    outbound = concat(
      [{ name = "kms", port = local.kms_vsock_port, target = local.kms_target }],
      [for i, p in local.peers : { name = "peer-${p.id}", port = local.first_peer_vsock + i, target = p.endpoint }],
    )
    allow       = concat([local.kms_target], [for p in local.peers : p.endpoint])
    limits      = { max_connections = 256, idle_timeout = 300, connect_timeout = 10 }
    blob_store  = { kind = "s3", bucket = var.blob_bucket, prefix = "sealed/", region = var.region }
    credentials = { kind = "imds" }
    launcher    = { kind = "nitro", eif_path = var.eif_path, cpu_count = var.enclave_cpus, memory_mib = var.enclave_memory_mib }
  }
}
