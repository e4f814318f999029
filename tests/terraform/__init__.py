"""Unit tests of hie_notify/terraform: the plan reader, the HCP client, IAM detail, the run-task
protocol.
"""
