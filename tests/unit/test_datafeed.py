"""The chart datafeed: UDF endpoints, the live bar stream, the chat bridge and the page.

Every test runs a real ``Datafeed`` on a free loopback port over the SQLite bar store, and
talks to it with an aiohttp client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fanout.chat import ChatService
from fanout.chat_port import ServiceChatPort
from mdfeed.kernel.bus import MemoryBus
from mdfeed.kernel.config import BusConfig, ChatConfig, DatafeedConfig
from ohlcv.datafeed import RESOLUTIONS_UDF, BarHub, Datafeed, bar_json
from proto import mdfeed_pb2 as pb
from storage import SqliteBarStore, SqliteChatStore, StoreUnavailableError

S = 1_000_000_000
T0 = 1_700_000_000  # a minute boundary, in seconds
CONFIG = DatafeedConfig(http_host="127.0.0.1", http_port=0)


def bar(
    t_s: int,
    close: float = 100.0,
    *,
    symbol: str = "AAPL",
    resolution: pb.Resolution.ValueType = pb.RESOLUTION_1M,
    final: bool = True,
) -> pb.Bar:
    e8 = round(close * 1e8)
    return pb.Bar(
        symbol=symbol,
        resolution=resolution,
        open_time_ns=t_s * S,
        open_px_e8=e8 - 25_000_000,
        high_px_e8=e8 + 50_000_000,
        low_px_e8=e8 - 75_000_000,
        close_px_e8=e8,
        volume_e8=1_234_500_000_000,
        trade_count=7,
        final=final,
    )


class BrokenBarStore(SqliteBarStore):
    async def history(self, *args: Any, **kwargs: Any) -> list[pb.Bar]:
        raise StoreUnavailableError("sqlite: disk on fire")


@asynccontextmanager
async def running(
    tmp_path: Path,
    bars: Sequence[pb.Bar] = (),
    *,
    symbols: Sequence[str] = ("AAPL", "MSFT"),
    chat: ChatService | None = None,
    web_root: Path | None = None,
    heartbeat_s: float = 15.0,
    store_class: type[SqliteBarStore] = SqliteBarStore,
) -> AsyncIterator[tuple[Datafeed, aiohttp.ClientSession]]:
    async with store_class(tmp_path / "bars.sqlite3") as store:
        await store.upsert(list(bars))
        feed = Datafeed(
            CONFIG,
            store,
            chat=ServiceChatPort(chat) if chat is not None else None,
            symbols=symbols,
            session_timezone="America/New_York",
            web_root=web_root,
            heartbeat_s=heartbeat_s,
            clock_ns=lambda: T0 * S + 123_456_789,
        )
        async with feed:
            base = f"http://127.0.0.1:{feed.port}"
            async with aiohttp.ClientSession(base) as http:
                yield feed, http


@asynccontextmanager
async def chat_service(
    tmp_path: Path, config: ChatConfig | None = None
) -> AsyncIterator[ChatService]:
    bus = MemoryBus(dataclasses.replace(BusConfig(kind="memory"), tick_partitions=2))
    async with (
        bus,
        SqliteChatStore(tmp_path / "chat.sqlite3") as store,
        ChatService(store, bus, config or ChatConfig()) as chat,
    ):
        yield chat


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def sse_events(response: aiohttp.ClientResponse, count: int) -> list[dict[str, str]]:
    """The next ``count`` SSE events (comments included as {"comment": ...})."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(10):
        while len(events) < count:
            line = (await response.content.readline()).decode()
            if not line:
                raise AssertionError(f"stream ended after {events}")
            line = line.rstrip("\n")
            if line.startswith(":"):
                events.append({"comment": line[1:].strip()})
            elif line == "":
                if fields:
                    events.append(fields)
                    fields = {}
            else:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    return events


# -- UDF ------------------------------------------------------------------------------


async def test_config_is_the_udf_configuration(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, http):
        status, body = await get_json(http, "/config")
    assert status == 200
    assert body == {
        "supported_resolutions": ["1S", "1", "5", "15", "60", "1D"],
        "supports_search": True,
        "supports_group_request": False,
        "supports_marks": False,
        "supports_timescale_marks": False,
        "supports_time": True,
        "exchanges": [{"value": "mdfeed", "name": "mdfeed", "desc": "mdfeed"}],
        "symbols_types": [{"name": "stock", "value": "stock"}],
    }


