"""`validate` renders every template the policy uses (issue 23, item 3): built-in and
overridden, every stage and document, every change type and audience kind, in the sandbox; a
template that fails is exit 2 naming it and the line. A broken `rollback_failed` template used
to pass `validate` and fail in the middle of an incident."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hie_notify.cli import main
from hie_notify.policy import load_policy
from hie_notify.template_check import check_templates
from hie_notify.template_files import template_names
from tests.support.paths import EXAMPLES

SUBJECT = "{% set subject %}Subject {{ change.id }}{% endset %}\n"


def _policy(tmp_path: Path, templates: dict[str, str]) -> Path:
    data = yaml.safe_load((EXAMPLES / "policy.yaml").read_text())
    data["templates"] = templates
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], templates: dict[str, str]
) -> tuple[int, str]:
    code = main(["--policy", str(_policy(tmp_path, templates)), "validate"], env={})
    out = capsys.readouterr()
    return code, out.err + out.out


def test_the_built_in_templates_render_for_the_default_and_example_policies() -> None:
    assert check_templates(load_policy()) == []
    assert check_templates(load_policy(EXAMPLES / "policy.yaml")) == []


def test_a_broken_rollback_failed_template_fails_validate_naming_it_and_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = _validate(
        tmp_path,
        capsys,
        {"rollback_failed.internal.j2": SUBJECT + "The rollback failed.\n{{ status.eror }}\n"},
    )
    assert code == 2
    assert (
        "  policy templates rollback_failed.internal.j2, line 3: UndefinedError: 'dict object' "
        "has no attribute 'eror' (rendering rollback_failed of emergency_fix for an internal "
        "audience)"
    ) in text
    assert "ok: policy" not in text


@pytest.mark.parametrize(
    ("name", "source", "expected"),
    [
        # a syntax error: compiled, with its line
        (
            "announce.external.j2",
            SUBJECT + "Hello\n{% if %}\n",
            "policy templates announce.external.j2, line 3: TemplateSyntaxError: Expected an "
            "expression",
        ),
        # an expression that only fails when it runs
        (
            "complete.internal.j2",
            SUBJECT + "\n\n{{ 1 + change.id }}\n",
            "policy templates complete.internal.j2, line 4: TypeError: unsupported operand",
        ),
        # a loop the sandbox stops
        (
            "update.internal.j2",
            SUBJECT
            + "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}",
            "policy templates update.internal.j2, line 2: SecurityError: the template does more "
            "than 200000 loop iterations",
        ),
        # only in one format (Slack)
        (
            "apply_failed.internal.j2",
            SUBJECT + '{% if f.name == "slack" %}\n{{ nothing.here }}\n{% endif %}\n',
            "policy templates apply_failed.internal.j2, line 3: UndefinedError: 'nothing' is "
            "undefined",
        ),
        # only when there is no window (the sparse context)
        (
            "cancelled.external.j2",
            SUBJECT + "{% if not window %}\n{{ window.text }}\n{% endif %}\n",
            "policy templates cancelled.external.j2, line 3: UndefinedError",
        ),
        # only for one change type
        (
            "apply_started.external.j2",
            SUBJECT + '{% if type.name == "cost_optimization" %}{{ type.savings }}{% endif %}\n',
            "policy templates apply_started.external.j2, line 2: UndefinedError: 'dict object' "
            "has no attribute 'savings' (rendering apply_started of cost_optimization",
        ),
        # only for one audience kind
        (
            "reminder.internal.j2",
            SUBJECT + '{% if audience.kind == "meeting" %}{{ status.minutes }}{% endif %}\n',
            "policy templates reminder.internal.j2, line 2: UndefinedError: 'dict object' has no "
            "attribute 'minutes' (rendering reminder of emergency_fix for a meeting audience)",
        ),
        # in a macro of a built-in partial the override calls wrongly
        (
            "overrun.internal.j2",
            '{% import "_macros.j2" as m with context %}\n' + SUBJECT + "{{ m.facts_rows() }}\n",
            "policy templates overrun.internal.j2, line 3: UndefinedError",
        ),
        # the documents and the digests too
        (
            "postmortem_issue.j2",
            SUBJECT + "{{ status.timeline[99] }}\n",
            "policy templates postmortem_issue.j2, line 2: UndefinedError",
        ),
        (
            "merge_request_note.j2",
            SUBJECT + "{{ note.gates }}\n",
            "policy templates merge_request_note.j2, line 2: UndefinedError: 'dict object' has no "
            "attribute 'gates'",
        ),
        (
            "digest_agenda.internal.j2",
            SUBJECT + "{{ digest.week.key }}\n",
            "policy templates digest_agenda.internal.j2, line 2: UndefinedError: 'dict object' "
            "has no attribute 'week' (rendering digest_agenda of digest for a meeting audience)",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and v.endswith(".j2") else "",
)
def test_every_way_a_template_can_fail_is_found_by_validate(
    tmp_path: Path, name: str, source: str, expected: str
) -> None:
    policy = load_policy(_policy(tmp_path, {name: source}))
    (problem,) = check_templates(policy, frozenset({name}))
    assert expected in problem, problem


def test_every_broken_template_is_named_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = {
        name: SUBJECT + "{{ x.y }}\n" for name in ("announce.internal.j2", "cancelled.external.j2")
    }
    code, text = _validate(tmp_path, capsys, broken)
    assert code == 2
    assert "policy templates announce.internal.j2, line 2: UndefinedError: 'x' is undefined" in text
    assert (
        "policy templates cancelled.external.j2, line 2: UndefinedError: 'x' is undefined" in text
    )


def test_a_working_override_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _validate(
        tmp_path,
        capsys,
        {
            "rollback_failed.internal.j2": SUBJECT
            + "{{ status.error }} {{ window.text if window }}\n"
        },
    )
    assert code == 0, text


def test_at_run_time_a_broken_template_names_its_line_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `validate` says is what the stage would have said mid-incident."""
    from tests.support.builders import rc
    from tests.support.cli_flow import Flow

    policy = _policy(tmp_path, {"rollback_failed.internal.j2": SUBJECT + "\n{{ 1 // 0 }}\n"})
    flow = Flow(tmp_path, capsys, rc("aws_db_instance.main", ["update"]), policy=policy)
    assert flow("plan", "--plan", str(flow.plan))[0] == 0, flow.err
    assert flow("apply", "--status", "failed", now="2026-12-08T19:10:00+00:00")[0] == 0, flow.err
    code, _ = flow("rollback", "--status", "failed", now="2026-12-08T19:30:00+00:00")
    assert code == 2
    assert (
        "policy templates rollback_failed.internal.j2, line 3: ZeroDivisionError: integer "
        "division or modulo by zero"
    ) in flow.err


