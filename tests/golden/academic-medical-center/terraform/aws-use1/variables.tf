variable "region" {
  description = "AWS region of site aws-use1."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "vpc_id" {
  description = "VPC that holds the GPU instances; its flow logs are turned on."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets (no route to an internet gateway) for the GPU instances."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) > 0 && alltrue([for s in var.private_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "private_subnet_ids needs at least one subnet id (subnet-...)."
  }
}

variable "node_security_group_ids" {
  description = "Security groups of the GPU instances (e.g. the cluster's node security group)."
  type        = list(string)

  validation {
    condition     = length(var.node_security_group_ids) > 0 && alltrue([for s in var.node_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "node_security_group_ids needs at least one security group id (sg-...)."
  }
}

variable "ami_id" {
  description = "AMI of the GPU nodes, e.g. the EKS-optimised accelerated AMI of the cluster's Kubernetes version."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be an AMI id (ami-...)."
  }
}

variable "instance_profile_name" {
  description = "IAM instance profile of the GPU nodes."
  type        = string

  validation {
    condition     = length(var.instance_profile_name) > 0
    error_message = "instance_profile_name must not be empty."
  }
}

variable "user_data_base64" {
  description = "Base64 user data that joins a node to the cluster (empty for none)."
  type        = string
  default     = ""

  validation {
    condition     = var.user_data_base64 == "" || can(base64decode(var.user_data_base64))
    error_message = "user_data_base64 must be base64 encoded."
  }
}

variable "root_volume_gb" {
  description = "Size of each instance's encrypted root volume in GiB."
  type        = number
  default     = 500

  validation {
    condition     = var.root_volume_gb >= 50 && var.root_volume_gb <= 16384 && floor(var.root_volume_gb) == var.root_volume_gb
    error_message = "root_volume_gb must be a whole number from 50 to 16384."
  }
}

variable "log_retention_days" {
  description = "Days to keep VPC flow logs (CloudWatch Logs retention values only)."
  type        = number
  default     = 2192

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention period CloudWatch Logs accepts."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before the KMS key is deleted after destroy."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

variable "cloudtrail_enabled" {
  description = "Create a multi-region CloudTrail trail for this account (turn off when an organisation trail exists)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
