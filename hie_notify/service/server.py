"""The service on waitress: limits, graceful shutdown on SIGTERM/SIGINT.

waitress reads requests asynchronously and hands only complete ones to its threads, so an idle
connection or a stalled body occupies no thread; `channel_timeout` closes such a connection
after HIE_SERVICE_IDLE_TIMEOUT seconds of silence, and a Content-Length over the limit is
refused (413) before the body is read.
"""

from __future__ import annotations

import logging
import signal
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from hie_notify.options import Options
from hie_notify.service.ackpages import AckPages
from hie_notify.service.app import make_app
from hie_notify.service.notifications import Notifications
from hie_notify.service.org import ProtectedPolicies
from hie_notify.service.runtask import RunTasks
from hie_notify.service.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 30.0


class Service:
    def __init__(
        self,
        settings: Settings,
        options: Options,
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] | None = None,
        workdir: Path | None = None,
        instance: str | None = None,
    ) -> None:
        import waitress

        self.settings = settings
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="hie-notify-")
        work = workdir or Path(self._tmp.name if self._tmp else ".")
        policies = ProtectedPolicies(work)  # each project's, shared by both paths
        self.run_tasks = (
            RunTasks(
                settings,
                options,
                workdir=work,
                clock=clock,
                sleep=sleep,
                instance=instance,
                policies=policies,
            )
            if settings.run_task_key
            else None
        )
        self.notifications = (
            Notifications(settings, options, workdir=work, clock=clock, policies=policies)
            if settings.notification_token
            else None
        )
        self.pages = AckPages(settings, options, clock=clock) if settings.ack_key else None
        self.app = make_app(settings, self.run_tasks, self.notifications, self.pages)
        self.server: Any = waitress.create_server(
            self.app,
            host=settings.listen_host,
            port=settings.listen_port,
            threads=settings.threads,
            channel_timeout=settings.idle_timeout,
            cleanup_interval=max(1, min(30, settings.idle_timeout // 2)),
            max_request_body_size=settings.max_body,
            max_request_header_size=64 * 1024,
            connection_limit=200,
            ident="hie-notify",
            clear_untrusted_proxy_headers=True,
        )
        self._stop = threading.Event()
        self._running = threading.Event()
        self._done = threading.Event()
        self._shut = threading.Lock()
        self._was_shut = False

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    def serve(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, _exit)
        log.info(
            "listening on %s:%d (run tasks: %s, notifications: %s, acknowledgements: %s)",
            self.settings.listen_host,
            self.port,
            "/run-task" if self.run_tasks else "off",
            "/notifications" if self.notifications else "off",
            "/ack, /portal" if self.pages else "off",
        )
        self.run()

    def run(self) -> None:
        """waitress's event loop, until `close` (from any thread) or SystemExit (a signal)."""
        from waitress import wasyncore

        with self._shut:
            if self._stop.is_set():  # closed before it started: `close` shut it down
                return
            self._running.set()
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=1.0, map=self.server._map, use_poll=True, count=1)
        except (SystemExit, KeyboardInterrupt):
            pass
        finally:
            self._shutdown(SHUTDOWN_SECONDS)
            self._done.set()

    def close(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Stop accepting connections, finish requests in progress, then running decisions."""
        self._stop.set()
        # The loop may already have shut down (it saw the stop on its own, or a signal ended
        # it) and closed waitress's trigger: pulling it then writes to a closed descriptor (or
        # to whatever file reuses it). The lock keeps the trigger open while it is pulled.
        with self._shut:
            running = self._running.is_set()
            if running and not self._was_shut:
                self.server.pull_trigger()  # wake the loop, which shuts down in its own thread
        if running:
            self._done.wait(timeout + 10)
        else:
            self._shutdown(timeout)

    def _shutdown(self, timeout: float) -> None:
        with self._shut:
            if self._was_shut:
                return
            self._was_shut = True
        from waitress import wasyncore

        self.server.task_dispatcher.shutdown(timeout=5)
        wasyncore.close_all(self.server._map)
        if self.run_tasks is not None:
            self.run_tasks.close(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()
        log.info("stopped")


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)
