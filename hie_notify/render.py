"""Messages from Jinja2 templates, one per stage and audience kind, in each channel's format.

Templates run in a sandbox with StrictUndefined. Every value a template prints is escaped for
the format it is rendered in (Slack mrkdwn, HTML, GitLab Markdown, plain text), so text from a
merge request or a plan cannot mention `@channel`, open a link or inject markup. Formatting
helpers (`f.b`, `f.link`, ...) return text already safe for the format.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from markupsafe import Markup

from hie_notify import timetext
from hie_notify.change import ChangeRecord
from hie_notify.classify import Classification
from hie_notify.durations import describe_timedelta
from hie_notify.errors import InputError
from hie_notify.policy.model import Policy
from hie_notify.records import PLANLESS, Audience
from hie_notify.sandbox import BoundedSandbox
from hie_notify.template_files import template_names
from hie_notify.terraform.iam import statement_text

FORMATS = ("text", "slack", "markdown", "html", "teams")
STAGES = (
    "announce",
    "apply_started",
    "apply_succeeded",
    "apply_failed",
    "rollback_started",
    "rollback_succeeded",
    "rollback_failed",
    "complete",
)
_LIST_LIMIT = 25
LINK_NAMES = ("run", "merge_request", "pipeline", "job")


# Text already formatted for the current format is a Markup: printed as it is. Templates run
# with autoescape on so that macro and block output stays Markup; `finalize` escapes everything
# else with the format's own escaper. Never join Markup and plain text with `~` in a template
# (markupsafe would HTML-escape the plain side): use f.join.
Safe = Markup


# The ledger's note marker (hie_notify/ledger/gitlab.py): no rendered text may carry it, so nothing
# a plan, a change record or a template prints can look like a ledger note.
LEDGER_MARKER_WORD = "hie-notify-ledger"
_MARKER_RE = re.compile(re.escape(LEDGER_MARKER_WORD), re.IGNORECASE)


def neutralise_marker(text: str) -> str:
    """Break every occurrence of the ledger marker word (case-insensitive)."""
    return _MARKER_RE.sub("hie-notify ledger", text)


def visible(text: str, *, newlines: bool = True) -> str:
    """Control and bidi/format characters shown as `<U+202E>`, never obeyed (Trojan Source).

    Tab and, where `newlines` is true, newline are kept; every other C0/C1 control and every
    Unicode format character (Cf: bidi overrides and isolates, zero-width joiners) is shown.
    """
    out = []
    for c in text:
        if c == "\t" or (c == "\n" and newlines):
            out.append(c)
        elif unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(f"<U+{ord(c):04X}>")
        else:
            out.append(c)
    return "".join(out)


def escape_slack(text: str) -> str:
    """Slack's three escapes for text that is not markup ("Formatting text for app surfaces")."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_MD_SPECIAL = {c: "\\" + c for c in "\\`*_[]|~#!"}
_MD_SPECIAL.update({"<": "&lt;", ">": "&gt;", "&": "&amp;", "@": "&#64;"})


def escape_markdown(text: str) -> str:
    return "".join(_MD_SPECIAL.get(c, c) for c in text)


_TEAMS_SPECIAL = {c: "\\" + c for c in "\\`*_[]|~#!"}


def escape_teams(text: str) -> str:
    """Adaptive Card TextBlocks render a little Markdown and no HTML: escape the Markdown."""
    return "".join(_TEAMS_SPECIAL.get(c, c) for c in text)


