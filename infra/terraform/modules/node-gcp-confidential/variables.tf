# The node interface. This file is the contract every node kind implements: node-aws-nitro and
# node-gcp-confidential declare exactly the same variables (names, types, validations), so an
# environment can swap a node's cloud without touching anything but the `source` and the provider.
# tests/infra asserts the sameness; cloud-specific meaning is spelt out in each description.

variable "cluster_name" {
  description = "Name of the Keyshard cluster; prefixes every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.cluster_name))
    error_message = "The cluster_name must be 3-22 characters of lowercase letters, digits and hyphens."
  }
}

variable "node_id" {
  description = "This node's identifier in the cluster (the id clients know it by)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]{0,14}[a-z0-9])?$", var.node_id))
    error_message = "The node_id must be 1-16 characters of lowercase letters, digits and hyphens."
  }
}

variable "releases" {
  description = <<-EOT
    The enclave releases whose measurements may unseal this node's state, newest first, taken from
    release manifests (release/manifest.json) and never fetched from the network. One entry normally;
    two while an upgrade rolls (old and new admitted side by side), then one again. pcrs maps the PCR
    index ("0", "1", "2", and "8" for a signed image) to lowercase SHA-384 hex; image_digest is the
    OCI image digest the release was built from (what a confidential-VM node pins).
  EOT
  type = list(object({
    version      = string
    image_digest = string
    pcrs         = map(string)
  }))

  validation {
    condition     = length(var.releases) >= 1 && length(var.releases) <= 3
    error_message = "Give one release, or two or three while an upgrade rolls."
  }

  validation {
    condition = alltrue([
      for r in var.releases : alltrue([for v in values(r.pcrs) : can(regex("^[0-9a-f]{96}$", v))])
    ])
    error_message = "Every PCR must be 96 lowercase hex characters (SHA-384)."
  }

  validation {
    condition = alltrue([
      for r in var.releases : alltrue([for v in values(r.pcrs) : length(regexall("[1-9a-f]", v)) > 0])
    ])
    error_message = "An all-zero PCR is refused: it is what a debug-mode enclave reports."
  }

  validation {
    condition = alltrue([
      for r in var.releases : alltrue([for k in ["0", "1", "2"] : contains(keys(r.pcrs), k)])
      && length(setsubtract(keys(r.pcrs), ["0", "1", "2", "8"])) == 0
    ])
    error_message = "Each release must give PCR 0, 1 and 2, optionally 8, and no other index."
  }

  validation {
    condition = (
      alltrue([for r in var.releases : contains(keys(r.pcrs), "8")])
      || alltrue([for r in var.releases : !contains(keys(r.pcrs), "8")])
    )
    error_message = "Either every release is signed (has PCR 8) or none is: mixing would drop the PCR 8 pin."
  }

  validation {
    condition     = alltrue([for r in var.releases : can(regex("^sha256:[0-9a-f]{64}$", r.image_digest))])
    error_message = "Every image_digest must be sha256:<64 lowercase hex>."
  }

  validation {
    condition     = length(distinct([for r in var.releases : r.version])) == length(var.releases)
    error_message = "Release versions must be distinct."
  }
}

variable "artifact_uri" {
  description = <<-EOT
    Where the node fetches the current release's enclave artifact at boot (never at plan time).
    AWS: the s3:// URI of the EIF. GCP: the container image reference pinned by digest
    (registry/repository@sha256:...). A tampered artifact measures differently and is refused a key.
  EOT
  type        = string

  validation {
    condition     = can(regex("^(s3://[a-z0-9.-]+/.+\\.eif|[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64})$", var.artifact_uri))
    error_message = "The artifact_uri must be an s3://.../*.eif URI or an image reference pinned by @sha256 digest."
  }
}

variable "parent_package" {
  description = <<-EOT
    The parent service package (a tarball of the keyshard wheel and its pinned dependency wheels) installed at boot, with its SHA-256,
    checked before installation. AWS: an s3:// URI. GCP: unused (the workload container carries it).
  EOT
  type = object({
    uri    = string
    sha256 = string
  })

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.parent_package.sha256))
    error_message = "The parent_package.sha256 must be 64 lowercase hex characters."
  }
}

