variable "node_id" {
  description = "This node's id in the enclave image's cluster table (tools/image_config.py --node ID=KEY_ARN); handed to the enclave at boot."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", var.node_id))
    error_message = "The node_id must be 1-64 of [A-Za-z0-9._-], starting alphanumeric (enclave/config.py)."
  }
}

variable "region" {
  description = "AWS region of the node: its KMS endpoint is the only outbound target."
  type        = string
}

variable "eif_path" {
  description = "Where user data put the EIF on the instance."
  type        = string
}

variable "enclave_cpus" {
  description = "vCPUs of the enclave."
  type        = number
}

variable "enclave_memory_mib" {
  description = "Memory of the enclave in MiB."
  type        = number
}

variable "enclave_cid" {
  description = "The enclave's vsock CID."
  type        = number
  default     = 16
}

variable "status_port" {
  description = "TCP port of the status listener (enclave vsock 5000: readiness and public node information)."
  type        = number
}

variable "service_port" {
  description = "TCP port of the node-service listener (enclave vsock 5001: mutually authenticated TLS 1.3, ended inside the enclave)."
  type        = number
}

variable "operations_port" {
  description = "TCP port of the parent's HTTP operations endpoint (/metrics, /health, /ready; parent/operations.py)."
  type        = number
  default     = 9100
}

variable "blob_bucket" {
  description = "S3 bucket of the sealed blobs."
  type        = string
}
