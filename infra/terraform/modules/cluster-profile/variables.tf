variable "cluster_name" {
  description = "Name of the cluster."
  type        = string
}

variable "threshold" {
  description = "t: any t+1 nodes sign or decrypt; t nodes learn nothing."
  type        = number

  validation {
    condition     = var.threshold >= 1 && floor(var.threshold) == var.threshold
    error_message = "The threshold must be a whole number, at least 1."
  }
}

variable "attestation_root_pem" {
  description = "PEM of the AWS Nitro Enclaves root, read from the repository's attestation/aws_nitro_root_g1.pem with file()."
  type        = string

  validation {
    condition     = length(regexall("-----BEGIN CERTIFICATE-----", var.attestation_root_pem)) == 1
    error_message = "The attestation_root_pem must be exactly one PEM certificate."
  }
}

variable "region" {
  description = "The profile's top-level region (the format has one; each node entry also names its own)."
  type        = string
}

variable "releases" {
  description = "Admitted releases, newest first (from the manifests); releases[0] is what clients pin."
  type = list(object({
    version      = string
    image_digest = string
    pcrs         = map(string)
  }))

  validation {
    condition     = length(var.releases) >= 1
    error_message = "Give at least one release."
  }
}

variable "nodes" {
  description = "Every node module's profile_entry output, in declaration order."
  type = list(object({
    node_id          = string
    kind             = string
    region           = string
    endpoint         = string
    service_endpoint = string
    enclave          = object({ cid = number, port = number })
    kms_key_arn      = string
  }))

  validation {
    condition     = length(var.nodes) >= 3
    error_message = "A Keyshard cluster has at least three nodes."
  }

  validation {
    condition     = length(distinct([for n in var.nodes : n.node_id])) == length(var.nodes)
    error_message = "Node ids must be distinct."
  }

  validation {
    condition = alltrue([
      for n in var.nodes : can(regex("^[A-Za-z0-9.-]+:[0-9]+$", n.endpoint)) && can(regex("^[A-Za-z0-9.-]+:[0-9]+$", n.service_endpoint))
    ])
    error_message = "Every endpoint and service_endpoint is host:port (no scheme)."
  }

  validation {
    # The client's loader keeps only the port of service_endpoint and dials the endpoint's host.
    condition = alltrue([
      for n in var.nodes : split(":", n.endpoint)[0] == split(":", n.service_endpoint)[0]
    ])
    error_message = "A node's service_endpoint must be on the same host as its endpoint."
  }

  validation {
    condition     = length(distinct([for n in var.nodes : n.endpoint])) == length(var.nodes)
    error_message = "Two nodes may not share an endpoint."
  }
}
