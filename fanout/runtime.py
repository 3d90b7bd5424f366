"""The fanout, assembled from config: ticks and chat to gRPC and MQTT clients.

``Fanout(config, bus)`` is an async context manager that starts, in order: the chat store
(SQLite or Cassandra, ``[store]``), the chat service on the bus's chat topic, the tick
fanout on the tick topic, the bar fanout on the bar topic and the bar store (GetBars), the
MQTT side (the embedded broker when ``mqtt.kind`` is
``embedded``, then the bridge to the broker) and the gRPC server with health, reflection
and optional TLS. It stops them in reverse. Entitlements come from ``[auth]``.

Used by ``mdfeed run`` (everything in one process) and ``mdfeed fanout`` (the fanout alone
against Kafka, for running several side by side).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from types import TracebackType
from typing import Self

from fanout.bars import BarFanout
from fanout.chat import ChatRejected, ChatService
from fanout.grpc_server import MarketDataServicer
from fanout.lane import TickLane
from fanout.mqtt import MqttBridge
from fanout.mqtt_broker import EmbeddedBroker
from fanout.server import GrpcServer
from fanout.service import TickFanout
from mdfeed.bus import Bus
from mdfeed.config import MdfeedConfig
from mdfeed.entitlements import ANONYMOUS, Entitlements, User, load_entitlements
from proto import mdfeed_pb2 as pb
from storage import BarStore, ChatStore, open_bar_store, open_chat_store

__all__ = ["Fanout"]


class _BridgeMember:
    """The MQTT bridge as a chat member of every room."""

    def __init__(self, bridge: MqttBridge) -> None:
        self._bridge = bridge

    def deliver_chat(self, message: pb.ChatMessage, frame: bytes) -> None:
        del frame
        self._bridge.publish_chat(message)


class Fanout:
    """Everything that faces clients; see the module docstring."""

    def __init__(
        self, config: MdfeedConfig, bus: Bus, *, entitlements: Entitlements | None = None
    ) -> None:
        self.config = config
        self._bus = bus
        self.entitlements = (
            entitlements if entitlements is not None else load_entitlements(config.auth)
        )
        self._stack = contextlib.AsyncExitStack()
        self.store: ChatStore | None = None
        self.chat: ChatService | None = None
        self.ticks: TickFanout | None = None
        self.broker: EmbeddedBroker | None = None
        self.bridge: MqttBridge | None = None
        self.grpc: GrpcServer | None = None
        self.bars: BarFanout | None = None
        self.bar_store: BarStore | None = None

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        config = self.config
        stack = self._stack
        self.store = await stack.enter_async_context(open_chat_store(config.store))
        self.chat = await stack.enter_async_context(
            ChatService(self.store, self._bus, config.chat, topic=config.bus.chat_topic)
        )
        fanout_config = config.fanout

        def lane() -> TickLane:
            return TickLane(
                max_pending_ticks=fanout_config.max_pending_ticks,
                max_pending_symbols=fanout_config.max_pending_symbols,
                max_stall_s=fanout_config.max_stall_s,
            )

        self.ticks = await stack.enter_async_context(
            TickFanout(
                self._bus,
                topic=config.bus.tick_topic,
                lane_factory=lane,
                max_batch_ticks=fanout_config.max_batch_ticks,
                max_pending_chat=config.chat.client_queue_max,
                hop_timestamps=fanout_config.hop_timestamps,
            )
        )
        self.bars = await stack.enter_async_context(
            BarFanout(self._bus, topic=config.bus.bar_topic)
        )
        self.bar_store = await stack.enter_async_context(open_bar_store(config.store, config.ohlcv))
        if config.mqtt.enabled:
            await self._start_mqtt(self.ticks, self.chat)
            assert self.bridge is not None
            self.bars.add_listener(self.bridge.publish_bar)
        servicer = MarketDataServicer(
            self.ticks,
            chat=self.chat,
            entitlements=self.entitlements,
            bars=self.bars,
            bar_store=self.bar_store,
        )
        server = GrpcServer(servicer, fanout_config)
        await server.start()
        stack.push_async_callback(server.stop)
        self.grpc = server

    async def _start_mqtt(self, ticks: TickFanout, chat: ChatService) -> None:
        mqtt = self.config.mqtt
        if not mqtt.client_id:
            client_id = f"mdfeed-fanout-{socket.gethostname()}-{self.config.fanout.grpc_port}"
            mqtt = dataclasses.replace(mqtt, client_id=client_id[:64])
        stack = self._stack
        if mqtt.kind == "embedded":
            self.broker = await stack.enter_async_context(EmbeddedBroker(mqtt.host, mqtt.port))
        self.bridge = await stack.enter_async_context(MqttBridge(mqtt, on_post=self._on_mqtt_post))
        ticks.add_listener(self.bridge.publish_tick)
        member = _BridgeMember(self.bridge)
        chat.join_all_rooms(member)
        stack.callback(chat.leave_all, member)

    async def _on_mqtt_post(
        self, username: str, room: str, text: str, client_ref: str
    ) -> pb.Error | None:
        chat = self.chat
        if chat is None:
            return pb.Error(code=14, message="chat is not running", ref=client_ref)
        user: User | None
        if self.entitlements.enabled:
            user = self.entitlements.user(username)
            if user is None:
                return pb.Error(code=16, message=f"unknown user {username!r}", ref=client_ref)
        else:
            user = User(name=username, token="", symbols=ANONYMOUS.symbols, rooms=ANONYMOUS.rooms)
        try:
            await chat.post(user, room, text, client_ref)
        except ChatRejected as exc:
            return pb.Error(code=exc.code.value[0], message=exc.message, ref=client_ref)
        return None

    def describe(self) -> list[str]:
        """What is listening where, for the start-up banner."""
        lines = []
        if self.grpc is not None:
            scheme = "TLS" if self.grpc.tls else "plaintext"
            auth = "token auth" if self.entitlements.enabled else "no auth"
            lines.append(
                f"gRPC MarketData on {self.config.fanout.grpc_host}:{self.grpc.port} "
                f"({scheme}, {auth}; health and reflection on)"
            )
        mqtt = self.config.mqtt
        if self.bridge is None:
            lines.append("MQTT: off (mqtt.enabled = false)")
        else:
            kind = "embedded broker" if self.broker is not None else "external broker"
            lines.append(
                f"MQTT: {kind} on {mqtt.host}:{mqtt.port} (topics md/, bars/, chat/, post/)"
            )
        lines.append(f"chat store: {self.config.store.kind}")
        return lines
