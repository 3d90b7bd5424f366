"""The MQTT bridge: the fanout process as a client of the MQTT broker clients connect to.

Mobile clients hold one MQTT connection to the broker (Mosquitto in production, the
embedded ``fanout.mqtt_broker`` in the default run); the bridge publishes market data and
chat there and takes chat posts from there. Topic layout and ACLs: ``fanout/MQTT.md``.

Policy:

* Quotes (``md/{symbol}``, QoS 0, retained) are conflated per symbol: at most
  ``quote_max_rate_per_symbol_hz`` publishes per symbol per second, latest value wins.
  ``publish_tick`` only stores the encoded tick (the bytes from the bus, never re-encoded)
  and wakes the flush task; the flush task publishes a symbol as soon as its interval
  allows, so the last update of a burst always goes out one interval later and the
  retained value is never stale. The bridge remembers the last value it published per
  symbol (one encoded tick each, the bytes it already holds) and publishes all of them
  again after every reconnect: QoS 0 publishes written just before a connection loss may
  never have arrived, and a broker restarted without persistence lost its retained values.
* Bars (``bars/{symbol}/{resolution}``, QoS 0, retained) are published as they come; the
  latest per topic is kept and published again after every reconnect, like quotes.
* Chat (``chat/{room}``) and errors (``errors/{user}``) are QoS 1. Every QoS 1 publish is
  tracked until the broker's PUBACK; while the broker is unreachable paho keeps them and
  resends them, in order, after the reconnect. At most ``max_pending_chat`` may be
  unacknowledged: beyond that a publish is refused, counted in ``stats.chat_dropped`` and
  logged at ERROR (the message is still in the chat store; clients resume by sequence).
* Posts (``post/{room}/{username}``, subscribed at QoS 1) are decoded on the event loop
  and handed to ``on_post`` one at a time, in arrival order, through a queue of at most
  ``max_pending_posts``; a full queue rejects the post (RESOURCE_EXHAUSTED). Junk (bad
  topic, undecodable payload, room field differing from the topic's room) is dropped,
  counted in ``stats.junk`` and answered with an ``Error`` (INVALID_ARGUMENT) on
  ``errors/{username}`` when the username is known. The username level is the author:
  the broker's ACL (``fanout.mqtt_acl``) lets a user write only under its own name.
* paho callbacks run on paho's network thread: they copy what they need and hand off with
  ``loop.call_soon_threadsafe``; all state lives on the event loop.
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
import heapq
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
from google.protobuf.message import DecodeError
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from mdfeed.kernel.config import MqttConfig
from mdfeed.kernel.lifecycle import Service
from proto import mdfeed_pb2 as pb

__all__ = [
    "MqttBridge",
    "MqttStats",
    "MqttTopics",
    "PostHandler",
    "resolution_level",
]

log = logging.getLogger(__name__)

#: ``on_post(username, room, text, client_ref)``: None when accepted, else the Error to
#: send back to the author on ``errors/{username}``.
PostHandler = Callable[[str, str, str, str], Awaitable[pb.Error | None]]

# google.rpc.Code numbering, as in proto Error.code.
INVALID_ARGUMENT: Final = 3
RESOURCE_EXHAUSTED: Final = 8
UNIMPLEMENTED: Final = 12
INTERNAL: Final = 13

_FORBIDDEN_IN_LEVEL = frozenset("/+#\x00")


def resolution_level(resolution: int) -> str:
    """The topic level of a ``pb.Resolution``: ``RESOLUTION_1M`` is ``"1m"``.

    ``ValueError`` for ``RESOLUTION_UNSPECIFIED`` or a number the schema does not know.
    """
    if resolution == pb.RESOLUTION_UNSPECIFIED:
        raise ValueError("bar resolution is RESOLUTION_UNSPECIFIED; a bar needs its resolution")
    try:
        name = pb.Resolution.Name(resolution)  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"bar resolution {resolution} is not a pb.Resolution") from None
    return name.removeprefix("RESOLUTION_").lower()


def _check_level(value: str, what: str) -> str:
    if not value or not _FORBIDDEN_IN_LEVEL.isdisjoint(value):
        raise ValueError(
            f"{what} {value!r} cannot be an MQTT topic level (it is empty or has / + # or NUL)"
        )
    return value


@dataclass(frozen=True, slots=True)
class MqttTopics:
    """The topic layout (``fanout/MQTT.md``), under ``prefix`` when it is not empty."""

    prefix: str = ""

    def __post_init__(self) -> None:
        prefix = self.prefix
        if prefix and (
            prefix.startswith(("/", "$"))
            or prefix.endswith("/")
            or "//" in prefix
            or not {"+", "#", "\x00"}.isdisjoint(prefix)
        ):
            raise ValueError(
                f"mqtt.topic_prefix: {prefix!r} is not a topic prefix (levels separated by /, "
                "no leading or trailing /, no + # or $ at the start)"
            )

    def _join(self, *levels: str) -> str:
        topic = "/".join(levels)
        return f"{self.prefix}/{topic}" if self.prefix else topic

    def md(self, symbol: str) -> str:
        return self._join("md", _check_level(symbol, "symbol"))

    def bars(self, symbol: str, resolution: int) -> str:
        return self._join("bars", _check_level(symbol, "symbol"), resolution_level(resolution))

    def chat(self, room: str) -> str:
        return self._join("chat", _check_level(room, "room"))

    def post(self, room: str, username: str) -> str:
        return self._join("post", _check_level(room, "room"), _check_level(username, "username"))

    def errors(self, username: str) -> str:
        return self._join("errors", _check_level(username, "username"))

    def under(self, *levels: str) -> str:
        """The filter of everything below ``levels``: ``under("bars", "AAPL")`` is
        ``bars/AAPL/#``; ``levels`` are checked like topic levels, ``+`` allowed."""
        for level in levels:
            if level != "+":
                _check_level(level, "topic level")
        return self._join(*levels, "#")

    def post_filter(self) -> str:
        """What the bridge subscribes to for posts: ``post/+/+``."""
        return self._join("post", "+", "+")

    def everything(self) -> str:
        """Every topic of this deployment: ``{prefix}/#``, or ``#`` without a prefix."""
        return self._join("#")

    def parse_post(self, topic: str) -> tuple[str, str] | None:
        """``(room, username)`` of a post topic, either possibly empty (``post//bob``);
        None when ``topic`` is not ``post/{room}/{username}`` under the prefix."""
        if self.prefix:
            if not topic.startswith(self.prefix + "/"):
                return None
            topic = topic[len(self.prefix) + 1 :]
        levels = topic.split("/")
        if len(levels) != 3 or levels[0] != "post":
            return None
        return levels[1], levels[2]


