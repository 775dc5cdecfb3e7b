# The instance: Nitro Enclaves enabled, IMDSv2 only (hop limit 1, so nothing past the host reaches the
# credentials), encrypted root volume, no SSH key. User data sizes the enclave allocator, installs the
# parent service from a hash-checked package, fetches the EIF, writes the parent's configuration
# (module parent_config: status and node-service listeners; outbound only this region's KMS endpoint)
# and starts the parent under systemd.

data "aws_ssm_parameter" "al2023" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

locals {
  artifact_object_arn = replace(var.artifact_uri, "s3://", "arn:${local.partition}:s3:::")
  parent_object_arn   = replace(var.parent_package.uri, "s3://", "arn:${local.partition}:s3:::")

  user_data = templatefile("${path.module}/templates/user_data.sh.tftpl", {
    cluster_name       = var.cluster_name
    node_id            = var.node_id
    release_version    = local.current.version
    artifact_uri       = var.artifact_uri
    parent_uri         = var.parent_package.uri
    parent_sha256      = var.parent_package.sha256
    enclave_cpus       = var.enclave_cpus
    enclave_memory_mib = var.enclave_memory_mib
    region             = local.region
    log_group          = aws_cloudwatch_log_group.node.name
    parent_config_json = module.parent_config.config_json
  })
}

# The parent's configuration (parent/config.py schema): inbound status and node-service listeners,
# outbound route and allow-list limited to this region's KMS endpoint.
module "parent_config" {
  source = "../parent-config"

  node_id            = var.node_id
  region             = local.region
  eif_path           = "/opt/keyshard/enclave.eif"
  enclave_cpus       = var.enclave_cpus
  enclave_memory_mib = var.enclave_memory_mib
  status_port        = var.status_port
  service_port       = var.service_port
  operations_port    = var.operations_port
  blob_bucket        = aws_s3_bucket.blobs.id
}

resource "aws_launch_template" "node" {
  name_prefix            = "${local.name}-"
  image_id               = data.aws_ssm_parameter.al2023.value
  instance_type          = var.machine_type
  update_default_version = true
  user_data              = base64encode(local.user_data)
  vpc_security_group_ids = [aws_security_group.node.id]

  enclave_options {
    enabled = true
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  iam_instance_profile {
    arn = aws_iam_instance_profile.node.arn
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 30
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = local.tags
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = can(regex("^s3://", var.artifact_uri)) && can(regex("^s3://", var.parent_package.uri))
      error_message = "On AWS, artifact_uri and parent_package.uri must be s3:// URIs."
    }
  }
}

resource "aws_instance" "node" {
  #checkov:skip=CKV_AWS_79:IMDSv2 only is set in aws_launch_template.node (http_tokens = required, CKV_KS_5)
  #checkov:skip=CKV_AWS_8:The root volume is encrypted in aws_launch_template.node (CKV_KS_5)
  #checkov:skip=CKV_AWS_126:Detailed monitoring is enabled in aws_launch_template.node
  #checkov:skip=CKV2_AWS_41:The instance profile is attached in aws_launch_template.node
  subnet_id     = var.network.subnet_id
  ebs_optimized = true

  launch_template {
    id      = aws_launch_template.node.id
    version = aws_launch_template.node.latest_version
  }

  tags = local.tags

  lifecycle {
    # A new AMI does not replace a running node by itself: nodes are rolled one at a time (README).
    ignore_changes = [ami]
  }
}
