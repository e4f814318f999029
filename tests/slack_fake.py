"""A small local Slack Web API server (slack-sdk talks urllib, which `responses` cannot see).

Answers chat.postMessage, chat.update, conversations.history, conversations.replies and
conversations.list with the documented shapes, records every request, and can be told to fail
the next calls (429 with Retry-After, or a 502 after the message was stored).
"""

from __future__ import annotations

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

    def calls(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/" + method)]


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
            name = str(body["channel"])
            cid = CHANNELS.get(name.lstrip("#"), name)
            if cid not in CHANNELS.values():
                self._reply(200, {"ok": False, "error": "channel_not_found"})
                return
            st.last_ts = max(time.time(), st.last_ts + 0.000001)
            msg = {
                "type": "message",
                "ts": f"{st.last_ts:.6f}",
                "text": body.get("text"),
                "blocks": body.get("blocks"),
                "metadata": body.get("metadata"),
                "channel": cid,
                "thread_ts": body.get("thread_ts"),
                "bot_id": "B0HIE",
            }
            st.messages.append(msg)
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
            # Newest first; `oldest` and `latest` are exclusive unless `inclusive` is true; message
            # metadata only with include_all_metadata=true (docs: conversations.history).
            inclusive = _flag(body.get("inclusive"))
            oldest = float(body.get("oldest") or 0)
            found = [
                m
                for m in st.messages
                if m["channel"] == body["channel"]
                and not m["thread_ts"]
                and (float(m["ts"]) >= oldest if inclusive else float(m["ts"]) > oldest)
            ]
            self._page(list(reversed(found)), body)
        elif method == "conversations.replies":
            # The parent first, then its replies, oldest first (docs: conversations.replies).
            found = [
                m
                for m in st.messages
                if m["channel"] == body["channel"]
                and (m["ts"] == body["ts"] or m["thread_ts"] == body["ts"])
            ]
            self._page(found, body)
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
            self._reply(
                200, {"ok": True, "channels": chans, "response_metadata": {"next_cursor": ""}}
            )
        else:
            self._reply(200, {"ok": False, "error": "unknown_method"})

    def _page(self, messages: list[dict[str, Any]], body: dict[str, Any]) -> None:
        limit = int(body.get("limit") or 100)
        start = int(body.get("cursor") or 0)
        page = messages[start : start + limit]
        if not _flag(body.get("include_all_metadata")):
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(messages)
        self._reply(
            200,
            {
                "ok": True,
                "messages": page,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            },
        )


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
