"""Test-only: the machine clock of a CI job's Python, set by HIE_TEST_CLOCK (an ISO time).

Outside a trial GitLab CI refuses --now / HIE_NOW (a branch sets its own job variables), so a
production pipeline under gitlab-ci-local can only be put at a time the way libfaketime would:
tests/ci/harness.py puts this folder on PYTHONPATH for the jobs of a Repo with `clock_shim`,
and time_machine moves the whole process's clock. Nothing in hie_notify knows about it."""

import os

_at = os.environ.get("HIE_TEST_CLOCK")
if _at:
    import time_machine

    time_machine.travel(_at, tick=False).start()
