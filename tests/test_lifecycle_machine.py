"""Random stage sequences through the command line (`hypothesis.stateful`): plan (two plans),
apply, rollback, complete and cancel with --now, a file ledger, the SQLite register and the
outbox. After every step: the register's, the calendar's and the report's status is the state
replayed from the ledger; a transition the state refuses is exit 2 and changes no file; a
repeat sends nothing; no delivery is ever recorded twice."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from hie_notify.cli import main
from hie_notify.ledger import open_ledger
from hie_notify.lifecycle import Lifecycle, LifecycleError, replay
from tests.builders import plan, rc, write
from tests.cli_flow import CHANGE

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


class Stages(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="hie-lifecycle-"))
        window = {"start": WINDOW[0].isoformat(), "end": WINDOW[1].isoformat()}
        (self.tmp / "change.yaml").write_text(yaml.safe_dump({**CHANGE, "window": window}))
        self.plans = {k: str(write(self.tmp / f"{k}.json", v)) for k, v in PLANS.items()}
        self.now = START
        self.last = ""
        self.err = ""
        self.fingerprints = {k: self._fingerprint(p) for k, p in self.plans.items()}

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _main(self, *args: str, fmt: str = "json") -> tuple[int, Any]:
        base = [
            "--format",
            fmt,
            "--now",
            self.now.isoformat(),
            "--change",
            str(self.tmp / "change.yaml"),
            "--ledger",
            f"file:{self.tmp}/ledger.jsonl",
            "--register",
            f"sqlite:{self.tmp}/register.sqlite3",
            "--outbox",
            str(self.tmp / "outbox"),
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
        return replay(open_ledger(f"file:{self.tmp}/ledger.jsonl", {}).read("FFAPP-4458"))

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
        self.last = name

    @rule(name=st.sampled_from(sorted(COMMANDS)))
    def stage(self, name: str) -> None:
        self._step(name)

    @rule()
    def retry_the_last_job(self) -> None:
        if self.last:
            self._step(self.last)

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
