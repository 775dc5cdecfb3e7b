# Sealed blobs: versioned, never public, CMEK-encrypted, objects reachable by the node's service
# account only (granted on the bucket, not the project).

resource "google_storage_bucket" "blobs" {
  #checkov:skip=CKV_GCP_62:Objects are opaque sealed blobs; data access is audited with Cloud Audit Logs, not a second bucket
  name                        = "keyshard-${local.short}-blobs-${data.google_project.current.number}" # <= 63 characters
  location                    = upper(local.region)
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.storage.id
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 50
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_agent]
}

resource "google_storage_bucket_iam_member" "node_objects" {
  bucket = google_storage_bucket.blobs.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.node.email}"
}
