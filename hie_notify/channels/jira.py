"""The change's Jira ticket: one comment per stage, remote links, the gate's check, the done
transition. Cloud (JIRA_USER + JIRA_API_TOKEN, basic auth) speaks REST v3 with comments in
Atlassian Document Format; Data Center (JIRA_PAT, bearer) speaks v2 with wiki-markup strings.

Text from the merge request or the plan is only ever an ADF `text` node (never a mark, a
mention or a link) or, on v2, inside a `{noformat}` block: Jira interprets none of it.
A comment carries a marker line with the delivery's idempotency key; before posting, the
ticket's comments are searched for it, so a retried job adds nothing.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hie_notify.channels import Delivery, Outgoing
from hie_notify.channels.api import Api, detail, obj, once
from hie_notify.errors import HieError, InputError
from hie_notify.masking import Masker

LINK_TITLES = {
    "merge_request": "Merge request",
    "run": "HCP Terraform run",
    "postmortem": "Post-mortem issue",
}
_NOFORMAT = re.compile(r"\{(noformat)", re.IGNORECASE)
PERMISSIONS = (
    "the Jira user needs Browse projects, Add comments, Link issues and Transition issues on "
    "the ticket's project (Cloud: JIRA_USER is the account's email and JIRA_API_TOKEN an API "
    "token; Data Center: JIRA_PAT a personal access token)"
)
# What each call needs (Jira's project permissions), for the 403 that says which is missing.
BROWSE, COMMENT, LINK, TRANSITION = (
    "Browse projects",
    "Browse projects and Add comments",
    "Browse projects and Link issues",
    "Browse projects and Transition issues (Resolve issues too when done_fields sets the "
    "resolution)",
)
# What the credential variables must hold, by REST version.
_CREDENTIALS = {
    "3": (
        "JIRA_USER and JIRA_API_TOKEN",
        "JIRA_USER must be the Atlassian account's email and JIRA_API_TOKEN an API token of "
        "that account, for the site in JIRA_URL",
    ),
    "2": (
        "JIRA_PAT",
        "JIRA_PAT must be a personal access token, not expired, of a user of the Jira in JIRA_URL",
    ),
}


def configured(env: Mapping[str, str]) -> str | None:
    """Why Jira cannot be reached with these variables (None when it can)."""
    if not env.get("JIRA_URL"):
        return "JIRA_URL is not set"
    if not (env.get("JIRA_PAT") or (env.get("JIRA_USER") and env.get("JIRA_API_TOKEN"))):
        return "JIRA_URL is set but neither JIRA_PAT nor JIRA_USER + JIRA_API_TOKEN is"
    return None


def api_version(env: Mapping[str, str]) -> str:
    """REST v3 (Cloud: JIRA_USER + JIRA_API_TOKEN) unless only JIRA_PAT (Data Center, v2)."""
    cloud = env.get("JIRA_USER") and env.get("JIRA_API_TOKEN")
    return "3" if cloud or not env.get("JIRA_PAT") else "2"


def marker(outgoing: Outgoing) -> str:
    return f"hie-notify {outgoing.stage} {outgoing.key}"


def _safe_links(links: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(name, title, address) of the links worth giving: our own http(s) addresses only."""
    return [
        (k, LINK_TITLES[k], v)
        for k, v in links.items()
        if k in LINK_TITLES and v.startswith(("https://", "http://"))
    ]


