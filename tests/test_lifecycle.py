"""The change lifecycle (hie_notify/lifecycle.py): every transition allowed and refused, the
emergency's own states, repeats, moves and re-plans, and the state replayed from the ledger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hie_notify import lifecycle as lc
from hie_notify.lifecycle import Lifecycle, LifecycleError, State, replay, transition_entry
from hie_notify.records import PLANLESS, Entry

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=timezone.utc)
W1 = (
    datetime(2026, 12, 8, 19, 0, tzinfo=timezone.utc),
    datetime(2026, 12, 8, 21, 0, tzinfo=timezone.utc),
)
W2 = (
    datetime(2026, 12, 10, 19, 0, tzinfo=timezone.utc),
    datetime(2026, 12, 10, 21, 0, tzinfo=timezone.utc),
)
PLAN = "sha256:" + "a" * 64
PLAN2 = "sha256:" + "b" * 64


def run(transitions: list[str], *, emergency: bool = False, fingerprint: str = PLAN) -> Lifecycle:
    """The lifecycle after making `transitions` in order (each must be allowed)."""
    life = Lifecycle(emergency=emergency)
    for i, t in enumerate(transitions):
        step = life.step(t, window=W1, fingerprint=fingerprint)
        life = life.after(step, T0 + timedelta(minutes=i), window=W1, fingerprint=fingerprint)
    return life


# One way to reach each planned state, from nothing.
PATHS: dict[State, list[str]] = {
    State.NEW: [],
    State.ANNOUNCED: ["announce"],
    State.IN_PROGRESS: ["announce", "apply_started"],
    State.SUCCEEDED: ["announce", "apply_started", "apply_succeeded"],
    State.FAILED: ["announce", "apply_started", "apply_failed"],
    State.ROLLING_BACK: ["announce", "apply_started", "apply_failed", "rollback_started"],
    State.ROLLED_BACK: [
        "announce",
        "apply_started",
        "apply_failed",
        "rollback_started",
        "rollback_succeeded",
    ],
    State.ROLLBACK_FAILED: [
        "announce",
        "apply_started",
        "apply_failed",
        "rollback_started",
        "rollback_failed",
    ],
    State.COMPLETED: ["announce", "apply_started", "apply_succeeded", "complete"],
    State.WITHDRAWN: [
        "announce",
        "apply_started",
        "apply_failed",
        "rollback_succeeded",
        "complete",
    ],
    State.CANCELLED: ["announce", "cancelled"],
}

# The table, written out from the issue's and DESIGN.md's rules (not read from the module).
ALLOWED: dict[State, set[str]] = {
    State.NEW: {"announce", "apply_started", "apply_succeeded", "apply_failed"},
    State.ANNOUNCED: {"announce", "apply_started", "apply_succeeded", "apply_failed", "cancelled"},
    State.IN_PROGRESS: {
        "apply_succeeded",
        "apply_failed",
        "rollback_started",
        "rollback_succeeded",
        "rollback_failed",
    },
    State.SUCCEEDED: {
        "complete",
        "apply_started",
        "rollback_started",
        "rollback_succeeded",
        "rollback_failed",
    },
    State.FAILED: {
        "apply_started",
        "apply_succeeded",
        "apply_failed",
        "rollback_started",
        "rollback_succeeded",
        "rollback_failed",
    },
    State.ROLLING_BACK: {"rollback_succeeded", "rollback_failed"},
    State.ROLLED_BACK: {"complete", "announce", "apply_started"},
    State.ROLLBACK_FAILED: {
        "apply_started",
        "apply_succeeded",
        "apply_failed",
        "rollback_started",
        "rollback_succeeded",
        "rollback_failed",
    },
    State.COMPLETED: set(),
    State.WITHDRAWN: set(),
    State.CANCELLED: {"announce"},
}


def test_every_state_is_reached_by_its_path() -> None:
    for state, path in PATHS.items():
        assert run(path).state is state, path
    assert set(PATHS) == set(ALLOWED)


@pytest.mark.parametrize("state", list(PATHS), ids=lambda s: s.name)
@pytest.mark.parametrize("transition", lc.TRANSITIONS)
def test_each_transition_from_each_state_is_allowed_or_refused_as_the_table_says(
    state: State, transition: str
) -> None:
    life = run(PATHS[state])
    repeat = life.last is not None and life.last.transition == transition
    # The plan job run again (same plan, same window) once the work began changes nothing.
    repeat |= transition == "announce" and life.announced and not life.ended
    if transition in ALLOWED[state] or repeat:
        step = life.step(transition, window=W1, fingerprint=PLAN)
        assert step.before is state
        if repeat:
            assert step.kind == "repeat" and step.after is state
    else:
        with pytest.raises(LifecycleError) as refused:
            life.step(transition, window=W1, fingerprint=PLAN, what="FFAPP-1")
        text = str(refused.value)
        assert f"FFAPP-1 is {state.value}" in text
        assert lc.COMMANDS[transition] in text
        for allowed in ALLOWED[state]:
            assert f"`{lc.COMMANDS[allowed]}`" in text
        if not ALLOWED[state]:
            assert "nothing may follow" in text


def test_refusals_the_issue_names() -> None:
    rolled_back = run(PATHS[State.ROLLED_BACK])
    with pytest.raises(LifecycleError, match=r"is rolled back .*allowed next: `plan"):
        rolled_back.step("apply_succeeded")
    announced = run(["announce"])
    with pytest.raises(LifecycleError, match="nothing was applied yet"):
        announced.step("complete")
    with pytest.raises(LifecycleError, match="the work has started"):
        run(PATHS[State.IN_PROGRESS]).step("cancelled")


def test_the_plan_job_again_during_the_work_is_a_repeat_and_another_plan_refused() -> None:
    for state in (State.IN_PROGRESS, State.FAILED, State.ROLLED_BACK, State.SUCCEEDED):
        life = run(PATHS[state])
        again = life.step("announce", window=W1, fingerprint=PLAN)
        assert again.kind == "repeat" and again.after is state and not again.recorded
    # Rolled back, a fixed plan is a new announcement; during the work it is refused.
    fixed = run(PATHS[State.ROLLED_BACK]).step("announce", window=W1, fingerprint=PLAN2)
    assert fixed.kind == "new" and fixed.after is State.ANNOUNCED
    with pytest.raises(LifecycleError, match="is in progress"):
        run(PATHS[State.IN_PROGRESS]).step("announce", window=W1, fingerprint=PLAN2)
    # Ended, even the same plan is refused: a new change is announced as one.
    with pytest.raises(LifecycleError, match="is completed"):
        run(PATHS[State.COMPLETED]).step("announce", window=W1, fingerprint=PLAN)


def test_a_planless_change_may_complete_without_an_apply() -> None:
    life = run(["announce"], fingerprint=PLANLESS)
    assert life.planless
    assert "complete" in life.allowed()
    step = life.step("complete", fingerprint=PLANLESS)
    assert step.after is State.COMPLETED
    # Once a plan is attached (a re-plan of the same window), it is a Terraform change again.
    replanned = life.after(
        life.step("announce", window=None, fingerprint=PLAN), T0, fingerprint=PLAN
    )
    assert not replanned.planless and "complete" not in replanned.allowed()


def test_an_emergency_has_its_own_states_and_the_same_rules() -> None:
    assert run(["announce"], emergency=True).state is State.IDENTIFIED
    assert run(PATHS[State.IN_PROGRESS], emergency=True).state is State.MITIGATING
    assert run(PATHS[State.SUCCEEDED], emergency=True).state is State.RESOLVED
    assert run(PATHS[State.COMPLETED], emergency=True).state is State.COMPLETED
    assert run(PATHS[State.WITHDRAWN], emergency=True).state is State.WITHDRAWN
    for state, path in PATHS.items():
        assert set(run(path, emergency=True).allowed()) == set(run(path).allowed()), state


def test_complete_after_a_rollback_is_withdrawn_and_never_succeeded() -> None:
    life = run(PATHS[State.WITHDRAWN])
    assert life.state is State.WITHDRAWN
    assert life.rolled_back and life.outcome == "rolled back"
    # Rolled back, then applied again successfully: complete is a real completion.
    again = run([*PATHS[State.ROLLED_BACK], "apply_started", "apply_succeeded", "complete"])
    assert again.state is State.COMPLETED and again.outcome == "succeeded"
    assert not again.rolled_back and again.attempt == 2


def test_a_retried_job_repeats_and_a_new_attempt_counts() -> None:
    life = run(["announce", "apply_started"])
    step = life.step("apply_started")
    assert step.kind == "repeat" and not step.recorded
    assert life.after(step, T0) is life
    failed = run(["announce", "apply_started", "apply_failed", "apply_started"])
    assert failed.state is State.IN_PROGRESS and failed.attempt == 2
    # An apply seen only when it ended (watch missed its start) is one attempt.
    assert run(["announce", "apply_succeeded"]).attempt == 1


def test_a_moved_window_is_a_reschedule_and_a_new_plan_a_replan() -> None:
    life = run(["announce"])
    moved = life.step("announce", window=W2, fingerprint=PLAN)
    assert moved.kind == "reschedule" and moved.after is State.RESCHEDULED
    assert moved.moved_from == W1
    after = life.after(moved, T0 + timedelta(days=1), window=W2, fingerprint=PLAN)
    assert after.window == W2 and after.moved_from == W1
    replan = after.step("announce", window=W2, fingerprint=PLAN2)
    assert replan.kind == "replan" and replan.after is State.RESCHEDULED
    same = after.step("announce", window=W2, fingerprint=PLAN)
    assert same.kind == "repeat"
    # Back to nothing moved: a later announcement of the same window is no move.
    assert (
        after.after(replan, T0 + timedelta(days=2), window=W2, fingerprint=PLAN2).moved_from is None
    )


def test_cancelled_change_may_be_announced_again() -> None:
    life = run(PATHS[State.CANCELLED])
    assert life.ended
    step = life.step("announce", window=W2, fingerprint=PLAN)
    assert step.after is State.RESCHEDULED and step.moved_from == W1


def test_work_ended_at_is_the_failure_or_rollback_not_the_completion() -> None:
    life = run(PATHS[State.WITHDRAWN])
    rollback = next(r for r in life.records if r.transition == "rollback_succeeded")
    assert life.work_ended_at == rollback.at
    assert run(PATHS[State.IN_PROGRESS]).work_ended_at is None
    assert run(["announce"]).work_ended_at is None
    planless = run(["announce", "complete"], fingerprint=PLANLESS)
    assert planless.work_ended_at == planless.records[-1].at


def test_overrunning_is_a_flag_on_an_active_state_after_the_window() -> None:
    after_window = W1[1] + timedelta(minutes=1)
    assert run(PATHS[State.IN_PROGRESS]).overrunning(after_window)
    assert not run(PATHS[State.IN_PROGRESS]).overrunning(W1[1])
    assert not run(["announce"]).overrunning(after_window)  # never started
    assert not run(PATHS[State.COMPLETED]).overrunning(after_window)
    assert run(PATHS[State.ROLLING_BACK]).overrunning(after_window)


# --- replayed from the ledger -------------------------------------------------------------


def entry(
    stage: str, at: datetime, *, window: tuple[datetime, datetime] | None = W1, **kw: object
) -> Entry:
    fields: dict[str, object] = {
        "change_id": "FFAPP-1",
        "stage": stage,
        "audience": kw.pop("audience", "slack:#devops"),
        "channel": "slack",
        "recipient": "#devops",
        "fingerprint": kw.pop("fingerprint", PLAN),
        "change_type": "planned_infra_update",
        "service_impacting": True,
        "resources": (),
        "delivered_at": at,
        "message_id": "m",
        "idempotency_key": f"{stage}{at.isoformat()}{kw.get('audience', '')}",
        "window_start": window[0].isoformat() if window else "",
        "window_end": window[1].isoformat() if window else "",
    }
    fields.update(kw)
    return Entry(**fields)  # type: ignore[arg-type]


def marks_of(life: Lifecycle) -> list[Entry]:
    """The transition entries a command would have recorded for each of `life`'s records."""
    out = []
    partial = Lifecycle(emergency=life.emergency)
    for record in life.records:
        step = partial.step(record.transition, window=record.window, fingerprint=record.fingerprint)
        partial = partial.after(
            step, record.at, window=record.window, fingerprint=record.fingerprint
        )
        base = entry(
            "x",
            record.at,
            window=record.window,
            fingerprint=record.fingerprint,
            emergency=life.emergency,
        )
        out.append(transition_entry(base, step, partial))
    return out