class Format:
    """The helpers a template uses; each knows how its format marks things up."""

    def __init__(self, name: str, mask: Callable[[str], str] | None = None) -> None:
        self.name = name
        # Secrets are masked in the raw value, before escaping: `glpat-a_b` escaped for
        # Markdown is `glpat-a\\_b`, which no pattern matches but GitLab shows as the token.
        self.mask: Callable[[str], str] = mask or (lambda text: text)
        self.escape: Callable[[str], str] = {
            "text": lambda s: s,
            "slack": escape_slack,
            "markdown": escape_markdown,
            "html": lambda s: html.escape(s, quote=True),
            "teams": escape_teams,
        }[name]

    def _raw(self, value: object, *, newlines: bool = True) -> str:
        return self.mask(visible(str(value), newlines=newlines))

    def _e(self, value: object) -> Markup:
        return value if isinstance(value, Markup) else Markup(self.escape(self._raw(value)))

    def b(self, value: object) -> Safe:
        v = self._e(value)
        return Safe(
            {
                "text": v,
                "slack": f"*{v}*",
                "markdown": f"**{v}**",
                "teams": f"**{v}**",
                "html": f"<strong>{v}</strong>",
            }[self.name]
        )

    def link(self, url: object, label: object) -> Safe:
        u, lab = str(url or ""), self._e(label)
        if not u:
            return Safe(str(lab))  # nowhere to link (e.g. no Jira address): the label alone
        if self.name == "slack":
            return Safe(f"<{escape_slack(u)}|{lab}>")
        if self.name in ("markdown", "teams"):
            return Safe(f"[{lab}]({u.replace(')', '%29').replace(' ', '%20')})")
        if self.name == "html":
            return Safe(f'<a href="{html.escape(u, quote=True)}">{lab}</a>')
        if u in (str(label), f"mailto:{label}"):
            return Safe(str(lab))  # the label is the address: say it once
        return Safe(f"{lab} ({u})")

    def code(self, value: object) -> Safe:
        """A code span no content can close: newlines shown, not kept; in Markdown a fence of
        more backticks than any run inside (CommonMark code spans)."""
        raw = self._raw(value, newlines=False)
        if self.name == "markdown":
            longest = max((len(m) for m in re.findall(r"`+", raw)), default=0)
            fence = "`" * (longest + 1)
            pad = " " if raw.startswith("`") or raw.endswith("`") or not raw.strip() else ""
            return Safe(f"{fence}{pad}{raw}{pad}{fence}")
        if self.name == "slack":
            # Slack has no way to put a backtick inside inline code.
            return Safe("`" + self.escape(raw.replace("`", "'")) + "`")
        if self.name == "html":
            return Safe(f"<code>{html.escape(raw)}</code>")
        return Safe(self.escape(raw))

    def heading(self, value: object) -> Safe:
        v = self._e(value)
        return Safe(
            {
                "text": v,
                "slack": f"*{v}*",
                "markdown": f"### {v}",
                "teams": f"**{v}**",
                "html": f"<h3>{v}</h3>",
            }[self.name]
        )

    def item(self, value: object) -> Safe:
        v = self._e(value)
        return Safe(
            f"<li>{v}</li>"
            if self.name == "html"
            else f"- {v}"
            if self.name != "slack"
            else f"• {v}"
        )

    def ul(self, items: list[Any]) -> Safe:
        lines = [self.item(i) for i in items]
        if self.name == "html":
            return Safe("<ul>" + "".join(lines) + "</ul>")
        return Safe("\n".join(lines))

    def p(self, value: object) -> Safe:
        v = self._e(value)
        return Safe(f'<p style="{_P_STYLE}">{v}</p>' if self.name == "html" else v)

    def facts(self, rows: list[Any]) -> Safe:
        """The key facts of a notice (when, what, reference), set apart from the prose: a
        two-column table in HTML, `Label: value` lines elsewhere. Empty values are left out."""
        pairs = [(self._e(k), self._e(v)) for k, v in rows if str(v)]
        if self.name == "html":
            cells = "".join(
                f'<tr><th scope="row" style="{_TH_STYLE}">{k}</th><td style="{_TD_STYLE}">{v}</td>'
                "</tr>"
                for k, v in pairs
            )
            return Safe(f'<table role="presentation" style="{_FACTS_STYLE}">{cells}</table>')
        return Safe("\n".join(f"{self.b(k)}: {v}" for k, v in pairs))

    def join(self, *parts: object) -> Safe:
        return Safe("".join(self._e(p) for p in parts))


