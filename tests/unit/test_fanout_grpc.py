"""The MarketData gRPC service over a TickFanout and the in-process bus, end to end."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest
from grpc import aio
from polling import until

from fanout.lane import TickLane
from fanout.tick_fanout import TickFanout
from fanout.transports.grpc_service import SERVICE_NAME, MarketDataServicer
from mdfeed.kernel.bus import BusProducer, MemoryBus
from mdfeed.kernel.config import BusConfig
from proto import mdfeed_pb2 as pb


def tick(symbol: str, seq: int, *, from_snapshot: bool = False) -> bytes:
    return pb.Tick(
        symbol=symbol,
        seq=seq,
        kind=pb.TICK_KIND_QUOTE,
        bid_px_e8=15_025_000_000 + seq,
        ask_px_e8=15_026_000_000 + seq,
        from_snapshot=from_snapshot,
    ).SerializeToString()


@dataclass
class Stack:
    fanout: TickFanout
    producer: BusProducer
    topic: str
    channel: aio.Channel
    address: str

    async def publish(self, symbol: str, seqs: range, *, from_snapshot: bool = False) -> None:
        for seq in seqs:
            self.producer.send(
                self.topic, symbol.encode(), tick(symbol, seq, from_snapshot=from_snapshot)
            )
        assert await self.producer.flush(5)

    def subscribe_call(
        self, request: pb.SubscribeRequest, channel: aio.Channel | None = None
    ) -> aio.UnaryStreamCall[pb.SubscribeRequest, pb.ServerFrame]:
        method = (channel or self.channel).unary_stream(
            f"/{SERVICE_NAME}/Subscribe",
            request_serializer=pb.SubscribeRequest.SerializeToString,
            response_deserializer=pb.ServerFrame.FromString,
        )
        return method(request)

    def connect_call(self) -> aio.StreamStreamCall[pb.ClientFrame, pb.ServerFrame]:
        method = self.channel.stream_stream(
            f"/{SERVICE_NAME}/Connect",
            request_serializer=pb.ClientFrame.SerializeToString,
            response_deserializer=pb.ServerFrame.FromString,
        )
        return method(None)  # no iterator: the test writes frames


@asynccontextmanager
async def stack(
    lane_factory: Callable[[], TickLane] = TickLane, *, watchdog_interval_s: float = 1.0
) -> AsyncIterator[Stack]:
    bus = MemoryBus(dataclasses.replace(BusConfig(kind="memory"), tick_partitions=3))
    async with bus:
        topic = bus.config.tick_topic
        async with (
            TickFanout(
                bus,
                lane_factory=lane_factory,
                poll_timeout_ms=50,
                watchdog_interval_s=watchdog_interval_s,
            ) as fanout,
            bus.producer() as producer,
        ):
            server = aio.server()
            MarketDataServicer(fanout).add_to_server(server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            address = f"127.0.0.1:{port}"
            try:
                async with aio.insecure_channel(address) as channel:
                    yield Stack(fanout, producer, topic, channel, address)
            finally:
                await server.stop(grace=None)


def ticks_of(frame: pb.ServerFrame) -> list[tuple[str, int]]:
    return [(t.symbol, t.seq) for t in frame.ticks.ticks]


async def test_subscribe_sends_a_snapshot_then_contiguous_updates() -> None:
    async with asyncio.timeout(10), stack() as s:
        await s.publish("AAPL", range(1, 6))
        await s.publish("MSFT", range(1, 3))
        await until(lambda: s.fanout.records == 7)
        call = s.subscribe_call(pb.SubscribeRequest(symbols=["AAPL", "MSFT", "NEWCO"]))
        frames = aiter(call)
        first = await anext(frames)
        assert first.ticks.snapshot
        assert sorted(ticks_of(first)) == [("AAPL", 5), ("MSFT", 2)]
        await until(lambda: s.fanout.client_count == 1)
        await s.publish("AAPL", range(6, 106))
        await s.publish("NEWCO", range(1, 11))
        seen: dict[str, list[int]] = {}
        while len(seen.get("AAPL", [])) < 100 or len(seen.get("NEWCO", [])) < 10:
            frame = await anext(frames)
            assert frame.WhichOneof("body") == "ticks"
            assert not frame.ticks.conflated
            for symbol, seq in ticks_of(frame):
                seen.setdefault(symbol, []).append(seq)
        assert seen["AAPL"] == list(range(6, 106))
        assert seen["NEWCO"] == list(range(1, 11))
        call.cancel()
        await until(lambda: s.fanout.client_count == 0)


@pytest.mark.parametrize(
    ("symbols", "message"),
    [
        ([], "symbols: at least one symbol is required"),
        (["AAPL", ""], "symbols[1]: empty symbol"),
        (["X" * 33], "symbols[0]: symbol of 33 characters, at most 32"),
    ],
)
async def test_bad_subscribe_requests_get_invalid_argument(
    symbols: list[str], message: str
) -> None:
    async with asyncio.timeout(10), stack() as s:
        call = s.subscribe_call(pb.SubscribeRequest(symbols=symbols))
        with pytest.raises(aio.AioRpcError) as info:
            async for _ in call:
                pass
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == message


@pytest.mark.parametrize(
    ("request_", "status", "message"),
    [
        (pb.SubscribeRequest(symbols=[""]), "INVALID_ARGUMENT", "symbols[0]: empty symbol"),
        (
            pb.SubscribeRequest(symbols=["AAPL"], rooms=["bad room"]),
            "INVALID_ARGUMENT",
            None,
        ),
        (
            pb.SubscribeRequest(symbols=["AAPL"], bar_resolutions=[pb.RESOLUTION_1M]),
            "UNIMPLEMENTED",
            "bar updates are not enabled on this server",
        ),
    ],
)
async def test_subscribe_and_connects_subscribe_refuse_a_request_alike(
    request_: pb.SubscribeRequest, status: str, message: str | None
) -> None:
    async with asyncio.timeout(10), stack() as s:
        with pytest.raises(aio.AioRpcError) as info:
            async for _ in s.subscribe_call(request_):
                pass
        assert info.value.code().name == status
        if message is not None:
            assert info.value.details() == message
        call = s.connect_call()
        await call.write(pb.ClientFrame(subscribe=request_))
        frame = await call.read()
        assert isinstance(frame, pb.ServerFrame)
        assert frame.error.code == grpc.StatusCode[status].value[0]
        assert frame.error.message == f"subscribe: {info.value.details()}"
        assert s.fanout.client_count == 1  # the stream goes on, subscribed to nothing
        call.cancel()


async def test_history_methods_without_stores_are_unimplemented() -> None:
    async with asyncio.timeout(10), stack() as s:
        get_bars = s.channel.unary_unary(
            f"/{SERVICE_NAME}/GetBars",
            request_serializer=pb.BarsRequest.SerializeToString,
            response_deserializer=pb.BarsResponse.FromString,
        )
        with pytest.raises(aio.AioRpcError) as info:
            await get_bars(pb.BarsRequest(symbol="AAPL", resolution=pb.RESOLUTION_1M))
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert info.value.details() == "bars are not served here"


async def test_a_stalled_client_gets_conflated_batches_while_another_keeps_full_rate() -> None:
    def lane() -> TickLane:
        return TickLane(max_pending_ticks=40, max_pending_symbols=100, max_stall_s=30)

    symbols = ["AAPL", "MSFT", "IBM"]
    total = 1500
    async with asyncio.timeout(10), stack(lane) as s:
        slow_channel = aio.insecure_channel(
            s.address,
            options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)],
        )
        async with slow_channel:
            fast = s.subscribe_call(pb.SubscribeRequest(symbols=symbols))
            slow = s.subscribe_call(pb.SubscribeRequest(symbols=symbols), slow_channel)
            fast_frames, slow_frames = aiter(fast), aiter(slow)
            assert (await anext(fast_frames)).ticks.snapshot
            assert (await anext(slow_frames)).ticks.snapshot
            await until(lambda: s.fanout.client_count == 2)

            fast_seen: dict[str, list[int]] = {sym: [] for sym in symbols}

            async def read_fast() -> None:
                while any(len(v) < total for v in fast_seen.values()):
                    frame = await anext(fast_frames)
                    assert frame.WhichOneof("body") == "ticks"
                    for symbol, seq in ticks_of(frame):
                        fast_seen[symbol].append(seq)

            reader = asyncio.create_task(read_fast())
            for start in range(1, total + 1, 5):
                for seq in range(start, start + 5):
                    for symbol in symbols:
                        s.producer.send(s.topic, symbol.encode(), tick(symbol, seq))
                assert await s.producer.flush(5)
                await asyncio.sleep(0.001)
            await reader
            for symbol in symbols:
                assert fast_seen[symbol] == list(range(1, total + 1)), "fast client lost ticks"

            delivered: dict[str, list[int]] = {sym: [] for sym in symbols}
            gaps: dict[str, list[tuple[int, int]]] = {sym: [] for sym in symbols}
            conflated_frames = 0
            while any(not v or v[-1] < total for v in delivered.values()):
                frame = await anext(slow_frames)
                body = frame.WhichOneof("body")
                if body == "gap":
                    assert frame.gap.reason == pb.GAP_REASON_CONFLATED
                    gaps[frame.gap.symbol].append((frame.gap.from_seq, frame.gap.to_seq))
                    continue
                assert body == "ticks"
                conflated_frames += frame.ticks.conflated
                for symbol, seq in ticks_of(frame):
                    delivered[symbol].append(seq)
            assert conflated_frames > 0
            for symbol in symbols:
                covered = set(delivered[symbol])
                for low, high in gaps[symbol]:
                    covered.update(range(low, high + 1))
                assert covered == set(range(1, total + 1)), f"{symbol}: seqs unaccounted for"
                assert delivered[symbol] == sorted(delivered[symbol])
            fast.cancel()
            slow.cancel()


async def test_connect_subscribe_unsubscribe_and_bad_frames() -> None:
    async with asyncio.timeout(10), stack() as s:
        await s.publish("AAPL", range(1, 4))
        await until(lambda: s.fanout.records == 3)
        call = s.connect_call()
        other = s.subscribe_call(pb.SubscribeRequest(symbols=["AAPL"]))
        other_frames = aiter(other)
        assert ticks_of(await anext(other_frames)) == [("AAPL", 3)]

        await call.write(pb.ClientFrame(subscribe=pb.SubscribeRequest(symbols=["AAPL"])))
        snapshot = await call.read()
        assert isinstance(snapshot, pb.ServerFrame)
        assert snapshot.ticks.snapshot
        assert ticks_of(snapshot) == [("AAPL", 3)]

        await s.publish("AAPL", range(4, 9))
        got: list[int] = []
        while len(got) < 5:
            frame = await call.read()
            assert isinstance(frame, pb.ServerFrame)
            got += [seq for _, seq in ticks_of(frame)]
        assert got == [4, 5, 6, 7, 8]
        other_got: list[int] = []
        while len(other_got) < 5:
            other_got += [seq for _, seq in ticks_of(await anext(other_frames))]
        assert other_got == [4, 5, 6, 7, 8], "the other client was affected"

        await call.write(pb.ClientFrame(unsubscribe=pb.UnsubscribeRequest(symbols=["AAPL"])))
        await call.write(pb.ClientFrame(subscribe=pb.SubscribeRequest(symbols=["MSFT"])))
        frame = await call.read()
        assert isinstance(frame, pb.ServerFrame)
        assert frame.ticks.snapshot
        assert ticks_of(frame) == []
        await s.publish("AAPL", range(9, 11))
        await s.publish("MSFT", range(1, 3))
        frame = await call.read()
        assert isinstance(frame, pb.ServerFrame)
        assert ticks_of(frame) == [("MSFT", 1), ("MSFT", 2)] or ticks_of(frame) == [("MSFT", 1)]
        await call.done_writing()
        call.cancel()
        other.cancel()


async def test_upstream_restart_sends_resync_and_new_ticks() -> None:
    async with asyncio.timeout(10), stack() as s:
        await s.publish("AAPL", range(1, 51))
        await until(lambda: s.fanout.records == 50)
        call = s.subscribe_call(pb.SubscribeRequest(symbols=["AAPL"]))
        frames = aiter(call)
        assert ticks_of(await anext(frames)) == [("AAPL", 50)]
        await until(lambda: s.fanout.client_count == 1)
        await s.publish("AAPL", range(1, 2), from_snapshot=True)
        await s.publish("AAPL", range(2, 5))
        gap = await anext(frames)
        assert gap.WhichOneof("body") == "gap"
        assert gap.gap.symbol == "AAPL"
        assert gap.gap.reason == pb.GAP_REASON_RESYNC
        assert (gap.gap.from_seq, gap.gap.to_seq) == (1, 50)
        got: list[int] = []
        while len(got) < 4:
            got += [seq for _, seq in ticks_of(await anext(frames))]
        assert got == [1, 2, 3, 4]
        assert s.fanout.resyncs == 1
        assert s.fanout.cache.get("AAPL") is not None
        call.cancel()


async def test_bad_connect_frames_get_error_frames_and_the_stream_goes_on() -> None:
    async with asyncio.timeout(10), stack() as s:
        call = s.connect_call()
        other = s.subscribe_call(pb.SubscribeRequest(symbols=["AAPL"]))
        other_frames = aiter(other)
        assert (await anext(other_frames)).ticks.snapshot
        await until(lambda: s.fanout.client_count == 2)
        await call.write(pb.ClientFrame())
        error = await call.read()
        assert isinstance(error, pb.ServerFrame)
        assert error.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert error.error.message == "client frame has no body"

        await call.write(
            pb.ClientFrame(chat_post=pb.ChatPost(room="r", text="hi", client_ref="c1"))
        )
        error = await call.read()
        assert isinstance(error, pb.ServerFrame)
        assert (error.error.code, error.error.ref) == (12, "c1")
        await call.write(pb.ClientFrame(resume=pb.ResumeRequest(room="r", after_seq=3)))
        error = await call.read()
        assert isinstance(error, pb.ServerFrame)
        assert (error.error.code, error.error.ref) == (12, "r")

        await call.write(pb.ClientFrame(subscribe=pb.SubscribeRequest(symbols=[""])))
        error = await call.read()
        assert isinstance(error, pb.ServerFrame)
        assert error.error.code == 3
        assert error.error.message == "subscribe: symbols[0]: empty symbol"

        await call.write(pb.ClientFrame(subscribe=pb.SubscribeRequest(symbols=["AAPL"])))
        frame = await call.read()
        assert isinstance(frame, pb.ServerFrame)
        assert frame.ticks.snapshot
        await s.publish("AAPL", range(1, 4))
        got: list[int] = []
        while len(got) < 3:
            frame = await call.read()
            assert isinstance(frame, pb.ServerFrame)
            got += [seq for _, seq in ticks_of(frame)]
        assert got == [1, 2, 3]
        other_got: list[int] = []
        while len(other_got) < 3:
            other_got += [seq for _, seq in ticks_of(await anext(other_frames))]
        assert other_got == [1, 2, 3], "the other client was affected"
        call.cancel()
        other.cancel()


async def test_a_lane_past_its_limits_ends_the_call_with_resource_exhausted() -> None:
    def lane() -> TickLane:
        return TickLane(max_pending_ticks=10, max_pending_symbols=3, max_stall_s=30)

    symbols = [f"S{i}" for i in range(8)]
    async with asyncio.timeout(10), stack(lane) as s:
        slow_channel = aio.insecure_channel(
            s.address,
            options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)],
        )
        async with slow_channel:
            slow = s.subscribe_call(pb.SubscribeRequest(symbols=symbols), slow_channel)
            frames = aiter(slow)
            assert (await anext(frames)).ticks.snapshot
            await until(lambda: s.fanout.client_count == 1)
            for seq in range(1, 301):
                for symbol in symbols:
                    s.producer.send(s.topic, symbol.encode(), tick(symbol, seq))
            assert await s.producer.flush(5)
            await until(lambda: s.fanout.records == 300 * len(symbols))
            with pytest.raises(aio.AioRpcError) as info:
                async for _ in frames:
                    pass
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert info.value.details() == (
                "tick lane overflow: more than 3 symbols pending while conflating"
            )
            await until(lambda: s.fanout.client_count == 0)


async def test_a_client_stuck_past_the_stall_limit_is_cut_off() -> None:
    def lane() -> TickLane:
        return TickLane(max_pending_ticks=10, max_pending_symbols=100, max_stall_s=0.3)

    async with asyncio.timeout(10), stack(lane, watchdog_interval_s=0.05) as s:
        stuck_channel = aio.insecure_channel(
            s.address,
            options=[("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)],
        )
        async with stuck_channel:
            stuck = s.subscribe_call(pb.SubscribeRequest(symbols=["AAPL"]), stuck_channel)
            frames = aiter(stuck)
            assert (await anext(frames)).ticks.snapshot
            await until(lambda: s.fanout.client_count == 1)
            seq = 0
            while s.fanout.cut_off == 0:  # keep ticks coming until the stall limit hits
                for _ in range(50):
                    seq += 1
                    s.producer.send(s.topic, b"AAPL", tick("AAPL", seq))
                assert await s.producer.flush(5)
                await asyncio.sleep(0.01)
            with pytest.raises(aio.AioRpcError) as info:
                async for _ in frames:
                    pass
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (info.value.details() or "").startswith(
                "client stalled: no tick batch taken for"
            )
            await until(lambda: s.fanout.client_count == 0)