def test_replay_of_recorded_transitions_gives_the_same_lifecycle() -> None:
    for path in PATHS.values():
        for emergency in (False, True):
            life = run(path, emergency=emergency)
            # With nothing recorded, only the caller knows it is an emergency.
            known = None if life.records else emergency
            assert replay(marks_of(life), emergency=known) == life


def test_replay_ignores_deliveries_dry_runs_and_other_stages_once_transitions_are_recorded() -> (
    None
):
    life = run(PATHS[State.ROLLED_BACK])
    noise = [
        entry("apply_succeeded", T0 + timedelta(hours=1)),  # a delivery: not a transition
        entry("complete", T0 + timedelta(hours=2), dry_run=True),
        entry("postmortem", T0 + timedelta(hours=3)),
        entry("reminder", T0 + timedelta(hours=4)),
    ]
    assert replay([*marks_of(life), *noise]).state is State.ROLLED_BACK


def test_an_old_ledger_is_replayed_from_its_deliveries() -> None:
    t = T0
    deliveries = [
        entry("announce", t, audience="slack:#devops"),
        entry("announce", t + timedelta(seconds=1), audience="customer:EoE"),
        entry("apply_started", t + timedelta(days=6), audience="slack:#devops"),
        entry("apply_failed", t + timedelta(days=6, minutes=14)),
        entry("rollback_started", t + timedelta(days=6, minutes=19)),
        entry("rollback_succeeded", t + timedelta(days=6, minutes=44)),
        entry(
            "rollback_succeeded",
            t + timedelta(days=6, minutes=44, seconds=1),
            audience="customer:EoE",
        ),
        entry("complete", t + timedelta(days=6, minutes=54)),
    ]
    life = replay(deliveries)
    assert life.state is State.WITHDRAWN
    assert [r.transition for r in life.records] == [
        "announce",
        "apply_started",
        "apply_failed",
        "rollback_started",
        "rollback_succeeded",
        "complete",
    ]
    assert life.work_ended_at == t + timedelta(days=6, minutes=44)


