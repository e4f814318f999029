"""The service as a whole: notifications of other runs, slow clients, hostile bodies, settings,
structured logs and a graceful shutdown of the real `hie-notify receive` process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hie_notify.cli import main
from hie_notify.service.app import TooDeep, check_depth
from tests.support.hcp_fake import fixture_bytes
from tests.support.runtask_harness import MR, Harness, deliver, harness_fixture, post, sign
from tests.support.service_calls import OLD_RUN, notification, notify, stages

_ = harness_fixture  # the `h` fixture


# -- replayed events


def test_an_old_runs_replayed_event_is_ignored_and_the_current_runs_is_acted_on(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO)
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    service = h.start(ledger=f"gitlab:mr:{MR}")
    deliver(h, service)  # the run task allowed run-Qx7bN2eKpL4mRw9T to apply
    assert h.callbacks.only()["attributes"]["status"] == "passed"

    # A signed "errored" of an earlier run of the same change, replayed.
    old = notification("notification_errored_canceled.json", run_id=OLD_RUN)
    code, _ = notify(service, old)
    assert code == 200
    assert "apply_failed" not in stages(h) and "postmortem" not in stages(h)
    assert not (h.tmp / "outbox/FFAPP-4458/apply_failed").exists()
    assert f"run {OLD_RUN} is not the run HCP Terraform was last allowed to apply" in caplog.text

    code, _ = notify(service, notification("notification_applying.json"))
    assert code == 200
    assert "apply_started" in stages(h)


def test_with_two_allowed_runs_only_the_latest_ones_events_are_acted_on(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """HCP was allowed to apply an earlier run of the change (then discarded), and later the
    current one: the current run's notices go out, the earlier run's replayed event does not."""
    import logging

    caplog.set_level(logging.INFO)
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    clock = [datetime(2026, 12, 8, 19, 1, tzinfo=timezone.utc)]
    service = h.start(ledger=f"gitlab:mr:{MR}", clock=lambda: clock[0])
    deliver(
        h,
        service,
        run_id=OLD_RUN,
        run_app_url=f"https://app.terraform.io/app/hie-sde/eoe-prod/runs/{OLD_RUN}",
        task_result_id="taskrs-Old7bN2eKpL4mR00",
    )
    clock[0] = datetime(2026, 12, 8, 19, 4, tzinfo=timezone.utc)
    deliver(h, service)  # run-Qx7bN2eKpL4mRw9T, allowed three minutes later
    decisions = h.ledger_entries("run_task")
    assert [d["extra"]["run_id"] for d in decisions] == [OLD_RUN, "run-Qx7bN2eKpL4mRw9T"]
    assert {d["extra"]["status"] for d in decisions} == {"passed"}

    code, _ = notify(service, notification("notification_errored_canceled.json", run_id=OLD_RUN))
    assert code == 200
    assert "apply_failed" not in stages(h) and "postmortem" not in stages(h)
    assert not (h.tmp / "outbox/FFAPP-4458/apply_failed").exists()
    assert (
        f"run {OLD_RUN} is not the run HCP Terraform was last allowed to apply for FFAPP-4458 "
        "(run-Qx7bN2eKpL4mRw9T)"
    ) in caplog.text

    code, _ = notify(service, notification("notification_applying.json"))
    assert code == 200
    assert "apply_started" in stages(h)
    assert (h.tmp / "outbox/FFAPP-4458/apply_started").is_dir()


def test_an_event_older_than_the_latest_announcement_is_ignored(h: Harness) -> None:
    # No run task in use: the event's own time is all there is to go on. The change was
    # announced again (a moved window, 15 December) after the event's 19:05:31.
    h.change = h.change.replace(b"2026-12-08T", b"2026-12-15T")
    for key in [k for k in h.gitlab.files if k[2] == "deploy/change.yaml"]:
        h.gitlab.files[key] = h.change
    h.announce(datetime(2026, 12, 8, 19, 10, tzinfo=timezone.utc))
    service = h.start(ledger=f"gitlab:mr:{MR}")
    code, _ = notify(service, notification("notification_applying.json"))
    assert code == 200 and "apply_started" not in stages(h)


def test_an_event_of_another_change_is_ignored(h: Harness) -> None:
    h.announce(datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc))
    service = h.start(ledger=f"gitlab:mr:{MR}")
    body = notification("notification_applying.json", run_message="FFAPP-1: something else")
    code, _ = notify(service, body)
    assert code == 200 and "apply_started" not in stages(h)


# -- slow and hostile clients


def test_an_idle_connection_and_a_stalled_body_block_nobody(h: Harness) -> None:
    service = h.start()
    idle = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    stalled = socket.create_connection(("127.0.0.1", service.port), timeout=10)
    stalled.sendall(
        b"POST /notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"payload_version": 1'
    )
    try:
        for _ in range(3):
            started = time.monotonic()
            body = fixture_bytes("notification_verification.json")
            code, _ = notify(service, body)
            assert code == 200
            assert time.monotonic() - started < 1.0
        # And the server lets go of both after HIE_SERVICE_IDLE_TIMEOUT (2 s here).
        started = time.monotonic()
        assert idle.recv(1) == b""
        while stalled.recv(1024):  # whatever it answers, it then closes
            pass
        assert time.monotonic() - started < 8
    finally:
        idle.close()
        stalled.close()


def test_a_signed_deeply_nested_body_is_400_not_500(h: Harness) -> None:
    service = h.start()
    deep = b'{"payload_version": 1, "notifications": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    code, answer = notify(service, deep)
    assert code == 400 and "nested" in answer["status"]

    code, answer = post(
        service, b"[" * 50_000 + b"]" * 50_000, signature=sign(b"[" * 50_000 + b"]" * 50_000)
    )
    assert code == 400


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


@given(json_values, st.integers(min_value=1, max_value=8))
def test_the_depth_check_agrees_with_the_real_depth(value: Any, limit: int) -> None:
    body = json.dumps(value).encode()
    if _depth(value) > limit:
        with pytest.raises(TooDeep):
            check_depth(body, limit)
    else:
        check_depth(body, limit)


# -- settings and the process


def test_settings_come_from_the_environment_and_bad_ones_are_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["receive"], env={}) == 2
    err = capsys.readouterr().err
    assert "HIE_RUN_TASK_HMAC_KEY" in err and "Traceback" not in err
    env = {"HIE_RUN_TASK_HMAC_KEY": "k" * 32, "HIE_SERVICE_WORKERS": "lots", "HIE_LISTEN": "x"}
    assert main(["receive"], env=env) == 2
    err = capsys.readouterr().err
    assert "HIE_SERVICE_WORKERS: expected a whole number 1 to 64, got 'lots'" in err
    assert "HIE_LISTEN: expected HOST:PORT, got 'x'" in err
    assert "k" * 32 not in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_real_process_serves_logs_json_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    key = "runtask-hmac-PLANTED-key-8c1d"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HIE_LISTEN": f"127.0.0.1:{port}",
        "HIE_RUN_TASK_HMAC_KEY": key,
        "HIE_OUTBOX": str(tmp_path / "outbox"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "hie_notify", "receive"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                assert conn.getresponse().status == 200
                conn.close()
                break
            except OSError:
                assert time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/run-task", body=b"{}", headers={"X-TFC-Task-Signature": "0" * 128})
        assert conn.getresponse().status == 401
        conn.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    messages = [line["message"] for line in lines]
    assert any(m.startswith("listening on 127.0.0.1") for m in messages)
    assert any(line.get("path") == "/run-task" and line.get("code") == 401 for line in lines)
    assert messages[-1] == "stopped"
    assert key not in err.decode()


# -- shutdown: closing never touches the trigger after the loop closed it


def _trigger_fd_taken_over(service: Any) -> tuple[int, int]:
    """The fd number of waitress's closed trigger, now the write end of a pipe of ours: a
    late pull would write into it (as into any file that reused the number), not only fail."""
    fd = service.server.trigger.trigger
    with pytest.raises(OSError):
        os.fstat(fd)  # closed with the rest of the loop's map
    ours_r, ours_w = os.pipe()  # may well be given the freed numbers themselves
    if ours_w != fd:
        os.dup2(ours_w, fd)
        os.close(ours_w)
    os.set_blocking(ours_r, False)
    return ours_r, fd


def _nothing_written(ours_r: int, fd: int) -> None:
    try:
        written = os.read(ours_r, 16)
    except BlockingIOError:
        written = b""
    finally:
        os.close(ours_r)
        os.close(fd)
    assert written == b"", "close() pulled the closed trigger: it wrote into a reused descriptor"


def test_closing_after_a_signal_ended_the_loop_writes_to_no_closed_descriptor(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waitress import wasyncore

    def signalled(*args: Any, **kwargs: Any) -> None:
        raise SystemExit(0)  # what the SIGTERM handler raises inside the loop

    monkeypatch.setattr(wasyncore, "loop", signalled)
    service = h.start()
    _, thread = h.services[-1]
    thread.join(10)
    assert not thread.is_alive()  # the loop shut down on its own
    ours_r, fd = _trigger_fd_taken_over(service)
    service.close(timeout=1)  # as the tests' teardown (or any caller) does afterwards
    _nothing_written(ours_r, fd)


def test_closing_while_the_loop_shuts_down_on_its_own_writes_to_no_closed_descriptor(
    h: Harness,
) -> None:
    service = h.start()
    _, thread = h.services[-1]
    port = service.port
    taken: list[tuple[int, int]] = []

    class StopSeenFirstByTheLoop(threading.Event):
        """`close` sets the stop; before it goes on, the loop wakes, sees it and shuts down:
        the interleaving that made CI's teardown fail with EBADF now and then."""

        def set(self) -> None:
            super().set()
            if taken:
                return  # the teardown closing it again
            socket.create_connection(("127.0.0.1", port), timeout=5).close()  # wake the loop
            thread.join(10)
            assert not thread.is_alive()
            taken.append(_trigger_fd_taken_over(service))

    service._stop = StopSeenFirstByTheLoop()
    service.close(timeout=1)
    (ours,) = taken
    _nothing_written(*ours)