async def test_symbols_describes_a_configured_or_stored_symbol(tmp_path: Path) -> None:
    async with running(tmp_path, [bar(T0, symbol="TSLA")]) as (_, http):
        status, body = await get_json(http, "/symbols?symbol=AAPL")
        assert status == 200
        assert body == {
            "name": "AAPL",
            "ticker": "AAPL",
            "description": "AAPL",
            "type": "stock",
            "exchange": "mdfeed",
            "listed_exchange": "mdfeed",
            "session": "24x7",
            "timezone": "America/New_York",
            "minmov": 1,
            "pricescale": 100,
            "has_intraday": True,
            "has_seconds": True,
            "seconds_multipliers": ["1"],
            "intraday_multipliers": ["1", "5", "15", "60"],
            "has_daily": True,
            "daily_multipliers": ["1"],
            "has_weekly_and_monthly": False,
            "supported_resolutions": ["1S", "1", "5", "15", "60", "1D"],
            "volume_precision": 8,
            "data_status": "streaming",
        }
        status, body = await get_json(http, "/symbols?symbol=TSLA")
        assert (status, body["ticker"]) == (200, "TSLA")
        assert await get_json(http, "/symbols?symbol=NOPE") == (
            400,
            {"s": "error", "errmsg": "symbol: unknown symbol 'NOPE'"},
        )
        assert await get_json(http, "/symbols") == (
            400,
            {"s": "error", "errmsg": "symbol: missing"},
        )


async def test_search_matches_substrings_prefix_first_and_filters(tmp_path: Path) -> None:
    symbols = ("AAPL", "MSFT", "PAAS", "AMZN")
    async with running(tmp_path, [bar(T0, symbol="AAL")], symbols=symbols) as (_, http):
        status, body = await get_json(http, "/search?query=aa&limit=10&type=&exchange=")
        assert status == 200
        assert [s["symbol"] for s in body] == ["AAL", "AAPL", "PAAS"]
        assert body[0] == {
            "symbol": "AAL",
            "full_name": "AAL",
            "description": "AAL",
            "exchange": "mdfeed",
            "ticker": "AAL",
            "type": "stock",
        }
        _, body = await get_json(http, "/search?query=&limit=2")
        assert [s["symbol"] for s in body] == ["AAL", "AAPL"]
        _, body = await get_json(http, "/search?query=a&type=stock&exchange=MDFEED")
        assert [s["symbol"] for s in body] == ["AAL", "AAPL", "AMZN", "PAAS"]
        assert await get_json(http, "/search?query=a&type=crypto") == (200, [])
        assert await get_json(http, "/search?query=a&exchange=NYSE") == (200, [])
        assert await get_json(http, "/search?query=a&limit=many") == (
            400,
            {"s": "error", "errmsg": "limit: 'many' is not an integer"},
        )
        assert await get_json(http, "/search?query=a&limit=0") == (
            400,
            {"s": "error", "errmsg": "limit: 0 is not from 1 to 1000"},
        )


async def test_time_is_plain_unix_seconds(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, http), http.get("/time") as response:
        assert response.status == 200
        assert await response.text() == str(T0)


async def test_history_serves_the_range_from_inclusive_to_exclusive(tmp_path: Path) -> None:
    bars = [bar(T0 + 60 * i, 100.0 + i) for i in range(5)]
    bars.append(bar(T0 + 120, 555.0, symbol="MSFT"))  # another symbol stays out
    async with running(tmp_path, bars) as (_, http):
        status, body = await get_json(
            http, f"/history?symbol=AAPL&resolution=1&from={T0 + 60}&to={T0 + 240}"
        )
    assert status == 200
    assert body == {
        "s": "ok",
        "t": [T0 + 60, T0 + 120, T0 + 180],
        "o": [100.75, 101.75, 102.75],
        "h": [101.5, 102.5, 103.5],
        "l": [100.25, 101.25, 102.25],
        "c": [101.0, 102.0, 103.0],
        "v": [12345.0, 12345.0, 12345.0],
    }


async def test_history_countback_is_the_last_bars_before_to(tmp_path: Path) -> None:
    bars = [bar(T0 + 60 * i, 100.0 + i) for i in range(5)]
    async with running(tmp_path, bars) as (_, http):
        # from is ignored with countback, even past to.
        status, body = await get_json(
            http,
            f"/history?symbol=AAPL&resolution=1&from={T0 + 10_000}&to={T0 + 240}&countback=2",
        )
        assert status == 200
        assert body["t"] == [T0 + 120, T0 + 180]
        assert body["c"] == [102.0, 103.0]
        assert await get_json(
            http, f"/history?symbol=AAPL&resolution=1&from=0&to={T0}&countback=3"
        ) == (200, {"s": "no_data"})


