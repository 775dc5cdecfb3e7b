variable "cluster_name" {
  description = "Name of the cluster."
  type        = string
  default     = "ks-example"
}

variable "threshold" {
  description = "t: any t+1 nodes sign; t nodes learn nothing. With three nodes, t = 1."
  type        = number
  default     = 1
}

variable "manifest_path" {
  description = "The manifest of the release the nodes run (read from disk, never fetched)."
  type        = string
  default     = "../../../../release/manifest.json"
}

variable "also_admit_manifest_path" {
  description = <<-EOT
    During an upgrade only: a second release the key policies admit without deploying it. Before the
    nodes move, the new release (admitted early); after they moved, the old one (kept for rollback
    until every node has unsealed on the new one). Empty otherwise.
  EOT
  type        = string
  default     = ""
}

variable "allow_example_manifest" {
  description = "Accept a manifest marked \"example\": true (its PCRs match no real image). Never in production."
  type        = bool
  default     = false
}

variable "release_bucket" {
  description = "S3 bucket holding the release EIFs and parent wheel tarballs (read by the AWS nodes at boot)."
  type        = string
}

variable "parent_package_sha256" {
  description = "SHA-256 of the parent wheel tarball of this release."
  type        = string
}

variable "operator_cidrs" {
  description = "Ranges of the operators' monitoring (Prometheus, health checkers): the only sources admitted to any node's HTTP operations port (/metrics, /health, /ready)."
  type        = list(string)
  default     = []
}

variable "client_cidrs" {
  description = "Ranges the clients (SDK, CLI, operators' tooling) connect from: the only sources admitted to any node's status and service ports."
  type        = list(string)
}

variable "node_a" {
  description = "Node a: AWS account, region, deploy role, network and administrators."
  type = object({
    account_id        = string
    region            = string
    deploy_role_arn   = string
    vpc_id            = string
    subnet_id         = string
    eip_allocation_id = string
    key_admins        = list(string)
    instance_type     = string
  })
}

variable "node_b" {
  description = "Node b: a second AWS account in another region."
  type = object({
    account_id        = string
    region            = string
    deploy_role_arn   = string
    vpc_id            = string
    subnet_id         = string
    eip_allocation_id = string
    key_admins        = list(string)
    instance_type     = string
  })
}

variable "node_c" {
  description = "Node c: a third AWS account in a third region. (A GCP Confidential Space node cannot join yet: see infra/README.md \"Multi-cloud\"; modules/node-gcp-confidential is kept ready for when it can.)"
  type = object({
    account_id        = string
    region            = string
    deploy_role_arn   = string
    vpc_id            = string
    subnet_id         = string
    eip_allocation_id = string
    key_admins        = list(string)
    instance_type     = string
  })
}
