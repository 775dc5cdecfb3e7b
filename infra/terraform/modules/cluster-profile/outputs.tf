output "profile" {
  description = "The cluster profile as an object."
  value       = local.profile
}

output "profile_json" {
  description = "The cluster profile file's content (save as the client's profile.json)."
  value       = jsonencode(local.profile)
}
