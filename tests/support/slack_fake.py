"""A small local Slack Web API server (slack-sdk talks urllib, which `responses` cannot see).

Answers chat.postMessage, chat.update, conversations.history, conversations.replies and
conversations.list with the documented shapes, records every request, and can be told to fail
the next calls (429 with Retry-After, or a 502 after the message was stored).

It is as strict as the real API on every parameter the product relies on (api.slack.com/methods):
- conversations.history / .replies take a channel *ID* (a name is `channel_not_found`), return
  message `metadata` only with `include_all_metadata=true`, treat `oldest`/`latest` as exclusive
  unless `inclusive=true`, and page with an opaque `cursor`: "fewer than the requested number of
  items may be returned, even if the end of the conversation history hasn't been reached", so a
  client must follow `response_metadata.next_cursor` (`page_cap` makes the fake do that).
- history is newest first; replies are the parent then its replies, oldest first; a `ts` that
  is no message is `thread_not_found`.
- chat.postMessage needs `text` or `blocks` (`no_text`), and `metadata` must be an object with
  `event_type` and `event_payload` (`invalid_metadata_format`); `ts` is Slack's own clock.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "xoxb-111-222-PLANTEDSLACKTOKEN"
CHANNELS = {
    "devops": "C0DEVOPS",
    "infrastructure": "C0INFRA",
    "product": "C0PRODUCT",
    "ops": "C0OPS",
    "cloud-security": "C0SEC",
}
# Members a bot may message directly: chat.postMessage to a user id posts in the app's direct
# message channel with them (an id starting with D), which the answer names.
USERS = {"U0123ABCD": "D0PRIYA"}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class SlackState:
    messages: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    fail: list[tuple[str, int, dict[str, str], bool]] = field(default_factory=list)
    # Slack stamps `ts` with its own clock, which is not the tests' injected --now: like the real
    # service, the fake uses the machine's clock (kept strictly increasing).
    last_ts: float = 0.0
    token: str = TOKEN
    # At most this many items in one page, whatever `limit` asks (the docs allow fewer).
    page_cap: int | None = None
    # Messages others post right after the next post is stored (in its thread, if any).
    noise_after_store: int = 0
    # Answers Slack gives instead of doing a method (e.g. chat.postMessage ->
    # {"ok": false, "error": "missing_scope", "needed": "chat:write", "provided": "..."}).
    refuse: dict[str, dict[str, Any]] = field(default_factory=dict)

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/" + method)]

    def store(
        self,
        channel: str,
        text: Any,
        blocks: Any,
        metadata: Any,
        thread_ts: Any,
        bot_id: str | None,
    ) -> dict[str, Any]:
        self.last_ts = max(time.time(), self.last_ts + 0.000001)
        msg = {
            "type": "message",
            "ts": f"{self.last_ts:.6f}",
            "text": text,
            "blocks": blocks,
            "metadata": metadata,
            "channel": channel,
            "thread_ts": thread_ts,
            "bot_id": bot_id,
        }
        self.messages.append(msg)
        return msg


class _Handler(BaseHTTPRequestHandler):
    state: SlackState

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw or b"{}")
        query = parse_qs(urlparse(self.path).query)
        form = parse_qs(raw.decode())
        return {k: v[0] for k, v in {**query, **form}.items()}

    def _reply(
        self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.do_POST()

    def do_POST(self) -> None:
        st = self.state
        body = self._body()
        method = urlparse(self.path).path.rsplit("/", 1)[-1]
        st.requests.append(
            Recorded(self.command, urlparse(self.path).path, dict(self.headers.items()), body)
        )
        if self.headers.get("Authorization") != f"Bearer {st.token}":
            self._reply(200, {"ok": False, "error": "invalid_auth"})
            return
        if method in st.refuse:
            self._reply(200, st.refuse[method])
            return
        failure = next((f for f in st.fail if f[0] == method), None)
        stored_then_fail = False
        if failure is not None:
            st.fail.remove(failure)
            _, status, headers, after_store = failure
            if not after_store:
                self._reply(
                    status,
                    {"ok": False, "error": "ratelimited" if status == 429 else "fatal_error"},
                    headers,
                )
                return
            stored_then_fail = True
        if method == "chat.postMessage":
            name = str(body.get("channel") or "")
            cid = USERS.get(name) or CHANNELS.get(name.lstrip("#"), name)
            if cid not in CHANNELS.values() and cid not in USERS.values():
                self._reply(200, {"ok": False, "error": "channel_not_found"})
                return
            if not body.get("text") and not body.get("blocks"):
                self._reply(200, {"ok": False, "error": "no_text"})
                return
            meta = body.get("metadata")
            if meta is not None and not (
                isinstance(meta, dict)
                and isinstance(meta.get("event_type"), str)
                and isinstance(meta.get("event_payload"), dict)
            ):
                self._reply(200, {"ok": False, "error": "invalid_metadata_format"})
                return
            thread = body.get("thread_ts")
            if thread and not any(m["ts"] == thread and m["channel"] == cid for m in st.messages):
                self._reply(200, {"ok": False, "error": "thread_not_found"})
                return
            msg = st.store(cid, body.get("text"), body.get("blocks"), meta, thread, "B0HIE")
            for i in range(st.noise_after_store):
                st.store(cid, f"someone else {i}", None, None, thread, "B0OTHER")
            st.noise_after_store = 0
            if stored_then_fail:
                self._reply(502, {"ok": False, "error": "fatal_error"})
                return
            self._reply(200, {"ok": True, "channel": cid, "ts": msg["ts"], "message": msg})
        elif method == "chat.update":
            msg = next(
                (
                    m
                    for m in st.messages
                    if m["ts"] == body["ts"] and m["channel"] == body["channel"]
                ),
                None,
            )
            if msg is None:
                self._reply(200, {"ok": False, "error": "message_not_found"})
                return
            msg.update(text=body.get("text"), blocks=body.get("blocks"))
            self._reply(
                200,
                {
                    "ok": True,
                    "channel": body["channel"],
                    "ts": body["ts"],
                    "text": body.get("text"),
                },
            )
        elif method == "conversations.history":
            # Newest first; only top-level messages (and thread parents).
            if not self._known_channel(body):
                return
            found = [
                m
                for m in st.messages
                if m["channel"] == body["channel"] and not m["thread_ts"] and _in_range(m, body)
            ]
            self._page(list(reversed(found)), body, "messages", 999)
        elif method == "conversations.replies":
            # The parent first, then its replies, oldest first.
            if not self._known_channel(body):
                return
            ts = str(body.get("ts") or "")
            if not any(m["ts"] == ts and m["channel"] == body["channel"] for m in st.messages):
                self._reply(200, {"ok": False, "error": "thread_not_found"})
                return
            found = [
                m
                for m in st.messages
                if m["channel"] == body["channel"]
                and (m["ts"] == ts or m["thread_ts"] == ts)
                and _in_range(m, body)
            ]
            self._page(found, body, "messages", 1000)
        elif method == "chat.getPermalink":
            # docs: chat.getPermalink answers {ok, channel, permalink}.
            known = any(
                m["channel"] == body.get("channel") and m["ts"] == body.get("message_ts")
                for m in st.messages
            )
            if not known:
                self._reply(200, {"ok": False, "error": "message_not_found"})
                return
            p = str(body["message_ts"]).replace(".", "")
            self._reply(
                200,
                {
                    "ok": True,
                    "channel": body["channel"],
                    "permalink": f"https://hie.slack.com/archives/{body['channel']}/p{p}",
                },
            )
        elif method == "conversations.list":
            chans = [
                {"id": cid, "name": name, "is_channel": True} for name, cid in CHANNELS.items()
            ]
            self._page(chans, body, "channels", 1000)
        else:
            self._reply(200, {"ok": False, "error": "unknown_method"})

    def _known_channel(self, body: dict[str, Any]) -> bool:
        # History is read by channel ID: a name such as "#devops" is not found.
        if body.get("channel") in (*CHANNELS.values(), *USERS.values()):
            return True
        self._reply(200, {"ok": False, "error": "channel_not_found"})
        return False

    def _page(self, items: list[dict[str, Any]], body: dict[str, Any], key: str, top: int) -> None:
        limit = min(int(body.get("limit") or 100), top)
        if self.state.page_cap is not None:
            limit = min(limit, self.state.page_cap)
        start = _uncursor(body.get("cursor"))
        if start is None:
            self._reply(200, {"ok": False, "error": "invalid_cursor"})
            return
        page = items[start : start + limit]
        if key == "messages" and not _flag(body.get("include_all_metadata")):
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        page = [{k: v for k, v in m.items() if k != "channel"} for m in page]
        more = start + limit < len(items)
        data: dict[str, Any] = {
            "ok": True,
            key: page,
            "response_metadata": {"next_cursor": _cursor(start + limit) if more else ""},
        }
        if key == "messages":
            data["has_more"] = more
        self._reply(200, data)


def _in_range(message: dict[str, Any], body: dict[str, Any]) -> bool:
    """`oldest` (default 0) and `latest` (default now) bound the result, both exclusive unless
    `inclusive` is true."""
    ts = float(message["ts"])
    oldest = float(body.get("oldest") or 0)
    latest = float(body["latest"]) if body.get("latest") else float("inf")
    if _flag(body.get("inclusive")):
        return oldest <= ts <= latest
    return oldest < ts < latest


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _uncursor(cursor: object) -> int | None:
    """The offset in a cursor this fake gave out; 0 for none; None for one it never gave."""
    if not cursor:
        return 0
    try:
        kind, _, offset = base64.b64decode(str(cursor), validate=True).decode().partition(":")
        return int(offset) if kind == "offset" else None
    except ValueError:
        return None


def _flag(value: object) -> bool:
    return str(value).lower() in ("1", "true")


class FakeSlack:
    def __init__(self) -> None:
        self.state = SlackState()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def __enter__(self) -> FakeSlack:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
