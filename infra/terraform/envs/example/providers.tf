# One provider alias per node: each node lives in its own account and region, reached
# through a role that only that account's operator controls. No single set of credentials reaches
# t+1 nodes — in production each operator applies their own node's module with their own
# credentials (see infra/README.md); this example composes them in one configuration for review.

provider "aws" {
  alias  = "node_a"
  region = var.node_a.region

  assume_role {
    role_arn     = var.node_a.deploy_role_arn
    session_name = "keyshard-${var.cluster_name}-a"
  }

  allowed_account_ids = [var.node_a.account_id]
}

provider "aws" {
  alias  = "node_b"
  region = var.node_b.region

  assume_role {
    role_arn     = var.node_b.deploy_role_arn
    session_name = "keyshard-${var.cluster_name}-b"
  }

  allowed_account_ids = [var.node_b.account_id]
}

provider "aws" {
  alias  = "node_c"
  region = var.node_c.region

  assume_role {
    role_arn     = var.node_c.deploy_role_arn
    session_name = "keyshard-${var.cluster_name}-c"
  }

  allowed_account_ids = [var.node_c.account_id]
}