def test_an_old_ledger_with_a_moved_window_is_rescheduled() -> None:
    life = replay([entry("announce", T0), entry("announce", T0 + timedelta(days=1), window=W2)])
    assert life.state is State.RESCHEDULED and life.moved_from == W1


def test_replay_takes_the_emergency_from_the_entries() -> None:
    assert replay([entry("announce", T0, emergency=True)]).state is State.IDENTIFIED
    assert replay([entry("announce", T0)]).state is State.ANNOUNCED


@settings(max_examples=200)
@given(st.permutations(list(range(8))))
def test_replay_does_not_depend_on_the_order_entries_are_read(order: list[int]) -> None:
    life = run(PATHS[State.WITHDRAWN])
    marks = marks_of(life)
    extra = [entry("postmortem", T0 + timedelta(hours=i)) for i in range(3)]
    pool = [*marks, *extra]
    shuffled = [pool[i] for i in order if i < len(pool)] + pool[8:]
    assert replay(shuffled).state is State.WITHDRAWN


# --- random stage sequences ---------------------------------------------------------------


class LifecycleMachine(RuleBasedStateMachine):
    """Random stage sequences: refused transitions change nothing, the state replayed from
    what was recorded is the state, and nothing says "succeeded" of a change that is rolled
    back."""

    def __init__(self) -> None:
        super().__init__()
        self.life = Lifecycle()
        self.marks: list[Entry] = []
        self.clock = T0
        self.emergency_chosen = False

    @precondition(lambda self: not self.life.records and not self.emergency_chosen)
    @rule(emergency=st.booleans())
    def choose_kind(self, emergency: bool) -> None:
        self.life = Lifecycle(emergency=emergency)
        self.emergency_chosen = True

    @rule(
        transition=st.sampled_from(lc.TRANSITIONS),
        window=st.sampled_from([W1, W2, None]),
        fingerprint=st.sampled_from([PLAN, PLAN2, PLANLESS]),
    )
    def make(
        self, transition: str, window: tuple[datetime, datetime] | None, fingerprint: str
    ) -> None:
        self.clock += timedelta(minutes=5)
        before = self.life
        try:
            step = before.step(transition, window=window, fingerprint=fingerprint)
        except LifecycleError as refused:
            assert before.state.value in str(refused)
            assert transition not in before.allowed()
            assert self.life == before
            return
        after = before.after(step, self.clock, window=window, fingerprint=fingerprint)
        assert after.state is step.after
        if step.recorded:
            base = entry(
                "x", self.clock, window=window, fingerprint=fingerprint, emergency=before.emergency
            )
            self.marks.append(transition_entry(base, step, after))
        else:
            assert after is before
        if transition == "complete" and step.kind == "new":
            assert after.state is (State.WITHDRAWN if before.rolled_back else State.COMPLETED)
        self.life = after

    @invariant()
    def replayed_state_is_the_state(self) -> None:
        assert replay(self.marks, emergency=self.life.emergency).state is self.life.state

    @invariant()
    def rolled_back_is_never_succeeded(self) -> None:
        if self.life.rolled_back:
            assert self.life.outcome != "succeeded"
            assert self.life.state is not State.COMPLETED

    @invariant()
    def emergency_states_only_for_emergencies(self) -> None:
        if not self.life.emergency:
            assert self.life.state not in (State.IDENTIFIED, State.MITIGATING, State.RESOLVED)

    @invariant()
    def an_ended_change_allows_at_most_a_new_announcement(self) -> None:
        if self.life.ended:
            assert set(self.life.allowed()) <= {"announce"}


