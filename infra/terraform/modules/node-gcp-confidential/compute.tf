# The Confidential VM running the Confidential Space image (production family, never the debug one)
# which launches exactly the container pinned by digest in var.artifact_uri. No SSH, no serial port,
# Shielded VM on. Workload logs are redirected to Cloud Logging by the launcher.

locals {
  # Google's KMS, token exchange and attestation endpoints only: nodes never dial each other.
  outbound_allow_list = ["cloudkms.googleapis.com:443", "sts.googleapis.com:443", "confidentialcomputing.googleapis.com:443"]
}

resource "google_compute_instance" "node" {
  name         = "keyshard-${local.name}"
  machine_type = var.machine_type
  zone         = "${local.region}-a"
  labels       = local.labels

  confidential_instance_config {
    confidential_instance_type = "SEV"
  }

  scheduling {
    on_host_maintenance = "TERMINATE"
    automatic_restart   = true
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  boot_disk {
    initialize_params {
      image = "projects/confidential-space-images/global/images/family/confidential-space"
      size  = 30
    }
    kms_key_self_link = google_kms_crypto_key.storage.id
  }

  network_interface {
    network    = var.network.network_id
    subnetwork = var.network.subnet_id
    access_config {
      nat_ip = var.network.address_id
    }
  }

  service_account {
    email  = google_service_account.node.email
    scopes = ["cloud-platform"]
  }

  metadata = {
    "tee-image-reference"             = var.artifact_uri
    "tee-restart-policy"              = "OnFailure"
    "tee-container-log-redirect"      = "true"
    "tee-env-KEYSHARD_CLUSTER"        = var.cluster_name
    "tee-env-KEYSHARD_NODE_ID"        = var.node_id
    "tee-env-KEYSHARD_RELEASE"        = local.current.version
    "tee-env-KEYSHARD_STATUS_PORT"    = tostring(var.status_port)
    "tee-env-KEYSHARD_SERVICE_PORT"   = tostring(var.service_port)
    "tee-env-KEYSHARD_BLOB_STORE"     = "gs://${google_storage_bucket.blobs.name}"
    "tee-env-KEYSHARD_SEALING_KEY"    = google_kms_crypto_key.sealing.id
    "tee-env-KEYSHARD_WIP_PROVIDER"   = google_iam_workload_identity_pool_provider.attestation.name
    "tee-env-KEYSHARD_OUTBOUND_ALLOW" = join(",", local.outbound_allow_list)
    "block-project-ssh-keys"          = "true"
    "serial-port-enable"              = "false"
    "enable-oslogin"                  = "true"
  }

  depends_on = [google_kms_crypto_key_iam_member.compute_agent]

  lifecycle {
    precondition {
      condition     = can(regex("@${local.current.image_digest}$", var.artifact_uri))
      error_message = "On GCP, artifact_uri must be pinned to the current release's image_digest (@sha256:...)."
    }
  }
}
