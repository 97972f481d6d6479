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
