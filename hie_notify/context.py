"""Load what every command needs from the options: the policy and the change record."""

from __future__ import annotations

from hie_notify.change import ChangeRecord, load_change
from hie_notify.options import Options
from hie_notify.policy import Policy, load_policy


def load_inputs(options: Options) -> tuple[Policy, ChangeRecord | None]:
    policy = load_policy(options.policy)
    change = load_change(options.change, policy) if options.change else None
    return policy, change
