# The plan evaluates as solved, and the checks catch a plan that does not fit.

run "plan_as_solved" {
  command = plan

  assert {
    condition     = output.instances == { p4d = 2 }
    error_message = "Planned instances differ from the solved plan."
  }

  assert {
    condition     = output.instance_types == { p4d = "p4d.24xlarge" }
    error_message = "Instance types differ from the solved plan."
  }

  assert {
    condition     = output.workloads["protein-structure-batch"].replicas == 15 && output.workloads["protein-structure-batch"].gpus == 15
    error_message = "Replicas or GPUs of protein-structure-batch differ from the solved plan."
  }

  assert {
    condition     = output.workloads["us-cohort-nlp"].replicas == 1 && output.workloads["us-cohort-nlp"].gpus == 1
    error_message = "Replicas or GPUs of us-cohort-nlp differ from the solved plan."
  }

  assert {
    condition     = output.spec.name == "helvion-pharma-research"
    error_message = "The spec name did not come through literally."
  }

  assert {
    condition     = output.spec.description == "Trial analytics in the EU, discovery ML on owned EU hardware and in AWS us-east-1, with the transfers between them."
    error_message = "The spec description did not come through literally."
  }
}

run "rejects_more_instances_than_max_nodes" {
  command = plan

  variables {
    pools = {
      p4d = {
        instance_type = "p4d.24xlarge"
        gpu           = "A100-40GB"
        gpus_per_node = 8
        instances     = 9
        max_nodes     = 8
        gpus_used     = 16
        elastic       = true
      }
    }
  }

  expect_failures = [check.instances_within_max_nodes]
}

run "rejects_gpus_beyond_instances" {
  command = plan

  variables {
    pools = {
      p4d = {
        instance_type = "p4d.24xlarge"
        gpu           = "A100-40GB"
        gpus_per_node = 8
        instances     = 2
        max_nodes     = 8
        gpus_used     = 17
        elastic       = true
      }
    }
  }

  expect_failures = [check.gpus_fit_instances, check.placements_match_pools]
}

run "rejects_placement_outside_planned_pools" {
  command = plan

  variables {
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
      { workload = "stray", replica = 1, pool = "not-planned", gpus = 1, nodes = [1] },
    ]
  }

  expect_failures = [check.placements_match_pools]
}