async def test_history_no_data_names_the_last_bar_before_from(tmp_path: Path) -> None:
    bars = [bar(T0, 100.0), bar(T0 + 60, 101.0)]
    async with running(tmp_path, bars) as (_, http):
        after_all = f"/history?symbol=AAPL&resolution=1&from={T0 + 600}&to={T0 + 900}"
        assert await get_json(http, after_all) == (200, {"s": "no_data", "nextTime": T0 + 60})
        before_all = f"/history?symbol=AAPL&resolution=1&from={T0 - 900}&to={T0 - 600}"
        assert await get_json(http, before_all) == (200, {"s": "no_data"})
        # A configured symbol without any bar yet.
        msft = f"/history?symbol=MSFT&resolution=1&from={T0}&to={T0 + 60}"
        assert await get_json(http, msft) == (200, {"s": "no_data"})


@pytest.mark.parametrize(
    ("query", "errmsg"),
    [
        ("symbol=NOPE&resolution=1&from=0&to=1", "symbol: unknown symbol 'NOPE'"),
        ("resolution=1&from=0&to=1", "symbol: missing"),
        (
            "symbol=AAPL&resolution=2&from=0&to=1",
            "resolution: '2' is not one of 1S, 1, 5, 15, 60, 1D",
        ),
        ("symbol=AAPL&from=0&to=1", "resolution: missing"),
        ("symbol=AAPL&resolution=1&from=5&to=1", "from: 5 is after to 1"),
        ("symbol=AAPL&resolution=1&from=1.5&to=9", "from: '1.5' is not an integer"),
        ("symbol=AAPL&resolution=1&from=0&to=soon", "to: 'soon' is not an integer"),
        ("symbol=AAPL&resolution=1&to=9", "from: missing"),
        ("symbol=AAPL&resolution=1&from=0&to=9&countback=x", "countback: 'x' is not an integer"),
        (
            "symbol=AAPL&resolution=1&from=0&to=9&countback=-1",
            "countback: -1 is not from 0 to 2**31-1",
        ),
        (
            "symbol=AAPL&resolution=1&from=0&to=99999999999",
            "to: 99999999999 is out of range (Unix seconds)",
        ),
    ],
)
async def test_history_rejects_a_bad_parameter_by_name(
    tmp_path: Path, query: str, errmsg: str
) -> None:
    async with running(tmp_path, [bar(T0)]) as (_, http):
        assert await get_json(http, f"/history?{query}") == (
            400,
            {"s": "error", "errmsg": errmsg},
        )


async def test_history_says_when_the_store_is_unavailable(tmp_path: Path) -> None:
    async with running(tmp_path, store_class=BrokenBarStore) as (_, http):
        status, body = await get_json(http, "/history?symbol=AAPL&resolution=1&from=0&to=9")
    assert status == 503
    assert body == {"s": "error", "errmsg": "bar store unavailable: sqlite: disk on fire"}


async def test_each_udf_resolution_reads_its_own_bars(tmp_path: Path) -> None:
    expected = {
        "1S": pb.RESOLUTION_1S,
        "1": pb.RESOLUTION_1M,
        "5": pb.RESOLUTION_5M,
        "15": pb.RESOLUTION_15M,
        "60": pb.RESOLUTION_1H,
        "1D": pb.RESOLUTION_1D,
    }
    assert expected == RESOLUTIONS_UDF
    # One bar per resolution, its close telling which.
    bars = [bar(T0, float(res), resolution=res) for res in expected.values()]
    async with running(tmp_path, bars) as (_, http):
        for text, res in [*expected.items(), ("D", pb.RESOLUTION_1D)]:
            _, body = await get_json(
                http, f"/history?symbol=AAPL&resolution={text}&from={T0}&to={T0 + 1}"
            )
            assert body["c"] == [float(res)], text


# -- live bars ------------------------------------------------------------------------


def test_bar_json_is_seconds_and_float_prices() -> None:
    assert bar_json(bar(T0, 12.34, final=False)) == {
        "time": T0,
        "open": 12.09,
        "high": 12.84,
        "low": 11.59,
        "close": 12.34,
        "volume": 12345.0,
        "final": False,
    }


