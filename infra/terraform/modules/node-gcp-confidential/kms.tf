# The sealing key: encrypt/decrypt only for a federated principal whose attested image digest is one
# of the admitted releases (one binding per digest, so an upgrade adds the new digest, then removes
# the old). The node's service account itself gets no KMS role: outside the attested container it
# can reach nothing. Administrators get cloudkms.admin, which manages keys but cannot use them.

resource "google_kms_key_ring" "node" {
  name     = "keyshard-${local.name}"
  location = local.region
}

resource "google_kms_crypto_key" "sealing" {
  name            = "sealing"
  key_ring        = google_kms_key_ring.node.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"
  labels          = merge(local.labels, { "keyshard-key-purpose" = "sealing" })

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = "HSM"
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "attested_workload" {
  for_each = toset(local.image_digests)

  crypto_key_id = google_kms_crypto_key.sealing.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "principalSet://iam.googleapis.com/${google_iam_workload_identity_pool.node.name}/attribute.image_digest/${each.value}"
}

resource "google_kms_key_ring_iam_member" "admins" {
  for_each = toset(var.key_admin_principals)

  key_ring_id = google_kms_key_ring.node.id
  role        = "roles/cloudkms.admin"
  member      = each.value
}

# CMEK for the blob bucket and the boot disk, used by the Cloud Storage and Compute Engine service
# agents only (the disk holds Google's public Confidential Space image, the bucket sealed blobs).
data "google_storage_project_service_account" "gcs" {}

resource "google_kms_crypto_key" "storage" {
  name            = "storage"
  key_ring        = google_kms_key_ring.node.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s"
  labels          = merge(local.labels, { "keyshard-key-purpose" = "storage" })

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_kms_crypto_key_iam_member" "gcs_agent" {
  crypto_key_id = google_kms_crypto_key.storage.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_kms_crypto_key_iam_member" "compute_agent" {
  crypto_key_id = google_kms_crypto_key.storage.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.current.number}@compute-system.iam.gserviceaccount.com"
}
