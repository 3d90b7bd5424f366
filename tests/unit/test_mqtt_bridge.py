"""The MQTT bridge against the embedded broker (amqtt on a free loopback port).

Test clients are plain paho clients; their callbacks hand messages to the test's event
loop. Every wait is on an event (a message, a callback); timeouts only turn a hang into a
failure. The quote rate cap runs on a frozen clock the test moves by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable
from typing import TypeVarTuple

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from fanout.transports.mqtt_bridge import MqttBridge
from fanout.transports.mqtt_broker import EmbeddedBroker, EmbeddedBrokerError
from fanout.transports.mqtt_topics import MqttTopics, resolution_level
from mdfeed.kernel.config import MqttConfig
from mdfeed.stack.scratch import free_port
from proto import mdfeed_pb2 as pb

PREFIX = "p1"
WAIT_S = 10.0  # turns a hang into a failure; never a speed assertion
_ids = itertools.count()
Ts = TypeVarTuple("Ts")


class Probe:
    """A paho client whose messages, SUBACKs and PUBACKs arrive on the test's event loop."""

    def __init__(self, port: int, name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self.messages: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._acks: dict[int, asyncio.Event] = {}
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{next(_ids)}")
        self.client.on_connect = lambda *_: self._soon(self._connected.set)
        self.client.on_message = lambda _c, _u, m: self._soon(self.messages.put_nowait, m)
        self.client.on_subscribe = lambda _c, _u, mid, *_: self._soon(self._ack, mid)
        self.client.on_publish = lambda _c, _u, mid, *_: self._soon(self._ack, mid)
        self.port = port

    def _soon(self, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        self._loop.call_soon_threadsafe(fn, *args)

    def _ack(self, mid: int) -> None:
        self._acks.setdefault(mid, asyncio.Event()).set()

    async def _acked(self, mid: int) -> None:
        async with asyncio.timeout(WAIT_S):
            await self._acks.setdefault(mid, asyncio.Event()).wait()

    async def connect(self) -> Probe:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        async with asyncio.timeout(WAIT_S):
            await self._connected.wait()
        return self

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        _, mid = self.client.subscribe(topic, qos)
        assert mid is not None, "paho sent no SUBSCRIBE"
        await self._acked(mid)

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        await self._acked(info.mid)

    async def get(self) -> mqtt.MQTTMessage:
        async with asyncio.timeout(WAIT_S):
            return await self.messages.get()

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Posts:
    """An ``on_post`` that records posts and answers with a preset Error (or None)."""

    def __init__(self) -> None:
        self.seen: asyncio.Queue[tuple[str, str, str, str]] = asyncio.Queue()
        self.reply: pb.Error | None = None

    async def __call__(self, username: str, room: str, text: str, ref: str) -> pb.Error | None:
        self.seen.put_nowait((username, room, text, ref))
        return self.reply

    async def get(self) -> tuple[str, str, str, str]:
        async with asyncio.timeout(WAIT_S):
            return await self.seen.get()


@pytest.fixture
async def port() -> AsyncIterator[int]:
    port = free_port()
    async with EmbeddedBroker("127.0.0.1", port):
        yield port


def config(port: int) -> MqttConfig:
    return MqttConfig(port=port, topic_prefix=PREFIX, client_id=f"bridge-{next(_ids)}")


@contextlib.asynccontextmanager
async def running(bridge: MqttBridge) -> AsyncIterator[MqttBridge]:
    async with bridge:
        async with asyncio.timeout(WAIT_S):
            await bridge.wait_ready()
        yield bridge


@contextlib.asynccontextmanager
async def probe(port: int, name: str) -> AsyncIterator[Probe]:
    p = await Probe(port, name).connect()
    try:
        yield p
    finally:
        await p.close()


def tick(symbol: str, seq: int) -> bytes:
    return pb.Tick(symbol=symbol, seq=seq, bid_px_e8=seq * 100).SerializeToString()


# -- quotes -----------------------------------------------------------------------------


async def test_retained_quote_is_the_exact_bytes_and_reaches_a_late_subscriber(port: int) -> None:
    # Not the canonical encoding (seq before symbol): a bridge that re-encoded would reorder.
    encoded = pb.Tick(seq=5).SerializeToString() + pb.Tick(symbol="AAPL").SerializeToString()
    assert pb.Tick.FromString(encoded).SerializeToString() != encoded
    async with running(MqttBridge(config(port))) as bridge, probe(port, "early") as early:
        await early.subscribe(f"{PREFIX}/md/#", qos=0)
        bridge.publish_tick("AAPL", 5, encoded)
        live = await early.get()
        assert (live.topic, live.payload) == (f"{PREFIX}/md/AAPL", encoded)
        async with probe(port, "late") as late:
            await late.subscribe(f"{PREFIX}/md/AAPL", qos=0)
            retained = await late.get()
    assert retained.retain
    assert retained.payload == encoded
    assert (bridge.stats.quotes_in, bridge.stats.quotes_published) == (1, 1)


async def test_a_burst_gives_one_publish_now_and_the_latest_after_the_interval(port: int) -> None:
    clock = FakeClock()
    bridge = MqttBridge(
        dataclasses.replace(config(port), quote_max_rate_per_symbol_hz=10.0), clock=clock
    )
    async with running(bridge), probe(port, "sub") as sub:
        await sub.subscribe(f"{PREFIX}/md/#", qos=0)
        bridge.publish_tick("AAPL", 1, tick("AAPL", 1))
        first = await sub.get()
        assert pb.Tick.FromString(bytes(first.payload)).seq == 1

        # Still inside AAPL's interval (the clock has not moved): ticks 2..50 wait, and
        # only the latest survives. MSFT, never published, goes out at once; its arrival
        # shows the flush ran after the AAPL burst without publishing AAPL.
        for seq in range(2, 51):
            bridge.publish_tick("AAPL", seq, tick("AAPL", seq))
        bridge.publish_tick("MSFT", 1, tick("MSFT", 1))
        msft = await sub.get()
        assert msft.topic == f"{PREFIX}/md/MSFT"
        assert bridge.stats.quotes_published == 2
        assert bridge.quotes_pending == 1

        clock.now += 0.1  # one interval at 10 Hz
        latest = await sub.get()
        assert latest.topic == f"{PREFIX}/md/AAPL"
        assert pb.Tick.FromString(bytes(latest.payload)).seq == 50
        assert sub.messages.empty()
    stats = bridge.stats
    assert (stats.quotes_in, stats.quotes_published, stats.quotes_conflated) == (51, 3, 48)


async def test_a_symbol_that_cannot_be_a_topic_level_is_counted_not_published(port: int) -> None:
    async with running(MqttBridge(config(port))) as bridge, probe(port, "sub") as sub:
        await sub.subscribe(f"{PREFIX}/md/#", qos=0)
        bridge.publish_tick("EUR/USD", 1, tick("EUR/USD", 1))
        bridge.publish_tick("AAPL", 1, tick("AAPL", 1))
        message = await sub.get()
    assert message.topic == f"{PREFIX}/md/AAPL"
    assert bridge.stats.quotes_unpublishable == 1


async def test_bar_is_retained_under_its_resolution(port: int) -> None:
    bar = pb.Bar(symbol="AAPL", resolution=pb.RESOLUTION_1M, open_px_e8=1, trade_count=3)
    async with running(MqttBridge(config(port))) as bridge:
        bridge.publish_bar(bar)
        with pytest.raises(ValueError, match="RESOLUTION_UNSPECIFIED"):
            bridge.publish_bar(pb.Bar(symbol="AAPL"))
        async with probe(port, "late") as late:
            await late.subscribe(f"{PREFIX}/bars/AAPL/1m", qos=0)
            message = await late.get()
    assert message.retain
    assert pb.Bar.FromString(bytes(message.payload)) == bar


# -- chat -------------------------------------------------------------------------------


async def test_chat_is_delivered_at_qos1_not_retained(port: int) -> None:
    msg = pb.ChatMessage(room="lobby", id="m1", seq=1, author="bob", text="hi", time_ns=7)
    bridge = MqttBridge(config(port))
    async with running(bridge), probe(port, "sub") as sub:
        await sub.subscribe(f"{PREFIX}/chat/lobby", qos=1)
        bridge.publish_chat(msg)
        message = await sub.get()
    assert (message.qos, message.retain) == (1, False)
    assert pb.ChatMessage.FromString(bytes(message.payload)) == msg
    # stop() waited for the broker's PUBACK.
    assert (bridge.stats.chat_published, bridge.chat_pending) == (1, 0)


class Cutter:
    """A TCP relay in front of the broker that can drop every connection and refuse new
    ones, as a broker outage looks to the bridge, while the broker keeps its sessions."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            await self.cut()

    async def cut(self) -> None:
        server, self._server = self._server, None
        assert server is not None
        server.close()
        for writer in list(self._writers):
            writer.close()
        await server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


async def test_an_outage_loses_no_chat_and_leaves_no_stale_retained_value(port: int) -> None:
    cutter = Cutter(port)
    await cutter.open()
    bridge = MqttBridge(dataclasses.replace(config(cutter.port), reconnect_interval_s=0.2))
    bar = pb.Bar(symbol="MSFT", resolution=pb.RESOLUTION_1H, close_px_e8=5)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(cutter.close)
        await stack.enter_async_context(running(bridge))
        sub = await stack.enter_async_context(probe(port, "sub"))
        await sub.subscribe(f"{PREFIX}/chat/lobby", qos=1)
        await sub.subscribe(f"{PREFIX}/md/#", qos=0)
        await sub.subscribe(f"{PREFIX}/bars/#", qos=0)
        bridge.publish_tick("MSFT", 1, tick("MSFT", 1))
        bridge.publish_bar(bar)
        before = {(await sub.get()).topic for _ in range(2)}
        assert before == {f"{PREFIX}/md/MSFT", f"{PREFIX}/bars/MSFT/1h"}

        await cutter.cut()
        async with asyncio.timeout(WAIT_S):
            await bridge.wait_disconnected()
        for seq in (1, 2, 3):
            bridge.publish_chat(pb.ChatMessage(room="lobby", seq=seq, text=f"m{seq}"))
        bridge.publish_tick("AAPL", 9, tick("AAPL", 9))
        assert bridge.chat_pending == 3
        assert bridge.stats.quotes_published == 1  # MSFT, before the cut

        await cutter.open()
        async with asyncio.timeout(WAIT_S):
            await bridge.wait_ready()
        got = [await sub.get() for _ in range(6)]
    chat = [pb.ChatMessage.FromString(bytes(m.payload)).seq for m in got if "/chat/" in m.topic]
    quotes = sorted(
        (m.topic, pb.Tick.FromString(bytes(m.payload)).seq) for m in got if "/md/" in m.topic
    )
    bars = [pb.Bar.FromString(bytes(m.payload)) for m in got if "/bars/" in m.topic]
    assert chat == [1, 2, 3]
    # AAPL waited for the broker; MSFT and the bar went out again in case they were lost.
    assert quotes == [(f"{PREFIX}/md/AAPL", 9), (f"{PREFIX}/md/MSFT", 1)]
    assert bars == [bar]
    assert bridge.stats.reconnects == 1


async def test_chat_beyond_the_pending_limit_is_dropped_and_counted(port: int) -> None:
    cutter = Cutter(port)
    await cutter.open()
    bridge = MqttBridge(config(cutter.port), max_pending_chat=2)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(cutter.close)
        await stack.enter_async_context(running(bridge))
        await cutter.cut()
        async with asyncio.timeout(WAIT_S):
            await bridge.wait_disconnected()
        for seq in (1, 2, 3):
            bridge.publish_chat(pb.ChatMessage(room="lobby", seq=seq))
        assert (bridge.chat_pending, bridge.stats.chat_dropped) == (2, 1)


async def test_publish_chat_before_start_is_an_error(port: int) -> None:
    with pytest.raises(RuntimeError, match="before start"):
        MqttBridge(config(port)).publish_chat(pb.ChatMessage(room="lobby"))


# -- posts ------------------------------------------------------------------------------


async def test_post_reaches_on_post_with_the_topic_username(port: int) -> None:
    posts = Posts()
    async with (
        running(MqttBridge(config(port), on_post=posts)) as bridge,
        probe(port, "alice") as alice,
    ):
        post = pb.ChatPost(room="lobby", text="hello", client_ref="r1")
        await alice.publish(f"{PREFIX}/post/lobby/alice", post.SerializeToString())
        assert await posts.get() == ("alice", "lobby", "hello", "r1")
        # The room field may be left empty: the topic names the room.
        bare = pb.ChatPost(text="again", client_ref="r2")
        await alice.publish(f"{PREFIX}/post/lobby/alice", bare.SerializeToString())
        assert await posts.get() == ("alice", "lobby", "again", "r2")
    stats = bridge.stats
    assert (stats.posts_received, stats.junk, stats.posts_rejected) == (2, 0, 0)


@pytest.mark.parametrize(
    ("topic", "payload", "ref", "reason"),
    [
        ("post/lobby/alice", b"\xff\xff\xff", "", "not an encoded ChatPost"),
        (
            "post/lobby/alice",
            pb.ChatPost(room="vip", text="x", client_ref="r9").SerializeToString(),
            "r9",
            "differs from the topic's room",
        ),
        ("post//alice", pb.ChatPost(text="x").SerializeToString(), "", "empty room"),
    ],
    ids=["undecodable", "room-mismatch", "empty-room"],
)
async def test_junk_is_counted_and_answered_on_the_authors_error_topic(
    port: int, topic: str, payload: bytes, ref: str, reason: str
) -> None:
    posts = Posts()
    async with (
        running(MqttBridge(config(port), on_post=posts)) as bridge,
        probe(port, "alice") as alice,
    ):
        await alice.subscribe(f"{PREFIX}/errors/alice")
        await alice.publish(f"{PREFIX}/{topic}", payload)
        error = pb.Error.FromString(bytes((await alice.get()).payload))
        # A good post after the junk: the first thing on_post sees.
        good = pb.ChatPost(room="lobby", text="ok").SerializeToString()
        await alice.publish(f"{PREFIX}/post/lobby/alice", good)
        assert await posts.get() == ("alice", "lobby", "ok", "")
    assert error.code == 3
    assert error.ref == ref
    assert reason in error.message
    assert (bridge.stats.junk, bridge.stats.posts_received) == (1, 2)


async def test_an_error_from_on_post_goes_to_the_author(port: int) -> None:
    posts = Posts()
    posts.reply = pb.Error(code=7, message="not a member of vip", ref="r5")
    async with (
        running(MqttBridge(config(port), on_post=posts)) as bridge,
        probe(port, "bob") as bob,
    ):
        await bob.subscribe(f"{PREFIX}/errors/bob")
        post = pb.ChatPost(room="vip", text="hi", client_ref="r5").SerializeToString()
        await bob.publish(f"{PREFIX}/post/vip/bob", post)
        error = pb.Error.FromString(bytes((await bob.get()).payload))
    assert error == posts.reply
    assert (bridge.stats.posts_rejected, bridge.stats.errors_published) == (1, 1)


async def test_without_on_post_a_post_is_answered_unimplemented(port: int) -> None:
    async with running(MqttBridge(config(port))), probe(port, "bob") as bob:
        await bob.subscribe(f"{PREFIX}/errors/bob")
        post = pb.ChatPost(text="hi", client_ref="r1").SerializeToString()
        await bob.publish(f"{PREFIX}/post/lobby/bob", post)
        error = pb.Error.FromString(bytes((await bob.get()).payload))
    assert (error.code, error.ref) == (12, "r1")


# -- lifecycle, topics, broker ----------------------------------------------------------


async def test_stop_is_safe_twice_and_before_start(port: int) -> None:
    bridge = MqttBridge(config(port))
    await bridge.stop()
    async with running(bridge):
        assert bridge.connected
    await bridge.stop()
    assert not bridge.connected


def test_topics_follow_the_layout() -> None:
    topics = MqttTopics("p1/eu")
    assert topics.md("AAPL") == "p1/eu/md/AAPL"
    assert topics.bars("AAPL", pb.RESOLUTION_15M) == "p1/eu/bars/AAPL/15m"
    assert topics.chat("lobby") == "p1/eu/chat/lobby"
    assert topics.post("lobby", "alice") == "p1/eu/post/lobby/alice"
    assert topics.errors("alice") == "p1/eu/errors/alice"
    assert topics.post_filter() == "p1/eu/post/+/+"
    assert topics.everything() == "p1/eu/#"
    assert topics.parse_post("p1/eu/post/lobby/alice") == ("lobby", "alice")
    assert topics.parse_post("p1/post/lobby/alice") is None
    assert MqttTopics().md("AAPL") == "md/AAPL"
    assert MqttTopics().parse_post("post/lobby/alice/x") is None
    assert MqttTopics().parse_post("post//alice") == ("", "alice")


def test_resolution_levels_cover_the_schema() -> None:
    levels = {
        name: resolution_level(value)
        for name, value in pb.Resolution.items()
        if value != pb.RESOLUTION_UNSPECIFIED
    }
    assert levels == {
        "RESOLUTION_1S": "1s",
        "RESOLUTION_1M": "1m",
        "RESOLUTION_5M": "5m",
        "RESOLUTION_15M": "15m",
        "RESOLUTION_1H": "1h",
        "RESOLUTION_1D": "1d",
    }
    with pytest.raises(ValueError, match=r"not a pb\.Resolution"):
        resolution_level(99)


@pytest.mark.parametrize("prefix", ["/p1", "p1/", "p1//x", "p+", "p#", "$SYS"])
def test_bad_topic_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match=r"mqtt\.topic_prefix"):
        MqttTopics(prefix)


async def test_embedded_broker_on_a_taken_port_says_so(port: int) -> None:
    with pytest.raises(EmbeddedBrokerError, match=f"127.0.0.1:{port}: the port is taken"):
        await EmbeddedBroker("127.0.0.1", port).start()


def test_embedded_broker_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        EmbeddedBroker("0.0.0.0", 1883)
