# The plan for site aws-use1 as medplan solved it, and checks that it is
# consistent. Provider-free: the same logic is the module in ./plan, which
# `terraform test` exercises without any provider plugin.

locals {
  site = {
    id           = "aws-use1"
    provider     = "aws"
    region       = "us-east-1"
    jurisdiction = "US-VA"
    zone         = "us"
  }

  spec = {
    name        = "helvion-pharma-research"
    owner       = "research-platform@helvion.example"
    description = "Trial analytics in the EU, discovery ML on owned EU hardware and in AWS us-east-1, with the transfers between them."
  }

  pools = {
    p4d = {
      instance_type = "p4d.24xlarge"
      gpu           = "A100-40GB"
      gpus_per_node = 8
      instances     = 2
      max_nodes     = 8
      gpus_used     = 16
      elastic       = true
    }
  }

  placements = [
    { workload = "protein-structure-batch", replica = 2, pool = "p4d", gpus = 1, nodes = [1] },
    { workload = "protein-structure-batch", replica = 3, pool = "p4d", gpus = 1, nodes = [1] },
    { workload = "protein-structure-batch", replica = 4, pool = "p4d", gpus = 1, nodes = [1] },
    { workload = "protein-structure-batch", replica = 5, pool = "p4d", gpus = 1, nodes = [1] },
    { workload = "protein-structure-batch", replica = 6, pool = "p4d", gpus = 1, nodes = [1] },
    { workload = "protein-structure-batch", replica = 7, pool = "p4d", gpus = 1, nodes = [1] },
    { workload = "protein-structure-batch", replica = 8, pool = "p4d", gpus = 1, nodes = [1] },
    { workload = "protein-structure-batch", replica = 9, pool = "p4d", gpus = 1, nodes = [1] },
    { workload = "protein-structure-batch", replica = 10, pool = "p4d", gpus = 1, nodes = [2] },
    { workload = "protein-structure-batch", replica = 11, pool = "p4d", gpus = 1, nodes = [2] },
    { workload = "protein-structure-batch", replica = 12, pool = "p4d", gpus = 1, nodes = [2] },
    { workload = "protein-structure-batch", replica = 13, pool = "p4d", gpus = 1, nodes = [2] },
    { workload = "protein-structure-batch", replica = 14, pool = "p4d", gpus = 1, nodes = [2] },
    { workload = "protein-structure-batch", replica = 15, pool = "p4d", gpus = 1, nodes = [2] },
    { workload = "protein-structure-batch", replica = 16, pool = "p4d", gpus = 1, nodes = [2] },
    { workload = "us-cohort-nlp", replica = 1, pool = "p4d", gpus = 1, nodes = [2] },
  ]
}

check "instances_within_max_nodes" {
  assert {
    condition     = alltrue([for key, pool in local.pools : pool.instances <= pool.max_nodes])
    error_message = "A pool plans more instances than its max_nodes allows."
  }
}

check "gpus_fit_instances" {
  assert {
    condition     = alltrue([for key, pool in local.pools : pool.gpus_used <= pool.instances * pool.gpus_per_node])
    error_message = "A pool's planned GPUs do not fit on its planned instances."
  }
}

check "placements_match_pools" {
  assert {
    condition     = alltrue([for p in local.placements : contains(keys(local.pools), p.pool)])
    error_message = "A placement names a pool that the plan does not provision at this site."
  }

  assert {
    condition     = alltrue([for p in local.placements : alltrue([for n in p.nodes : n >= 1 && n <= try(local.pools[p.pool].instances, 0)])])
    error_message = "A placement runs on an instance number beyond its pool's planned instances."
  }

  assert {
    condition     = alltrue([for key, pool in local.pools : pool.gpus_used == sum(concat([0], [for p in local.placements : p.gpus if p.pool == key]))])
    error_message = "A pool's gpus_used differs from the GPUs of the replicas placed in it."
  }
}
