"""The ``MarketData`` gRPC service (grpc.aio): ticks and chat over one connection.

Serialize once (docs/architecture.md, "Principles": 5. serialize once): the streaming
methods' response serializer passes bytes through, so the frames built by ``fanout.frames``
(one encoding per tick, shared by every client) and ``fanout.chat.chat_frame`` are written as
they are. Each call's ``FanoutClient`` (``fanout.client``) yields them, from its lane and its
chat and control queues; ``GrpcServer`` (``fanout.transports.grpc_server``) serves this.

Authentication and entitlements (``mdfeed.kernel.entitlements``): with ``auth.enabled`` every
call carries metadata ``authorization: Bearer <token>``. A missing or unknown token ends
the call with UNAUTHENTICATED; symbols or rooms the user is not entitled to get
PERMISSION_DENIED naming them (an in-stream ``Error`` with code 7 on ``Connect``, which stays
open). With auth off everyone is entitled to everything; a client may then name itself
with metadata ``x-mdfeed-user`` (the chat author), or is ``anonymous``.

* ``Subscribe``: validated (INVALID_ARGUMENT with the reason), then a snapshot frame and
  tick updates, bar updates of any ``bar_resolutions`` and the chat of any ``rooms`` from
  now on, until the client cancels.
  Unknown symbols are allowed; they get ticks once the bus carries them.
* ``Connect``: ``subscribe``/``unsubscribe`` manage symbols and rooms; ``chat_post`` is
  validated, sequenced, persisted and published (``fanout.chat``), and the poster sees its
  message come back in the room (or directly, when not a member); ``resume`` with a room
  delivers exactly the messages after ``after_seq`` and then the live ones; ``resume`` with
  a symbol re-sends its snapshot, with a ``GapNotice`` (RESUME_UNAVAILABLE) for the ticks
  after ``after_seq`` that are no longer held. A bad or undecodable frame gets an in-stream
  ``Error`` with code 3 (INVALID_ARGUMENT) and the stream goes on.
* A lane past its limits (stuck, or too far behind on chat) ends the call with
  RESOURCE_EXHAUSTED and the reason; the client can reconnect and resume chat losslessly.
* ``GetChatHistory``: the room's messages after ``after_seq``, at most ``chat.history_max``.
* Bars: ``bar_resolutions`` in a subscribe adds ``BarUpdate`` frames for those symbols and
  resolutions (from the aggregator through the bus's bar topic, ``fanout.bars``);
  ``GetBars`` reads the bar store (range, or ``countback`` bars before ``to_time_ns``; at
  most ``MAX_BARS``).
* An undecodable request on a unary or server-streaming call: INVALID_ARGUMENT.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc import aio

from fanout.bars import BarFanout
from fanout.chat import ChatService, chat_frame, validate_room
from fanout.client import FanoutClient
from fanout.frames import SharedFrame, error_frame, gap_frame
from fanout.tick_fanout import TickFanout
from mdfeed.kernel.chat import ChatCode, ChatRejected
from mdfeed.kernel.entitlements import ANONYMOUS, Entitlements, User
from mdfeed.kernel.lifecycle import cancel_and_wait
from proto import mdfeed_pb2 as pb
from storage import BarStore, StoreError

__all__ = [
    "MAX_BARS",
    "MAX_ROOMS",
    "MAX_SYMBOLS",
    "MAX_SYMBOL_LEN",
    "SERVICE_NAME",
    "MarketDataServicer",
    "validate_symbols",
]

SERVICE_NAME = "mdfeed.v1.MarketData"
MAX_SYMBOL_LEN = 32
MAX_SYMBOLS = 10_000
MAX_ROOMS = 100
#: Bars per GetBars reply: the newest ones when a range holds more.
MAX_BARS = 10_000
_RESOLUTIONS = frozenset(v for v in pb.Resolution.values() if v != pb.RESOLUTION_UNSPECIFIED)

log = logging.getLogger(__name__)

_INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
_PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
_UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]
_STATUS_OF_CODE = {status.value[0]: status for status in grpc.StatusCode}
_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

M = TypeVar("M", bound=Message)


class _Malformed:
    """What the request deserializer hands on for bytes that are not the expected message."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(cls: type[M]) -> Callable[[bytes], M | _Malformed]:
    name = cls.DESCRIPTOR.name

    def parse(data: bytes) -> M | _Malformed:
        try:
            return cls.FromString(data)
        except DecodeError as exc:
            return _Malformed(f"malformed {name}: {exc}")

    return parse


def _passthrough(frame: bytes) -> bytes:
    return frame


