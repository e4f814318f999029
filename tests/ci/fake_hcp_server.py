"""A small real HTTP server shaped like HCP Terraform's API, for jobs run by gitlab-ci-local.

Serves the run of tests/fixtures/hcp/run_with_includes.json (`GET /api/v2/runs/:id`), the
workspace hie-sde/eoe-prod whose current run it is, and the run's plan JSON
(`GET /api/v2/plans/:id/json-output`, a 307 to a download address as HCP Terraform does).
Every API route wants the bearer token; the download address wants none.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RUN_FIXTURE = ROOT / "tests" / "fixtures" / "hcp" / "run_with_includes.json"
WORKSPACE_FIXTURE = ROOT / "tests" / "fixtures" / "hcp" / "workspace.json"
TOKEN = "tfc-TEMPLATE-SCENARIO-TOKEN.atlasv1.q8ZzT3"
RUN_ID = "run-Qx7bN2eKpL4mRw9T"
PLAN_ID = "plan-Rb2cY7nVhM4kLx9S"


class FakeHcpServer:
    def __init__(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.run = json.loads(RUN_FIXTURE.read_text())
        self.workspace = json.loads(WORKSPACE_FIXTURE.read_text())
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.api+json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                server.requests.append(path)
                if path == "/download/plan.json":
                    return self._send(200, server.plan)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"errors": [{"status": "401", "title": "unauthorized"}]})
                if path == f"/api/v2/runs/{RUN_ID}":
                    return self._send(200, server.run)
                if path == "/api/v2/organizations/hie-sde/workspaces/eoe-prod":
                    return self._send(200, server.workspace)
                if path == f"/api/v2/plans/{PLAN_ID}/json-output":
                    return self._send(307, None, {"Location": "/download/plan.json"})
                return self._send(404, {"errors": [{"status": "404", "title": "not found"}]})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeHcpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
