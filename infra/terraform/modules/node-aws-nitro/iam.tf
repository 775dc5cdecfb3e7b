# The node role: what the parent (and, through its credentials relay, the enclave) may call.
# Least privilege: read its own blobs, write its logs, and call KMS on the sealing key. The KMS
# grant is also in the key policy (kms.tf) with the attestation condition; here it is repeated with
# the same condition so that neither document alone ever grants an unconditional Decrypt.

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    sid     = "Ec2AssumesNodeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name                 = "${local.name}-node"
  assume_role_policy   = data.aws_iam_policy_document.assume_ec2.json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_instance_profile" "node" {
  name = "${local.name}-node"
  role = aws_iam_role.node.name
  tags = local.tags
}

data "aws_iam_policy_document" "node" {
  statement {
    sid       = "SealingKeyOnlyForAttestedEnclave"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.sealing.arn]

    condition {
      test     = "StringEqualsIgnoreCase"
      variable = "kms:RecipientAttestation:ImageSha384"
      values   = local.image_sha384
    }

    dynamic "condition" {
      for_each = local.signed ? [local.pcr8] : []
      content {
        test     = "StringEqualsIgnoreCase"
        variable = "kms:RecipientAttestation:PCR8"
        values   = condition.value
      }
    }
  }

  statement {
    sid       = "DescribeSealingKey"
    effect    = "Allow"
    actions   = ["kms:DescribeKey"]
    resources = [aws_kms_key.sealing.arn]
  }

  statement {
    sid       = "StorageKeyOnlyThroughS3"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.storage.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "SealedBlobs"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:ListBucket", "s3:ListBucketVersions"]
    resources = [aws_s3_bucket.blobs.arn, "${aws_s3_bucket.blobs.arn}/*"]
  }

  statement {
    sid       = "ReleaseArtifacts"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [local.artifact_object_arn, local.parent_object_arn]
  }

  statement {
    sid       = "Logs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.node.arn}:*"]
  }
}

resource "aws_iam_role_policy" "node" {
  name   = "${local.name}-node"
  role   = aws_iam_role.node.id
  policy = data.aws_iam_policy_document.node.json
}
