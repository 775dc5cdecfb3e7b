terraform {
  # Pure computation: no provider, so infra/ci-checks.sh renders it offline and compares the result
  # with tests/data/infra/cluster_profile_rendered.json, which tests/infra loads with the client's
  # own loader (keyshard.dev.profile.ClusterProfile.load) and turns into a Coordinator.
  required_version = ">= 1.0.0"
}
