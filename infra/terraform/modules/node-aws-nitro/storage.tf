# The sealed-blob store. The parent keeps the enclave's sealed state here as opaque, versioned
# objects: versioning means a bad write or a rollback never destroys the previous state (the enclave
# detects rollback itself from its counters). Only the node role may touch objects.

resource "aws_s3_bucket" "blobs" {
  #checkov:skip=CKV_AWS_18:Objects are opaque sealed blobs; access is audited with CloudTrail data events, not a second bucket
  #checkov:skip=CKV_AWS_144:Durability comes from the threshold scheme (t+1 of n nodes, share repair), not replication of one node's blobs
  #checkov:skip=CKV2_AWS_62:No consumer for event notifications; the parent is the only writer
  bucket_prefix = "${substr(local.name, 0, 29)}-blobs-" # S3 allows at most 37 characters here
  force_destroy = false
  tags          = local.tags
}

resource "aws_s3_bucket_ownership_controls" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "blobs" {
  bucket                  = aws_s3_bucket.blobs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.storage.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id

  rule {
    id     = "keep-old-versions-for-recovery"
    status = "Enabled"
    filter {}

    noncurrent_version_expiration {
      noncurrent_days           = 365
      newer_noncurrent_versions = 50
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "blobs" {
  # Object access for nobody but the node role. Administrators keep bucket management through IAM
  # (so terraform can still manage the bucket) but cannot read or write a blob.
  statement {
    sid       = "OnlyNodeRoleTouchesObjects"
    effect    = "Deny"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:ListBucket", "s3:ListBucketVersions"]
    resources = [aws_s3_bucket.blobs.arn, "${aws_s3_bucket.blobs.arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = [aws_iam_role.node.arn]
    }
  }

  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.blobs.arn, "${aws_s3_bucket.blobs.arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "NoBlobDeletionEvenByTheNode"
    effect    = "Deny"
    actions   = ["s3:DeleteObjectVersion"]
    resources = ["${aws_s3_bucket.blobs.arn}/*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
  }
}

resource "aws_s3_bucket_policy" "blobs" {
  bucket     = aws_s3_bucket.blobs.id
  policy     = data.aws_iam_policy_document.blobs.json
  depends_on = [aws_s3_bucket_public_access_block.blobs]
}