def adf(outgoing: Outgoing, links: Mapping[str, str]) -> dict[str, Any]:
    """The comment as an ADF document: text nodes only, links only from our own addresses."""
    message = outgoing.rendered
    content: list[dict[str, Any]] = []
    # ADF refuses empty text nodes: blank lines and an empty subject give none.
    for block in (message.subject, *message.body("text").split("\n\n")):
        lines = [line for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        nodes: list[dict[str, Any]] = []
        for i, line in enumerate(lines):
            if i:
                nodes.append({"type": "hardBreak"})
            nodes.append({"type": "text", "text": line})
        content.append({"type": "paragraph", "content": nodes})
    linked = _safe_links(links)
    if linked:
        nodes = []
        for i, (_, title, url) in enumerate(linked):
            if i:
                nodes.append({"type": "text", "text": " · "})
            nodes.append(
                {"type": "text", "text": title, "marks": [{"type": "link", "attrs": {"href": url}}]}
            )
        content.append({"type": "paragraph", "content": nodes})
    content.append(
        {
            "type": "paragraph",
            "content": [{"type": "text", "text": marker(outgoing), "marks": [{"type": "code"}]}],
        }
    )
    return {"type": "doc", "version": 1, "content": content}


def wiki(outgoing: Outgoing, links: Mapping[str, str]) -> str:
    """The comment as v2 wiki markup: the message inside {noformat}, so nothing in it is markup."""
    message = outgoing.rendered
    text = f"{message.subject}\n\n{message.body('text').strip()}"
    text = _NOFORMAT.sub(r"{ \1", text)  # nothing in it can close the block
    parts = [f"{{noformat}}\n{text}\n{{noformat}}"]
    linked = _safe_links(links)
    if linked:
        parts.append(" · ".join(f"[{t}|{_wiki_url(u)}]" for _, t, u in linked))
    parts.append(f"{{{{{marker(outgoing)}}}}}")
    return "\n".join(parts)


def _wiki_url(url: str) -> str:
    return url.replace("|", "%7C").replace("]", "%5D").replace("[", "%5B")


def comment_body(
    outgoing: Outgoing, version: str, links: Mapping[str, str], visibility: Mapping[str, str]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "body": adf(outgoing, links) if version == "3" else wiki(outgoing, links)
    }
    for kind, value in visibility.items():
        body["visibility"] = {"type": kind, "value": value}
    return body


@dataclass(frozen=True)
class Ticket:
    key: str
    status: str
    summary: str


class JiraClient:
    """The ticket calls; `version` is "3" (Cloud, basic auth) or "2" (Data Center, PAT)."""

    def __init__(self, api: Api, version: str) -> None:
        self.api = api
        self.version = version

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        session: Any = None,
        sleep: Callable[[float], None] | None = None,
    ) -> JiraClient:
        version = api_version(env)
        if version == "3":
            raw = f"{env.get('JIRA_USER', '')}:{env.get('JIRA_API_TOKEN', '')}".encode()
            auth = "Basic " + base64.b64encode(raw).decode()
        else:
            auth = "Bearer " + env.get("JIRA_PAT", "")
        credential, rejected = _CREDENTIALS[version]
        api = Api(
            "Jira",
            f"{env['JIRA_URL'].rstrip('/')}/rest/api/{version}",
            {"Authorization": auth},
            permissions=PERMISSIONS,
            credential=credential,
            rejected=rejected,
            session=session,
            sleep=sleep,
        )
        return cls(api, version)

    def needs(self, permissions: str) -> str:
        """A 403's fix: who needs which permission."""
        who = "the Jira user in JIRA_USER" if self.version == "3" else "the user of JIRA_PAT"
        return f"{who} needs {permissions} on the ticket's project"

    def _path(self, key: str, rest: str = "") -> str:
        return f"/issue/{quote(key, safe='')}{rest}"

    def ticket(self, key: str) -> Ticket | None:
        """The ticket, or None when Jira says it does not exist (or the user may not browse it)."""
        response = self.api.call(
            "GET",
            self._path(key),
            what=f"read {key}",
            params={"fields": "summary,status"},
            expect=(404,),
            need=self.needs(BROWSE),
        )
        if response.status_code == 404:
            return None
        fields = obj(response, f"Jira: read {key}").get("fields") or {}
        status = (fields.get("status") or {}).get("name") or ""
        return Ticket(key, str(status), str(fields.get("summary") or ""))

    def _require(self, response: Any, key: str) -> Any:
        if response.status_code == 404:
            raise InputError(
                f"Jira: {key} does not exist, or the Jira user may not browse it: check the "
                "change record's id"
            )
        return response

    def find_comment(self, key: str, text: str) -> str | None:
        """The id of the ticket's comment that contains `text` (None when there is none)."""
        start = 0
        while True:
            response = self._require(
                self.api.call(
                    "GET",
                    self._path(key, "/comment"),
                    what=f"read the comments of {key}",
                    params={"startAt": str(start), "maxResults": "100"},
                    expect=(404,),
                    need=self.needs(BROWSE),
                ),
                key,
            )
            data = obj(response, f"Jira: read the comments of {key}")
            comments = data.get("comments") or []
            for comment in comments:
                if text in json.dumps(comment.get("body"), ensure_ascii=False):
                    return str(comment.get("id"))
            start += len(comments)
            if not comments or start >= int(data.get("total") or 0):
                return None

    def add_comment(self, key: str, body: Mapping[str, Any]) -> str:
        response = self._require(
            self.api.call(
                "POST",
                self._path(key, "/comment"),
                what=f"comment on {key}",
                body=body,
                expect=(404,),
                retries=0,
                need=self.needs(COMMENT),
            ),
            key,
        )
        return str(obj(response, f"Jira: comment on {key}").get("id"))

    def remote_link(self, key: str, global_id: str, title: str, url: str, summary: str) -> None:
        """Create or update (same globalId) a remote link: Jira's one idempotent write here."""
        self._require(
            self.api.call(
                "POST",
                self._path(key, "/remotelink"),
                what=f"link {title.lower()} to {key}",
                body={
                    "globalId": global_id,
                    "application": {"type": "hie-notify", "name": "hie-notify"},
                    "relationship": "deployed by",
                    "object": {"url": url, "title": title, "summary": summary[:255]},
                },
                expect=(404,),
                need=self.needs(LINK),
            ),
            key,
        )

    def transitions(self, key: str) -> list[dict[str, Any]]:
        """The transitions this user may make now, with their screens' fields."""
        response = self._require(
            self.api.call(
                "GET",
                self._path(key, "/transitions"),
                what=f"read the transitions of {key}",
                params={"expand": "transitions.fields"},
                expect=(404,),
                need=self.needs(BROWSE),
            ),
            key,
        )
        return list(obj(response, f"Jira: read the transitions of {key}").get("transitions") or [])

    def transition(
        self, key: str, transition_id: str, fields: Mapping[str, Any] | None = None
    ) -> str | None:
        """Make the transition (with the screen's `fields`); None when done, else Jira's words
        for a 400 (a field its screen requires, a value it will not take)."""
        body: dict[str, Any] = {"transition": {"id": transition_id}}
        if fields:
            body["fields"] = dict(fields)
        response = self._require(
            self.api.call(
                "POST",
                self._path(key, "/transitions"),
                what=f"move {key}",
                body=body,
                expect=(400, 404),
                need=self.needs(TRANSITION),
            ),
            key,
        )
        if response.status_code == 400:
            return detail(response).removeprefix(": ") or "no reason given"
        return None


