# Everything the node logs leaves through the untrusted parent and is public by design (no secret is
# ever logged); CloudWatch keeps it for audit, encrypted with the storage key's sibling service key.

resource "aws_cloudwatch_log_group" "node" {
  name              = "/keyshard/${var.cluster_name}/${var.node_id}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.logs.arn
  tags              = local.tags
}

data "aws_iam_policy_document" "logs_key" {
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
    sid       = "CloudWatchLogsOfThisNodeOnly"
    effect    = "Allow"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/keyshard/${var.cluster_name}/${var.node_id}"]
    }
  }
}

resource "aws_kms_key" "logs" {
  description             = "Keyshard ${local.name}: CloudWatch Logs encryption"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.logs_key.json
  tags                    = merge(local.tags, { "keyshard:key-purpose" = "logs" })
}
