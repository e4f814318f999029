"""Random stage sequences through the command line (`hypothesis.stateful`): plan (two plans),
apply, rollback, complete and cancel with --now, a file ledger, the SQLite register and the
outbox. After every step: the register's, the calendar's and the report's status is the state
replayed from the ledger; a transition the state refuses is exit 2 and changes no file; a
repeat sends nothing; no delivery is ever recorded twice; the messages a step sends do not
contradict the state it leads to (nothing "complete" after a rollback, no "planned" work for an
emergency, a second attempt told as one), and an overrun `remind` would send after the window
reaches customers only when the work was recorded as started. The same runs for an emergency."""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import io
import json
import re
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import yaml
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from hie_notify.cli import main
from hie_notify.ledger import open_ledger
from hie_notify.lifecycle import Lifecycle, LifecycleError, State, replay
from tests.support.builders import plan, rc, write
from tests.support.cli_flow import CHANGE

UTC = timezone.utc
START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
WINDOW = (datetime(2027, 1, 12, 19, 0, tzinfo=UTC), datetime(2027, 1, 12, 21, 0, tzinfo=UTC))
PLANS = {
    "a": plan(rc("module.eks.aws_eks_node_group.workers", ["delete", "create"])),
    "b": plan(rc("module.eks.aws_eks_node_group.spares", ["delete", "create"])),
}
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "plan a": ("announce", ("plan", "--plan", "{a}")),
    "plan b": ("announce", ("plan", "--plan", "{b}")),
    **{
        f"{verb} {status}": (f"{verb}_{status}", (verb, "--status", status))
        for verb in ("apply", "rollback")
        for status in ("started", "succeeded", "failed")
    },
    "complete": ("complete", ("complete",)),
    "cancel": ("cancelled", ("cancel",)),
}
OUTCOME = {
    "succeeded": {"succeeded"},
    "rolled back": {"rolled back"},
    "failed": {"failed"},
    "cancelled": {"cancelled"},
    "in progress": {"in progress", "overrun"},
    "not started": {"planned", "window open", "no outcome recorded"},
}


def _read(path: Path) -> tuple[bool, str]:
    """(is it a customer's or stakeholder's email, its subject and text) of an outbox file."""
    if path.suffix == ".eml":
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, email.message.EmailMessage)
        body = msg.get_body(("plain",))
        text = str(body.get_content()) if body is not None else ""
        outside = path.name.startswith(("customer-", "stakeholders-"))
        return outside, f"{msg['Subject']}\n{text}"
    return False, path.read_text(encoding="utf-8", errors="replace")


def contradictions(life: Lifecycle, stage: str, path: Path) -> list[str]:
    """What a message `stage` sent (at `path`) says that the lifecycle after it (`life`)
    contradicts."""
    outside, text = _read(path)
    low = text.lower()
    found = []
    done = "completed successfully" in low or "running normally" in low
    if life.rolled_back and stage == "complete" and done:
        found.append("a change rolled back told as completed")
    if life.emergency:
        said = text if outside else text.replace("Planned Infra Update", "")
        if re.search(r"\bplanned\b", said, re.IGNORECASE):
            found.append("an emergency called planned")
        if (
            outside
            and life.rolled_back
            and ("nothing you need to do" in low or "running as it was before" in low)
        ):
            found.append("an emergency rolled back told as if nothing were wrong")
    elif outside and "urgent" in low:
        found.append("a planned change called urgent")
    if stage == "apply_started" and ("second attempt" in low) != (life.attempt == 2):
        found.append(f"attempt {life.attempt} told wrong")
    return [f"{path.name} at {stage}: {why}" for why in found]