# Inline styles only: mail clients drop <style> blocks and external sheets alike.
_P_STYLE = "margin:0 0 14px 0"
_FACTS_STYLE = (
    "border-collapse:collapse;width:100%;margin:4px 0 18px 0;background:#f5f7fa;"
    "border:1px solid #d8dee6"
)
_TH_STYLE = (
    "text-align:left;vertical-align:top;padding:8px 12px;width:34%;font-weight:bold;"
    "color:#33415c;border-bottom:1px solid #e3e8ee"
)
_TD_STYLE = "vertical-align:top;padding:8px 12px;border-bottom:1px solid #e3e8ee"


@dataclass(frozen=True)
class Rendered:
    stage: str
    audience: Audience
    subject: str
    bodies: Mapping[str, str]  # format name -> body

    def body(self, fmt: str) -> str:
        return self.bodies[fmt]

    @property
    def told(self) -> str:
        """A digest of what the message tells its reader (its subject and text): two messages
        with the same digest tell the same."""
        raw = "\x1f".join((self.stage, self.audience.id, self.subject, self.bodies["text"]))
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    @property
    def email_html(self) -> str:
        """The HTML part of an email: the whole document, laid out for mail clients."""
        return self.bodies.get("email_html") or self.bodies["html"]


class Renderer:
    """Renders every stage for every audience; a policy may override any template by name."""

    def __init__(
        self,
        overrides: Mapping[str, str] | None = None,
        masker: Callable[[str], str] | None = None,
    ) -> None:
        self.overrides = dict(overrides or {})
        self.mask = masker or (lambda text: text)
        self._envs = {name: self._env(name) for name in FORMATS}

    def _env(self, fmt: str) -> BoundedSandbox:
        f = Format(fmt, self.mask)
        loader = jinja2.ChoiceLoader(
            [jinja2.DictLoader(self.overrides), jinja2.PackageLoader("hie_notify", "templates")]
        )
        env = BoundedSandbox(
            loader=loader,
            undefined=jinja2.StrictUndefined,
            finalize=f._e,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=True,
        )
        env.globals["f"] = f
        return env

    @staticmethod
    def template_name(stage: str, audience: Audience) -> str:
        if audience.kind == "contact" and f"{stage}.contact.j2" in template_names():
            return f"{stage}.contact.j2"  # a direct contact's own (announce, complete)
        kind = "internal" if audience.kind in ("internal", "meeting") else "external"
        return f"{stage}.{kind}.j2"

    def render(self, stage: str, audience: Audience, context: Mapping[str, Any]) -> Rendered:
        name = self.template_name(stage, audience)
        bodies: dict[str, str] = {}
        subject = ""
        for fmt, env in self._envs.items():
            try:
                module = env.get_template(name).make_module(dict(context))
            except TEMPLATE_ERRORS as exc:
                raise InputError(self.template_problem(name, exc)) from None
            body = _tidy(str(module))
            bodies[fmt] = self._final(_hard_breaks(body) if fmt == "markdown" else body)
            if fmt == "text":
                subject = self._final(" ".join(str(getattr(module, "subject", "")).split()))
                headline = " ".join(str(getattr(module, "headline", "") or subject).split())
                headline = headline[:1].upper() + headline[1:]
        bodies["email_html"] = self._email_document(bodies["html"], subject, headline, context)
        return Rendered(stage, audience, subject, bodies)

    def _email_document(
        self, body: str, subject: str, headline: str, context: Mapping[str, Any]
    ) -> str:
        """The message's HTML body inside the email layout (`_email.html.j2`): a heading with
        the service's name, the content, and the contact and reference in the footer."""
        try:
            template = self._envs["html"].get_template("_email.html.j2")
            html_doc = template.render(
                {**context, "content": Markup(body), "subject": subject, "headline": headline}
            )
        except jinja2.TemplateError as exc:
            raise InputError(f"built-in template _email.html.j2: {exc}") from None
        return self._final(html_doc)

    def render_document(self, name: str, context: Mapping[str, Any]) -> tuple[str, str]:
        """(plain-text subject, Markdown body) of a template that is not a per-audience
        message (the merge request note, the post-mortem issue)."""
        modules = {}
        for fmt in ("text", "markdown"):
            try:
                modules[fmt] = self._envs[fmt].get_template(name).make_module(dict(context))
            except TEMPLATE_ERRORS as exc:
                raise InputError(self.template_problem(name, exc)) from None
        subject = " ".join(str(getattr(modules["text"], "subject", "")).split())
        return self._final(subject), self._final(_hard_breaks(_tidy(str(modules["markdown"]))))

    def template_problem(self, name: str, exc: BaseException) -> str:
        """`policy templates NAME, line N: ERROR: what`: where it failed in the template (and,
        when that was in a template it imports, that one's line too)."""
        where = "policy templates" if name in self.overrides else "built-in template"
        frames = _template_lines(exc)
        at = ""
        if frames:
            top = next((line for n, line in frames if n == name), None)
            inner_name, inner_line = frames[-1]
            at = f", line {top if top is not None else inner_line}"
            if inner_name != name:
                at += f" (in {inner_name}, line {inner_line})"
        detail = " ".join(str(exc).split())
        return f"{where} {name}{at}: {type(exc).__name__}: {detail}"

    def _final(self, text: str) -> str:
        """The last pass over what leaves: secrets masked again, the ledger marker broken."""
        return neutralise_marker(self.mask(text))


