"""The policy: who hears about which change, how early, through which channel."""

from __future__ import annotations

from hie_notify.policy.loader import deep_merge, load_policy
from hie_notify.policy.model import CHANGE_TYPES, ChangeType, Policy

__all__ = ["CHANGE_TYPES", "ChangeType", "Policy", "deep_merge", "load_policy"]
