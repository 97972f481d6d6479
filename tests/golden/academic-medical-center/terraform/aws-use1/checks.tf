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
    name        = "lakeshore-academic-medical-center"
    owner       = "research-computing@lakeshore-amc.example"
    description = "Hybrid: a DGX B200 cluster in the hospital data centre, AWS and Azure under executed BAAs for burst training and HA inference."
  }

  pools = {
    p5 = {
      instance_type = "p5.48xlarge"
      gpu           = "H100"
      gpus_per_node = 8
      instances     = 8
      max_nodes     = 8
      gpus_used     = 64
      elastic       = true
    }

    p5en = {
      instance_type = "p5en.48xlarge"
      gpu           = "H200"
      gpus_per_node = 8
      instances     = 1
      max_nodes     = 4
      gpus_used     = 4
      elastic       = true
    }
  }

  placements = [
    { workload = "path-fm-pretrain", replica = 1, pool = "p5", gpus = 64, nodes = [1, 2, 3, 4, 5, 6, 7, 8] },
    { workload = "ct-triage", replica = 2, pool = "p5en", gpus = 1, nodes = [1] },
    { workload = "ct-triage", replica = 3, pool = "p5en", gpus = 1, nodes = [1] },
    { workload = "ct-triage", replica = 4, pool = "p5en", gpus = 1, nodes = [1] },
    { workload = "ct-triage", replica = 5, pool = "p5en", gpus = 1, nodes = [1] },
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
