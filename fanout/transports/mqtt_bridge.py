"""The MQTT bridge: the fanout process as a client of the MQTT broker clients connect to.

Mobile clients hold one MQTT connection to the broker (Mosquitto in production, the
embedded ``fanout.transports.mqtt_broker`` in the default run); the bridge publishes market
data and chat there and takes chat posts from there. Topic layout and ACLs:
``fanout/MQTT.md``; the topics themselves: ``fanout.transports.mqtt_topics``.

Policy:

* Quotes (``md/{symbol}``, QoS 0, retained) are conflated per symbol by the rate cap
  (``fanout.transports.mqtt_rate``): ``publish_tick`` is its ``offer``, and the flush task
  here publishes each symbol's latest tick as soon as its interval allows. After every
  reconnect the last published value of every symbol goes out again.
* Bars (``bars/{symbol}/{resolution}``, QoS 0, retained) are published as they come; the
  latest per topic is kept and published again after every reconnect, like quotes.
* Chat (``chat/{room}``) and errors (``errors/{user}``) are QoS 1. Every QoS 1 publish is
  tracked until the broker's PUBACK; while the broker is unreachable paho keeps them and
  resends them, in order, after the reconnect. At most ``max_pending_chat`` may be
  unacknowledged: beyond that a publish is refused, counted in ``stats.chat_dropped`` and
  logged at ERROR (the message is still in the chat store; clients resume by sequence).
* Posts (``post/{room}/{username}``) go through the post intake
  (``fanout.transports.mqtt_posts``): checked, queued, handed to ``on_post`` in order.
* paho callbacks run on paho's network thread (``fanout.transports.mqtt_client``): they
  copy what they need and hand off with ``loop.call_soon_threadsafe``; all state lives on
  the event loop.
* The bridge reconnects every ``reconnect_interval_s`` until stopped. The first failure
  of an outage is logged at WARNING, the rest at DEBUG, the recovery at INFO.
* The session is persistent (MQTT 3.1.1, clean session off): posts sent while the bridge
  is away are queued by the broker (QoS 1) and delivered when it returns. So
  ``client_id`` must be unique per fanout process. On an external broker the post
  subscription is shared (``$share/{mqtt.share_group}/post/+/+``): with several fanout
  processes each post is handled once. Every bridge publishes every quote and chat message,
  so enable MQTT (``mqtt.enabled``) on one fanout per broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from fanout.transports.mqtt_client import MqttHandlers, paho_client
from fanout.transports.mqtt_posts import PostHandler, PostIntake
from fanout.transports.mqtt_rate import QuoteRate
from fanout.transports.mqtt_stats import MqttStats
from fanout.transports.mqtt_topics import MqttTopics
from mdfeed.kernel.clock import MonotonicS, monotonic_s
from mdfeed.kernel.config import MqttConfig
from mdfeed.kernel.lifecycle import Service
from proto import mdfeed_pb2 as pb

__all__ = ["MqttBridge"]

log = logging.getLogger(__name__)


class MqttBridge(Service):
    """Publishes ticks, bars and chat to the MQTT broker; hands chat posts to ``on_post``.

    ``clock`` is the time seam of the quote rate cap (seconds, monotonic); tests freeze it.
    """

    #: ``publish_tick(symbol, seq, encoded)``: queue ``encoded`` as the latest quote of
    #: ``symbol``; never blocks. A ``TickFanout`` listener, called for every tick: it is the
    #: rate cap's ``QuoteRate.offer`` itself, with no call in between.
    publish_tick: Callable[[str, int, bytes], None]

    def __init__(
        self,
        config: MqttConfig,
        on_post: PostHandler | None = None,
        *,
        max_pending_chat: int = 10_000,
        max_pending_posts: int = 1_000,
        drain_timeout_s: float = 5.0,
        clock: MonotonicS = monotonic_s,
    ) -> None:
        if max_pending_chat < 1 or max_pending_posts < 1:
            raise ValueError("max_pending_chat and max_pending_posts must be at least 1")
        self.config = config
        self.topics = MqttTopics(config.topic_prefix)
        self.stats = MqttStats()
        self._max_pending_chat = max_pending_chat
        self._drain_timeout_s = drain_timeout_s
        self._clock = clock
        self._quotes = QuoteRate(config.quote_max_rate_per_symbol_hz, self.stats, clock)
        self.publish_tick = self._quotes.offer
        self._posts = PostIntake(
            self.topics,
            self.stats,
            on_post,
            self._publish_qos1,
            max_pending_posts=max_pending_posts,
        )
        self._md_topics: dict[str, str | None] = {}
        self._bars: dict[str, bytes] = {}  # latest per bar topic
        self._bars_to_resend = False
        self._unacked: dict[int, str] = {}  # QoS 1 mid -> "chat" | "error"

        self._client: mqtt.Client | None = None
        self._wake: asyncio.Event | None = None
        self._ready_event: asyncio.Event | None = None
        self._down_event: asyncio.Event | None = None
        self._acked: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = False
        self._stopping = False
        self._subscribe_mid: int | None = None
        self._outage_since: float | None = None
        self._failed_attempts = 0
        self._dropped_in_outage = 0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting (in the background) and the flush and post tasks.

        Returns at once: the broker may be down, and the bridge keeps trying every
        ``reconnect_interval_s``. ``wait_ready`` waits for the connection.
        """
        if self._client is not None:
            return
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._quotes.wake = self._wake.set
        self._ready_event = asyncio.Event()
        self._down_event = asyncio.Event()
        self._acked = asyncio.Event()
        self._posts.open()
        self._stopping = False
        cfg = self.config
        if not cfg.client_id:
            # Unique per process; the fanout runtime sets a stable one (host and gRPC port).
            cfg = self.config = dataclasses.replace(
                cfg, client_id=f"mdfeed-fanout-{socket.gethostname()}-{os.getpid()}"[:64]
            )
        handlers = MqttHandlers(
            connected=self._connected_now,
            connect_failed=self._connection_failed,
            disconnected=self._disconnected_now,
            subscribed=self._subscribed_now,
            published=self._published_now,
            message=self._posts.received,
        )
        client = paho_client(cfg, handlers, loop)
        self._client = client
        self._outage_since = self._clock()
        client.connect_async(cfg.host, cfg.port, keepalive=30)
        client.loop_start()
        log.info("MQTT bridge connecting to %s:%d as %r", cfg.host, cfg.port, cfg.client_id)
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="mqtt-quote-flush"),
            asyncio.create_task(self._posts.run(), name="mqtt-posts"),
        ]

    async def stop(self) -> None:
        """Finish queued posts and unacknowledged QoS 1 publishes (``drain_timeout_s``
        at most), then disconnect. Safe to call twice."""
        client = self._client
        if client is None:
            return
        self._stopping = True
        if self._connected:
            await self._posts.drain(self._drain_timeout_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        waiting = self._posts.waiting
        if waiting:
            log.warning("MQTT bridge stopped with %d chat posts not handled", waiting)
        await self._drain_unacked()
        if self._unacked:
            log.error(
                "MQTT bridge stopped with %d QoS 1 publishes not acknowledged by the broker;"
                " MQTT clients miss them (chat stays in the chat store)",
                len(self._unacked),
            )
        self._unacked.clear()  # mids belong to this paho client; a restart makes a new one
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._client = None
        self._connected = False
        log.info("MQTT bridge stopped")

    @property
    def connected(self) -> bool:
        """True while the broker has accepted the connection (as the event loop last heard)."""
        return self._connected

    @property
    def chat_pending(self) -> int:
        """QoS 1 publishes (chat and errors) not yet acknowledged by the broker."""
        return len(self._unacked)

    @property
    def quotes_pending(self) -> int:
        """Symbols whose latest tick waits for its interval (or for the broker)."""
        return len(self._quotes.pending)

    async def wait_ready(self) -> None:
        """Wait until connected and subscribed to posts (use ``asyncio.timeout`` to bound)."""
        if self._ready_event is None:
            raise RuntimeError("MqttBridge.wait_ready() before start()")
        await self._ready_event.wait()

    async def wait_disconnected(self) -> None:
        """Wait until the connection to the broker is lost (or was never made)."""
        if self._down_event is None:
            raise RuntimeError("MqttBridge.wait_disconnected() before start()")
        if not self._connected:
            return
        await self._down_event.wait()

    # -- publishing -----------------------------------------------------------------

    def publish_bar(self, bar: pb.Bar) -> None:
        """Publish a bar update, retained; ``ValueError`` for a bar with no topic."""
        topic = self.topics.bars(bar.symbol, bar.resolution)
        payload = bar.SerializeToString()
        self._bars[topic] = payload
        if self._connected and self._publish_qos0(topic, payload):
            self.stats.bars_published += 1
        # else: _bars holds it; every (re)connect publishes all latest bars.

    def publish_chat(self, msg: pb.ChatMessage) -> None:
        """Publish a chat message at QoS 1; kept and resent across broker outages.

        ``RuntimeError`` before ``start()``; ``ValueError`` for a room that cannot be a
        topic level. Beyond ``max_pending_chat`` unacknowledged messages it is dropped and
        counted (``stats.chat_dropped``), with an ERROR log.
        """
        self._publish_qos1(self.topics.chat(msg.room), msg.SerializeToString(), "chat")

    # -- internals: publishing --------------------------------------------------------

    def _publish_qos0(self, topic: str, payload: bytes) -> bool:
        """False when paho has no connection (the caller keeps the value for later)."""
        assert self._client is not None
        info = self._client.publish(topic, payload, qos=0, retain=True)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return True
        if info.rc != MQTTErrorCode.MQTT_ERR_NO_CONN:
            log.error("MQTT publish to %s failed: %s", topic, mqtt.error_string(info.rc))
        return False

    def _publish_qos1(self, topic: str, payload: bytes, kind: str) -> None:
        client = self._client
        if client is None:
            raise RuntimeError(f"MqttBridge: {kind} publish before start() or after stop()")
        if len(self._unacked) >= self._max_pending_chat:
            self.stats.chat_dropped += 1
            self._dropped_in_outage += 1
            if self._dropped_in_outage == 1:
                log.error(
                    "MQTT: %d QoS 1 publishes wait for the broker (limit max_pending_chat);"
                    " dropping %s to %s and further ones until the broker acknowledges",
                    len(self._unacked),
                    kind,
                    topic,
                )
            return
        # While disconnected paho keeps the message (rc NO_CONN) and sends it on reconnect.
        info = client.publish(topic, payload, qos=1, retain=False)
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._unacked[info.mid] = kind
        else:
            self.stats.chat_dropped += 1
            log.error("MQTT %s publish to %s failed: %s", kind, topic, mqtt.error_string(info.rc))

    async def _drain_unacked(self) -> None:
        if not self._unacked or not self._connected or self._acked is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._drain_timeout_s):
                while self._unacked:
                    self._acked.clear()
                    await self._acked.wait()

    def _md_topic(self, symbol: str) -> str | None:
        try:
            return self._md_topics[symbol]
        except KeyError:
            pass
        topic: str | None
        try:
            topic = self.topics.md(symbol)
        except ValueError as exc:
            log.warning("MQTT: quotes of symbol %r are not published: %s", symbol, exc)
            topic = None
        self._md_topics[symbol] = topic
        return topic

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        wake = self._wake
        quotes = self._quotes
        # The rate cap's own containers, drained inline: no call per quote but the publish
        # (see fanout.transports.mqtt_rate).
        pending, ready, next_due, last = quotes.pending, quotes.ready, quotes.next_due, quotes.last
        period = quotes.period_s
        stats = self.stats
        while True:
            wake.clear()
            now = self._clock()
            quotes.release_due(now)
            published = 0
            while ready and self._connected:
                symbol = ready.popleft()
                payload = pending.pop(symbol)
                topic = self._md_topic(symbol)
                if topic is None:
                    stats.quotes_unpublishable += 1
                    continue
                if not self._publish_qos0(topic, payload):
                    pending[symbol] = payload
                    ready.appendleft(symbol)
                    break
                next_due[symbol] = now + period
                last[symbol] = payload
                stats.quotes_published += 1
                published += 1
                if published % 256 == 0:
                    await asyncio.sleep(0)  # let the consume loop run during a big flush
                    now = self._clock()
            if self._bars_to_resend and self._connected:
                await self._resend_bars()
            timeout = quotes.wait_s(now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.wait()

    async def _resend_bars(self) -> None:
        self._bars_to_resend = False
        for count, (topic, payload) in enumerate(list(self._bars.items()), 1):
            if self._bars.get(topic) is not payload:
                continue  # a newer bar went out meanwhile
            if not self._publish_qos0(topic, payload):
                self._bars_to_resend = True
                return
            self.stats.bars_published += 1
            if count % 256 == 0:
                await asyncio.sleep(0)

    def _requeue_after_reconnect(self) -> None:
        # QoS 0 values sent just before the loss may never have arrived, and a broker that
        # restarted without persistence lost its retained values: send every latest again.
        self._quotes.requeue_last()
        self._bars_to_resend = bool(self._bars)

    # -- internals: connection events (on the event loop) -----------------------------

    def _connected_now(self, reason: str, failure: bool) -> None:
        cfg = self.config
        if failure:
            self._connection_failed(
                f"the broker refused the login: {reason}; check mqtt.username and mqtt.password"
            )
            return
        client = self._client
        if client is None:
            return
        self._connected = True
        self._dropped_in_outage = 0
        if self._failed_attempts or self.stats.reconnects:
            down_s = self._clock() - (self._outage_since or self._clock())
            log.info(
                "MQTT bridge reconnected to %s:%d after %.1f s; resending %d QoS 1 publishes",
                cfg.host,
                cfg.port,
                down_s,
                len(self._unacked),
            )
        else:
            log.info("MQTT bridge connected to %s:%d", cfg.host, cfg.port)
        self._failed_attempts = 0
        self._outage_since = None
        result, mid = client.subscribe(self._post_subscription(), qos=1)
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._subscribe_mid = mid
        if self._down_event is not None:
            self._down_event.clear()
        self._requeue_after_reconnect()
        if self._wake is not None:
            self._wake.set()

    def _connection_failed(self, reason: str) -> None:
        cfg = self.config
        self._failed_attempts += 1
        level = logging.WARNING if self._failed_attempts == 1 else logging.DEBUG
        log.log(
            level,
            "MQTT bridge cannot connect to %s:%d (%s); retrying every %.1f s",
            cfg.host,
            cfg.port,
            reason,
            cfg.reconnect_interval_s,
        )

    def _disconnected_now(self, reason: str) -> None:
        was_connected = self._connected
        self._connected = False
        if self._ready_event is not None:
            self._ready_event.clear()
        if self._down_event is not None:
            self._down_event.set()
        if self._stopping or not was_connected:
            return
        cfg = self.config
        self.stats.reconnects += 1
        self._outage_since = self._clock()
        log.warning(
            "MQTT bridge lost the broker %s:%d (%s); reconnecting every %.1f s;"
            " %d QoS 1 publishes kept for resending (limit %d)",
            cfg.host,
            cfg.port,
            reason,
            cfg.reconnect_interval_s,
            len(self._unacked),
            self._max_pending_chat,
        )

    def _post_subscription(self) -> str:
        """``post/+/+``; on an external broker shared (``$share/GROUP/post/+/+``) so that
        with several fanout processes each post is handled by exactly one of them."""
        cfg = self.config
        if cfg.kind == "external" and cfg.share_group:
            return f"$share/{cfg.share_group}/{self.topics.post_filter()}"
        return self.topics.post_filter()

    def _subscribed_now(self, mid: int, refused: list[str]) -> None:
        if mid != self._subscribe_mid:
            return
        if refused:
            log.error(
                "MQTT broker refused the subscription to %s (%s): chat posts cannot arrive;"
                " check the ACL of user %r",
                self.topics.post_filter(),
                ", ".join(refused),
                self.config.username,
            )
            return
        if self._ready_event is not None:
            self._ready_event.set()

    def _published_now(self, mid: int) -> None:
        kind = self._unacked.pop(mid, None)
        if kind is None:
            return
        if kind == "chat":
            self.stats.chat_published += 1
        else:
            self.stats.errors_published += 1
        if self._acked is not None:
            self._acked.set()
