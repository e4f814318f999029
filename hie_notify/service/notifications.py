"""HCP Terraform notification webhooks: send the stage an event means, for its own change only.

An event is acted on only when its run is the change's run: the run's message must name the
change (its Jira key); when a run task recorded which run HCP was allowed to apply, the event
must be that run's; and an event from before the change's latest announcement is an earlier
attempt's. Anything else (an old run's signed event, replayed) is logged and ignored.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from hie_notify import stagerun, timetext
from hie_notify.errors import HieError, InputError
from hie_notify.ledger import Entry, open_ledger
from hie_notify.lifecycle import LifecycleError
from hie_notify.options import Options
from hie_notify.receiver import Event
from hie_notify.service.changes import locate
from hie_notify.service.org import ProtectedPolicies
from hie_notify.service.runtask import DECISION
from hie_notify.service.settings import Settings
from hie_notify.terraform.runtask import commit_in, jira_key

log = logging.getLogger(__name__)


class Notifications:
    def __init__(
        self,
        settings: Settings,
        base: Options,
        *,
        workdir: Path,
        clock: Callable[[], datetime] | None = None,
        policies: ProtectedPolicies | None = None,
    ) -> None:
        self.settings = settings
        self.policies = policies or ProtectedPolicies(workdir)
        self.base = base
        self.workdir = workdir
        self.clock = clock or base.clock
        self.masker = settings.masker(base.env)

    def handle(self, event: Event) -> str:
        """What was done about one event (also logged); raises only when a send failed."""
        fields = {"run_id": event.run_id, "trigger": event.trigger}
        line = self._handle(event)
        level = logging.WARNING if " ignored: " in line else logging.INFO
        log.log(level, "%s", line, extra=fields)
        return line

    def _handle(self, event: Event) -> str:
        if event.stage is None:
            return f"{event.trigger}: no notice"
        now = self.clock()
        try:
            project = None
            if self.settings.org is not None:
                # A notification carries no VCS repository: only a named mapping serves it.
                project = self.settings.org.project_for(
                    event.organization_name,
                    event.workspace_name,
                    None,
                    str(self.base.env.get("CI_API_V4_URL") or ""),
                )
            located = locate(
                self.base,
                self.settings,
                self.workdir,
                now,
                key=jira_key(event.run_message),
                commit=commit_in(event.run_message),
                branch=None,
                run_url=event.run_url,
                project=project,
                policies=self.policies,
            )
        except InputError as exc:
            return f"{event.trigger} ({event.run_id}) ignored: {self.masker(str(exc))}"
        ledger = open_ledger(located.options.ledger, located.options.env)
        why = stale(event, ledger.read(located.change_id))
        if why:
            return f"{event.trigger} ({event.run_id}) ignored: {why}"
        args = argparse.Namespace(plan=None, plan_required=False)
        try:
            return self.masker(stagerun.handle_event(event, args, located.options))
        except LifecycleError as exc:
            # The change's state refuses it (an apply after the change ended): HCP's retries
            # would be refused too, so it is answered, logged and left.
            return f"{event.trigger} ({event.run_id}) ignored: {self.masker(str(exc))}"
        except HieError as exc:
            raise HieError(self.masker(str(exc))) from None


def stale(event: Event, entries: Sequence[Entry]) -> str | None:
    """Why an event is not the change's current run's (None when it is)."""
    allowed = [
        e
        for e in entries
        if e.stage == DECISION
        and e.extra.get("hcp_stage") == "pre_apply"
        and e.extra.get("status") == "passed"
    ]
    if allowed:
        current = max(allowed, key=lambda e: e.delivered_at).extra.get("run_id")
        if event.run_id != current:
            return (
                f"run {event.run_id} is not the run HCP Terraform was last allowed to apply for "
                f"{allowed[0].change_id} ({current}): an old run's event"
            )
    announced = [e.delivered_at for e in entries if e.stage == "announce" and not e.dry_run]
    when = _time(event.run_updated_at)
    if announced and when is not None and when < max(announced):
        # In UTC, as the service's log stamps are: the policy is not read for an ignored event.
        return (
            f"the event ({timetext.moment(when, 'UTC')}) is older than the change's latest "
            f"announcement ({timetext.moment(max(announced), 'UTC')}): an earlier attempt's"
        )
    return None


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else None
