"""A change's lifecycle (pure): its states, the transition each stage command makes, and the
state replayed from the ledger, so every command, replica and report agrees.

One table says which transition may follow which state (`_ALLOWED`) and where it leads
(`_TARGET`). Everything a person reads or a report counts is derived from the replayed
`Lifecycle` (its state, the transition just made, whether the work started, whether it was
rolled back, the window as announced before it moved), never from a stage's name alone.

Each stage command that changes the state records one ledger entry of its own (stage
`lifecycle`, `extra["transition"]`), sealed and chained like every delivery; the state is
replayed from those. Ledgers written before such entries existed are replayed from their
deliveries' stages instead.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from hie_notify.errors import InputError
from hie_notify.records import PLANLESS, Entry

# The ledger stage of a transition's own entry, and the audience and channel it names (it is
# delivered to nobody: no requirement, report row or reminder ever counts it as a notice).
LIFECYCLE = "lifecycle"

ANNOUNCE = "announce"
APPLY_STARTED = "apply_started"
APPLY_SUCCEEDED = "apply_succeeded"
APPLY_FAILED = "apply_failed"
ROLLBACK_STARTED = "rollback_started"
ROLLBACK_SUCCEEDED = "rollback_succeeded"
ROLLBACK_FAILED = "rollback_failed"
COMPLETE = "complete"
CANCELLED = "cancelled"
# Every transition, in the order a change usually makes them; each is the name of the stage
# whose notices it sends (and of the ledger entries of those notices).
TRANSITIONS = (
    ANNOUNCE,
    APPLY_STARTED,
    APPLY_SUCCEEDED,
    APPLY_FAILED,
    ROLLBACK_STARTED,
    ROLLBACK_SUCCEEDED,
    ROLLBACK_FAILED,
    COMPLETE,
    CANCELLED,
)
APPLIES = (APPLY_STARTED, APPLY_SUCCEEDED, APPLY_FAILED)
ROLLBACKS = (ROLLBACK_STARTED, ROLLBACK_SUCCEEDED, ROLLBACK_FAILED)
# The policy's phase whose audiences hear each transition (a cancellation goes to those told
# before the work, which `stages.audiences_for` reads from the ledger).
PHASE = {
    ANNOUNCE: "pre_deployment",
    **dict.fromkeys((*APPLIES, *ROLLBACKS), "during"),
    COMPLETE: "post_deployment",
    CANCELLED: "pre_deployment",
}
# The command a person runs for each transition (for errors that say what may come next).
COMMANDS = {
    ANNOUNCE: "plan (or announce)",
    APPLY_STARTED: "apply --status started",
    APPLY_SUCCEEDED: "apply --status succeeded",
    APPLY_FAILED: "apply --status failed",
    ROLLBACK_STARTED: "rollback --status started",
    ROLLBACK_SUCCEEDED: "rollback --status succeeded",
    ROLLBACK_FAILED: "rollback --status failed",
    COMPLETE: "complete",
    CANCELLED: "cancel",
}


class State(enum.Enum):
    """Where a change is. The value is the word people read (register, calendar, report)."""

    NEW = "not announced"
    ANNOUNCED = "announced"
    RESCHEDULED = "rescheduled"
    IDENTIFIED = "identified"  # an emergency or incident, announced
    IN_PROGRESS = "in progress"
    MITIGATING = "mitigating"  # an emergency's fix being applied
    SUCCEEDED = "succeeded"
    RESOLVED = "resolved"  # an emergency's fix applied
    FAILED = "failed"
    ROLLING_BACK = "rolling back"
    ROLLED_BACK = "rolled back"
    ROLLBACK_FAILED = "rollback failed"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"  # completed after a rollback: the change did not stay
    CANCELLED = "cancelled"


S = State
# An emergency passes through its own names for three states; the rules are the same.
_EMERGENCY = {S.ANNOUNCED: S.IDENTIFIED, S.IN_PROGRESS: S.MITIGATING, S.SUCCEEDED: S.RESOLVED}
_PLANNED = {v: k for k, v in _EMERGENCY.items()}

_ANNOUNCED_NEXT = frozenset({ANNOUNCE, *APPLIES, COMPLETE, CANCELLED})
_ROLLBACK_NEXT = frozenset(ROLLBACKS)
# Which transitions may follow each state (emergency states use their planned twin's row).
# `complete` right after an announcement is only for a change announced without a plan (the
# work was done outside Terraform); a change with a plan completes once something was applied.
_ALLOWED: Mapping[State, frozenset[str]] = {
    S.NEW: frozenset({ANNOUNCE, *APPLIES}),
    S.ANNOUNCED: _ANNOUNCED_NEXT,
    S.RESCHEDULED: _ANNOUNCED_NEXT,
    S.IN_PROGRESS: frozenset({APPLY_SUCCEEDED, APPLY_FAILED, *ROLLBACKS}),
    S.SUCCEEDED: frozenset({COMPLETE, APPLY_STARTED, *ROLLBACKS}),
    S.FAILED: frozenset({*APPLIES, *ROLLBACKS}),
    S.ROLLING_BACK: frozenset({ROLLBACK_SUCCEEDED, ROLLBACK_FAILED}),
    S.ROLLED_BACK: frozenset({COMPLETE, ANNOUNCE, APPLY_STARTED}),
    S.ROLLBACK_FAILED: frozenset({*APPLIES, *ROLLBACKS}),
    S.COMPLETED: frozenset(),
    S.WITHDRAWN: frozenset(),
    # A cancelled change may be announced again, for a new window.
    S.CANCELLED: frozenset({ANNOUNCE}),
}
# Where each transition leads (announce and complete are refined in `_target`).
_TARGET = {
    ANNOUNCE: S.ANNOUNCED,
    APPLY_STARTED: S.IN_PROGRESS,
    APPLY_SUCCEEDED: S.SUCCEEDED,
    APPLY_FAILED: S.FAILED,
    ROLLBACK_STARTED: S.ROLLING_BACK,
    ROLLBACK_SUCCEEDED: S.ROLLED_BACK,
    ROLLBACK_FAILED: S.ROLLBACK_FAILED,
    COMPLETE: S.COMPLETED,
    CANCELLED: S.CANCELLED,
}
# Nothing more is expected of a change in these states.
TERMINAL = frozenset({S.COMPLETED, S.WITHDRAWN, S.CANCELLED})
# The work is under way (an overrun can only happen in these).
ACTIVE = frozenset({S.IN_PROGRESS, S.MITIGATING, S.ROLLING_BACK, S.FAILED, S.ROLLBACK_FAILED})
# Not started yet: announced, perhaps moved.
WAITING = frozenset({S.ANNOUNCED, S.RESCHEDULED, S.IDENTIFIED})
# The transitions after which the work has stopped, one way or the other.
_WORK_ENDS = frozenset({APPLY_SUCCEEDED, APPLY_FAILED, ROLLBACK_SUCCEEDED, ROLLBACK_FAILED})

Window = tuple[datetime, datetime]
StepKind = Literal["new", "repeat", "reschedule", "replan"]


@dataclass(frozen=True)
class Record:
    """One transition as the ledger holds it."""

    transition: str
    at: datetime
    after: State
    window: Window | None = None  # the window in force when it was made
    fingerprint: str = ""  # the plan it was made with (PLANLESS without one)


@dataclass(frozen=True)
class Step:
    """What a transition does to a change: the state before and after, and its kind.

    - `new`: the state changes (or, for an announcement, the change is announced at last);
    - `repeat`: the same transition as the last one (a retried job): nothing changes, and only
      deliveries missing from the first run go out;
    - `reschedule`: an announcement whose window differs from the one last announced;
    - `replan`: an announcement of the same window with a different plan.
    """

    transition: str
    before: State
    after: State
    kind: StepKind
    moved_from: Window | None = None

    @property
    def changes_state(self) -> bool:
        return self.kind in ("new", "reschedule")

    @property
    def recorded(self) -> bool:
        """Everything but a repeat is recorded (a re-plan too: what was announced changed)."""
        return self.kind != "repeat"


class LifecycleError(InputError):
    """A stage that cannot follow the change's current state (exit 2): the message names the
    state and what may come next."""


@dataclass(frozen=True)
class Lifecycle:
    """A change's transitions so far, and everything derived from them."""

    emergency: bool = False
    records: tuple[Record, ...] = ()

    @property
    def state(self) -> State:
        return self.records[-1].after if self.records else S.NEW

    @property
    def last(self) -> Record | None:
        return self.records[-1] if self.records else None

    @property
    def window(self) -> Window | None:
        """The window last announced (None before any announcement with a window)."""
        for record in reversed(self.records):
            if record.transition == ANNOUNCE and record.window is not None:
                return record.window
        return None

    @property
    def moved_from(self) -> Window | None:
        """The window announced before the last move, when the last announcement moved it."""
        windows = [r.window for r in self.records if r.transition == ANNOUNCE and r.window]
        if len(windows) >= 2 and windows[-1] != windows[-2]:
            return windows[-2]
        return None

    @property
    def announced(self) -> bool:
        return any(r.transition == ANNOUNCE for r in self.records)

    @property
    def planless(self) -> bool:
        """Announced without a plan, and no plan announced since."""
        for record in reversed(self.records):
            if record.transition == ANNOUNCE:
                return record.fingerprint == PLANLESS
        return False

    @property
    def attempt(self) -> int:
        """How many times the apply was started (an apply seen only when it ended counts once):
        a retried apply is a new attempt, whose notices are new messages."""
        count, open_attempt = 0, False
        for record in self.records:
            if record.transition == APPLY_STARTED or (
                record.transition in APPLIES and not open_attempt
            ):
                count += 1
            open_attempt = record.transition == APPLY_STARTED
        return count

    @property
    def started(self) -> bool:
        """The work began: an apply (of any attempt) is recorded."""
        return any(r.transition in APPLIES for r in self.records)

    @property
    def rolled_back(self) -> bool:
        """A rollback succeeded and no apply succeeded after it: the change is not in place."""
        result = False
        for record in self.records:
            if record.transition == ROLLBACK_SUCCEEDED:
                result = True
            elif record.transition == APPLY_SUCCEEDED:
                result = False
        return result

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL

    @property
    def work_ended_at(self) -> datetime | None:
        """When the work stopped: the last apply or rollback that ended (a failure too: the
        change failed then, whatever comes next), else the completion or cancellation; None
        while it is going (or has not begun)."""
        going = self.state in ACTIVE and self.state not in (S.FAILED, S.ROLLBACK_FAILED)
        if going or self.state in WAITING or self.state is S.NEW:
            return None
        ends = [r.at for r in self.records if r.transition in _WORK_ENDS]
        if ends:
            return ends[-1]
        return self.records[-1].at if self.records else None

    @property
    def outcome(self) -> str:
        """What became of the change, for reports: succeeded, rolled back, failed, cancelled,
        in progress, or not started."""
        state = _PLANNED.get(self.state, self.state)
        if state in (S.COMPLETED, S.SUCCEEDED):
            return "succeeded"
        if state in (S.WITHDRAWN, S.ROLLED_BACK):
            return "rolled back"
        if state in (S.FAILED, S.ROLLBACK_FAILED):
            return "failed"
        if state is S.CANCELLED:
            return "cancelled"
        if state in (S.IN_PROGRESS, S.ROLLING_BACK):
            return "in progress"
        return "not started"

    def overrunning(self, now: datetime, window_end: datetime | None = None) -> bool:
        """The work is still going after its window ended (a flag on the state, not a state)."""
        end = window_end or (self.window[1] if self.window else None)
        return end is not None and now > end and self.state in ACTIVE

    def variant(self, transition: str) -> str:
        """What the delivery keys of `transition` (the last one recorded, or about to be
        repeated) add to the plan's, so that a new occurrence is told as new and a retried job
        sends only what is missing: the attempt (a retried apply after a failure), the
        occurrence within it (a second rollback), and for an announcement or a cancellation
        the round (announced again after a cancellation). Empty for the first of each."""
        records = self.records
        if transition in (ANNOUNCE, CANCELLED):
            last = len(records) - 1 if records and records[-1].transition == transition else None
            before = records if transition == ANNOUNCE or last is None else records[:last]
            rounds = sum(r.transition == CANCELLED for r in before)
            return f"|round:{rounds}" if rounds else ""
        begun = 0
        for i, record in enumerate(records):
            if record.transition == APPLY_STARTED or (
                record.transition in APPLIES
                and (i == 0 or records[i - 1].transition != APPLY_STARTED)
            ):
                begun = i
        occurrence = sum(r.transition == transition for r in records[begun:]) or 1
        parts = [f"attempt:{self.attempt}"] if self.attempt > 1 else []
        parts += [f"again:{occurrence}"] if occurrence > 1 else []
        return "".join(f"|{p}" for p in parts)

    def allowed(self) -> tuple[str, ...]:
        """The transitions that may come next, in the usual order."""
        row = _ALLOWED[_PLANNED.get(self.state, self.state)]
        if self.state in WAITING and not self.planless:
            row = row - {COMPLETE}
        return tuple(t for t in TRANSITIONS if t in row)

    def step(
        self,
        transition: str,
        *,
        window: Window | None = None,
        fingerprint: str = "",
        what: str = "",
    ) -> Step:
        """What `transition` does now; LifecycleError when it cannot follow the state.

        `window` and `fingerprint` are the change's as this command sees them (an announcement
        compares them with what was last announced). `what` names the change in the error."""
        if transition not in _TARGET:
            raise ValueError(f"not a transition: {transition!r}")
        state, last, announced = self.state, self.last, self.window
        moved = (
            transition == ANNOUNCE
            and window is not None
            and announced is not None
            and window != announced
        )
        if last is not None and last.transition == transition and not moved:
            if transition == ANNOUNCE and fingerprint and fingerprint != last.fingerprint:
                return Step(transition, state, state, "replan")
            return Step(transition, state, state, "repeat")
        if (
            transition == ANNOUNCE
            and not moved
            and not self.ended
            and self._as_announced(fingerprint)
        ):
            # The plan job run again once the work began (a retried pipeline): what it would
            # announce is what was announced, so nothing changes and nothing new is sent.
            return Step(transition, state, state, "repeat")
        if transition not in self.allowed():
            raise LifecycleError(self._refusal(transition, what))
        after = self._target(transition, moved=moved)
        if moved:
            return Step(transition, state, after, "reschedule", announced)
        return Step(transition, state, after, "new")

    def after(
        self, step: Step, at: datetime, *, window: Window | None = None, fingerprint: str = ""
    ) -> Lifecycle:
        """The lifecycle once `step` was recorded at `at` (a repeat adds nothing)."""
        if not step.recorded:
            return self
        record = Record(step.transition, at, step.after, window, fingerprint)
        return replace(self, records=(*self.records, record))

    def _as_announced(self, fingerprint: str) -> bool:
        """Was this plan (any, when not given) the last one announced?"""
        for record in reversed(self.records):
            if record.transition == ANNOUNCE:
                return not fingerprint or record.fingerprint == fingerprint
        return False

    def _target(self, transition: str, *, moved: bool = False) -> State:
        target = _TARGET[transition]
        if transition == COMPLETE and self.rolled_back:
            target = S.WITHDRAWN
        elif transition == ANNOUNCE and moved:
            target = S.RESCHEDULED
        return _EMERGENCY.get(target, target) if self.emergency else target

    def _refusal(self, transition: str, what: str) -> str:
        name = f"{what} is" if what else "the change is"
        since = f" (since {self.last.transition.replace('_', ' ')})" if self.last else ""
        allowed = self.allowed()
        nexts = (
            "; allowed next: " + ", ".join(f"`{COMMANDS[t]}`" for t in allowed)
            if allowed
            else "; nothing may follow: it has ended"
        )
        why = ""
        if transition == COMPLETE and self.state in WAITING:
            why = ": nothing was applied yet (a change announced with a plan completes once it "
            why += "was applied; `cancel` it if it will not go ahead)"
        elif transition == CANCELLED and self.started:
            why = ": the work has started (roll it back instead)"
        elif transition in (*APPLIES, *ROLLBACKS) and self.ended:
            why = ": it has ended (announce a new change to make it again)"
        return f"`{COMMANDS[transition]}`: {name} {self.state.value}{since}{why}{nexts}"


