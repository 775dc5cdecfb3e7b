# cluster-profile: the file clients load to reach and trust a real cluster (format: version 2 of
# keyshard/client/profile.py, the same shape `keyshard dev up` writes for an emulated cluster).
#
# What the client reads: attestation_root (PEM + SHA-256 of its DER, checked against each other on
# load), expected_pcrs (one WHOLE PCR set per accepted release, newest first: a node is trusted if
# its document matches every PCR of one set, so both releases of a rolling upgrade are reachable
# and a mix of two releases' PCRs is refused), and per node `endpoint` (the
# status listener), `service_endpoint` (the node service; the client dials the endpoint's host at
# this port), `enclave` and `kms_key_arn`. Everything else here (cluster, threshold, release,
# accepted_releases, kind, region per node) is informative: the loader ignores unknown fields.

locals {
  # The AWS Nitro Enclaves root G1 the keyshard package ships (attestation/), pinned by the SHA-256
  # of its DER as AWS publishes it; the client's loader refuses a profile whose PEM is another
  # certificate, so a wrong var.attestation_root_pem cannot slip through.
  root_path   = "attestation/aws_nitro_root_g1.pem"
  root_sha256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"

  profile = {
    version      = 2
    mode         = "real"
    cluster      = var.cluster_name
    threshold    = var.threshold
    region       = var.region
    kms_endpoint = "https://kms.${var.region}.amazonaws.com"
    release      = var.releases[0].version
    attestation_root = {
      sha256 = local.root_sha256
      pem    = var.attestation_root_pem
      path   = local.root_path
    }
    expected_pcrs     = [for r in var.releases : r.pcrs]
    accepted_releases = var.releases
    nodes             = var.nodes
  }
}
