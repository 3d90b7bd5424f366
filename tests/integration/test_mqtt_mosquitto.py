"""The MQTT bridge against a real Mosquitto: the shared stack's (anonymous, 127.0.0.1:1883)
and, for the ACL, a scratch Mosquitto of the test's own with the generated password and
ACL files.

Each test runs under its own topic prefix and client ids (``unique_name``) and wipes what
it leaves in the shared broker: retained values and persistent sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import itertools
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypedDict, TypeVarTuple, Unpack

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from fanout.transports.mqtt_acl import write_mosquitto_files
from fanout.transports.mqtt_bridge import MqttBridge
from mdfeed.kernel.config import MdfeedConfig, MqttConfig
from mdfeed.kernel.entitlements import Entitlements, User
from mdfeed.stack.scratch import free_port
from proto import mdfeed_pb2 as pb

MOSQUITTO = Path("/usr/sbin/mosquitto")
WAIT_S = 10.0  # turns a hang into a failure; never a speed assertion
_ids = itertools.count()
Ts = TypeVarTuple("Ts")


class ProbeOptions(TypedDict, total=False):
    """What a test may set on a Probe beyond its port and client id."""

    username: str
    password: str
    clean_start: bool
    session_expiry_s: int


class Probe:
    """An MQTT 5 paho client whose callbacks land on the test's event loop."""

    def __init__(
        self,
        port: int,
        client_id: str,
        *,
        username: str = "",
        password: str = "",
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.port = port
        self.messages: asyncio.Queue[mqtt.MQTTMessage] = asyncio.Queue()
        self.connack: asyncio.Future[tuple[ReasonCode, bool]] = self._loop.create_future()
        self._acks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self.clean_start = clean_start
        self.session_expiry_s = session_expiry_s
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if username:
            client.username_pw_set(username, password)
        client.on_connect = self._on_connect
        client.on_message = lambda _c, _u, m: self._soon(self.messages.put_nowait, m)
        client.on_subscribe = lambda _c, _u, mid, codes, _p: self._soon(self._ack, mid, codes)
        client.on_publish = lambda _c, _u, mid, code, _p: self._soon(self._ack, mid, [code])
        self.client = client

    def _soon(self, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_connect(
        self, _c: object, _u: object, flags: mqtt.ConnectFlags, code: ReasonCode, _p: object
    ) -> None:
        def settle() -> None:
            if not self.connack.done():
                self.connack.set_result((code, flags.session_present))

        self._soon(settle)

    def _ack(self, mid: int, codes: list[ReasonCode]) -> None:
        future = self._acks.setdefault(mid, self._loop.create_future())
        if not future.done():
            future.set_result(codes)

    async def _acked(self, mid: int) -> list[ReasonCode]:
        async with asyncio.timeout(WAIT_S):
            return await self._acks.setdefault(mid, self._loop.create_future())

    async def connect(self) -> tuple[ReasonCode, bool]:
        """The CONNACK: reason code and session-present flag."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.session_expiry_s
        self.client.connect(
            "127.0.0.1", self.port, clean_start=self.clean_start, properties=properties
        )
        self.client.loop_start()
        async with asyncio.timeout(WAIT_S):
            return await self.connack

    async def subscribe(self, topic: str, qos: int = 1) -> ReasonCode:
        _, mid = self.client.subscribe(topic, qos)
        assert mid is not None, "paho sent no SUBSCRIBE"
        return (await self._acked(mid))[0]

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> ReasonCode:
        info = self.client.publish(topic, payload, qos=qos)
        return (await self._acked(info.mid))[0]

    async def get(self) -> mqtt.MQTTMessage:
        async with asyncio.timeout(WAIT_S):
            return await self.messages.get()

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


@contextlib.asynccontextmanager
async def connected(
    port: int, client_id: str, **options: Unpack[ProbeOptions]
) -> AsyncIterator[Probe]:
    probe = Probe(port, client_id, **options)
    code, _ = await probe.connect()
    try:
        assert not code.is_failure, f"{client_id}: CONNACK {code}"
        yield probe
    finally:
        await probe.close()


async def forget(port: int, client_id: str, retained: list[str]) -> None:
    """Drop a persistent session and retained topics from the shared broker."""
    async with connected(port, client_id) as probe:
        for topic in retained:
            await probe.publish(topic, b"", qos=1)


def retain_clear_topics(prefix: str, symbols: list[str]) -> list[str]:
    return [f"{prefix}/md/{symbol}" for symbol in symbols]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Posts:
    def __init__(self) -> None:
        self.seen: asyncio.Queue[tuple[str, str, str, str]] = asyncio.Queue()
        self.replies: list[pb.Error | None] = []

    async def __call__(self, username: str, room: str, text: str, ref: str) -> pb.Error | None:
        self.seen.put_nowait((username, room, text, ref))
        return self.replies.pop(0) if self.replies else None

    async def get(self) -> tuple[str, str, str, str]:
        async with asyncio.timeout(WAIT_S):
            return await self.seen.get()


@contextlib.asynccontextmanager
async def bridge_running(bridge: MqttBridge) -> AsyncIterator[MqttBridge]:
    async with bridge:
        async with asyncio.timeout(WAIT_S):
            await bridge.wait_ready()
        yield bridge


def tick(symbol: str, seq: int) -> bytes:
    return pb.Tick(symbol=symbol, seq=seq, ask_px_e8=seq).SerializeToString()


@pytest.fixture
def mqtt_config(stack_config: MdfeedConfig, unique_name: str) -> MqttConfig:
    return dataclasses.replace(
        stack_config.mqtt, topic_prefix=unique_name, client_id=f"{unique_name}-bridge"
    )


# -- the shared Mosquitto ---------------------------------------------------------------


async def test_quotes_are_retained_and_rate_capped(mqtt_config: MqttConfig) -> None:
    prefix, port = mqtt_config.topic_prefix, mqtt_config.port
    clock = FakeClock()
    bridge = MqttBridge(mqtt_config, clock=clock)
    try:
        async with bridge_running(bridge), connected(port, f"{prefix}-sub") as sub:
            await sub.subscribe(f"{prefix}/md/#", qos=0)
            bridge.publish_tick("AAPL", 1, tick("AAPL", 1))
            assert pb.Tick.FromString(bytes((await sub.get()).payload)).seq == 1
            for seq in range(2, 21):
                bridge.publish_tick("AAPL", seq, tick("AAPL", seq))
            bridge.publish_tick("MSFT", 1, tick("MSFT", 1))
            assert (await sub.get()).topic == f"{prefix}/md/MSFT"
            assert bridge.stats.quotes_published == 2  # AAPL waits for its interval
            clock.now += 1.0 / mqtt_config.quote_max_rate_per_symbol_hz
            latest = await sub.get()
            assert (latest.topic, pb.Tick.FromString(bytes(latest.payload)).seq) == (
                f"{prefix}/md/AAPL",
                20,
            )
            async with connected(port, f"{prefix}-late") as late:
                await late.subscribe(f"{prefix}/md/AAPL", qos=0)
                retained = await late.get()
        assert retained.retain
        assert retained.payload == tick("AAPL", 20)
        assert (bridge.stats.quotes_published, bridge.stats.quotes_conflated) == (3, 18)
    finally:
        await forget(port, mqtt_config.client_id, retain_clear_topics(prefix, ["AAPL", "MSFT"]))


async def test_chat_reaches_a_persistent_subscriber_that_was_offline(
    mqtt_config: MqttConfig,
) -> None:
    prefix, port = mqtt_config.topic_prefix, mqtt_config.port
    phone = f"{prefix}-phone"
    messages = [
        pb.ChatMessage(room="lobby", id=f"m{i}", seq=i, author="bob", text=f"hi {i}")
        for i in (1, 2, 3)
    ]
    try:
        async with connected(port, phone, clean_start=False, session_expiry_s=300) as probe:
            await probe.subscribe(f"{prefix}/chat/lobby", qos=1)
        # The phone is offline now; the broker keeps its session.
        bridge = MqttBridge(mqtt_config)
        async with bridge_running(bridge):
            for message in messages:
                bridge.publish_chat(message)
        assert bridge.stats.chat_published == 3  # stop() waited for the PUBACKs

        probe = Probe(port, phone, clean_start=False, session_expiry_s=300)
        _, session_present = await probe.connect()
        try:
            got = [await probe.get() for _ in messages]
        finally:
            await probe.close()
        assert session_present
        assert [m.qos for m in got] == [1, 1, 1]
        assert [pb.ChatMessage.FromString(bytes(m.payload)) for m in got] == messages
    finally:
        await forget(port, phone, [])
        await forget(port, mqtt_config.client_id, [])


async def test_posts_round_trip(mqtt_config: MqttConfig) -> None:
    prefix, port = mqtt_config.topic_prefix, mqtt_config.port
    posts = Posts()
    refusal = pb.Error(code=8, message="slow down", ref="r2")
    posts.replies = [None, refusal]
    try:
        async with (
            bridge_running(MqttBridge(mqtt_config, on_post=posts)) as bridge,
            connected(port, f"{prefix}-alice") as alice,
        ):
            await alice.subscribe(f"{prefix}/errors/alice")
            await alice.subscribe(f"{prefix}/chat/lobby")
            first = pb.ChatPost(room="lobby", text="hello", client_ref="r1")
            await alice.publish(f"{prefix}/post/lobby/alice", first.SerializeToString())
            assert await posts.get() == ("alice", "lobby", "hello", "r1")
            # What the chat service does with an accepted post: publish it to the room.
            echo = pb.ChatMessage(room="lobby", seq=1, author="alice", text="hello")
            bridge.publish_chat(echo)
            assert pb.ChatMessage.FromString(bytes((await alice.get()).payload)) == echo

            second = pb.ChatPost(text="again", client_ref="r2")
            await alice.publish(f"{prefix}/post/lobby/alice", second.SerializeToString())
            assert await posts.get() == ("alice", "lobby", "again", "r2")
            error = await alice.get()
        assert error.topic == f"{prefix}/errors/alice"
        assert pb.Error.FromString(bytes(error.payload)) == refusal
    finally:
        await forget(port, mqtt_config.client_id, [])


# -- a scratch Mosquitto with the generated password and ACL files ----------------------

BRIDGE_LOGIN = ("mdfeed-fanout", "bridge-secret-1")
ALICE = User("alice", "alice-token-1", frozenset({"AAPL"}), frozenset({"lobby"}))
BOB = User("bob", "bob-token-22", frozenset({"*"}), frozenset({"lobby"}))


@dataclasses.dataclass(frozen=True)
class ScratchMosquitto:
    port: int
    log: Path


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"scratch mosquitto exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail(f"scratch mosquitto did not listen on {port}:\n{log.read_text()}")


@pytest.fixture
def scratch_mosquitto(tmp_path: Path, unique_name: str) -> Iterator[ScratchMosquitto]:
    port = free_port()
    config = MqttConfig(
        topic_prefix=unique_name, username=BRIDGE_LOGIN[0], password=BRIDGE_LOGIN[1]
    )
    files = write_mosquitto_files(
        tmp_path, Entitlements([ALICE, BOB], enabled=True), config, port=port
    )
    log = tmp_path / "mosquitto.log"
    conf = tmp_path / "scratch.conf"
    conf.write_text(
        files.conf_file.read_text()
        # Started as root Mosquitto would switch to user `mosquitto`, who cannot read tmp_path.
        + f"user {getpass.getuser()}\npersistence false\nlog_dest file {log}\nlog_type all\n"
    )
    log.touch()
    process = subprocess.Popen(
        [str(MOSQUITTO), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        _wait_listening(port, process, log)
        yield ScratchMosquitto(port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def acl_bridge_config(scratch: ScratchMosquitto, prefix: str) -> MqttConfig:
    return MqttConfig(
        kind="external",
        port=scratch.port,
        topic_prefix=prefix,
        username=BRIDGE_LOGIN[0],
        password=BRIDGE_LOGIN[1],
        client_id=f"{prefix}-bridge",
    )


async def test_acl_alice_reads_only_her_symbols(
    scratch_mosquitto: ScratchMosquitto, unique_name: str
) -> None:
    prefix = unique_name
    bridge = MqttBridge(acl_bridge_config(scratch_mosquitto, prefix))
    async with (
        bridge_running(bridge),
        connected(
            scratch_mosquitto.port, "alice-phone", username="alice", password=ALICE.token
        ) as alice,
    ):
        assert not (await alice.subscribe(f"{prefix}/md/AAPL", qos=0)).is_failure
        await alice.subscribe(f"{prefix}/md/TSLA", qos=0)  # refused, or granted but filtered
        # One flush publishes TSLA first: had it been delivered, it would arrive first.
        bridge.publish_tick("TSLA", 1, tick("TSLA", 1))
        bridge.publish_tick("AAPL", 1, tick("AAPL", 1))
        first = await alice.get()
        assert first.topic == f"{prefix}/md/AAPL"
        assert alice.messages.empty()
    assert bridge.stats.quotes_published == 2


async def test_acl_refuses_a_wrong_password(scratch_mosquitto: ScratchMosquitto) -> None:
    probe = Probe(scratch_mosquitto.port, "alice-bad", username="alice", password="not-her-token")
    code, _ = await probe.connect()
    await probe.close()
    assert code.is_failure
    assert code.getName() == "Not authorized"


async def test_acl_alice_posts_only_as_herself(
    scratch_mosquitto: ScratchMosquitto, unique_name: str
) -> None:
    prefix = unique_name
    posts = Posts()
    bridge = MqttBridge(acl_bridge_config(scratch_mosquitto, prefix), on_post=posts)
    async with (
        bridge_running(bridge),
        connected(
            scratch_mosquitto.port, "alice-phone", username="alice", password=ALICE.token
        ) as alice,
    ):
        forged = pb.ChatPost(room="lobby", text="I am bob", client_ref="f1")
        refused = await alice.publish(f"{prefix}/post/lobby/bob", forged.SerializeToString())
        assert refused.getName() == "Not authorized"  # MQTT 5 PUBACK reason code
        own = pb.ChatPost(room="lobby", text="I am alice", client_ref="a1")
        await alice.publish(f"{prefix}/post/lobby/alice", own.SerializeToString())
        # In order from one client: the forged post, had it passed, would come first.
        assert await posts.get() == ("alice", "lobby", "I am alice", "a1")
        assert posts.seen.empty()
    assert bridge.stats.posts_received == 1
