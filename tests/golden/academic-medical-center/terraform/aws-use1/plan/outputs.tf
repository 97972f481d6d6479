output "site" {
  description = "The site this plan provisions."
  value       = var.site
}

output "spec" {
  description = "Name, owner and description of the spec, exactly as written."
  value       = var.spec
}

output "instances" {
  description = "Instances to provision per pool."
  value       = { for key, pool in local.pools : key => pool.instances }
}

output "instance_types" {
  description = "Instance type of each pool."
  value       = { for key, pool in local.pools : key => pool.instance_type }
}

output "gpus" {
  description = "GPUs the plan uses per pool."
  value       = { for key, pool in local.pools : key => pool.gpus_used }
}

output "workloads" {
  description = "Replicas and GPUs of each workload placed at this site."
  value       = local.workloads
}