def target(transition: str) -> str:
    """The state a planned change is in after `transition` as the table says it, for what is
    shown without a lifecycle at hand (a preview's payload); the transition's name otherwise."""
    found = _TARGET.get(transition)
    return found.value if found else transition.replace("_", " ")


def replay(entries: Iterable[Entry], *, emergency: bool | None = None) -> Lifecycle:
    """The lifecycle a change's ledger entries record.

    The change's own transition entries (stage `lifecycle`) are the record; deliveries made
    before the first of them (a ledger written before they existed) are read as transitions by
    their stage. A recorded transition is taken as having happened even where the table would
    refuse it now: the ledger says what was done. `emergency` defaults to what the entries say.
    """
    kept = sorted((e for e in entries if not e.dry_run), key=lambda e: e.delivered_at)
    # Transitions made in the same second (a pinned clock) keep the order they were made in.
    marks = sorted(
        (e for e in kept if e.stage == LIFECYCLE and e.extra.get("transition") in _TARGET),
        key=lambda e: (e.delivered_at, _seq(e)),
    )
    first_mark = marks[0].delivered_at if marks else None
    legacy = [
        e
        for e in kept
        if e.stage in _TARGET and (first_mark is None or e.delivered_at < first_mark)
    ]
    if emergency is None:
        emergency = any(e.emergency for e in (*marks, *legacy))
    life = Lifecycle(emergency=emergency)
    for entry in legacy:
        # A stage's deliveries to its many audiences are one transition (the rest repeat it).
        life = _record(life, entry.stage, entry.delivered_at, _window(entry), entry.fingerprint)
    for entry in marks:
        life = _record(
            life, entry.extra["transition"], entry.delivered_at, _window(entry), entry.fingerprint
        )
    return life