def validate_symbols(symbols: Iterable[str], *, allow_empty: bool = False) -> str | None:
    """Why these symbols are not a valid request, or None when they are."""
    items = list(symbols)
    if not items and not allow_empty:
        return "symbols: at least one symbol is required"
    if len(items) > MAX_SYMBOLS:
        return f"symbols: {len(items)} symbols, at most {MAX_SYMBOLS} per request"
    for index, symbol in enumerate(items):
        if not symbol:
            return f"symbols[{index}]: empty symbol"
        if len(symbol) > MAX_SYMBOL_LEN:
            return f"symbols[{index}]: symbol of {len(symbol)} characters, at most {MAX_SYMBOL_LEN}"
    return None


def _validate_rooms(rooms: Iterable[str]) -> str | None:
    items = list(rooms)
    if len(items) > MAX_ROOMS:
        return f"rooms: {len(items)} rooms, at most {MAX_ROOMS} per request"
    for index, room in enumerate(items):
        error = validate_room(room)
        if error is not None:
            return f"rooms[{index}]: {error.removeprefix('room: ')}"
    return None


def _denied(user: User, symbols: Iterable[str], rooms: Iterable[str]) -> str | None:
    symbols_out = user.denied_symbols(symbols)
    rooms_out = [r for r in rooms if not user.may_chat(r)]
    parts = []
    if symbols_out:
        parts.append(f"symbols {', '.join(symbols_out[:20])}")
    if rooms_out:
        parts.append(f"rooms {', '.join(rooms_out[:20])}")
    if not parts:
        return None
    return f"{user.name} is not entitled to {' and '.join(parts)}"


class _Connection:
    """One client's state: its fanout client and, through it, its chat membership."""

    def __init__(self, user: User, client: FanoutClient) -> None:
        self.user = user
        self.client = client
        self.rooms: set[str] = set()

    def deliver_chat(self, message: pb.ChatMessage, frame: bytes) -> None:
        self.client.deliver_chat(message, frame)