# What a template can raise while it renders: its own errors (syntax, undefined, the
# sandbox's bounds) and those of the expressions it evaluates (`1 + "a"`, `x[9]`, `1 / 0`).
TEMPLATE_ERRORS = (
    jinja2.TemplateError,
    ArithmeticError,
    AttributeError,
    LookupError,
    RecursionError,
    TypeError,
    ValueError,
)


def _template_lines(exc: BaseException) -> list[tuple[str, int]]:
    """(template, line) of every template frame the error passed through, outermost first."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return [(exc.name, exc.lineno)] if exc.name else []
    out = []
    tb = exc.__traceback__
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if isinstance(template, jinja2.Template) and template.name:
            out.append((template.name, template.get_corresponding_lineno(tb.tb_lineno)))
        tb = tb.tb_next
    return out


_BLOCK_STARTS = ("-", "|", "#", "<", "`", "…")


def _hard_breaks(markdown: str) -> str:
    """Keep the templates' line breaks in Markdown: a plain line followed by another plain line
    ends with a hard break (two spaces) instead of running into it."""
    lines = markdown.split("\n")
    out = []
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        plain = line and not line.startswith(_BLOCK_STARTS)
        if plain and nxt and not nxt.startswith(_BLOCK_STARTS):
            line += "  "
        out.append(line)
    return "\n".join(out)


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out) + "\n"


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def when_text(start: datetime, end: datetime, zone: str) -> str:
    """`Tue 8 Dec 2026 19:00 to 21:00 GMT` in the audience's zone (`timetext.span`)."""
    return timetext.span(start, end, zone)


