"""The chat bridge for the chart page: ``/chat/{room}`` over HTTP on a ``ChatPort``.

Browsers cannot speak the fanout's gRPC stream, so the page chats through these:
``POST /chat/{room}`` with JSON ``{author, text}`` answers the stored message (or 400 with
``ChatRejected``'s message, 403/429/503 for its other codes); ``GET
/chat/{room}/stream?after=`` is an SSE stream of ``chat`` events whose SSE ``id`` is the
room seq, so a browser that reconnects resumes after ``Last-Event-ID`` and loses nothing.
Without ``after`` it starts with the room's last :data:`CHAT_RECENT` messages. Chat is the
no-loss lane: a reader that falls ``ChatConfig.client_queue_max`` messages behind is
disconnected, not conflated, and resumes from its last seq. The bridge is behind
``mdfeed.kernel.chat.ChatPort``; ``fanout.chat_port`` runs it on the fanout's chat service.
Without a port (``mdfeed datafeed`` alone) both answer 404. The author is whoever the page
says it is (no token): keep the datafeed on a trusted network (loopback by default).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import web

from mdfeed.kernel.chat import ChatCode, ChatPort, ChatRejected, ChatSubscription
from ohlcv.datafeed.http_support import SSE_HEADERS, BadRequest, error, param
from proto import mdfeed_pb2 as pb

__all__ = ["CHAT_RECENT", "ChatEndpoints"]

#: Chat messages a new stream starts with when the client gave no ``after``.
CHAT_RECENT = 100

_CHAT_STATUS = {
    ChatCode.INVALID_ARGUMENT: 400,
    ChatCode.PERMISSION_DENIED: 403,
    ChatCode.RESOURCE_EXHAUSTED: 429,
    ChatCode.UNAVAILABLE: 503,
}


def _chat_json(message: pb.ChatMessage) -> dict[str, object]:
    return {
        "room": message.room,
        "id": message.id,
        "seq": message.seq,
        "author": message.author,
        "text": message.text,
        "time_ms": message.time_ns // 1_000_000,
    }


def _chat_body(raw: str) -> tuple[str, str]:
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadRequest('body: not JSON (expected {"author": ..., "text": ...})') from None
    if not isinstance(body, dict):
        raise BadRequest('body: expected a JSON object {"author": ..., "text": ...}')
    author, text = body.get("author"), body.get("text")
    if not isinstance(author, str):
        raise BadRequest("author: missing or not a string")
    if not isinstance(text, str):
        raise BadRequest("text: missing or not a string")
    return author, text


def _chat_after(request: web.Request) -> int | None:
    """The seq to resume after: ``Last-Event-ID`` (a browser reconnecting), else ``after``."""
    resume = request.headers.get("Last-Event-ID", "")
    if resume:
        name, text = "Last-Event-ID", resume
    else:
        name, text = "after", param(request, "after", required=False)
        if not text:
            return None
    try:
        after = int(text)
    except ValueError:
        raise BadRequest(f"{name}: {text[:40]!r} is not an integer") from None
    if after < 0:
        raise BadRequest(f"{name}: {after} is negative")
    return after


class ChatEndpoints:
    """``POST /chat/{room}`` and ``GET /chat/{room}/stream`` on ``chat`` (module doc).

    A stream ends when ``closing()`` turns true (the server shuts down) or at
    :meth:`close_all`.
    """

    def __init__(
        self, chat: ChatPort | None, *, closing: Callable[[], bool], heartbeat_s: float
    ) -> None:
        self._chat = chat
        self._closing = closing
        self._heartbeat_s = heartbeat_s
        self._readers: set[ChatSubscription] = set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/chat/{room}", self._post)
        app.router.add_get("/chat/{room}/stream", self._stream)

    @property
    def stream_count(self) -> int:
        """Open ``/chat/{room}/stream`` connections."""
        return len(self._readers)

    def close_all(self) -> None:
        """End every open stream (their handlers return)."""
        for reader in list(self._readers):
            reader.close()

    async def _post(self, request: web.Request) -> web.Response:
        chat = self._chat
        if chat is None:
            return error("chat is not enabled on this datafeed", status=404)
        try:
            author, text = _chat_body(await request.text())
        except BadRequest as exc:
            return error(str(exc))
        try:
            message = await chat.post(author, request.match_info["room"], text)
        except ChatRejected as exc:
            return error(exc.message, status=_CHAT_STATUS.get(exc.code, 400))
        return web.json_response(_chat_json(message))

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        chat = self._chat
        if chat is None:
            return error("chat is not enabled on this datafeed", status=404)
        room = request.match_info["room"]
        try:
            after = _chat_after(request)
            if after is None:
                after = max(0, await chat.last_seq(room) - CHAT_RECENT)
            reader = await chat.subscribe(room, after)
        except BadRequest as exc:
            return error(str(exc))
        except ChatRejected as exc:
            return error(exc.message, status=_CHAT_STATUS.get(exc.code, 400))
        self._readers.add(reader)
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n")
            while not self._closing():
                try:
                    async with asyncio.timeout(self._heartbeat_s):
                        message = await reader.next()
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if message is None:
                    break
                data = json.dumps(_chat_json(message), separators=(",", ":"))
                await response.write(f"id: {message.seq}\nevent: chat\ndata: {data}\n\n".encode())
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            reader.close()
            self._readers.discard(reader)
        return response
