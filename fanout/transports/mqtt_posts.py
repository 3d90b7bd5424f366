"""Chat posts from MQTT: ``post/{room}/{username}`` checked, queued, handed on in order.

Posts (``post/{room}/{username}``, subscribed at QoS 1) are decoded on the event loop and
handed to ``on_post`` one at a time, in arrival order, through a queue of at most
``max_pending_posts``; a full queue rejects the post (RESOURCE_EXHAUSTED). Junk (bad topic,
undecodable payload, room field differing from the topic's room) is dropped, counted in
``stats.junk`` and answered with an ``Error`` (INVALID_ARGUMENT) on ``errors/{username}``
when the username is known (docs/architecture.md, "Principles": 6. bad input gets a clear
error and loses nothing). The username level is the author: the broker's ACL
(``fanout.transports.mqtt_acl``) lets a user write only under its own name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import DecodeError

from fanout.transports.mqtt_stats import MqttStats
from fanout.transports.mqtt_topics import MqttTopics
from proto import mdfeed_pb2 as pb

__all__ = ["PostHandler", "PostIntake"]

log = logging.getLogger(__name__)

#: ``on_post(username, room, text, client_ref)``: None when accepted, else the Error to
#: send back to the author on ``errors/{username}``.
PostHandler = Callable[[str, str, str, str], Awaitable[pb.Error | None]]

#: ``publish_qos1(topic, payload, kind)``: the bridge's tracked QoS 1 publish.
Publish = Callable[[str, bytes, str], None]

# google.rpc.Code numbering, as in proto Error.code.
INVALID_ARGUMENT: Final = 3
RESOURCE_EXHAUSTED: Final = 8
UNIMPLEMENTED: Final = 12
INTERNAL: Final = 13


@dataclass(frozen=True, slots=True)
class _Post:
    username: str
    room: str
    text: str
    client_ref: str


class PostIntake:
    """Posts received by the bridge, to ``on_post``; rejections back on ``errors/{user}``."""

    def __init__(
        self,
        topics: MqttTopics,
        stats: MqttStats,
        on_post: PostHandler | None,
        publish_qos1: Publish,
        *,
        max_pending_posts: int,
    ) -> None:
        self._topics = topics
        self._stats = stats
        self._on_post = on_post
        self._publish_qos1 = publish_qos1
        self._max_pending_posts = max_pending_posts
        self._posts: asyncio.Queue[_Post] | None = None

    def open(self) -> None:
        """Start with an empty queue (at the bridge's start, on the running loop)."""
        self._posts = asyncio.Queue(self._max_pending_posts)

    @property
    def waiting(self) -> int:
        """Posts queued and not handled yet."""
        return self._posts.qsize() if self._posts is not None else 0

    async def drain(self, timeout_s: float) -> None:
        """Wait until every queued post is handled, ``timeout_s`` at most."""
        posts = self._posts
        if posts is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await posts.join()

    def received(self, topic: str, payload: bytes) -> None:
        """A message on the post subscription (on the event loop): queue it, or reject it."""
        self._stats.posts_received += 1
        parsed = self._topics.parse_post(topic)
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
            self._stats.posts_rejected += 1
            self._publish_error(
                username,
                RESOURCE_EXHAUSTED,
                f"chat posts are arriving faster than they are handled (more than "
                f"{self._max_pending_posts} waiting); post again",
                post.client_ref,
            )

    def _junk(self, username: str | None, reason: str, ref: str) -> None:
        self._stats.junk += 1
        log.debug("MQTT junk from %s: %s", username or "an unknown client", reason)
        if username:
            self._publish_error(username, INVALID_ARGUMENT, reason, ref)

    async def run(self) -> None:
        """Hand the queued posts to ``on_post``, one at a time, until cancelled."""
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
            self._stats.posts_rejected += 1
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
            self._stats.posts_rejected += 1
            self._publish_qos1(
                self._topics.errors(post.username), error.SerializeToString(), "error"
            )

    def _publish_error(self, username: str, code: int, message: str, ref: str) -> None:
        try:
            topic = self._topics.errors(username)
        except ValueError:
            return
        error = pb.Error(code=code, message=message, ref=ref)
        self._publish_qos1(topic, error.SerializeToString(), "error")
