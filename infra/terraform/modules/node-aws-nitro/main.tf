# node-aws-nitro: one Keyshard node in its own AWS account and region.
#
# Trust layout (see infra/README.md): the instance and its parent process are untrusted; the enclave
# receives its sealing key only from KMS, and only after KMS checks the enclave's attestation document
# against the PCRs of the releases in var.releases. Those PCRs come from release manifests on disk,
# never from the network at plan time, and the module refuses all-zero (debug-mode) values.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  name    = "${var.cluster_name}-${var.node_id}"
  current = var.releases[0]

  # PCR0 is what KMS calls ImageSha384. Every release in var.releases is admitted (upgrade window);
  # sorted, so swapping which release is deployed leaves the key policy unchanged.
  image_sha384 = sort(distinct([for r in var.releases : r.pcrs["0"]]))
  signed       = contains(keys(local.current.pcrs), "8")
  pcr8         = local.signed ? sort(distinct([for r in var.releases : r.pcrs["8"]])) : []

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  tags = merge(var.tags, {
    "keyshard:cluster" = var.cluster_name
    "keyshard:node"    = var.node_id
    "keyshard:release" = local.current.version
  })
}
