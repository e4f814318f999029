"""Scenario suites by theme: a change told, gated, applied and reminded through the command line,
the service or a CI pipeline, over the fakes of tests/support."""
