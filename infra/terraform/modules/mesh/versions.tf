terraform {
  # Pure computation: no provider, so it plans (and its validations run) fully offline.
  required_version = ">= 1.0.0"
}
