"""The service's settings, only from environment variables; every problem named."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hie_notify.errors import InputError
from hie_notify.masking import Masker
from hie_notify.service.org import OrgConfig

if TYPE_CHECKING:
    from hie_notify.settings import Settings as EnvSettings

DEFAULT_LISTEN = "127.0.0.1:8080"
DEFAULT_CHANGE_PATH = "deploy/change.yaml"


@dataclass(frozen=True)
class Settings:
    listen_host: str
    listen_port: int
    run_task_key: str  # HIE_RUN_TASK_HMAC_KEY: the run task's HMAC key ("" = path off)
    notification_token: str  # HIE_TFC_NOTIFICATION_TOKEN ("" = path off)
    threads: int  # waitress request threads
    workers: int  # run-task decisions at once
    queue: int  # run tasks accepted but not started, at most
    max_body: int  # bytes
    idle_timeout: int  # seconds a connection may send nothing before it is closed
    change_path: str  # where the change record lives in the repository; {id} = Jira key
    org: OrgConfig | None = None  # HIE_SERVICE_CONFIG: every mapped workspace (else one project)
    ack_key: str = ""  # HIE_ACK_KEY: signs acknowledgement and portal links ("" = pages off)
    # SLACK_SIGNING_SECRET: verifies Slack's requests to /slack/interactions ("" = path off)
    slack_signing_secret: str = ""

    def __repr__(self) -> str:  # never show the keys
        return (
            f"Settings(listen={self.listen_host}:{self.listen_port}, "
            f"run_task={'on' if self.run_task_key else 'off'}, "
            f"notifications={'on' if self.notification_token else 'off'}, "
            f"organisation={self.org.source if self.org else 'off'}, "
            f"acknowledgements={'on' if self.ack_key else 'off'})"
        )

    def masker(self, env: Mapping[str, str]) -> Masker:
        base = Masker.from_env(env)
        return Masker(
            [
                *base.secrets,
                self.run_task_key,
                self.notification_token,
                self.ack_key,
                self.slack_signing_secret,
            ]
        )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], listen: str | None = None, typed: EnvSettings | None = None
    ) -> Settings:
        """`typed`: the settings the face (cli.main) built from the same environment."""
        problems: list[str] = []

        def number(name: str, default: int, low: int, high: int) -> int:
            raw = (env.get(name) or "").strip()
            if not raw:
                return default
            if not raw.isdigit() or not low <= int(raw) <= high:
                problems.append(f"{name}: expected a whole number {low} to {high}, got {raw!r}")
                return default
            return int(raw)

        where = listen or (env.get("HIE_LISTEN") or "").strip() or DEFAULT_LISTEN
        host, _, port = where.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            problems.append(f"--listen / HIE_LISTEN: expected HOST:PORT, got {where!r}")
            host, port = "127.0.0.1", "0"
        key = env.get("HIE_RUN_TASK_HMAC_KEY") or ""
        token = env.get("HIE_TFC_NOTIFICATION_TOKEN") or ""
        ack = env.get("HIE_ACK_KEY") or ""
        if not key and not token and not ack:
            problems.append(
                "receive needs HIE_RUN_TASK_HMAC_KEY (the run task's HMAC key), "
                "HIE_TFC_NOTIFICATION_TOKEN (the workspace notification's token), "
                "HIE_ACK_KEY (acknowledgement pages and portals), or several of them"
            )
        for name, value in (
            ("HIE_RUN_TASK_HMAC_KEY", key),
            ("HIE_TFC_NOTIFICATION_TOKEN", token),
            ("HIE_ACK_KEY", ack),
        ):
            if value and len(value) < 16:
                problems.append(f"{name}: expected at least 16 characters (a random secret)")
        change_path = (env.get("HIE_CHANGE_PATH") or "").strip() or DEFAULT_CHANGE_PATH
        if change_path.startswith("/") or ".." in change_path.split("/"):
            problems.append(
                f"HIE_CHANGE_PATH: expected a path inside the repository, got {change_path!r}"
            )
        org = None
        config = (env.get("HIE_SERVICE_CONFIG") or "").strip()
        if config:
            try:
                org = OrgConfig.load(Path(config))
            except InputError as exc:
                problems.extend(exc.problems)
        from hie_notify.settings import settings_or_env

        if org is not None and not (
            settings_or_env(typed, env).gitlab_token and env.get("CI_API_V4_URL")
        ):
            problems.append(
                "HIE_SERVICE_CONFIG: serving an organisation needs HIE_GITLAB_TOKEN and "
                "CI_API_V4_URL (a token that can read every mapped project and write notes)"
            )
        settings = cls(
            listen_host=host.strip("[]"),
            listen_port=int(port),
            run_task_key=key,
            notification_token=token,
            threads=number("HIE_SERVICE_THREADS", 8, 1, 64),
            workers=number("HIE_SERVICE_WORKERS", 4, 1, 64),
            queue=number("HIE_SERVICE_QUEUE", 100, 1, 10_000),
            max_body=number("HIE_SERVICE_MAX_BODY", 1024 * 1024, 1024, 64 * 1024 * 1024),
            idle_timeout=number("HIE_SERVICE_IDLE_TIMEOUT", 30, 1, 3600),
            change_path=change_path,
            org=org,
            ack_key=ack,
            slack_signing_secret=env.get("SLACK_SIGNING_SECRET") or "",
        )
        if problems:
            raise InputError(problems)
        return settings