class JiraChannel:
    kind = "jira"

    def __init__(
        self,
        client: JiraClient,
        links: Mapping[str, str],
        masker: Masker,
        visibility: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.links = {k: masker(v) for k, v in links.items()}
        self.masker = masker
        self.visibility = dict(visibility or {})

    def send(self, outgoing: Outgoing) -> Delivery:
        key = outgoing.change_id
        body = comment_body(outgoing, self.client.version, self.links, self.visibility)
        mark = marker(outgoing)
        comment = once(
            self.client.api,
            lambda: self.client.find_comment(key, mark),
            lambda: self.client.add_comment(key, body),
        )
        summary = self.masker(outgoing.rendered.subject)
        try:
            for name, title, url in _safe_links(self.links):
                self.client.remote_link(key, f"hie-notify:{key}:{name}", title, url, summary)
        except HieError as exc:
            # The comment stays (a re-run finds it by its marker and only links again).
            words = "; ".join(exc.problems) if isinstance(exc, InputError) else str(exc)
            raise type(exc)(f"comment {comment} posted, but {words}") from None
        receipt = {"issue": key, "comment_id": comment}
        return Delivery("jira", f"Jira {key}", f"{key}#comment-{comment}", receipt=receipt)


def move_to_done(
    client: JiraClient, key: str, name: str, fields: Mapping[str, Any] | None = None
) -> str:
    """Move the ticket through the transition the policy names (matched on the transition's
    name or its target status), with the policy's `jira.done_fields`: a line saying what
    happened. A missing transition, or one Jira refuses (a field its screen requires), is a
    warning that says what to set."""
    ticket = client.ticket(key)
    if ticket is None:
        return f"warning: Jira {key} was not found: not moved to {name!r}"
    if ticket.status.casefold() == name.casefold():
        return f"Jira {key} is already {ticket.status!r}"
    available = client.transitions(key)
    wanted = name.casefold()
    for t in available:
        target = str((t.get("to") or {}).get("name") or "")
        if wanted in (str(t.get("name") or "").casefold(), target.casefold()):
            refused = client.transition(key, str(t.get("id")), fields)
            if refused is not None:
                return (
                    f"warning: Jira {key} was NOT moved through {t.get('name')!r}: Jira refused "
                    f"the transition (HTTP 400: {refused}); " + _fields_hint(t, fields or {})
                )
            return f"Jira {key} moved through {t.get('name')!r} to {target or name!r}"
    names = (
        ", ".join(f"{t.get('name')} → {(t.get('to') or {}).get('name')}" for t in available)
        or "none"
    )
    return (
        f"warning: Jira {key} is {ticket.status!r} and has no transition {name!r} "
        f"(jira.done_transition) available to this user (available: {names}): not moved"
    )


def _fields_hint(transition: Mapping[str, Any], given: Mapping[str, Any]) -> str:
    """What to put in `jira.done_fields`: the fields the transition's screen requires that the
    policy does not give, each with the values Jira allows (from `expand=transitions.fields`)."""
    screen = transition.get("fields") or {}
    missing = [
        (fid, f)
        for fid, f in screen.items()
        if isinstance(f, dict) and f.get("required") and not f.get("hasDefaultValue")
        if fid not in given
    ]
    if not missing:
        return "check the values in the policy's jira.done_fields against the transition's screen"
    parts, examples = [], []
    for fid, f in missing:
        allowed = [
            str(v.get("name") or v.get("value"))
            for v in f.get("allowedValues") or []
            if isinstance(v, dict) and (v.get("name") or v.get("value"))
        ]
        label = str(f.get("name") or fid)
        parts.append(
            f"{fid} ({label}" + (f"; allowed: {', '.join(allowed[:10])})" if allowed else ")")
        )
        examples.append(f"{fid}: {{name: {allowed[0]}}}" if allowed else f"{fid}: VALUE")
    return (
        f"its screen requires {', '.join(parts)}: give them in the policy, e.g. "
        f"jira: {{done_fields: {{{', '.join(examples)}}}}}"
    )