# -- a property: a fault put on any line of any template is found, on that line ---------------


_OPENS = {"if", "for", "macro", "call", "filter", "raw", "block"}


def _top_level_lines(text: str) -> list[int]:
    """Lines (0-based) at whose end the template is outside every block and every tag, so that
    a line put after one runs each time the template renders."""
    import jinja2

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    tokens = [t for t in env.lex(text) if t[1] != "whitespace"]
    depth, in_tag = 0, False
    state: dict[int, tuple[int, bool]] = {}  # line (1-based) -> (depth, in a tag) at its end
    for i, (line, kind, value) in enumerate(tokens):
        if kind in ("block_begin", "variable_begin", "comment_begin"):
            in_tag = True
        elif kind in ("block_end", "variable_end", "comment_end"):
            in_tag = False
        elif kind == "name" and tokens[i - 1][1] == "block_begin":
            if value in _OPENS:
                depth += 1
            elif value == "set":  # `{% set x %}...{% endset %}` opens, `{% set x = 1 %}` not
                end = next(j for j in range(i, len(tokens)) if tokens[j][1] == "block_end")
                depth += not any(t[1] == "assign" for t in tokens[i:end])
            elif value.startswith("end"):
                depth -= 1
        state[line] = (depth, in_tag)
    lines = text.count("\n")
    out, current = [], (0, False)
    for line in range(1, lines + 1):
        current = state.get(line, current)
        if current == (0, False):
            out.append(line - 1)
    return out


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(template_names()), data=st.data())
def test_an_undefined_name_on_any_line_of_any_template_is_found_on_that_line(
    name: str, data: st.DataObject
) -> None:
    """Take a built-in template, put `{{ hie_missing }}` on a line of its own anywhere outside
    its blocks (so that it runs whenever the template renders), and the check names that line."""
    from importlib import resources

    text = resources.files("hie_notify").joinpath("templates", name).read_text()
    at = data.draw(st.sampled_from(_top_level_lines(text)))
    lines = text.split("\n")
    mutated = "\n".join([*lines[: at + 1], "{{ hie_missing }}", *lines[at + 1 :]])
    policy = load_policy().model_copy(update={"templates": {name: mutated}})
    problems = check_templates(policy, frozenset({name}))
    assert len(problems) == 1, problems
    assert problems[0].startswith(
        f"policy templates {name}, line {at + 2}: UndefinedError: 'hie_missing' is undefined"
    ), (problems, mutated.split("\n")[max(0, at - 2) : at + 4])
