variable "region" {
  description = "AWS region of the node: its KMS endpoint is the only non-peer outbound target."
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

variable "peer_port" {
  description = "TCP port peers connect to."
  type        = number
}

variable "client_port" {
  description = "TCP port clients connect to."
  type        = number
}

variable "peers" {
  description = "The other nodes (from the mesh): id, endpoint host:port, network range."
  type = list(object({
    id            = string
    endpoint      = string
    network_range = string
  }))
}

variable "blob_bucket" {
  description = "S3 bucket of the sealed blobs."
  type        = string
}