class Stages(RuleBasedStateMachine):
    fields: ClassVar[dict[str, Any]] = {}  # what the change record adds to CHANGE

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="hie-lifecycle-"))
        window = {"start": WINDOW[0].isoformat(), "end": WINDOW[1].isoformat()}
        record = {**CHANGE, "window": window, **self.fields}
        (self.tmp / "change.yaml").write_text(yaml.safe_dump(record))
        self.plans = {k: str(write(self.tmp / f"{k}.json", v)) for k, v in PLANS.items()}
        self.now = START
        self.last = ""
        self.err = ""
        self.fingerprints = {k: self._fingerprint(p) for k, p in self.plans.items()}

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _main(
        self, *args: str, fmt: str = "json", now: datetime | None = None, tmp: Path | None = None
    ) -> tuple[int, Any]:
        tmp = tmp or self.tmp
        base = [
            "--format",
            fmt,
            "--now",
            (now or self.now).isoformat(),
            "--change",
            str(tmp / "change.yaml"),
            "--ledger",
            f"file:{tmp}/ledger.jsonl",
            "--register",
            f"sqlite:{tmp}/register.sqlite3",
            "--outbox",
            str(tmp / "outbox"),
        ]
        extra = ["--terraform-report", str(self.tmp / "tf.json")] if args[0] == "plan" else []
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*base, *args, *extra], env={})
        self.err = err.getvalue()
        return code, json.loads(out.getvalue()) if out.getvalue().strip() else {}

    def _fingerprint(self, path: str) -> str:
        code, out = self._main("classify", "--plan", path)
        assert code == 0
        return str(out["fingerprint"])

    def _life(self) -> Lifecycle:
        entries = open_ledger(f"file:{self.tmp}/ledger.jsonl", {}).read("FFAPP-4458")
        return replay(entries, emergency=self.fields.get("type") == "emergency_fix")

    def _files(self) -> dict[str, str]:
        return {
            str(p.relative_to(self.tmp)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.tmp.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")
        }

    def _sent(self) -> set[str]:
        """The messages in the outbox (the merge request's summary note is rewritten in place:
        it is no message)."""
        box = self.tmp / "outbox"
        return {str(p) for p in box.rglob("*") if p.is_file() and p.name != "merge-request-note.md"}

    def _step(self, name: str) -> None:
        transition, template = COMMANDS[name]
        args = [a.format(**self.plans) for a in template]
        self.now += timedelta(minutes=5)
        before, files, sent = self._life(), self._files(), self._sent()
        fingerprint = self.fingerprints[name[-1]] if name.startswith("plan") else ""
        try:
            expected = before.step(transition, window=WINDOW, fingerprint=fingerprint)
        except LifecycleError:
            expected = None
        code, out = self._main(*args)
        # Nothing announced: a stage without a plan cannot even tell what the change is.
        if expected is None or (not before.announced and transition != "announce"):
            assert code == 2, (name, before.state, self.err)
            assert self._files() == files, name  # refused: nothing written at all
            return
        assert code == 0, (name, before.state, self.err)
        assert out["lifecycle"]["state"] == expected.after.value
        assert out["lifecycle"]["kind"] == expected.kind
        if expected.kind == "repeat":
            assert out["delivered"] == [] and self._sent() == sent, name
        after = self._life()
        assert after.state is expected.after
        assert len(after.records) == len(before.records) + (expected.kind != "repeat")
        problems = [
            problem
            for path in sorted(self._sent() - sent)
            for problem in contradictions(after, transition, Path(path))
        ]
        assert not problems, (name, after.state, problems)
        self.last = name

    @rule(name=st.sampled_from(sorted(COMMANDS)))
    def stage(self, name: str) -> None:
        self._step(name)

    @rule()
    def retry_the_last_job(self) -> None:
        if self.last:
            self._step(self.last)

    @rule()
    def remind_after_the_window(self) -> None:
        """What `remind` would send once the window ended, on a copy (time goes on here)."""
        life = self._life()
        copy = Path(tempfile.mkdtemp(prefix="hie-lifecycle-remind-"))
        try:
            shutil.copytree(self.tmp, copy, dirs_exist_ok=True)
            code, _ = self._main("remind", now=WINDOW[1] + timedelta(minutes=30), tmp=copy)
            assert code == 0, self.err
            overrun = copy / "outbox/FFAPP-4458/overrun"
            sent = sorted(overrun.iterdir()) if overrun.exists() else []
            outside = [p.name for p in sent if _read(p)[0]]
            if not life.started:
                assert outside == [], (life.state, outside)
            for path in sent:
                if not _read(path)[0] and path.suffix == ".json":
                    said = "not been recorded as started" in path.read_text()
                    assert said == (not life.started), (life.state, path.name)
            if life.state in (State.IN_PROGRESS, State.MITIGATING) and life.announced:
                assert sent, life.state  # an overrun of work under way is told
        finally:
            shutil.rmtree(copy, ignore_errors=True)

    @invariant()
    def nothing_is_recorded_twice(self) -> None:
        ledger = self.tmp / "ledger.jsonl"
        if ledger.exists():
            keys = [json.loads(x)["idempotency_key"] for x in ledger.read_text().splitlines()]
            assert len(keys) == len(set(keys))

    @invariant()
    def every_status_is_the_replayed_state(self) -> None:
        life = self._life()
        if not life.records:
            return
        state = life.state.value
        code, cal = self._main("calendar", "--from", "2027-01-01", "--to", "2027-01-31")
        assert code == 0 and [c["status"] for c in cal["changes"]] == [state], self.err
        code, rep = self._main("report", "--from", "2027-01-01", "--to", "2027-01-31")
        assert code == 0, self.err
        (row,) = rep["tables"]["changes"]
        assert row["status"] == state
        assert row["outcome"] in OUTCOME[life.outcome], (row["outcome"], life.outcome)


TestStages = Stages.TestCase
TestStages.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)


class EmergencyStages(Stages):
    fields: ClassVar[dict[str, Any]] = {
        "type": "emergency_fix",
        "justification": "CVE-2026-0001 is being exploited",
    }


TestEmergencyStages = EmergencyStages.TestCase
TestEmergencyStages.settings = settings(max_examples=10, stateful_step_count=15, deadline=None)
