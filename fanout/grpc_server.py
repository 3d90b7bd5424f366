"""The ``MarketData`` gRPC service (grpc.aio) over a ``TickFanout``: ticks only, for now.

Serialize once: the streaming methods' response serializer passes bytes through, so the
frames built by ``fanout.frames`` (one encoding per tick, shared by every client) are
written as they are. Requests are parsed with the generated message classes.

* ``Subscribe``: validated (INVALID_ARGUMENT with the reason), then a snapshot frame and
  updates until the client cancels. Unknown symbols are allowed; they get ticks once the
  bus carries them. Rooms and bar resolutions are not served yet (UNIMPLEMENTED).
* ``Connect``: ``subscribe``/``unsubscribe`` frames manage tick subscriptions; a bad frame
  gets an in-stream ``Error`` (code 3) and the stream stays open; chat posts and resumes
  get an ``Error`` with code 12 (UNIMPLEMENTED) for now.
* A lane past its limits ends the call with RESOURCE_EXHAUSTED and the lane's reason.
* ``GetBars`` and ``GetChatHistory``: UNIMPLEMENTED.

The gRPC health and reflection services need ``grpcio-health-checking`` and
``grpcio-reflection``, which are not dependencies yet; ``add_market_data`` registers only
``MarketData``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable

import grpc
from grpc import aio

from fanout.frames import error_frame
from fanout.service import FanoutClient, TickFanout
from proto import mdfeed_pb2 as pb

__all__ = [
    "MAX_SYMBOLS",
    "MAX_SYMBOL_LEN",
    "SERVICE_NAME",
    "MarketDataServicer",
    "validate_symbols",
]

SERVICE_NAME = "mdfeed.v1.MarketData"
MAX_SYMBOL_LEN = 32
MAX_SYMBOLS = 10_000

_INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]
_UNIMPLEMENTED = grpc.StatusCode.UNIMPLEMENTED.value[0]


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


class MarketDataServicer:
    """The ``MarketData`` handlers; ``add_to_server`` registers them on a grpc.aio server."""

    def __init__(self, fanout: TickFanout) -> None:
        self._fanout = fanout

    def add_to_server(self, server: aio.Server) -> None:
        handlers = {
            "Subscribe": grpc.unary_stream_rpc_method_handler(
                self.subscribe,
                request_deserializer=pb.SubscribeRequest.FromString,
                response_serializer=_passthrough,
            ),
            "Connect": grpc.stream_stream_rpc_method_handler(
                self.connect,
                request_deserializer=pb.ClientFrame.FromString,
                response_serializer=_passthrough,
            ),
            "GetBars": grpc.unary_unary_rpc_method_handler(
                self.get_bars,
                request_deserializer=pb.BarsRequest.FromString,
                response_serializer=pb.BarsResponse.SerializeToString,
            ),
            "GetChatHistory": grpc.unary_unary_rpc_method_handler(
                self.get_chat_history,
                request_deserializer=pb.ChatHistoryRequest.FromString,
                response_serializer=pb.ChatHistoryResponse.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),)
        )

    async def _stream(
        self, client: FanoutClient, context: aio.ServicerContext[object, bytes]
    ) -> AsyncIterator[bytes]:
        async for frame in client.frames():
            yield frame
        reason = client.lane.disconnect_reason() or "tick lane closed"
        client.lane.close(reason)
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, reason)

    async def subscribe(
        self, request: pb.SubscribeRequest, context: aio.ServicerContext[object, bytes]
    ) -> AsyncIterator[bytes]:
        error = validate_symbols(request.symbols)
        if error is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error)
        if request.rooms or request.bar_resolutions:
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "rooms and bar_resolutions are not served yet"
            )
        fanout = self._fanout
        client = fanout.connect()
        try:
            fanout.subscribe(client, request.symbols)
            async for frame in self._stream(client, context):
                yield frame
        finally:
            fanout.disconnect(client)

    async def connect(
        self,
        requests: AsyncIterable[pb.ClientFrame],
        context: aio.ServicerContext[object, bytes],
    ) -> AsyncIterator[bytes]:
        fanout = self._fanout
        client = fanout.connect()
        reader = asyncio.create_task(self._read(requests, client), name="connect-reader")
        try:
            async for frame in self._stream(client, context):
                yield frame
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            fanout.disconnect(client)

    async def _read(self, requests: AsyncIterable[pb.ClientFrame], client: FanoutClient) -> None:
        async for frame in requests:
            self.handle_frame(client, frame)

    def handle_frame(self, client: FanoutClient, frame: pb.ClientFrame) -> None:
        """Apply one client frame; problems become in-stream ``Error`` frames."""
        body = frame.WhichOneof("body")
        fanout = self._fanout
        if body == "subscribe":
            request = frame.subscribe
            error = validate_symbols(request.symbols, allow_empty=bool(request.rooms))
            if error is not None:
                client.push(error_frame(_INVALID_ARGUMENT, f"subscribe: {error}"))
                return
            if request.rooms or request.bar_resolutions:
                client.push(
                    error_frame(_UNIMPLEMENTED, "subscribe: rooms and bars are not served yet")
                )
            fanout.subscribe(client, request.symbols)
        elif body == "unsubscribe":
            request_u = frame.unsubscribe
            error = validate_symbols(request_u.symbols, allow_empty=True)
            if error is not None:
                client.push(error_frame(_INVALID_ARGUMENT, f"unsubscribe: {error}"))
                return
            fanout.unsubscribe(client, request_u.symbols)
        elif body == "chat_post":
            client.push(
                error_frame(_UNIMPLEMENTED, "chat is not served yet", frame.chat_post.client_ref)
            )
        elif body == "resume":
            resume = frame.resume
            ref = resume.room if resume.WhichOneof("target") == "room" else resume.symbol
            client.push(error_frame(_UNIMPLEMENTED, "resume is not served yet", ref))
        else:
            client.push(error_frame(_INVALID_ARGUMENT, "client frame has no body"))

    async def get_bars(
        self, request: pb.BarsRequest, context: aio.ServicerContext[object, object]
    ) -> pb.BarsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetBars is not served yet")

    async def get_chat_history(
        self, request: pb.ChatHistoryRequest, context: aio.ServicerContext[object, object]
    ) -> pb.ChatHistoryResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetChatHistory is not served yet")
