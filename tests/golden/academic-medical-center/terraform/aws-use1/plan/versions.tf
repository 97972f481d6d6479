# No providers: this module only evaluates the plan, so `terraform init`,
# `validate` and `test` need nothing from a registry.
terraform {
  required_version = ">= 1.7.0"
}
