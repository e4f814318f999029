"""Terraform: the plan JSON model (and, later, the HCP Terraform API client)."""