@dataclass(slots=True)
class MqttStats:
    """Counters since start; read them, never write them."""

    quotes_in: int = 0  # ticks offered by publish_tick
    quotes_published: int = 0
    quotes_conflated: int = 0  # replaced by a newer tick of their symbol before publishing
    quotes_unpublishable: int = 0  # symbol cannot be a topic level (has / + # or is empty)
    bars_published: int = 0
    chat_published: int = 0  # acknowledged by the broker (PUBACK)
    chat_dropped: int = 0  # refused: max_pending_chat unacknowledged already
    errors_published: int = 0  # Error messages to errors/{user}, acknowledged
    posts_received: int = 0  # every message on post/+/+, junk included
    posts_rejected: int = 0  # well-formed posts refused by on_post or by a full queue
    junk: int = 0  # bad topic, undecodable payload or room mismatch
    reconnects: int = 0


@dataclass(frozen=True, slots=True)
class _Post:
    username: str
    room: str
    text: str
    client_ref: str


class MqttBridge(Service):
    """Publishes ticks, bars and chat to the MQTT broker; hands chat posts to ``on_post``.

    ``clock`` is the time seam of the quote rate cap (seconds, monotonic); tests freeze it.
    """

    def __init__(
        self,
        config: MqttConfig,
        on_post: PostHandler | None = None,
        *,
        max_pending_chat: int = 10_000,
        max_pending_posts: int = 1_000,
        drain_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_pending_chat < 1 or max_pending_posts < 1:
            raise ValueError("max_pending_chat and max_pending_posts must be at least 1")
        self.config = config
        self.topics = MqttTopics(config.topic_prefix)
        self.stats = MqttStats()
        self._on_post = on_post
        self._max_pending_chat = max_pending_chat
        self._max_pending_posts = max_pending_posts
        self._drain_timeout_s = drain_timeout_s
        self._clock = clock
        self._period_s = 1.0 / config.quote_max_rate_per_symbol_hz

        # Quote conflation: every pending symbol is in exactly one of _ready (due now, FIFO)
        # and _due (a heap of (due time, symbol)).
        self._pending: dict[str, bytes] = {}
        self._ready: deque[str] = deque()
        self._due: list[tuple[float, str]] = []
        self._next_due: dict[str, float] = {}
        self._md_topics: dict[str, str | None] = {}
        self._last_quotes: dict[str, bytes] = {}  # last published, per symbol
        self._bars: dict[str, bytes] = {}  # latest per bar topic
        self._bars_to_resend = False
        self._unacked: dict[int, str] = {}  # QoS 1 mid -> "chat" | "error"

        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._wake: asyncio.Event | None = None
        self._ready_event: asyncio.Event | None = None
        self._down_event: asyncio.Event | None = None
        self._acked: asyncio.Event | None = None
        self._posts: asyncio.Queue[_Post] | None = None
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
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ready_event = asyncio.Event()
        self._down_event = asyncio.Event()
        self._acked = asyncio.Event()
        self._posts = asyncio.Queue(self._max_pending_posts)
        self._stopping = False
        cfg = self.config
        if not cfg.client_id:
            # Unique per process; the fanout runtime sets a stable one (host and gRPC port).
            cfg = self.config = dataclasses.replace(
                cfg, client_id=f"mdfeed-fanout-{socket.gethostname()}-{os.getpid()}"[:64]
            )
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id,
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password or None)
        # paho annotates int seconds but sleeps on any number; a fixed interval, no backoff.
        interval: Any = cfg.reconnect_interval_s
        client.reconnect_delay_set(min_delay=interval, max_delay=interval)
        client.max_inflight_messages_set(100)
        client.on_connect = self._cb_connect
        client.on_connect_fail = self._cb_connect_fail
        client.on_disconnect = self._cb_disconnect
        client.on_subscribe = self._cb_subscribe
        client.on_publish = self._cb_publish
        client.on_message = self._cb_message
        self._client = client
        self._outage_since = self._clock()
        client.connect_async(cfg.host, cfg.port, keepalive=30)
        client.loop_start()
        log.info("MQTT bridge connecting to %s:%d as %r", cfg.host, cfg.port, cfg.client_id)
        self._tasks = [
            asyncio.create_task(self._flush_loop(), name="mqtt-quote-flush"),
            asyncio.create_task(self._post_loop(), name="mqtt-posts"),
        ]

    async def stop(self) -> None:
        """Finish queued posts and unacknowledged QoS 1 publishes (``drain_timeout_s``
        at most), then disconnect. Safe to call twice."""
        client = self._client
        if client is None:
            return
        self._stopping = True
        posts = self._posts
        if posts is not None and self._connected:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._drain_timeout_s):
                    await posts.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if posts is not None and posts.qsize():
            log.warning("MQTT bridge stopped with %d chat posts not handled", posts.qsize())
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
        return len(self._pending)

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

    def publish_tick(self, symbol: str, seq: int, encoded: bytes) -> None:
        """Queue ``encoded`` as the latest quote of ``symbol``; never blocks.

        A ``TickFanout`` listener. ``seq`` is not checked: after an upstream restart the
        sequence starts again and the newest tick is still the value to retain.
        """
        self.stats.quotes_in += 1
        pending = self._pending
        if symbol in pending:
            pending[symbol] = encoded
            self.stats.quotes_conflated += 1
            return
        pending[symbol] = encoded
        due = self._next_due.get(symbol)
        if due is None or due <= self._clock():
            self._ready.append(symbol)
        else:
            heapq.heappush(self._due, (due, symbol))
        if self._wake is not None:
            self._wake.set()

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

    def _publish_error(self, username: str, code: int, message: str, ref: str) -> None:
        try:
            topic = self.topics.errors(username)
        except ValueError:
            return
        error = pb.Error(code=code, message=message, ref=ref)
        self._publish_qos1(topic, error.SerializeToString(), "error")

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
        pending, ready, due, next_due = self._pending, self._ready, self._due, self._next_due
        last = self._last_quotes
        period = self._period_s
        stats = self.stats
        while True:
            wake.clear()
            now = self._clock()
            while due and due[0][0] <= now:
                ready.append(heapq.heappop(due)[1])
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
            timeout = max(0.0, due[0][0] - now) if due else None
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
        pending, ready = self._pending, self._ready
        for symbol, payload in self._last_quotes.items():
            if symbol not in pending:
                pending[symbol] = payload
                ready.append(symbol)
        self._bars_to_resend = bool(self._bars)

    # -- internals: posts -------------------------------------------------------------

    def _received(self, topic: str, payload: bytes) -> None:
        self.stats.posts_received += 1
        parsed = self.topics.parse_post(topic)
        if parsed is None:
            self._junk(None, f"not a post topic: {topic!r}", "")
            return
        room, username = parsed
        if not room or not username:
            self._junk(username, f"post topic {topic!r} has an empty room or username", "")
            return
        try:
            post = pb.ChatPost.FromString(payload)
        except DecodeError:
            self._junk(username, f"post to {room!r}: payload is not an encoded ChatPost", "")
            return
        if post.room and post.room != room:
            self._junk(
                username,
                f"ChatPost.room {post.room!r} differs from the topic's room {room!r}",
                post.client_ref,
            )
            return
        assert self._posts is not None
        try:
            self._posts.put_nowait(_Post(username, room, post.text, post.client_ref))
        except asyncio.QueueFull:
            self.stats.posts_rejected += 1
            self._publish_error(
                username,
                RESOURCE_EXHAUSTED,
                f"chat posts are arriving faster than they are handled (more than "
                f"{self._max_pending_posts} waiting); post again",
                post.client_ref,
            )

    def _junk(self, username: str | None, reason: str, ref: str) -> None:
        self.stats.junk += 1
        log.debug("MQTT junk from %s: %s", username or "an unknown client", reason)
        if username:
            self._publish_error(username, INVALID_ARGUMENT, reason, ref)

    async def _post_loop(self) -> None:
        assert self._posts is not None
        posts = self._posts
        while True:
            post = await posts.get()
            try:
                await self._handle_post(post)
            finally:
                posts.task_done()

    async def _handle_post(self, post: _Post) -> None:
        on_post = self._on_post
        if on_post is None:
            self.stats.posts_rejected += 1
            self._publish_error(
                post.username, UNIMPLEMENTED, "chat posting is not enabled", post.client_ref
            )
            return
        try:
            error = await on_post(post.username, post.room, post.text, post.client_ref)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("MQTT: on_post failed for a post by %s to %s", post.username, post.room)
            error = pb.Error(
                code=INTERNAL, message="the post could not be handled", ref=post.client_ref
            )
        if error is not None:
            self.stats.posts_rejected += 1
            self._publish_qos1(
                self.topics.errors(post.username), error.SerializeToString(), "error"
            )

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

    # -- paho callbacks (paho's network thread: copy, hand off, return) --------------

    def _handoff(self, callback: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under a late callback
            loop.call_soon_threadsafe(callback, *args)

    def _cb_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self._handoff(self._connected_now, str(reason_code), reason_code.is_failure)

    def _cb_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._handoff(self._connection_failed, "TCP connect failed: refused or unreachable")

    def _cb_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self._handoff(self._disconnected_now, str(reason_code))

    def _cb_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: object,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        self._handoff(self._subscribed_now, mid, refused)

    def _cb_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self._handoff(self._published_now, mid)

    def _cb_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # an exception here would end paho's network loop
            topic = "<topic is not UTF-8>"
        self._handoff(self._received, topic, message.payload)
