"""The chart page in a real browser: history drawn, a live bar arriving, chat both ways.

Runs a Datafeed (SQLite bars, a ChatService on the in-process bus) on a free port and
drives the page with ``chart_page.mjs`` (playwright-core, headless Chromium). It needs
Chromium at /usr/bin/chromium (apt ``chromium``), Node.js 20 and ``npm ci --prefix web``;
it fails, naming what to install, when one is missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from polling import until

from fanout.chat import ChatService
from fanout.chat_port import ServiceChatPort
from mdfeed.kernel.bus import MemoryBus
from mdfeed.kernel.config import BusConfig, ChatConfig, DatafeedConfig
from mdfeed.kernel.entitlements import ANONYMOUS
from mdfeed.stack.scratch import free_port
from ohlcv.datafeed import Datafeed
from proto import mdfeed_pb2 as pb
from storage import SqliteBarStore, SqliteChatStore

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SCRIPT = Path(__file__).with_name("chart_page.mjs")
CHROMIUM = Path("/usr/bin/chromium")
S = 1_000_000_000
HISTORY_BARS = 40
LIVE_CLOSE = 123.45


def require_tools() -> str:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    node = shutil.which("node")
    if node is None:
        missing.append("Node.js 20 (`node` on PATH)")
    for package in ("lightweight-charts", "playwright-core"):
        if not (WEB / "node_modules" / package).is_dir():
            missing.append(f"web/node_modules/{package} (npm ci --prefix web)")
    if missing or node is None:
        pytest.fail("the chart page test needs: " + "; ".join(missing), pytrace=False)
    return node


def minute_bar(t_s: int, close: float, *, final: bool = True) -> pb.Bar:
    e8 = round(close * 1e8)
    return pb.Bar(
        symbol="AAPL",
        resolution=pb.RESOLUTION_1M,
        open_time_ns=t_s * S,
        open_px_e8=e8 - 30_000_000,
        high_px_e8=e8 + 60_000_000,
        low_px_e8=e8 - 80_000_000,
        close_px_e8=e8,
        volume_e8=(1000 + t_s % 500) * 100_000_000,
        trade_count=3,
        final=final,
    )


@asynccontextmanager
async def running(tmp_path: Path, web_root: Path = WEB) -> AsyncIterator[tuple[Datafeed, int]]:
    """A datafeed with minute bars of AAPL and one chat message; yields it and ``now_min``."""
    now_min = int(time.time()) // 60 * 60
    first = now_min - 60 * HISTORY_BARS
    history = [
        minute_bar(first + 60 * i, 100.0 + (i % 7) - (i % 3) * 0.5) for i in range(HISTORY_BARS)
    ]
    bus = MemoryBus(dataclasses.replace(BusConfig(kind="memory"), tick_partitions=1))
    async with (
        bus,
        SqliteChatStore(tmp_path / "chat.sqlite3") as chat_store,
        ChatService(chat_store, bus, ChatConfig()) as chat,
        SqliteBarStore(tmp_path / "bars.sqlite3") as bars,
    ):
        await bars.upsert(history)
        await chat.post(ANONYMOUS, "lobby", "welcome to the lobby")
        feed = Datafeed(
            DatafeedConfig(http_host="127.0.0.1", http_port=free_port()),
            bars,
            chat=ServiceChatPort(chat),
            symbols=("AAPL", "MSFT"),
            session_timezone="America/New_York",
            web_root=web_root,
        )
        async with feed:
            yield feed, now_min


async def start_page(node: str, feed: Datafeed, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        f"http://127.0.0.1:{feed.port}/",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish_page(browser: asyncio.subprocess.Process) -> dict[str, Any]:
    try:
        async with asyncio.timeout(50):
            out, err = await browser.communicate()
    finally:
        if browser.returncode is None:
            browser.kill()
            await browser.wait()
    assert browser.returncode == 0, err.decode()
    seen: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return seen


async def test_chart_page_draws_history_live_bars_and_chat(tmp_path: Path) -> None:
    node = require_tools()
    text = f"hello from the page {time.time_ns()}"
    async with running(tmp_path) as (feed, now_min):
        browser = await start_page(node, feed, str(HISTORY_BARS), str(LIVE_CLOSE), text)
        # The page subscribes to /stream once its history is drawn.
        await until(
            lambda: feed.hub.subscriber_count > 0 or browser.returncode is not None,
            timeout_s=50,
            interval_s=0.05,
            what="the page to subscribe to /stream",
        )
        feed.hub.publish(minute_bar(now_min, LIVE_CLOSE, final=False))
        seen = await finish_page(browser)
    assert seen["loaded"] == HISTORY_BARS
    assert seen["symbol"] == "AAPL"
    assert seen["options"] == ["AAPL", "MSFT"]
    assert seen["lastShown"] == "123.45"
    assert seen["notice"] == ""
    assert seen["chat"] == [
        {"seq": 1, "author": "anonymous", "text": "welcome to the lobby"},
        {"seq": 2, "author": "e2e-user", "text": text},
    ]
    # The post from the page is in the store (read back from the file, the service gone).
    async with SqliteChatStore(tmp_path / "chat.sqlite3") as reopened:
        stored = [(m.seq, m.author, m.text) for m in await reopened.history("lobby", 0, 10)]
    assert stored == [(1, "anonymous", "welcome to the lobby"), (2, "e2e-user", text)]


async def test_chart_page_without_the_chart_library_says_what_to_run(tmp_path: Path) -> None:
    node = require_tools()
    web = tmp_path / "web"
    web.mkdir()
    for name in ("index.html", "app.js", "style.css"):
        shutil.copy(WEB / name, web / name)
    async with running(tmp_path, web_root=web) as (feed, _):
        seen = await finish_page(await start_page(node, feed, "--without-library"))
    assert seen == {
        "notice": "The chart library is missing on the server: run npm ci --prefix web in the "
        "mdfeed checkout, then reload. Chat still works.",
        "error": "chart library missing",
    }
