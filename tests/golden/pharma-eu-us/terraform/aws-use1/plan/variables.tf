variable "site" {
  description = "The site this plan provisions (defaults to the solved plan)."
  type = object({
    id           = string
    provider     = string
    region       = string
    jurisdiction = string
    zone         = string
  })
  default = {
    id           = "aws-use1"
    provider     = "aws"
    region       = "us-east-1"
    jurisdiction = "US-VA"
    zone         = "us"
  }
}

variable "spec" {
  description = "Name, owner and description of the spec, as written there."
  type = object({
    name        = string
    owner       = string
    description = string
  })
  default = {
    name        = "helvion-pharma-research"
    owner       = "research-platform@helvion.example"
    description = "Trial analytics in the EU, discovery ML on owned EU hardware and in AWS us-east-1, with the transfers between them."
  }
}

variable "pools" {
  description = "Planned capacity per pool: instance type, GPUs, instances (defaults to the solved plan)."
  type = map(object({
    instance_type = string
    gpu           = string
    gpus_per_node = number
    instances     = number
    max_nodes     = number
    gpus_used     = number
    elastic       = bool
  }))
  default = {
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

  validation {
    condition     = alltrue([for key, pool in var.pools : pool.instances >= 0 && floor(pool.instances) == pool.instances])
    error_message = "Every pool needs a whole, non-negative number of instances."
  }

  validation {
    condition     = alltrue([for key, pool in var.pools : pool.gpus_per_node >= 1 && pool.max_nodes >= 1 && pool.gpus_used >= 0])
    error_message = "gpus_per_node and max_nodes are at least 1 and gpus_used is not negative."
  }
}

variable "placements" {
  description = "One entry per placed replica: workload, pool, GPUs and the instance numbers it runs on."
  type = list(object({
    workload = string
    replica  = number
    pool     = string
    gpus     = number
    nodes    = list(number)
  }))
  default = [
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

  validation {
    condition     = alltrue([for p in var.placements : p.gpus >= 1 && p.replica >= 1 && length(p.nodes) >= 1])
    error_message = "Every placement has at least one GPU, a replica number from 1 and at least one node."
  }
}
