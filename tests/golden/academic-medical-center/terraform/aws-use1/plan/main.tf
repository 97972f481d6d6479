locals {
  pools      = var.pools
  placements = var.placements

  workloads = {
    for name in distinct([for p in local.placements : p.workload]) : name => {
      replicas = length([for p in local.placements : p if p.workload == name])
      gpus     = sum(concat([0], [for p in local.placements : p.gpus if p.workload == name]))
    }
  }
}
