"""The policy's checklists (issue 25 item 8): the merge request description's GitLab task list,
read from GitLab's API (never the branch's files), must tick each item the policy requires of
the change type; the gate names each unticked one (`checklist.unticked`) with the checklist's
link, and the merge request note links the checklists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hie_notify.gate import task_key, ticked_items
from tests.support.trust_ci import ANNOUNCED, PROTECTED, Pipeline, pipeline

LINK = "https://confluence.example.org/devops-checklist"
CHECKLISTS = f"""\
checklists:
  - title: DevOps Checklist
    link: {LINK}
    items:
      planned_infra_update: [Plan output reviewed, Rollback tested]
  - title: Customer Checklist
    items:
      planned_infra_update: [Customers told of the window]
""".encode()
ALL_TICKED = """\
Resize the database.

- [x] Plan output reviewed
- [X] rollback   tested
* [x] Customers told of the window
"""


@pytest.fixture
def pipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    with pipeline(tmp_path, capsys, monkeypatch) as p:
        p.protected(PROTECTED + CHECKLISTS)
        yield p


def _unticked(out: dict[str, object]) -> list[str]:
    return [
        str(f["text"])  # type: ignore[index]
        for f in out["findings"]  # type: ignore[attr-defined]
        if f["rule"] == "checklist.unticked"  # type: ignore[index]
    ]


def test_the_gate_names_each_unticked_item_with_its_checklist(pipe: Pipeline) -> None:
    pipe.gitlab.mr_description = "- [x] Plan output reviewed\n- [ ] Rollback tested\n"
    assert pipe("plan", at=ANNOUNCED)[0] == 0, pipe.err
    code, out = pipe("gate")
    assert code == 1
    assert _unticked(out) == [
        f"DevOps Checklist ({LINK}): 'Rollback tested' is not ticked in the merge request "
        "description's task list: tick it there (`- [x] Rollback tested`) once done",
        "Customer Checklist: 'Customers told of the window' is not ticked in the merge request "
        "description's task list: tick it there (`- [x] Customers told of the window`) once "
        "done",
    ]
    assert all(not f["at_plan"] for f in out["findings"] if f["rule"].startswith("checklist."))
    # The merge request note links the checklists.
    note = "\n".join(pipe.note_bodies())
    assert f"[DevOps Checklist]({LINK})" in note and "Rollback tested" in note


def test_every_item_ticked_passes(pipe: Pipeline) -> None:
    pipe.gitlab.mr_description = ALL_TICKED
    assert pipe("plan", at=ANNOUNCED)[0] == 0, pipe.err
    code, out = pipe("gate")
    assert code == 0, out
    assert _unticked(out) == []


def test_ticking_in_the_branchs_files_does_nothing(pipe: Pipeline) -> None:
    """Attack: the branch writes a ticked task list into its own files (a description file, the
    change record's purpose); only the merge request's description in GitLab counts."""
    pipe.gitlab.mr_description = "No task list here."
    (pipe.tmp / ".gitlab").mkdir()
    (pipe.tmp / ".gitlab" / "merge_request_description.md").write_text(ALL_TICKED)
    (pipe.tmp / "DESCRIPTION.md").write_text(ALL_TICKED)
    pipe.write_change(purpose="Encrypt the database\n- [x] Plan output reviewed")
    assert pipe("plan", at=ANNOUNCED)[0] == 0, pipe.err
    code, out = pipe("gate")
    assert code == 1
    assert len(_unticked(out)) == 3


def test_a_branch_cannot_drop_the_checklists(pipe: Pipeline) -> None:
    pipe.gitlab.mr_description = ""
    pipe.branch_policy("checklists: []\n")
    code, _ = pipe("gate")
    assert code == 2
    assert "checklists" in pipe.err


def test_without_gitlab_outside_ci_the_checklists_are_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.cli_flow import Flow
    from tests.support.trust_ci import AT_WINDOW, DB

    policy = tmp_path / "policy.yaml"
    policy.write_bytes(b"support: {email: devops@hie.example.org}\n" + PROTECTED + CHECKLISTS)
    flow = Flow(tmp_path, capsys, DB, policy=policy)
    assert flow("plan", "--plan", str(flow.plan), now=ANNOUNCED)[0] == 0, flow.err
    code, out = flow("gate", "--plan", str(flow.plan), now=AT_WINDOW)
    assert code == 0, out
    unchecked = [f for f in out["findings"] if f["rule"] == "checklist.unchecked"]
    assert [f["level"] for f in unchecked] == ["warn"]
    assert "GitLab is not configured" in unchecked[0]["text"]


ITEM = st.text(
    alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters=" -"),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() != "")


@given(st.lists(st.tuples(ITEM, st.sampled_from([" ", "x", "X", "~"])), max_size=8))
def test_a_task_list_ticks_exactly_its_x_items(items: list[tuple[str, str]]) -> None:
    text = "Intro\n\n" + "\n".join(f"- [{mark}] {item}" for item, mark in items)
    ticked = {task_key(i) for i, mark in items if mark in "xX"}
    unticked_only = {task_key(i) for i, mark in items if mark not in "xX"} - ticked
    found = ticked_items(text)
    assert ticked <= found and not (unticked_only & found)
