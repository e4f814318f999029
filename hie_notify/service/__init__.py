"""The long-running service behind `hie-notify receive`: HCP Terraform run tasks and
notification webhooks on one WSGI server (waitress). Its state lives in GitLab ledger notes,
so several replicas behind one load balancer behave as one."""
