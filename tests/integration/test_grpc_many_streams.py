"""A thousand concurrent gRPC Subscribe streams over a TickFanout fed from the real Kafka.

Ticks go through the stack's Kafka (a topic of the test's own) into a ``TickFanout`` and
out of ``MarketDataServicer`` to 1,000 Subscribe streams opened while ticks flow. Every
stream must account for every tick of every symbol it subscribed to: a snapshot first,
then each symbol's seqs continuing from the snapshot without a hole, unless an explicit
``GapNotice`` (GAP_REASON_CONFLATED) names exactly the seqs skipped; and every stream ends
on the last tick published of each symbol. Small lanes make slow streams conflate within
the test's volume; a few streams read nothing until publishing is over, so their lanes
conflate for certain.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

from grpc import aio
from polling import until

from fanout.lane import TickLane
from fanout.tick_fanout import TickFanout
from fanout.transports.grpc_service import SERVICE_NAME, MarketDataServicer
from mdfeed.kernel.bus import BusProducer, open_bus
from mdfeed.kernel.config import MdfeedConfig
from proto import mdfeed_pb2 as pb

STREAMS = 1000
LATE_READERS = 10  # of STREAMS: read nothing until publishing is over
STREAMS_PER_CHANNEL = 50
SYMBOLS = [f"S{i:02d}" for i in range(20)]
FIRST_ROUNDS = 3  # published before any stream opens: every snapshot has every symbol
ROUNDS_AFTER_OPEN = 20


def tick(symbol: str, seq: int) -> bytes:
    return pb.Tick(
        symbol=symbol,
        seq=seq,
        kind=pb.TICK_KIND_QUOTE,
        bid_px_e8=15_025_000_000 + seq,
        ask_px_e8=15_026_000_000 + seq,
    ).SerializeToString()


@dataclasses.dataclass
class StreamCheck:
    """What one stream received, checked frame by frame."""

    name: str
    last: dict[str, int] = dataclasses.field(default_factory=dict)
    snapshot: dict[str, int] | None = None
    gaps: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(f"{self.name}: {text}")

    def frame(self, frame: pb.ServerFrame) -> None:
        body = frame.WhichOneof("body")
        if self.snapshot is None:
            if body != "ticks" or not frame.ticks.snapshot:
                self.problem(
                    f"first frame is {body} (snapshot={frame.ticks.snapshot}), not a snapshot"
                )
            self.snapshot = {t.symbol: t.seq for t in frame.ticks.ticks}
            self.last.update(self.snapshot)
            return
        if body == "gap":
            gap = frame.gap
            expected = self.last.get(gap.symbol, 0) + 1
            if gap.reason != pb.GAP_REASON_CONFLATED:
                self.problem(f"gap notice with reason {gap.reason}")
            elif gap.from_seq != expected or gap.to_seq < gap.from_seq:
                self.problem(
                    f"{gap.symbol}: gap {gap.from_seq}..{gap.to_seq} after seq {expected - 1}"
                )
            self.last[gap.symbol] = gap.to_seq
            self.gaps += 1
            return
        if body != "ticks" or frame.ticks.snapshot:
            self.problem(f"unexpected {body} frame (snapshot={frame.ticks.snapshot})")
            return
        last = self.last
        for t in frame.ticks.ticks:
            previous = last.get(t.symbol)
            if previous is None:
                self.problem(f"{t.symbol}: seq {t.seq} of a symbol missing from the snapshot")
            elif t.seq != previous + 1:
                self.problem(f"{t.symbol}: seq {t.seq} after {previous}, no gap notice")
            last[t.symbol] = t.seq

    def caught_up(self, final: dict[str, int]) -> bool:
        last = self.last
        return all(last.get(symbol) == seq for symbol, seq in final.items())


class Streams:
    """The client side: Subscribe streams over a few shared channels, each with its check."""

    def __init__(self, address: str) -> None:
        self.channels = [
            aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(STREAMS // STREAMS_PER_CHANNEL)
        ]
        # Late readers: tiny HTTP/2 windows, so the server's writes block and lanes conflate.
        self.slow_channel = aio.insecure_channel(
            address,
            options=[
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.http2.bdp_probe", 0),
                ("grpc.http2.lookahead_bytes", 1024),
            ],
        )
        self.checks: list[StreamCheck] = []
        self.calls: list[aio.UnaryStreamCall[pb.SubscribeRequest, pb.ServerFrame]] = []
        self.readers: list[asyncio.Task[None]] = []
        self.late_start = asyncio.Event()

    async def open_all(self) -> None:
        for i in range(STREAMS):
            late = i < LATE_READERS
            channel = self.slow_channel if late else self.channels[i % len(self.channels)]
            method = channel.unary_stream(
                f"/{SERVICE_NAME}/Subscribe",
                request_serializer=pb.SubscribeRequest.SerializeToString,
                response_deserializer=pb.ServerFrame.FromString,
            )
            call = method(pb.SubscribeRequest(symbols=SYMBOLS))
            check = StreamCheck(f"stream {i}{' (late reader)' if late else ''}")
            self.calls.append(call)
            self.checks.append(check)
            self.readers.append(asyncio.create_task(self._read(call, check, late=late)))
            if i % 50 == 49:
                await asyncio.sleep(0)  # let the streams already open run

    async def _read(
        self,
        call: aio.UnaryStreamCall[pb.SubscribeRequest, pb.ServerFrame],
        check: StreamCheck,
        *,
        late: bool,
    ) -> None:
        if late:
            await self.late_start.wait()
        async for frame in call:
            check.frame(frame)
        raise AssertionError(f"{check.name}: the server ended the stream")

    def all_caught_up(self, final: dict[str, int]) -> bool:
        for reader in self.readers:
            if reader.done():  # a stream ended: its error is the failure
                reader.result()
        return all(check.caught_up(final) for check in self.checks)

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        for channel in (*self.channels, self.slow_channel):
            await channel.close(None)


@contextlib.asynccontextmanager
async def market_data_server(fanout: TickFanout) -> AsyncIterator[str]:
    server = aio.server()
    MarketDataServicer(fanout).add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


async def publish_round(producer: BusProducer, topic: str, seq: int) -> None:
    for symbol in SYMBOLS:
        producer.send(topic, symbol.encode(), tick(symbol, seq))
    assert await producer.flush(30), producer.stats


async def test_a_thousand_streams_get_snapshot_then_every_tick_or_a_gap_notice(
    stack_config: MdfeedConfig, unique_name: str
) -> None:
    config = dataclasses.replace(
        stack_config.bus,
        tick_topic=unique_name,
        chat_topic=f"{unique_name}_chat",
        client_id=f"mdfeed-test-{unique_name}",
    )

    def lane() -> TickLane:
        return TickLane(max_pending_ticks=64, max_pending_symbols=len(SYMBOLS), max_stall_s=300)

    async with (
        asyncio.timeout(90),
        open_bus(config) as bus,
        TickFanout(bus, lane_factory=lane, poll_timeout_ms=50) as fanout,
        bus.producer() as producer,
        market_data_server(fanout) as address,
    ):
        topic = config.tick_topic
        streams = Streams(address)
        try:
            for seq in range(1, FIRST_ROUNDS + 1):
                await publish_round(producer, topic, seq)
            await until(
                lambda: fanout.records == FIRST_ROUNDS * len(SYMBOLS),
                timeout_s=30,
                interval_s=0.05,
                what="the first rounds",
            )
            # Streams open while ticks keep coming: snapshots at differing seqs.
            opener = asyncio.create_task(streams.open_all())
            while not opener.done() or fanout.client_count < STREAMS:
                seq += 1
                await publish_round(producer, topic, seq)
                await asyncio.sleep(0.25)  # slow enough that new calls are not starved
            await opener
            for _ in range(ROUNDS_AFTER_OPEN):
                seq += 1
                await publish_round(producer, topic, seq)
                await asyncio.sleep(0.02)
            final = dict.fromkeys(SYMBOLS, seq)
            await until(
                lambda: fanout.records == seq * len(SYMBOLS),
                timeout_s=30,
                interval_s=0.05,
                what="the fanout to take every tick",
            )
            streams.late_start.set()
            await until(
                lambda: streams.all_caught_up(final),
                timeout_s=40,
                interval_s=0.05,
                what="every stream to reach the last tick of every symbol",
            )
        finally:
            await streams.close()

    checks = streams.checks
    assert len(checks) == STREAMS
    problems = [p for c in checks for p in c.problems]
    assert problems == [], "\n".join(problems[:20])
    for check in checks:
        assert check.snapshot is not None, f"{check.name}: no snapshot"
        assert set(check.snapshot) == set(SYMBOLS), f"{check.name}: snapshot {check.snapshot}"
        assert min(check.snapshot.values()) >= FIRST_ROUNDS, check.name
    late = checks[:LATE_READERS]
    assert sum(c.gaps for c in late) > 0, "the late readers' lanes never conflated"
