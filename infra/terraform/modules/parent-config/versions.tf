terraform {
  # Pure computation: no provider, so infra/ci-checks.sh renders it offline and compares the result
  # with tests/data/infra/parent_config_rendered.json, which tests/infra validates with the parent's
  # own parser (parent.config.parse_config).
  required_version = ">= 1.0.0"
}
