output "config" {
  description = "The parent configuration as an object."
  value       = local.config
}

output "config_json" {
  description = "The parent configuration file's content."
  value       = jsonencode(local.config)
}