def _record(
    life: Lifecycle, transition: str, at: datetime, window: Window | None, fingerprint: str
) -> Lifecycle:
    """Append a recorded transition, taken as done even where the table would refuse it."""
    try:
        step = life.step(transition, window=window, fingerprint=fingerprint)
    except LifecycleError:
        moved = (
            transition == ANNOUNCE and None not in (window, life.window) and window != life.window
        )
        step = Step(transition, life.state, life._target(transition, moved=moved), "new")
    return life.after(step, at, window=window, fingerprint=fingerprint)


def _seq(entry: Entry) -> int:
    text = entry.extra.get("seq", "")
    return int(text) if text.isdigit() else 0


def _window(entry: Entry) -> Window | None:
    if not (entry.window_start and entry.window_end):
        return None
    return datetime.fromisoformat(entry.window_start), datetime.fromisoformat(entry.window_end)


def transition_entry(
    base: Entry, step: Step, life: Lifecycle, *, attempt: int | None = None
) -> Entry:
    """The ledger entry that records `step` (`life` is the lifecycle after it): `base` carries
    the change's identity (change id, type, plan, window, time); this sets what makes it a
    transition rather than a delivery."""
    return replace(
        base,
        stage=LIFECYCLE,
        audience=LIFECYCLE,
        channel=LIFECYCLE,
        recipient="",
        message_id="",
        receipt={},
        extra={
            "transition": step.transition,
            "state": step.after.value,
            "from": step.before.value,
            "attempt": str(life.attempt if attempt is None else attempt),
            "seq": str(len(life.records)),
        },
    )


def facts(step: Step, life: Lifecycle) -> dict[str, Any]:
    """What the messages of `step` may say of the change (`life` is the lifecycle after it):
    plain data for the render context's `lifecycle`."""
    moved = step.moved_from
    return {
        "state": step.after.value,
        "transition": step.transition,
        "kind": step.kind,
        "emergency": life.emergency,
        "started": life.started,
        "rolled_back": life.rolled_back,
        "attempt": life.attempt,
        "planless": life.planless,
        "moved_from": None
        if moved is None
        else {"start": moved[0].isoformat(), "end": moved[1].isoformat()},
    }


def as_it_is(life: Lifecycle, transition: str) -> dict[str, Any]:
    """`facts` for a notice that is no transition (an update, a reminder): the state stays."""
    step = Step(transition, life.state, life.state, "new", life.moved_from)
    return facts(step, life)
