output "autoscaling_groups" {
  description = "Auto scaling group of each planned pool."
  value       = { for key, group in aws_autoscaling_group.gpu : key => group.name }
}

output "planned_instances" {
  description = "Instances the plan needs per pool."
  value       = { for key, pool in local.pools : key => pool.instances }
}

output "kms_key_arn" {
  description = "Customer-managed key that encrypts volumes, flow logs and the trail."
  value       = aws_kms_key.gpu.arn
}

output "flow_log_group" {
  description = "CloudWatch log group of the VPC flow logs."
  value       = aws_cloudwatch_log_group.flow_logs.name
}
