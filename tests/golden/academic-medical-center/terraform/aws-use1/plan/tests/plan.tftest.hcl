# The plan evaluates as solved, and the checks catch a plan that does not fit.

run "plan_as_solved" {
  command = plan

  assert {
    condition     = output.instances == { p5 = 8, p5en = 1 }
    error_message = "Planned instances differ from the solved plan."
  }

  assert {
    condition     = output.instance_types == { p5 = "p5.48xlarge", p5en = "p5en.48xlarge" }
    error_message = "Instance types differ from the solved plan."
  }

  assert {
    condition     = output.workloads["ct-triage"].replicas == 4 && output.workloads["ct-triage"].gpus == 4
    error_message = "Replicas or GPUs of ct-triage differ from the solved plan."
  }

  assert {
    condition     = output.workloads["path-fm-pretrain"].replicas == 1 && output.workloads["path-fm-pretrain"].gpus == 64
    error_message = "Replicas or GPUs of path-fm-pretrain differ from the solved plan."
  }

  assert {
    condition     = output.spec.name == "lakeshore-academic-medical-center"
    error_message = "The spec name did not come through literally."
  }

  assert {
    condition     = output.spec.description == "Hybrid: a DGX B200 cluster in the hospital data centre, AWS and Azure under executed BAAs for burst training and HA inference."
    error_message = "The spec description did not come through literally."
  }
}

run "rejects_more_instances_than_max_nodes" {
  command = plan

  variables {
    pools = {
      p5 = {
        instance_type = "p5.48xlarge"
        gpu           = "H100"
        gpus_per_node = 8
        instances     = 9
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
  }

  expect_failures = [check.instances_within_max_nodes]
}

run "rejects_gpus_beyond_instances" {
  command = plan

  variables {
    pools = {
      p5 = {
        instance_type = "p5.48xlarge"
        gpu           = "H100"
        gpus_per_node = 8
        instances     = 8
        max_nodes     = 8
        gpus_used     = 65
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
  }

  expect_failures = [check.gpus_fit_instances, check.placements_match_pools]
}

run "rejects_placement_outside_planned_pools" {
  command = plan

  variables {
    placements = [
      { workload = "path-fm-pretrain", replica = 1, pool = "p5", gpus = 64, nodes = [1, 2, 3, 4, 5, 6, 7, 8] },
      { workload = "ct-triage", replica = 2, pool = "p5en", gpus = 1, nodes = [1] },
      { workload = "ct-triage", replica = 3, pool = "p5en", gpus = 1, nodes = [1] },
      { workload = "ct-triage", replica = 4, pool = "p5en", gpus = 1, nodes = [1] },
      { workload = "ct-triage", replica = 5, pool = "p5en", gpus = 1, nodes = [1] },
      { workload = "stray", replica = 1, pool = "not-planned", gpus = 1, nodes = [1] },
    ]
  }

  expect_failures = [check.placements_match_pools]
}
