"""`mdfeed ingest` and `mdfeed datafeed` as systemd runs them: Type=notify, W^X memory.

Each command runs as a child process with ``NOTIFY_SOCKET`` on a datagram socket the test
binds (as systemd does) and, like the units' ``MemoryDenyWriteExecute=yes``, with
writable+executable memory refused (Linux's ``PR_SET_MDWE``). Embedded config: the
in-process bus and SQLite, so no server is needed; the FIX venue is a SimulatedVenue.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from fix_session.venue import SimulatedVenue
from mdfeed.kernel.config import OhlcvConfig, StoreConfig, VenueConfig
from mdfeed.stack.scratch import free_port
from proto import mdfeed_pb2 as pb
from storage import open_bar_store

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
S = 1_000_000_000
T0 = 1_700_000_000  # a minute boundary, in seconds


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def deny_write_execute() -> None:
    """In the child before exec: what MemoryDenyWriteExecute=yes enforces."""
    if _libc().prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


@pytest.fixture(scope="module")
def write_xor_execute() -> None:
    if _libc().prctl(PR_GET_MDWE, 0, 0, 0, 0) < 0:
        pytest.skip(
            "this kernel has no PR_SET_MDWE (Linux < 6.3): cannot run the commands as "
            "MemoryDenyWriteExecute=yes does"
        )


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    with sock:
        yield str(path), sock


class Service:
    """One mdfeed command as a child process, with what it told systemd and stderr."""

    def __init__(self, proc: asyncio.subprocess.Process, sock: socket.socket) -> None:
        self.proc = proc
        self.sock = sock
        self.sent: list[str] = []
        self.stderr = bytearray()
        assert proc.stderr is not None
        self._reader = asyncio.create_task(self._read(proc.stderr))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            self.stderr += chunk

    async def wait_for(self, prefix: str, timeout_s: float = 60) -> str:
        """The first notification starting with ``prefix`` (reading all of them)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    for message in self.sent:
                        if message.startswith(prefix):
                            return message
                    if self.proc.returncode is not None:
                        break
                    read = loop.sock_recv(self.sock, 4096)
                    with contextlib.suppress(TimeoutError):
                        self.sent.append((await asyncio.wait_for(read, 0.5)).decode())
        except TimeoutError:
            pass
        pytest.fail(f"no {prefix!r} in {self.sent}; stderr:\n{self.text[-3000:]}")

    async def terminate(self) -> int:
        """SIGTERM, as `systemctl stop` sends; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            code = await self.proc.wait()
            await self._reader
        while True:
            try:
                self.sent.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return code

    @property
    def text(self) -> str:
        return self.stderr.decode(errors="replace")


Start = Callable[..., Awaitable[Service]]


@pytest.fixture
async def start(
    tmp_path: Path, notify_socket: tuple[str, socket.socket], write_xor_execute: None
) -> AsyncIterator[Start]:
    started: list[Service] = []
    address, sock = notify_socket

    async def run(command: str, **overrides: str) -> Service:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MDFEED")}
        env |= {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
        # A port of its own: the per-command default (9461...) may be taken on this host.
        env |= {"MDFEED__METRICS__PORT": str(free_port()), **overrides}
        # -P: the installed build, not a source tree in the working directory.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "mdfeed.cli", command,
            env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE,
            preexec_fn=deny_write_execute,
        )  # fmt: skip
        service = Service(proc, sock)
        started.append(service)
        return service

    yield run
    for service in started:
        if service.proc.returncode is None:
            service.proc.kill()
            await service.proc.wait()


async def test_ingest_is_ready_then_logged_on_and_stops_on_sigterm(
    start: Start, tmp_path: Path
) -> None:
    venue = SimulatedVenue(
        dataclasses.replace(VenueConfig(), port=0, symbols=("AAPL", "MSFT"), rate_ticks_per_s=500)
    )
    async with venue:
        ingest: Service = await start(
            "ingest",
            MDFEED__FIX_SESSION__PORT=str(venue.port),
            MDFEED__FIX_SESSION__SYMBOLS="AAPL,MSFT",
            MDFEED__FIX_SESSION__LOG_DIR=str(tmp_path / "fix"),
        )
        ready = await ingest.wait_for("READY=1")
        assert ready == f"READY=1\nSTATUS=connecting: FIX MDFEED->VENUE at 127.0.0.1:{venue.port}"
        assert await ingest.wait_for("STATUS=logged on") == "STATUS=logged on: MDFEED at 127.0.0.1"
        assert await ingest.wait_for("WATCHDOG=1") == "WATCHDOG=1"
        assert await ingest.terminate() == 0
    assert ingest.sent[-1] == "STOPPING=1", ingest.sent
    text = ingest.text
    assert "ingest ready: FIX MDFEED->VENUE" in text, text
    assert "2 symbols -> memory topic md.ticks" in text, text
    assert "fix logged on |" in text, text
    assert "| rejected 0 | producer buffered" in text, text
    assert "WARNING" not in text, text
    assert venue.stats.entries_sent > 0  # the session subscribed and the venue quoted


def _bar(t_s: int, close_e8: int, *, final: bool = True) -> pb.Bar:
    return pb.Bar(
        symbol="AAPL",
        resolution=pb.RESOLUTION_1M,
        open_time_ns=t_s * S,
        open_px_e8=close_e8 - 100_000_000,
        high_px_e8=close_e8 + 100_000_000,
        low_px_e8=close_e8 - 200_000_000,
        close_px_e8=close_e8,
        volume_e8=500_000_000,
        trade_count=3,
        final=final,
    )


async def test_datafeed_is_ready_serves_the_store_and_stops_on_sigterm(
    start: Start, tmp_path: Path
) -> None:
    sqlite_path = tmp_path / "bars.sqlite3"
    store = open_bar_store(StoreConfig(sqlite_path=str(sqlite_path)), OhlcvConfig())
    async with store:
        await store.upsert([_bar(T0, 150 * 10**8), _bar(T0 + 60, 151 * 10**8)])
    port = free_port()
    datafeed: Service = await start(
        "datafeed",
        MDFEED__DATAFEED__HTTP_PORT=str(port),
        MDFEED__STORE__SQLITE_PATH=str(sqlite_path),
    )
    assert await datafeed.wait_for("READY=1") == f"READY=1\nSTATUS=serving http://127.0.0.1:{port}/"
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/config") as response:
            assert response.status == 200
            assert "1" in (await response.json())["supported_resolutions"]
        query = {"symbol": "AAPL", "resolution": "1", "from": str(T0), "to": str(T0 + 3600)}
        async with http.get(f"{base}/history", params=query) as response:
            history = await response.json()
        async with http.post(f"{base}/chat/lobby", data=json.dumps({"text": "hi"})) as response:
            chat_status = response.status
    assert history["s"] == "ok", history
    assert history["t"] == [T0, T0 + 60]
    assert history["c"] == [150.0, 151.0]
    assert chat_status == 404  # no chat bridge standalone: the fanout serves chat
    assert await datafeed.terminate() == 0
    assert datafeed.sent[-1] == "STOPPING=1", datafeed.sent
    assert "datafeed ready on http://127.0.0.1:" in datafeed.text
    assert "no chat" in datafeed.text
