"""Attack suites: what a branch, a merge request or an outside service controls, tried as an
attacker would."""
