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
    name        = "lakeshore-academic-medical-center"
    owner       = "research-computing@lakeshore-amc.example"
    description = "Hybrid: a DGX B200 cluster in the hospital data centre, AWS and Azure under executed BAAs for burst training and HA inference."
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
    { workload = "path-fm-pretrain", replica = 1, pool = "p5", gpus = 64, nodes = [1, 2, 3, 4, 5, 6, 7, 8] },
    { workload = "ct-triage", replica = 2, pool = "p5en", gpus = 1, nodes = [1] },
    { workload = "ct-triage", replica = 3, pool = "p5en", gpus = 1, nodes = [1] },
    { workload = "ct-triage", replica = 4, pool = "p5en", gpus = 1, nodes = [1] },
    { workload = "ct-triage", replica = 5, pool = "p5en", gpus = 1, nodes = [1] },
  ]

  validation {
    condition     = alltrue([for p in var.placements : p.gpus >= 1 && p.replica >= 1 && length(p.nodes) >= 1])
    error_message = "Every placement has at least one GPU, a replica number from 1 and at least one node."
  }
}