TestLifecycleMachine = LifecycleMachine.TestCase
TestLifecycleMachine.settings = settings(max_examples=300, stateful_step_count=25, deadline=None)


# --- what the stage commands take from it (issue 24.1) -------------------------------------


def test_each_transition_has_its_phase_beside_the_table() -> None:
    assert set(lc.PHASE) == set(lc.TRANSITIONS)
    assert lc.PHASE["announce"] == "pre_deployment" and lc.PHASE["complete"] == "post_deployment"
    assert {lc.PHASE[t] for t in (*lc.APPLIES, *lc.ROLLBACKS)} == {"during"}


def test_a_new_attempt_or_round_has_keys_of_its_own_and_a_repeat_the_same() -> None:
    """The delivery keys' variant: a retried job (a repeat) sends only what is missing; an
    apply retried after a failure, a second rollback, an announcement after a cancellation are
    told anew."""
    first = run(["announce", "apply_started"])
    assert first.variant("announce") == "" and first.variant("apply_started") == ""
    assert first.after(first.step("apply_started"), T0).variant("apply_started") == ""
    second = run(["announce", "apply_started", "apply_failed", "apply_started"])
    assert second.variant("apply_started") == "|attempt:2"
    failed_twice = run(["announce", "apply_started", "apply_failed", "rollback_started"])
    failed_twice = run(
        [*(r.transition for r in failed_twice.records), "rollback_failed", "rollback_started"]
    )
    assert failed_twice.variant("rollback_started") == "|again:2"
    again = run(["announce", "cancelled", "announce"])
    assert again.variant("announce") == "|round:1"
    assert run(["announce", "cancelled"]).variant("cancelled") == ""
    assert run(["announce", "cancelled", "announce", "cancelled"]).variant("cancelled") == (
        "|round:1"
    )
    # Every recorded step of a long random-looking path has a distinct (transition, variant).
    path = [
        "announce",
        "apply_started",
        "apply_failed",
        "rollback_started",
        "rollback_succeeded",
        "apply_started",
        "apply_failed",
        "rollback_succeeded",
        "complete",
    ]
    life, keys = Lifecycle(), set()
    for i, t in enumerate(path):
        life = life.after(life.step(t, window=W1, fingerprint=PLAN), T0 + timedelta(minutes=i))
        keys.add((t, life.variant(t)))
    assert len(keys) == len(path)