def context(
    *,
    policy: Policy,
    result: Classification,
    change: ChangeRecord,
    audience: Audience,
    now: datetime,
    links: Mapping[str, str],
    status: Mapping[str, Any] | None = None,
    run: Mapping[str, str] | None = None,
    lifecycle: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything a template may use: plain data, nothing that does I/O.

    `lifecycle`: where the change is and the transition this message is for (`LIFECYCLE`'s
    keys; see `lifecycle.facts`): the wording of every message is chosen from it, the change's
    kind (planned, or an emergency) and the audience's kind."""
    ct = policy.change_type(result.change_type) if result.change_type else None
    emergency = bool(ct and ct.notice_overrides_others)
    zone = audience.time_zone
    window = None
    if change.window is not None:
        window = {
            "text": when_text(change.window.start, change.window.end, zone),
            "start": timetext.moment(change.window.start, zone),
            "start_utc": change.window.start.astimezone(_zone("UTC")).isoformat(),
            "end_utc": change.window.end.astimezone(_zone("UTC")).isoformat(),
        }
    life = {
        **LIFECYCLE,
        "emergency": emergency,
        "planless": result.fingerprint.startswith(PLANLESS),
        "rolled_back": bool((status or {}).get("rolled_back")),
        **(lifecycle or {}),
    }
    life["attempt_text"] = attempt_text(int(life.get("attempt") or 1))
    downtime = change.downtime
    changes = [r for r in result.resources]
    return {
        "audience": {
            "id": audience.id,
            "kind": audience.kind,
            "label": audience.label,
            # "Dear East of England team," but "Dear Product and business stakeholders,"
            "greeting": f"{audience.label} team" if audience.kind == "customer" else audience.label,
            # A direct contact's: the resources (addresses) that concern them.
            "resources": list(audience.resources),
            "about": _about(policy, audience),
        },
        "change": {
            "id": change.id,
            "purpose": change.purpose,
            # What customers and stakeholders are told the change is (the change record's
            # `customer_summary`, else its purpose): never an internal name.
            "summary": change.customer_summary or change.purpose,
            "risk": change.risk or "not assessed",
            "rollback": change.rollback or "",
            "monitoring": change.monitoring or "",
            "on_call": change.on_call or "",
            # The person responsible for this change's communication (the record's `owner`).
            "owner": change.owner or "",
            "approvers": list(change.approvers),
            "justification": change.justification or "",
            # `downtime: 0` declares none; no estimate at all is not known yet.
            "downtime": _downtime(downtime),
            "downtime_known": downtime is not None,
            "has_downtime": bool(downtime and downtime > timedelta(0)),
            "jira_url": policy.jira.link(change.id),
        },
        "type": {
            "name": result.change_type or "",
            "title": ct.title if ct else "Change",
            "lead": ct.lead if ct else "",
            "emergency": emergency,
            # Every category present has its own lead (a cost optimisation riding on an
            # infrastructure change still has its FinOps lead).
            "leads": _leads(policy, result.categories),
        },
        "window": window,
        # IAM policy documents, statement by statement, for the channels that ask for it.
        "iam": _iam_detail(policy, result, audience),
        "lifecycle": life,
        # The window this audience was told of before, when this message moves it.
        "moved": _moved(life.get("moved_from"), change, zone),
        "plan": {
            "planless": result.fingerprint.startswith(PLANLESS),  # `hie-notify announce`
            "summary": dict(result.summary),
            "service_impacting": result.service_impacting,
            "categories": [policy.change_type(c).title for c in result.categories],
            "reasons": list(result.reasons),
            "resources": [
                {"address": r.address, "action": r.action, "impacting": r.service_impacting}
                for r in changes[:_LIST_LIMIT]
            ],
            "more_resources": max(0, len(changes) - _LIST_LIMIT),
            "replaced": [r.address for r in changes if r.action in ("replace", "delete")][
                :_LIST_LIMIT
            ],
        },
        **service_context(policy),
        "links": {k: links.get(k) or "" for k in LINK_NAMES},
        "status": {
            "error": "",
            "detail": "",
            "postmortem": [],
            "postmortem_link": "",
            "timeline": [],
            "verified_by": "",
            "rolled_back": False,
            **(status or {}),
        },
        "run": {
            "id": "",
            "message": "",
            "created_by": "",
            "url": "",
            "status": "",
            "workspace": "",
            **(run or {}),
        },
        "now": now.isoformat(),
        # A personal link to acknowledge the notice or object to its window ({"url": ...});
        # None when HIE_ACK_KEY is not set (notify.run_stage adds it per audience).
        "ack": None,
    }


# The lifecycle facts a template reads, as they are when the caller gives none (a preview, a
# check of the templates): a new transition of a change that has not started.
LIFECYCLE: Mapping[str, Any] = {
    "state": "",
    "transition": "",
    "kind": "new",
    "emergency": False,
    "started": False,
    "rolled_back": False,
    "attempt": 1,
    "planless": False,
    "moved_from": None,
    # An announcement: this audience was told of the change before (a re-plan is an update).
    "told_before": False,
}


_ORDINALS = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


def attempt_text(attempt: int) -> str:
    """`second attempt` for an apply started again after a failure or a rollback; empty for
    the first (nothing to say)."""
    if attempt <= 1:
        return ""
    return f"{_ORDINALS[attempt]} attempt" if attempt in _ORDINALS else f"attempt {attempt}"


def _downtime(downtime: timedelta | None) -> str:
    if downtime is None:
        return "not known yet"
    return describe_timedelta(downtime) if downtime > timedelta(0) else "none expected"


def _moved(
    moved_from: Mapping[str, str] | None, change: ChangeRecord, zone: str
) -> dict[str, str] | None:
    """`from` and `to` (window starts) and `from_text` (the old window) in the audience's zone,
    when the window moved from `moved_from` (ISO start and end) to the change record's."""
    if not moved_from or change.window is None:
        return None
    start = datetime.fromisoformat(moved_from["start"])
    end = datetime.fromisoformat(moved_from["end"])
    return {
        "from": timetext.moment(start, zone),
        "to": timetext.moment(change.window.start, zone),
        "from_text": when_text(start, end, zone),
    }


_IAM_DOCUMENTS = 20  # documents shown in one message
_IAM_ENTRIES = 30  # entries of one list (actions added, ...) shown


def _iam_detail(policy: Policy, result: Classification, audience: Audience) -> list[dict[str, Any]]:
    """What each IAM policy document gains and loses, for the Jira comment and the internal
    channels a present change type lists under `iam_detail` (else nothing)."""
    if not result.iam:
        return []
    wanted = audience.id.startswith("jira:") or any(
        audience.slack_channel is not None
        and audience.slack_channel in policy.change_type(c).iam_detail
        for c in result.categories
    )
    if not wanted:
        return []
    out: list[dict[str, Any]] = []
    for doc in result.iam[:_IAM_DOCUMENTS]:
        statements = [
            {
                "label": s.label,
                "effect": s.effect,
                "change": s.change,
                "text": statement_text(s, _IAM_ENTRIES),
            }
            for s in doc.statements
        ]
        out.append(
            {
                "address": doc.address,
                "attribute": doc.attribute,
                "action": doc.action,
                "sensitive": doc.sensitive,
                "unknown": doc.unknown,
                "statements": statements,
            }
        )
    if len(result.iam) > _IAM_DOCUMENTS:
        out.append(
            {
                "address": f"and {len(result.iam) - _IAM_DOCUMENTS} more policy documents",
                "attribute": "",
                "action": "",
                "sensitive": False,
                "unknown": False,
                "statements": [],
            }
        )
    return out


def _leads(policy: Policy, categories: tuple[str, ...]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for name in categories:
        ct = policy.change_type(name)
        if all(x["lead"] != ct.lead or x["title"] != ct.title for x in out):
            out.append({"title": ct.title, "lead": ct.lead})
    return out


def service_context(policy: Policy) -> dict[str, Any]:
    """What every message says of the service and whom to ask: `service`, `service_title`,
    `organisation`, `support`."""
    return {
        "service": policy.service_name,
        "service_title": _title(policy.service_name),
        "organisation": policy.organisation,
        "support": {
            "name": policy.support.name,
            "email": policy.support.email or "",
            "url": policy.support.url or "",
            "phone": policy.support.phone or "",
        },
    }


def _title(name: str) -> str:
    """`the HIE Secure Data Environment` -> `HIE Secure Data Environment`, for a heading."""
    return name[4:] if name.lower().startswith("the ") else name


def _about(policy: Policy, audience: Audience) -> str:
    """What a direct contact depends on (`direct_contacts[].about`), for their messages."""
    if audience.kind != "contact":
        return ""
    contact = policy.direct_contact(audience.id.split(":", 1)[1])
    return contact.about if contact is not None else ""
