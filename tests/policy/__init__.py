"""Unit tests of hie_notify/policy: the loader, the built-in default read against the policy, what
a branch may not weaken.
"""
