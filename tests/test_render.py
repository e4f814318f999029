"""Rendered messages per audience, escaped per format, written to the outbox as the real
channel would receive them."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hie_notify.audiences import Audience, resolve
from hie_notify.change import ChangeRecord, load_change
from hie_notify.channels import Outgoing
from hie_notify.channels.outbox import Outbox
from hie_notify.classify import classify
from hie_notify.durations import parse_notice
from hie_notify.policy import Policy, load_policy
from hie_notify.render import Rendered, Renderer, context
from hie_notify.terraform.plan import load_plan
from tests.support.paths import EXAMPLES

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
INJECT = (
    "Resize <!channel> & <@U123> *now* [click](https://evil.example) @all </p><script>x</script>"
)
LINKS = {
    "pipeline": "https://gitlab.example.com/g/p/-/pipelines/9",
    "job": "https://gitlab.example.com/g/p/-/jobs/77",
}


@pytest.fixture(scope="module")
def setup() -> tuple[Policy, ChangeRecord, list[Rendered]]:
    policy = load_policy(EXAMPLES / "policy.yaml")
    change = load_change(EXAMPLES / "change.yaml", policy).model_copy(
        update={"purpose": INJECT, "customer_summary": INJECT}
    )
    result = classify(load_plan(EXAMPLES / "plan.json"), policy, change)
    audiences = resolve(policy, result, change, ["eoe-prod"]).for_phase("pre_deployment")
    renderer = Renderer()
    rendered = [
        renderer.render(
            "announce",
            a,
            context(policy=policy, result=result, change=change, audience=a, now=NOW, links=LINKS),
        )
        for a in audiences
    ]
    return policy, change, rendered


def _by(rendered: list[Rendered], audience: str) -> Rendered:
    return next(r for r in rendered if r.audience.id == audience)


def test_internal_message_is_technical(setup: tuple[Policy, ChangeRecord, list[Rendered]]) -> None:
    _, _, rendered = setup
    msg = _by(rendered, "slack:#devops")
    text = msg.body("text")
    assert 'module.eks.aws_eks_node_group.workers["general"] (replace, service-impacting)' in text
    assert "https://fitfile.atlassian.net/browse/FFAPP-4458" in text
    assert "pipeline (https://gitlab.example.com/g/p/-/pipelines/9)" in text
    assert "Rollback plan: Revert the merge request" in text
    assert "Window: Tue 8 Dec 2026 19:00 to 21:00 GMT" in text
    assert msg.subject.startswith("[FFAPP-4458] Planned Infra Update: ")


def test_customer_message_is_plain_language(
    setup: tuple[Policy, ChangeRecord, list[Rendered]],
) -> None:
    _, _, rendered = setup
    msg = _by(rendered, "customer:EoE")
    for fmt in ("text", "html"):
        body = msg.body(fmt)
        assert "aws_" not in body and "module." not in body
        assert "atlassian" not in body and "gitlab.example.com" not in body
    text = msg.body("text")
    assert text.startswith("Dear East of England team,")
    assert "When: Tue 8 Dec 2026 19:00 to 21:00 GMT" in text
    assert "unavailable for up to 30 minutes" in text
    assert "Our reference: FFAPP-4458" in text


def test_window_in_the_customers_own_zone(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("customers:\n  EoE: {time_zone: America/New_York, environments: [eoe-prod]}\n")
    policy = load_policy(f)
    change = load_change(EXAMPLES / "change.yaml", policy)
    result = classify(load_plan(EXAMPLES / "plan.json"), policy, change)
    eoe = next(a for a in resolve(policy, result, change).audiences if a.id == "customer:EoE")
    msg = Renderer().render(
        "announce",
        eoe,
        context(policy=policy, result=result, change=change, audience=eoe, now=NOW, links={}),
    )
    assert "Tue 8 Dec 2026 14:00 to 16:00 EST" in msg.body("text")


def test_injection_is_escaped_in_every_format(
    setup: tuple[Policy, ChangeRecord, list[Rendered]],
) -> None:
    _, _, rendered = setup
    for msg in rendered:
        slack, md, html = msg.body("slack"), msg.body("markdown"), msg.body("html")
        assert "<!channel>" not in slack and "<@U123>" not in slack
        assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in slack
        assert "<script>" not in html and "&lt;script&gt;" in html
        assert "[click](https://evil.example)" not in md and "@all" not in md
        assert "\\[click\\]" in md and "&#64;all" in md
        assert INJECT in msg.body("text")  # plain text needs no escaping


def test_outbox_writes_what_each_channel_receives(
    tmp_path: Path, setup: tuple[Policy, ChangeRecord, list[Rendered]]
) -> None:
    _, _, rendered = setup
    box = Outbox(tmp_path, "FFAPP-4458", NOW, "DevOps <devops@example.org>")
    slack = box.send(Outgoing("FFAPP-4458", _by(rendered, "slack:#devops"), "k1", "slack", ()))
    mail = box.send(Outgoing("FFAPP-4458", _by(rendered, "customer:EoE"), "k2", "email", ()))
    assert slack.message_id == str(tmp_path / "FFAPP-4458/announce/slack-devops.json")
    payload = json.loads(Path(slack.message_id).read_text())
    assert payload["channel"] == "#devops"
    assert payload["text"].startswith("[FFAPP-4458] Planned Infra Update: Resize &lt;!channel&gt;")
    assert all(b["type"] == "section" and len(b["text"]["text"]) <= 3000 for b in payload["blocks"])
    assert Path(mail.message_id).name == "customer-EoE.eml"
    parsed = email.message_from_bytes(
        Path(mail.message_id).read_bytes(), policy=email.policy.default
    )
    assert parsed["To"] == "service-desk@eoe.example.org"
    assert parsed["From"] == "DevOps <devops@example.org>"
    assert parsed["X-HIE-Notify-Key"] == "k2"
    assert parsed.get_body(("plain",)).get_content().startswith("Dear East of England team,")
    assert ">When</th>" in parsed.get_body(("html",)).get_content()
    again = box.send(Outgoing("FFAPP-4458", _by(rendered, "slack:#devops"), "k3", "slack", ()))
    assert Path(again.message_id).name == "slack-devops.2.json"  # never overwritten


def test_slack_payload_limits() -> None:
    from hie_notify.channels.slack_blocks import payload

    aud = Audience(
        "slack:#devops",
        "internal",
        "#devops",
        "Europe/London",
        frozenset(),
        parse_notice("0"),
        parse_notice("0"),
        ("planned_infra_update",),
        "#devops",
    )
    huge = "\n\n".join("x" * 2500 for _ in range(80)) + "\n" + "y" * 7000
    msg = Rendered("announce", aud, "s", {"slack": huge, "text": "", "markdown": "", "html": ""})
    p = payload(msg, "#devops", link="https://gitlab.example.com/mr/1")
    assert len(p["blocks"]) == 50
    assert all(len(b["text"]["text"]) <= 3000 for b in p["blocks"] if b["type"] == "section")
    assert "shortened" in p["blocks"][-1]["elements"][0]["text"]


def test_user_policy_can_override_one_template() -> None:
    policy = load_policy(EXAMPLES / "policy.yaml")
    change = load_change(EXAMPLES / "change.yaml", policy)
    result = classify(load_plan(EXAMPLES / "plan.json"), policy, change)
    aud = resolve(policy, result, change).audiences[0]
    renderer = Renderer(
        {
            "announce.internal.j2": "{% set subject %}S {{ change.id }}{% endset %}"
            "Hello {{ change.purpose }}"
        }
    )
    msg = renderer.render(
        "announce",
        aud,
        context(policy=policy, result=result, change=change, audience=aud, now=NOW, links={}),
    )
    assert msg.subject == "S FFAPP-4458"
    assert msg.body("text") == f"Hello {change.purpose}\n"
