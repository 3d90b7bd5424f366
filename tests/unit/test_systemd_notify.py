"""sd_notify over a real datagram socket, as systemd provides it to Type=notify services."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from polling import until

from mdfeed.cli.systemd import Notifier


def _listener(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def _received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def test_ready_status_watchdog_and_stopping_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with _listener(path) as sock:
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "100000"})
        assert notifier.active
        assert notifier.watchdog_s == 0.1
        notifier.ready("serving")
        notifier.status("12 clients")
        await until(lambda: notifier.sent.count("WATCHDOG=1") >= 3, timeout_s=5, interval_s=0.02)
        await notifier.stopping()
        got = _received(sock)
    assert got[0] == "READY=1\nSTATUS=serving"
    assert "STATUS=12 clients" in got
    assert got.count("WATCHDOG=1") >= 3
    assert got[-1] == "STOPPING=1"


async def test_a_reader_that_is_behind_never_blocks_the_sender(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with _listener(path):
        notifier = Notifier(str(path))
        sent = [notifier.notify(f"STATUS={i}") for i in range(500)]  # nobody reads
    assert sent[0]
    assert not all(sent)  # the queue filled: later ones were dropped, not waited for


async def test_the_watchdog_stops_when_the_loop_is_stuck(tmp_path: Path) -> None:
    # Keep-alives come from the event loop: a blocked loop sends none, so systemd's
    # watchdog fires.
    import time

    path = tmp_path / "notify"
    with _listener(path) as sock:
        notifier = Notifier(str(path), watchdog_s=0.04)
        notifier.ready()
        await asyncio.sleep(0.1)
        before = len(_received(sock))
        time.sleep(0.3)  # noqa: ASYNC251 - the loop is stuck on purpose
        during = len(_received(sock))
        await notifier.stopping()
    assert before >= 2
    assert during == 0


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.active
    assert notifier.notify("READY=1") is False
    assert list(notifier.sent) == []
    assert Notifier.from_environ({"WATCHDOG_USEC": "x"}).watchdog_s is None


def test_mdfeed_run_tells_systemd_when_it_is_ready_and_when_it_stops(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from mdfeed.stack.scratch import free_port

    path = tmp_path / "notify"
    venue = str(free_port())
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(path),
        "WATCHDOG_USEC": "400000",
        "MDFEED__VENUE__PORT": venue,
        "MDFEED__FIX_SESSION__PORT": venue,
        "MDFEED__FIX_SESSION__LOG_DIR": str(tmp_path / "fix"),
        "MDFEED__FANOUT__GRPC_PORT": str(free_port()),
        "MDFEED__MQTT__PORT": str(free_port()),
        "MDFEED__DATAFEED__HTTP_PORT": str(free_port()),
        "MDFEED__METRICS__PORT": str(free_port()),
        "MDFEED__STORE__SQLITE_PATH": str(tmp_path / "store.sqlite3"),
    }
    import threading

    got: list[str] = []
    with _listener(path) as sock:
        sock.setblocking(True)
        sock.settimeout(0.2)
        done = threading.Event()

        def read() -> None:  # as systemd does: read as messages come
            while not done.is_set():
                try:
                    got.append(sock.recv(4096).decode())
                except TimeoutError:
                    continue

        reader = threading.Thread(target=read)
        reader.start()
        try:
            result = subprocess.run(
                [str(Path(sys.executable).parent / "mdfeed"), "run", "--duration", "3"],
                capture_output=True, text=True, env=env, cwd=tmp_path, timeout=90, check=False,
            )  # fmt: skip
        finally:
            done.set()
            reader.join()
    assert result.returncode == 0, result.stderr[-2000:]
    assert got[0] == "READY=1\nSTATUS=pipeline running", got
    assert got.count("WATCHDOG=1") >= 3, got
    assert got[-1] == "STOPPING=1", got