def test_a_bars_stream_event_is_encoded_once_for_all_readers() -> None:
    hub = BarHub()
    first = bar(T0, 1.0)
    event = hub.event(first)
    assert event.startswith(b"event: bar\ndata: {")
    assert event.endswith(b"\n\n")
    assert json.loads(event.split(b"data: ", 1)[1]) == bar_json(first)
    assert hub.event(first) is event  # the same bar again: the same bytes
    revised = bar(T0, 2.0)
    assert hub.event(revised) != event  # a new revision is encoded anew


async def test_a_subscription_never_goes_back_in_time_and_stays_bounded() -> None:
    hub = BarHub()
    sub = hub.subscribe("AAPL", pb.RESOLUTION_1M)
    hub.publish(bar(T0 + 60, 1.0))
    first = await sub.next()
    assert first is not None
    assert first.open_time_ns == (T0 + 60) * S
    hub.publish(bar(T0, 2.0))  # older than what was sent: dropped
    hub.publish(bar(T0 + 60, 3.0))  # a revision of the sent bar: kept
    for i in range(1000):  # a slow reader: revisions of the next bars pile up
        hub.publish(bar(T0 + 120 + 60 * (i // 100), 10.0 + i))
        assert sub.pending <= 2
    hub.publish(bar(T0 + 60, 4.0))  # older than pending bars but not than the last sent
    got = []
    while sub.pending:
        item = await sub.next()
        assert item is not None
        got.append((item.open_time_ns // S - T0, item.close_px_e8 / 1e8))
    # Only the latest version of each of the two newest bars is left.
    assert got == [(600, 909.0), (660, 1009.0)]
    assert sub.dropped_old == 1
    # 990 revisions replaced in place, 9 older bars evicted (T0+60..T0+540), and the late
    # T0+60 revision older than both slots.
    assert sub.conflated == 990 + 9 + 1
    sub.close()
    sub.close()
    assert await sub.next() is None
    assert hub.subscriber_count == 0


async def test_stream_starts_with_the_newest_bar_and_never_goes_back(tmp_path: Path) -> None:
    async with running(tmp_path) as (feed, http):
        feed.hub.publish(bar(T0 + 60, 50.0, final=False))
        feed.hub.publish(bar(T0, 40.0))  # older: not the series' newest
        feed.hub.publish(bar(T0 + 60, 51.0, symbol="MSFT"))  # another series
        async with http.get("/stream?symbol=AAPL&resolution=1") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
            first = await sse_events(response, 2)
            assert first[0] == {"retry": "2000"}
            assert first[1]["event"] == "bar"
            assert json.loads(first[1]["data"])["close"] == 50.0
            feed.hub.publish(bar(T0, 41.0))  # older than sent: dropped
            feed.hub.publish(bar(T0 + 60, 52.0))  # the revision: sent
            feed.hub.publish(bar(T0 + 120, 53.0, final=False))
            events = await sse_events(response, 2)
            sent = [json.loads(e["data"]) for e in events]
            assert [(s["time"], s["close"], s["final"]) for s in sent] == [
                (T0 + 60, 52.0, True),
                (T0 + 120, 53.0, False),
            ]


async def test_stream_conflates_for_a_reader_that_does_not_keep_up(tmp_path: Path) -> None:
    async with (
        running(tmp_path) as (feed, http),
        http.get("/stream?symbol=AAPL&resolution=1S") as response,
    ):
        await sse_events(response, 1)  # retry: the handler is subscribed
        # 3000 updates while the stream cannot write (no await in between).
        for i in range(3000):
            feed.hub.publish(bar(T0 + i // 1000, 1.0 + i, resolution=pb.RESOLUTION_1S))
        feed.hub.publish(bar(T0 + 5, 99.0, resolution=pb.RESOLUTION_1S, final=True))
        events = await sse_events(response, 2)
        sent = [json.loads(e["data"]) for e in events]
        assert [(s["time"], s["close"]) for s in sent] == [(T0 + 2, 3000.0), (T0 + 5, 99.0)]
        assert feed.hub.published == 3001


async def test_stream_sends_heartbeats_and_rejects_bad_series(tmp_path: Path) -> None:
    async with running(tmp_path, heartbeat_s=0.05) as (_, http):
        async with http.get("/stream?symbol=AAPL&resolution=60") as response:
            events = await sse_events(response, 3)
            assert events[1:] == [{"comment": "heartbeat"}, {"comment": "heartbeat"}]
        assert await get_json(http, "/stream?symbol=AAPL&resolution=7") == (
            400,
            {"s": "error", "errmsg": "resolution: '7' is not one of 1S, 1, 5, 15, 60, 1D"},
        )
        assert await get_json(http, "/stream?symbol=ZZZ&resolution=1") == (
            400,
            {"s": "error", "errmsg": "symbol: unknown symbol 'ZZZ'"},
        )


async def test_stop_ends_open_streams(tmp_path: Path) -> None:
    async with chat_service(tmp_path) as chat, running(tmp_path, chat=chat) as (feed, http):
        bars = await http.get("/stream?symbol=AAPL&resolution=1")
        talk = await http.get("/chat/lobby/stream?after=0")
        await sse_events(bars, 1)
        await sse_events(talk, 1)
        await feed.stop()
        assert await bars.content.read() == b""  # ended cleanly by the server
        assert await talk.content.read() == b""
        assert feed.hub.subscriber_count == 0
        assert chat.membership_count == 0
        bars.release()
        talk.release()
        await feed.stop()  # safe twice


# -- chat bridge ----------------------------------------------------------------------


async def test_chat_round_trip_history_live_and_resume(tmp_path: Path) -> None:
    async with chat_service(tmp_path) as chat, running(tmp_path, chat=chat) as (_, http):
        async with http.post("/chat/lobby", json={"author": "alice", "text": "hello"}) as r:
            assert r.status == 200
            first = await r.json()
        assert first["seq"] == 1
        assert (first["room"], first["author"], first["text"]) == ("lobby", "alice", "hello")
        assert set(first) == {"room", "id", "seq", "author", "text", "time_ms"}
        async with http.get("/chat/lobby/stream") as stream:  # recent history, then live
            events = await sse_events(stream, 2)
            assert events[1]["id"] == "1"
            assert events[1]["event"] == "chat"
            assert json.loads(events[1]["data"]) == first
            async with http.post("/chat/lobby", json={"author": "bob", "text": "hi!"}) as r:
                assert r.status == 200
            (live,) = await sse_events(stream, 1)
            assert live["id"] == "2"
            assert json.loads(live["data"])["text"] == "hi!"
        # A browser reconnecting resumes after its Last-Event-ID.
        async with http.get("/chat/lobby/stream", headers={"Last-Event-ID": "1"}) as stream:
            events = await sse_events(stream, 2)
            assert json.loads(events[1]["data"])["seq"] == 2
        stored = await chat.store.history("lobby", 0, 10)
        assert [(m.author, m.text) for m in stored] == [("alice", "hello"), ("bob", "hi!")]


@pytest.mark.parametrize(
    ("room", "body", "status", "errmsg"),
    [
        ("lobby", {"author": "alice", "text": "  "}, 400, "text: empty message"),
        ("lobby", {"author": "alice", "text": "x" * 11}, 400, "text: 11 characters, at most 10"),
        ("-bad", {"author": "alice", "text": "hi"}, 400, "room: '-bad' is not a valid room name"),
        ("lobby", {"author": "a b", "text": "hi"}, 400, "author: 'a b' is not a valid name"),
        ("lobby", {"text": "hi"}, 400, "author: missing or not a string"),
        ("lobby", {"author": "alice", "text": 5}, 400, "text: missing or not a string"),
        ("lobby", ["alice", "hi"], 400, "body: expected a JSON object"),
        ("lobby", "not json", 400, "body: not JSON"),
    ],
)
async def test_chat_post_rejections_are_400_with_the_reason(
    tmp_path: Path, room: str, body: object, status: int, errmsg: str
) -> None:
    config = ChatConfig(max_text_chars=10)
    async with chat_service(tmp_path, config) as chat, running(tmp_path, chat=chat) as (_, http):
        payload = body if isinstance(body, str) else json.dumps(body)
        async with http.post(f"/chat/{room}", data=payload) as response:
            assert response.status == status
            answer = await response.json()
        assert answer["s"] == "error"
        assert answer["errmsg"].startswith(errmsg)
        assert await chat.store.last_seq("lobby") == 0


async def test_chat_rate_limit_is_429_and_bad_resume_400(tmp_path: Path) -> None:
    config = ChatConfig(rate_per_user_hz=0.001, rate_burst=1)
    async with chat_service(tmp_path, config) as chat, running(tmp_path, chat=chat) as (_, http):
        async with http.post("/chat/lobby", json={"author": "al", "text": "1"}) as response:
            assert response.status == 200
        async with http.post("/chat/lobby", json={"author": "al", "text": "2"}) as response:
            assert response.status == 429
            assert (await response.json())["errmsg"].startswith("rate limit: at most")
        assert await get_json(http, "/chat/lobby/stream?after=-3") == (
            400,
            {"s": "error", "errmsg": "after: -3 is negative"},
        )
        assert await get_json(http, "/chat/-x/stream?after=0") == (
            400,
            {
                "s": "error",
                "errmsg": "room: '-x' is not a valid room name (letters, digits and "
                "_ . : = ^ -, at most 64, starting with a letter or digit)",
            },
        )


async def test_a_chat_reader_that_falls_behind_is_cut_off_not_conflated(tmp_path: Path) -> None:
    async with chat_service(tmp_path, ChatConfig(client_queue_max=2)) as chat:
        port = ServiceChatPort(chat)
        first = await port.post("alice", "lobby", "one")
        reader = await port.subscribe("lobby", 0)
        assert await reader.next() == first  # caught up from the store
        later = [
            pb.ChatMessage(room="lobby", id=f"m{seq}", seq=seq, author="bob", text=str(seq))
            for seq in (2, 3, 4)
        ]
        for message in later:  # live, faster than the reader takes them
            chat.on_message(message)
        # The third did not fit: the reader is closed (it resumes after its last seq, 1).
        assert await reader.next() is None
        assert chat.membership_count == 0


async def test_chat_without_a_chat_service_is_404(tmp_path: Path) -> None:
    async with running(tmp_path) as (_, http):
        expected = (404, {"s": "error", "errmsg": "chat is not enabled on this datafeed"})
        assert await get_json(http, "/chat/lobby/stream") == expected
        async with http.post("/chat/lobby", json={"author": "a", "text": "b"}) as response:
            assert (response.status, await response.json()) == expected


# -- the page -------------------------------------------------------------------------


def fake_web(root: Path, *, with_library: bool) -> Path:
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>mdfeed</title>")
    (root / "app.js").write_text("export {};")
    (root / "style.css").write_text("body {}")
    (root / "package.json").write_text("{}")
    if with_library:
        dist = root / "node_modules/lightweight-charts/dist"
        dist.mkdir(parents=True)
        (dist / "lightweight-charts.standalone.production.js").write_text("var LightweightCharts;")
    return root


async def test_page_and_assets_are_served(tmp_path: Path) -> None:
    web = fake_web(tmp_path / "web", with_library=True)
    async with running(tmp_path, web_root=web) as (_, http):
        for path, content_type, text in [
            ("/", "text/html", "<!doctype html><title>mdfeed</title>"),
            ("/static/app.js", "text/javascript", "export {};"),
            ("/static/style.css", "text/css", "body {}"),
            ("/static/lightweight-charts.js", "text/javascript", "var LightweightCharts;"),
        ]:
            async with http.get(path) as response:
                assert response.status == 200, path
                assert response.headers["Content-Type"].startswith(content_type), path
                assert await response.text() == text
        for path in ("/static/package.json", "/static/..%2Fpackage.json", "/static/nope.js"):
            async with http.get(path) as response:
                assert response.status == 404, path


async def test_missing_chart_library_is_logged_and_served_as_a_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    web = fake_web(tmp_path / "web", with_library=False)
    with caplog.at_level(logging.WARNING, logger="ohlcv.datafeed"):
        async with running(tmp_path, web_root=web) as (_, http):
            async with http.get("/") as response:
                assert response.status == 200
            async with http.get("/static/lightweight-charts.js") as response:
                assert response.status == 404
                assert "npm ci --prefix web" in await response.text()
    assert any("npm ci --prefix" in r.getMessage() for r in caplog.records)


def test_the_repository_page_refers_to_what_the_datafeed_serves() -> None:
    web = Path(__file__).resolve().parents[2] / "web"
    html = (web / "index.html").read_text()
    for asset in ("/static/style.css", "/static/lightweight-charts.js", "/static/app.js"):
        assert asset in html
    lock = json.loads((web / "package-lock.json").read_text())
    package = json.loads((web / "package.json").read_text())
    version = package["dependencies"]["lightweight-charts"]
    assert version[0].isdigit()  # pinned exactly
    assert lock["packages"]["node_modules/lightweight-charts"]["version"] == version