def test_facts_say_what_the_messages_may_say() -> None:
    life = run(PATHS[State.ROLLED_BACK], emergency=True)
    step = life.step("complete")
    after = life.after(step, T0 + timedelta(hours=1))
    assert lc.facts(step, after) == {
        "state": "withdrawn",
        "transition": "complete",
        "kind": "new",
        "emergency": True,
        "started": True,
        "rolled_back": True,
        "attempt": 1,
        "planless": False,
        "moved_from": None,
    }
    moved = run(["announce"])
    step = moved.step("announce", window=W2, fingerprint=PLAN)
    facts = lc.facts(step, moved.after(step, T0, window=W2, fingerprint=PLAN))
    assert facts["kind"] == "reschedule" and facts["state"] == "rescheduled"
    assert facts["moved_from"] == {"start": W1[0].isoformat(), "end": W1[1].isoformat()}
    assert lc.as_it_is(run(["announce", "apply_started"]), "update")["state"] == "in progress"


def test_transitions_made_in_the_same_second_replay_in_the_order_made() -> None:
    """A pinned clock (or a fast job) records several transitions at one instant, and a
    register may hand them back in any order: their sequence numbers keep the order."""
    life = Lifecycle()
    marks = []
    for t in ("announce", "apply_started", "apply_failed", "rollback_succeeded", "complete"):
        step = life.step(t, window=W1, fingerprint=PLAN)
        life = life.after(step, T0, window=W1, fingerprint=PLAN)
        marks.append(transition_entry(entry("x", T0, idempotency_key=t), step, life))
    assert [m.extra["seq"] for m in marks] == ["1", "2", "3", "4", "5"]
    for shuffled in (marks[::-1], marks[2:] + marks[:2], sorted(marks, key=lambda e: e.digest)):
        assert replay(shuffled).state is State.WITHDRAWN


def test_a_failure_ends_the_work_for_the_post_mortem() -> None:
    failed = run(PATHS[State.FAILED])
    assert failed.work_ended_at == failed.records[-1].at
    rollback_failed = run(PATHS[State.ROLLBACK_FAILED])
    assert rollback_failed.work_ended_at == rollback_failed.records[-1].at
    assert run(PATHS[State.ROLLING_BACK]).work_ended_at is None


def test_target_names_the_state_a_transition_leads_to() -> None:
    assert lc.target("apply_started") == "in progress"
    assert lc.target("complete") == "completed"
    assert lc.target("reminder") == "reminder"