class MarketDataServicer:
    """The ``MarketData`` handlers; ``add_to_server`` registers them on a grpc.aio server."""

    def __init__(
        self,
        fanout: TickFanout,
        *,
        chat: ChatService | None = None,
        entitlements: Entitlements | None = None,
        bars: BarFanout | None = None,
        bar_store: BarStore | None = None,
    ) -> None:
        self._fanout = fanout
        self._chat = chat
        self._bars = bars
        self._bar_store = bar_store
        self._entitlements = entitlements or Entitlements.open()
        self.malformed = 0

    def add_to_server(self, server: aio.Server) -> None:
        handlers = {
            "Subscribe": grpc.unary_stream_rpc_method_handler(
                self.subscribe,
                request_deserializer=_lenient(pb.SubscribeRequest),
                response_serializer=_passthrough,
            ),
            "Connect": grpc.stream_stream_rpc_method_handler(
                self.connect,
                request_deserializer=_lenient(pb.ClientFrame),
                response_serializer=_passthrough,
            ),
            "GetBars": grpc.unary_unary_rpc_method_handler(
                self.get_bars,
                request_deserializer=_lenient(pb.BarsRequest),
                response_serializer=pb.BarsResponse.SerializeToString,
            ),
            "GetChatHistory": grpc.unary_unary_rpc_method_handler(
                self.get_chat_history,
                request_deserializer=_lenient(pb.ChatHistoryRequest),
                response_serializer=pb.ChatHistoryResponse.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),)
        )

    # -- auth -----------------------------------------------------------------------

    async def _user(self, context: aio.ServicerContext[Any, Any]) -> User:
        metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        entitlements = self._entitlements
        if not entitlements.enabled:
            name = metadata.get("x-mdfeed-user", "")
            if not name:
                return ANONYMOUS
            if not _USER_NAME.match(name):
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "x-mdfeed-user: letters, digits, _ . - (at most 64)",
                )
            return User(name=name, token="", symbols=ANONYMOUS.symbols, rooms=ANONYMOUS.rooms)
        header = metadata.get("authorization", "")
        if not header:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "missing token: send metadata 'authorization: Bearer <token>'",
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "authorization metadata must be 'Bearer <token>'",
            )
        user = entitlements.authenticate(token.strip())
        if user is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown token")
        assert user is not None  # abort raises
        return user

    async def _parsed(self, request: M | _Malformed, context: aio.ServicerContext[Any, Any]) -> M:
        if isinstance(request, _Malformed):
            self.malformed += 1
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        assert not isinstance(request, _Malformed)  # abort raises
        return request

    # -- streams --------------------------------------------------------------------

    async def _stream(
        self, client: FanoutClient, context: aio.ServicerContext[Any, bytes]
    ) -> AsyncIterator[bytes]:
        async for frame in client.frames():
            yield frame
        reason = client.lane.disconnect_reason() or "tick lane closed"
        client.lane.close(reason)
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, reason)

    async def subscribe(
        self,
        raw: pb.SubscribeRequest | _Malformed,
        context: aio.ServicerContext[Any, bytes],
    ) -> AsyncIterator[bytes]:
        user = await self._user(context)
        request = await self._parsed(raw, context)
        problem = self._subscribe_problem(user, request)
        if problem is not None:
            code, message = problem
            await context.abort(code, message)
        if request.rooms and self._chat is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "chat is not enabled")
        fanout = self._fanout
        client = fanout.connect()
        connection = _Connection(user, client)
        try:
            fanout.subscribe(client, request.symbols)
            if request.bar_resolutions and self._bars is not None:
                self._bars.subscribe(client, request.symbols, request.bar_resolutions)
            for room in dict.fromkeys(request.rooms):
                await self._join(connection, room, None)
            async for frame in self._stream(client, context):
                yield frame
        finally:
            self._close(connection)

    async def connect(
        self,
        requests: AsyncIterable[pb.ClientFrame | _Malformed],
        context: aio.ServicerContext[Any, bytes],
    ) -> AsyncIterator[bytes]:
        user = await self._user(context)
        fanout = self._fanout
        client = fanout.connect()
        connection = _Connection(user, client)
        reader = asyncio.create_task(self._read(requests, connection), name="connect-reader")
        try:
            async for frame in self._stream(client, context):
                yield frame
        finally:
            await cancel_and_wait(reader)
            self._close(connection)

    def _close(self, connection: _Connection) -> None:
        if self._chat is not None:
            self._chat.leave_all(connection)
        if self._bars is not None:
            self._bars.unsubscribe(connection.client)
        self._fanout.disconnect(connection.client)

    async def _read(
        self, requests: AsyncIterable[pb.ClientFrame | _Malformed], connection: _Connection
    ) -> None:
        try:
            async for frame in requests:
                await self.handle_frame(connection, frame)
        except asyncio.CancelledError:
            raise
        except Exception:  # the transport ended the call; nothing more to read
            log.debug("connect reader ended", exc_info=True)

    async def handle_frame(
        self, connection: _Connection, frame: pb.ClientFrame | _Malformed
    ) -> None:
        """Apply one client frame; problems become in-stream ``Error`` frames."""
        client = connection.client
        if isinstance(frame, _Malformed):
            self.malformed += 1
            client.push(error_frame(_INVALID_ARGUMENT, frame.reason))
            return
        body = frame.WhichOneof("body")
        try:
            if body == "subscribe":
                await self._on_subscribe(connection, frame.subscribe)
            elif body == "unsubscribe":
                self._on_unsubscribe(connection, frame.unsubscribe)
            elif body == "chat_post":
                await self._on_post(connection, frame.chat_post)
            elif body == "resume":
                await self._on_resume(connection, frame.resume)
            else:
                client.push(error_frame(_INVALID_ARGUMENT, "client frame has no body"))
        except ChatRejected as exc:
            ref = frame.chat_post.client_ref if body == "chat_post" else ""
            if body == "resume":
                ref = frame.resume.room
            client.push(error_frame(int(exc.code), exc.message, ref))

    async def _on_subscribe(self, connection: _Connection, request: pb.SubscribeRequest) -> None:
        client = connection.client
        problem = self._subscribe_problem(connection.user, request)
        if problem is not None:
            code, message = problem
            client.push(error_frame(code.value[0], f"subscribe: {message}"))
            return
        self._fanout.subscribe(client, request.symbols)
        if request.bar_resolutions and self._bars is not None:
            self._bars.subscribe(client, request.symbols, request.bar_resolutions)
        for room in dict.fromkeys(request.rooms):
            if room not in connection.rooms:
                await self._join(connection, room, None)

    def _on_unsubscribe(self, connection: _Connection, request: pb.UnsubscribeRequest) -> None:
        error = validate_symbols(request.symbols, allow_empty=True)
        if error is not None:
            connection.client.push(error_frame(_INVALID_ARGUMENT, f"unsubscribe: {error}"))
            return
        self._fanout.unsubscribe(connection.client, request.symbols)
        if self._bars is not None:
            self._bars.unsubscribe(connection.client, request.symbols)
        for room in request.rooms:
            if room in connection.rooms and self._chat is not None:
                self._chat.leave(connection, room)
                connection.rooms.discard(room)

    async def _join(self, connection: _Connection, room: str, after_seq: int | None) -> None:
        chat = self._require_chat()
        chat.check_room(connection.user, room)
        await chat.join(connection, room, after_seq)
        connection.rooms.add(room)

    def _subscribe_problem(
        self, user: User, request: pb.SubscribeRequest
    ) -> tuple[grpc.StatusCode, str] | None:
        """Why ``user`` cannot subscribe as ``request`` asks (the status and the reason), or
        None when it can: the same checks on ``Subscribe`` and on ``Connect``'s subscribe."""
        error = validate_symbols(request.symbols, allow_empty=bool(request.rooms))
        if error is None:
            error = _validate_rooms(request.rooms)
        if error is not None:
            return grpc.StatusCode.INVALID_ARGUMENT, error
        denied = _denied(user, request.symbols, request.rooms)
        if denied is not None:
            return grpc.StatusCode.PERMISSION_DENIED, denied
        if request.bar_resolutions:
            return self._bar_problem(request.bar_resolutions)
        return None

    def _bar_problem(
        self, resolutions: Iterable[pb.Resolution.ValueType]
    ) -> tuple[grpc.StatusCode, str] | None:
        if self._bars is None:
            return grpc.StatusCode.UNIMPLEMENTED, "bar updates are not enabled on this server"
        for index, value in enumerate(resolutions):
            if value not in _RESOLUTIONS:
                return (
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"bar_resolutions[{index}]: {value} is not a resolution (1s to 1D)",
                )
        return None

    def _require_chat(self) -> ChatService:
        if self._chat is None:
            raise ChatRejected(ChatCode.UNIMPLEMENTED, "chat is not enabled")
        return self._chat

    async def _on_post(self, connection: _Connection, post: pb.ChatPost) -> None:
        chat = self._require_chat()
        message = await chat.post(connection.user, post.room, post.text, post.client_ref)
        if post.room not in connection.rooms:
            # Not a member: the stored message is the acknowledgement.
            connection.client.deliver_chat(message, chat_frame(message.SerializeToString()))

    async def _on_resume(self, connection: _Connection, resume: pb.ResumeRequest) -> None:
        target = resume.WhichOneof("target")
        if target == "room":
            await self._join(connection, resume.room, resume.after_seq)
            return
        if target != "symbol":
            raise ChatRejected(ChatCode.INVALID_ARGUMENT, "resume: room or symbol required")
        symbol = resume.symbol
        client = connection.client
        error = validate_symbols([symbol])
        if error is not None:
            client.push(error_frame(_INVALID_ARGUMENT, f"resume: {error}", symbol))
            return
        denied = _denied(connection.user, [symbol], [])
        if denied is not None:
            client.push(error_frame(_PERMISSION_DENIED, f"resume: {denied}", symbol))
            return
        # Ticks are not replayed: a fresh snapshot, and a notice for what cannot be.
        fanout = self._fanout
        fanout.unsubscribe(client, [symbol])
        cached = fanout.cache.get(symbol)
        if cached is not None and cached.seq > resume.after_seq + 1:
            # Through the lane: after the frames already queued, before the snapshot.
            notice = gap_frame(
                symbol=symbol,
                from_seq=resume.after_seq + 1,
                to_seq=cached.seq - 1,
                reason=pb.GAP_REASON_RESUME_UNAVAILABLE,
            )
            client.push_frame(SharedFrame.notice(notice))
        fanout.subscribe(client, [symbol])

    # -- unary ----------------------------------------------------------------------

    async def get_bars(
        self,
        raw: pb.BarsRequest | _Malformed,
        context: aio.ServicerContext[Any, Any],
    ) -> pb.BarsResponse:
        user = await self._user(context)
        request = await self._parsed(raw, context)
        error = validate_symbols([request.symbol])
        if error is None and request.resolution not in _RESOLUTIONS:
            error = f"resolution: {request.resolution} is not a resolution (1s to 1D)"
        if error is None and not request.countback and request.from_time_ns > request.to_time_ns:
            error = "from_time_ns: after to_time_ns"
        if error is None and request.countback > MAX_BARS:
            error = f"countback: {request.countback}, at most {MAX_BARS}"
        if error is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error)
        denied = _denied(user, [request.symbol], [])
        if denied is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, denied)
        store = self._bar_store
        if store is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "bars are not served here")
        assert store is not None
        to_ns = request.to_time_ns or 2**62
        try:
            bars = await store.history(
                request.symbol,
                request.resolution,
                request.from_time_ns,
                to_ns,
                request.countback,
            )
        except StoreError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"bar store unavailable: {exc}")
            raise AssertionError("unreachable") from exc  # abort raises
        if len(bars) > MAX_BARS:
            bars = bars[-MAX_BARS:]
        return pb.BarsResponse(bars=bars)

    async def get_chat_history(
        self,
        raw: pb.ChatHistoryRequest | _Malformed,
        context: aio.ServicerContext[Any, Any],
    ) -> pb.ChatHistoryResponse:
        user = await self._user(context)
        request = await self._parsed(raw, context)
        if self._chat is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "chat is not enabled")
        assert self._chat is not None
        try:
            messages = await self._chat.history(
                user, request.room, request.after_seq, request.limit
            )
        except ChatRejected as exc:
            await context.abort(_STATUS_OF_CODE[exc.code], exc.message)
            raise AssertionError("unreachable") from exc  # abort raises
        return pb.ChatHistoryResponse(messages=messages)