variable "network" {
  description = <<-EOT
    Where the node lives. AWS: VPC id, subnet id, and the allocation id of a pre-allocated Elastic IP
    (its address is what clients dial, and the address the cluster profile publishes). GCP: network and subnetwork self
    links, and the pre-reserved static external IP address.
  EOT
  type = object({
    network_id = string
    subnet_id  = string
    address_id = string
  })
}

variable "status_port" {
  description = <<-EOT
    TCP port of the status listener (enclave vsock 5000): readiness, node id, reported PCRs and
    identity public key — public information, no secret crosses it. Opened to client_cidrs only.
  EOT
  type        = number
  default     = 7400

  validation {
    condition     = var.status_port >= 1024 && var.status_port <= 65535 && floor(var.status_port) == var.status_port
    error_message = "The status_port must be an unprivileged TCP port (1024-65535)."
  }
}

variable "service_port" {
  description = <<-EOT
    TCP port of the node service (enclave vsock 5001): TLS 1.3 with mutual authentication, ended
    inside the enclave, for the clients pinned in the image's authorized_clients. Clients coordinate
    DKG and signing through it and relay the envelopes between nodes; nodes never dial each other.
    Opened to client_cidrs only.
  EOT
  type        = number
  default     = 7443

  validation {
    condition     = var.service_port >= 1024 && var.service_port <= 65535 && floor(var.service_port) == var.service_port
    error_message = "The service_port must be an unprivileged TCP port (1024-65535)."
  }
}

variable "client_cidrs" {
  description = "CIDR blocks the clients (SDK, CLI, operators' tooling) connect from: the only sources admitted to the status and service ports."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.client_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "Every client CIDR must be a CIDR block narrower than the whole internet."
  }
}

variable "operations_port" {
  description = <<-EOT
    TCP port of the parent's HTTP operations endpoint: Prometheus /metrics (the parent's counters
    and the enclave's, fetched over the status protocol), /health (503 once the node failed) and
    /ready (503 while the enclave boots, 200 once it serves) for load-balancer and uptime checks.
    Public information only. Opened to operator_cidrs only, never to client_cidrs.
  EOT
  type        = number
  default     = 9100

  validation {
    condition     = var.operations_port >= 1024 && var.operations_port <= 65535 && floor(var.operations_port) == var.operations_port
    error_message = "The operations_port must be an unprivileged TCP port (1024-65535)."
  }
}

variable "operator_cidrs" {
  description = "CIDR blocks of the operators' monitoring (Prometheus scrapers, health checkers): the only sources admitted to the operations port. Empty: the port stays closed (the parent still serves it on the host)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.operator_cidrs : can(cidrhost(c, 0)) && !contains(["0.0.0.0/0", "::/0"], c)])
    error_message = "Every operator CIDR must be a CIDR block narrower than the whole internet."
  }
}

variable "key_admin_principals" {
  description = <<-EOT
    Who administers (but can never use) the sealing key. AWS: IAM principal ARNs. GCP: IAM members
    (user:, group:, serviceAccount:). Must include the identity running terraform, or it locks itself
    out of the key policy.
  EOT
  type        = list(string)

  validation {
    condition     = length(var.key_admin_principals) >= 1 && !contains(var.key_admin_principals, "*")
    error_message = "Name at least one key administrator, and never the wildcard principal."
  }
}

variable "machine_type" {
  description = "Instance type (AWS, must support Nitro Enclaves) or machine type (GCP, must support SEV/TDX)."
  type        = string
}

variable "enclave_cpus" {
  description = "vCPUs given to the enclave allocator (AWS). GCP: ignored, the whole VM is the TEE."
  type        = number
  default     = 2

  validation {
    condition     = var.enclave_cpus >= 2 && var.enclave_cpus % 2 == 0
    error_message = "The enclave needs an even number of vCPUs, at least 2 (whole cores)."
  }
}

variable "enclave_memory_mib" {
  description = "Memory given to the enclave allocator in MiB (AWS). GCP: ignored."
  type        = number
  default     = 2048

  validation {
    condition     = var.enclave_memory_mib >= 512
    error_message = "The enclave needs at least 512 MiB."
  }
}

variable "log_retention_days" {
  description = "How long the node's logs are kept."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags (AWS) or labels (GCP) added to every resource."
  type        = map(string)
  default     = {}
}
