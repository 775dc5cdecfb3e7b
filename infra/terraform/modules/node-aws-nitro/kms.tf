# Two keys, two jobs.
#
# sealing: the enclave's data-key root. Its KEY POLICY (not only the role policy) lets the node role
#   Decrypt / GenerateDataKey only when the request carries an attestation document whose PCR0
#   (ImageSha384), and PCR8 for a signed image, equal a release in var.releases. KMS then answers
#   CiphertextForRecipient, which only that enclave can open. A Deny statement repeats the rule for
#   every principal, so a later IAM grant elsewhere cannot widen it. The administrators manage the key
#   (policy, rotation, deletion) but hold none of the cryptographic or grant actions.
#
# storage: SSE-KMS for the blob bucket, usable by the node role only through S3. The blobs are already
#   sealed by the enclave; this key is defence in depth against a misconfigured bucket.

locals {
  # Everything an administrator may do: manage, never use, never delegate (no CreateGrant, which
  # would hand out Decrypt without the attestation condition).
  key_admin_actions = [
    "kms:CancelKeyDeletion",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateKeyDescription",
  ]
  key_use_actions = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
  ]
}

data "aws_iam_policy_document" "sealing_key" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; writes are limited to the named administrators
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only
  statement {
    sid       = "KeyAdministrationWithoutUse"
    effect    = "Allow"
    actions   = local.key_admin_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = var.key_admin_principals
    }
  }

  statement {
    sid       = "AttestedEnclaveOnly"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.node.arn]
    }

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
    sid       = "NodeDescribesKey"
    effect    = "Allow"
    actions   = ["kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.node.arn]
    }
  }

  # StringNotEqualsIgnoreCase also matches a request with no attestation document at all, so this
  # denies every unattested use, whoever asks and whatever else grants it.
  statement {
    sid       = "DenyUseWithoutReleasedMeasurement"
    effect    = "Deny"
    actions   = local.key_use_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEqualsIgnoreCase"
      variable = "kms:RecipientAttestation:ImageSha384"
      values   = local.image_sha384
    }
  }
}

resource "aws_kms_key" "sealing" {
  description                        = "Keyshard ${local.name}: sealing key, released only to attested enclaves"
  key_usage                          = "ENCRYPT_DECRYPT"
  customer_master_key_spec           = "SYMMETRIC_DEFAULT"
  enable_key_rotation                = true
  deletion_window_in_days            = 30
  bypass_policy_lockout_safety_check = false
  policy                             = data.aws_iam_policy_document.sealing_key.json
  tags                               = merge(local.tags, { "keyshard:key-purpose" = "sealing" })
}

resource "aws_kms_alias" "sealing" {
  name          = "alias/keyshard/${local.name}/sealing"
  target_key_id = aws_kms_key.sealing.key_id
}

data "aws_iam_policy_document" "storage_key" {
  #checkov:skip=CKV_AWS_111:A key policy's Resource "*" means this key only; writes are limited to the named administrators
  #checkov:skip=CKV_AWS_356:A key policy's Resource "*" means this key only
  statement {
    sid       = "KeyAdministrationWithoutUse"
    effect    = "Allow"
    actions   = local.key_admin_actions
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = var.key_admin_principals
    }
  }

  statement {
    sid       = "NodeUsesKeyOnlyThroughS3"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [aws_iam_role.node.arn]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "storage" {
  description             = "Keyshard ${local.name}: SSE-KMS for the sealed-blob bucket"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.storage_key.json
  tags                    = merge(local.tags, { "keyshard:key-purpose" = "storage" })
}

resource "aws_kms_alias" "storage" {
  name          = "alias/keyshard/${local.name}/storage"
  target_key_id = aws_kms_key.storage.key_id
}
