"""BarService on the in-process bus and the SQLite bar store: bars equal the recomputation
from the tick log, writes come before commits, listeners get stored bars."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import pytest
from polling import until

from mdfeed.kernel.bus import CommitFailedError, MemoryBus
from mdfeed.kernel.config import BusConfig, OhlcvConfig
from mdfeed.kernel.tick_records import batch_record
from ohlcv.aggregator import BarService
from ohlcv.bar_config import parse_resolutions, parse_session_timezone
from ohlcv.bars import recompute_bars
from proto import mdfeed_pb2 as pb
from storage import Checkpoint, SqliteBarStore, StoreError

CONFIG = OhlcvConfig(resolutions=("1s", "1m"), flush_interval_ms=20, allowed_lateness_s=0.5)
CONFIG_TOPIC = BusConfig().tick_topic
T0 = 1_700_000_000_000_000_000  # a Tuesday, UTC


def trades(symbol: str, count: int, *, start: int = 0) -> list[pb.Tick]:
    return [
        pb.Tick(
            symbol=symbol,
            seq=i + 1,
            kind=pb.TICK_KIND_TRADE,
            last_px_e8=(100 + (i * 7) % 13) * 100_000_000,
            last_size_e8=(1 + i % 5) * 100_000_000,
            venue_time_ns=T0 + (start + i) * 150_000_000,  # 150 ms apart
        )
        for i in range(count)
    ]


def bus() -> MemoryBus:
    return MemoryBus(dataclasses.replace(BusConfig(kind="memory"), tick_partitions=2))


async def test_stored_bars_equal_the_recomputation_from_the_tick_log(tmp_path: Path) -> None:
    ticks = trades("AAPL", 400) + trades("MSFT", 250)
    got: list[pb.Bar] = []
    async with bus() as b, SqliteBarStore(tmp_path / "bars.sqlite3") as store:
        async with b.producer() as producer:
            # AAPL's ticks one per record, MSFT's in batch records of 7 (mdfeed.kernel.tick_records).
            aapl = [t for t in ticks if t.symbol == "AAPL"]
            msft = [t.SerializeToString() for t in ticks if t.symbol == "MSFT"]
            for tick in aapl:
                producer.send(b.config.tick_topic, tick.symbol.encode(), tick.SerializeToString())
            batches = [batch_record(msft[i : i + 7]) for i in range(0, len(msft), 7)]
            for value in batches:
                producer.send(b.config.tick_topic, b"MSFT", value)
            assert await producer.flush(5)
        service = BarService(b, store, CONFIG, from_beginning=True)
        service.add_listener(got.extend)
        async with service:
            records = len(aapl) + len(batches)
            await until(lambda: service.stats.records == records, timeout_s=10)
            await service.flush()
        expected = recompute_bars(
            ticks,
            parse_resolutions(CONFIG.resolutions),
            parse_session_timezone(CONFIG.session_timezone),
            mid_when_no_trades=True,
            allowed_lateness_ns=500_000_000,
        )
        stored: dict[tuple[str, int, int], pb.Bar] = {}
        for symbol in ("AAPL", "MSFT"):
            for res in (pb.RESOLUTION_1S, pb.RESOLUTION_1M):
                for bar in await store.history(symbol, res, 0, 2**62):
                    stored[(bar.symbol, bar.resolution, bar.open_time_ns)] = bar
        assert set(stored) == set(expected)
        for key, bar in expected.items():
            mine = stored[key]
            assert (mine.open_px_e8, mine.high_px_e8, mine.low_px_e8, mine.close_px_e8) == (
                bar.open_px_e8, bar.high_px_e8, bar.low_px_e8, bar.close_px_e8,
            ), key  # fmt: skip
            assert (mine.volume_e8, mine.trade_count) == (bar.volume_e8, bar.trade_count), key
        assert {(bar.symbol, bar.resolution, bar.open_time_ns) for bar in got} == set(expected)


class FailingStore:
    """A bar store that refuses every write: the service must not commit."""

    def __init__(self) -> None:
        self.attempts = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def upsert(self, bars: Sequence[pb.Bar]) -> None:
        self.attempts += 1
        raise StoreError("refused")

    async def history(
        self,
        symbol: str,
        resolution: pb.Resolution.ValueType,
        from_ns: int,
        to_ns: int,
        countback: int = 0,
    ) -> list[pb.Bar]:
        return []

    async def last_before(
        self, symbol: str, resolution: pb.Resolution.ValueType, before_ns: int
    ) -> pb.Bar | None:
        return None

    async def symbols(self) -> list[str]:
        return []

    async def load_checkpoint(self, symbol: str) -> Checkpoint | None:
        return None

    async def save_checkpoints(self, checkpoints: Mapping[str, Checkpoint]) -> None:
        raise StoreError("refused")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class RefusingCommits(MemoryBus):
    """The in-process bus, whose consumers' first commits fail (as after a rebalance)."""

    refusals = 2

    def consumer(self, *args: Any, **kwargs: Any) -> Any:
        consumer = super().consumer(*args, **kwargs)
        commit = consumer.commit
        bus = self

        async def refusing() -> None:
            if bus.refusals > 0:
                bus.refusals -= 1
                raise CommitFailedError("the group rebalanced")
            await commit()

        consumer.commit = refusing  # type: ignore[method-assign]  # the bus's own consumer, refusing
        return consumer


async def test_a_refused_commit_does_not_stop_the_bars(tmp_path: Path) -> None:
    config = dataclasses.replace(CONFIG, flush_interval_ms=20)
    async with (
        RefusingCommits(BusConfig(kind="memory")) as b,
        SqliteBarStore(tmp_path / "bars.sqlite3") as store,
    ):
        service = BarService(b, store, config, from_beginning=True)
        async with service, b.producer() as producer:
            for tick in trades("AAPL", 60):
                producer.send(b.config.tick_topic, b"AAPL", tick.SerializeToString())
            assert await producer.flush(5)
            # Two commits refused, then the loop goes on: later flushes succeed.
            await until(
                lambda: service.stats.commit_errors == 2 and service.stats.flushes >= 1,
                timeout_s=10,
            )
            assert service.stats.records == 60
            assert service.failure is None
        bars = await store.history("AAPL", pb.RESOLUTION_1M, 0, 2**62)
        assert sum(bar.trade_count for bar in bars) == 60


async def test_offsets_are_committed_only_after_the_bars_are_written(tmp_path: Path) -> None:
    ticks = trades("AAPL", 50)
    async with bus() as b:
        async with b.producer() as producer:
            for tick in ticks:
                producer.send(b.config.tick_topic, b"AAPL", tick.SerializeToString())
            assert await producer.flush(5)
        failing = FailingStore()
        service = BarService(b, failing, CONFIG, from_beginning=True)
        async with service:
            await until(lambda: service.stats.records == 50 and failing.attempts >= 2, timeout_s=10)
            assert service.stats.store_errors >= 2
            assert service.stats.bars_written == 0
        # A new member of the group starts where nothing was committed: every tick again.
        async with SqliteBarStore(tmp_path / "bars.sqlite3") as store:
            again = BarService(b, store, CONFIG, from_beginning=True)
            async with again:
                await until(lambda: again.stats.records == 50, timeout_s=10)
                await again.flush()
            bars = await store.history("AAPL", pb.RESOLUTION_1M, 0, 2**62)
            assert sum(bar.trade_count for bar in bars) == 50


async def test_a_crash_between_checkpoint_and_commit_applies_nothing_twice(
    tmp_path: Path,
) -> None:
    # The first member writes bars and checkpoints for the whole log but dies before its
    # last commit: the next member gets half the log again, restores each symbol from its
    # checkpoint, skips what the checkpoint holds, and the stored bars equal the log's.
    aapl, msft = trades("AAPL", 600), trades("MSFT", 600)
    ticks = [t for pair in zip(aapl, msft, strict=True) for t in pair]  # one log, interleaved
    half = len(ticks) // 2
    path = tmp_path / "bars.sqlite3"
    one_partition = dataclasses.replace(BusConfig(kind="memory"), tick_partitions=1)
    slow = dataclasses.replace(CONFIG, flush_interval_ms=60_000)

    async def publish(b: MemoryBus, part: list[pb.Tick]) -> None:
        async with b.producer() as producer:
            for tick in part:
                producer.send(b.config.tick_topic, tick.symbol.encode(), tick.SerializeToString())
            assert await producer.flush(5)

    async with MemoryBus(one_partition) as b:
        await publish(b, ticks[:half])
        async with SqliteBarStore(path) as store:
            first = BarService(b, store, slow, from_beginning=True)
            await first.start()
            await until(lambda: first.stats.records == half, timeout_s=10)
            await first.flush()  # committed at half
            await publish(b, ticks[half:])
            await until(lambda: first.stats.records == len(ticks), timeout_s=10)
            consumer = first._consumer
            assert consumer is not None

            async def lost_commit() -> None:
                return None

            consumer.commit = lost_commit  # type: ignore[method-assign]  # the running service's consumer
            await first.flush()  # bars and checkpoints of the whole log; the commit is lost
            task = first._task
            assert task is not None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await consumer.stop()
        async with SqliteBarStore(path) as store:
            second = BarService(b, store, CONFIG, from_beginning=True)
            async with second:
                await until(lambda: second.stats.records == len(ticks) - half, timeout_s=10)
                await second.flush()
            assert second.stats.restored == 2
            assert second.stats.replayed_skipped == len(ticks) - half
            expected = recompute_bars(
                ticks,
                parse_resolutions(CONFIG.resolutions),
                parse_session_timezone(CONFIG.session_timezone),
                mid_when_no_trades=True,
                allowed_lateness_ns=500_000_000,
            )
            stored = {}
            for symbol in ("AAPL", "MSFT"):
                for res in (pb.RESOLUTION_1S, pb.RESOLUTION_1M):
                    for bar in await store.history(symbol, res, 0, 2**62):
                        stored[(bar.symbol, bar.resolution, bar.open_time_ns)] = bar
            assert stored == expected


async def publish(b: MemoryBus, ticks: Sequence[pb.Tick]) -> None:
    async with b.producer() as producer:
        for tick in ticks:
            producer.send(b.config.tick_topic, tick.symbol.encode(), tick.SerializeToString())
        assert await producer.flush(5)


async def stored_bars(store: SqliteBarStore, symbols: Sequence[str]) -> dict[Any, pb.Bar]:
    stored = {}
    for symbol in symbols:
        for res in (pb.RESOLUTION_1S, pb.RESOLUTION_1M):
            for bar in await store.history(symbol, res, 0, 2**62):
                stored[(bar.symbol, bar.resolution, bar.open_time_ns)] = bar
    return stored


async def test_a_bus_that_started_anew_keeps_the_checkpoints_bars_not_their_offsets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # `make run` twice: the second in-process bus starts at offset 0 again, below the
    # offsets the first run's checkpoints hold. Its ticks (later in time) must all be
    # applied, onto the open bars of the checkpoints: the bars equal those of both logs.
    first_log = trades("AAPL", 300) + trades("MSFT", 300)
    second_log = trades("AAPL", 100, start=300) + trades("MSFT", 100, start=300)
    path = tmp_path / "bars.sqlite3"
    async with bus() as first_bus, SqliteBarStore(path) as store:
        await publish(first_bus, first_log)
        first = BarService(first_bus, store, CONFIG, from_beginning=True)
        async with first:
            await until(lambda: first.stats.records == len(first_log), timeout_s=10)
        incarnation = await first_bus.incarnation(first_bus.config.tick_topic)
        checkpoint = await store.load_checkpoint("AAPL")
        assert checkpoint is not None
        assert checkpoint.incarnation == incarnation
        assert checkpoint.offset > len(second_log)  # the second log stays below it
    with caplog.at_level(logging.INFO, logger="ohlcv.aggregator"):
        async with bus() as second_bus, SqliteBarStore(path) as store:
            await publish(second_bus, second_log)
            second = BarService(second_bus, store, CONFIG, from_beginning=True)
            async with second:
                await until(lambda: second.stats.records == len(second_log), timeout_s=10)
                await second.flush()
            assert second.stats.restored == 2
            assert second.stats.offsets_dropped == 2
            assert second.stats.replayed_skipped == 0
            expected = recompute_bars(
                first_log + second_log,  # in each symbol's order
                parse_resolutions(CONFIG.resolutions),
                parse_session_timezone(CONFIG.session_timezone),
                mid_when_no_trades=True,
                allowed_lateness_ns=500_000_000,
            )
            assert await stored_bars(store, ("AAPL", "MSFT")) == expected
            renewed = await store.load_checkpoint("AAPL")
            assert renewed is not None
            assert renewed.incarnation == await second_bus.incarnation(CONFIG_TOPIC)
            assert renewed.incarnation != incarnation
    said = [r.getMessage() for r in caplog.records if "started anew" in r.getMessage()]
    assert len(said) == 1, said
    assert "the offsets of 2 checkpoints were dropped" in said[0], said
    assert incarnation in said[0], said


async def test_checkpoints_of_this_incarnation_keep_their_offsets(tmp_path: Path) -> None:
    # One bus, a second member after the first stopped (a restart, a takeover): nothing is
    # applied twice, and nothing is said about a new bus.
    ticks = trades("AAPL", 200)
    async with bus() as b, SqliteBarStore(tmp_path / "bars.sqlite3") as store:
        await publish(b, ticks)
        first = BarService(b, store, CONFIG, from_beginning=True)
        async with first:
            await until(lambda: first.stats.records == len(ticks), timeout_s=10)
        # A new group on the same bus reads the log from its start again.
        again = BarService(b, store, dataclasses.replace(CONFIG, group_id="another"))
        async with again:
            await until(lambda: again.stats.records == len(ticks), timeout_s=10)
        assert (again.stats.restored, again.stats.offsets_dropped) == (1, 0)
        assert again.stats.replayed_skipped == len(ticks)
        bars = await store.history("AAPL", pb.RESOLUTION_1M, 0, 2**62)
        assert sum(bar.trade_count for bar in bars) == len(ticks)


async def test_a_checkpoint_without_an_incarnation_counts_as_another_buss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Saved before checkpoints kept their incarnation: its offset cannot be trusted.
    ticks = trades("AAPL", 40)
    async with bus() as b, SqliteBarStore(tmp_path / "bars.sqlite3") as store:
        await store.save_checkpoints({"AAPL": Checkpoint(0, 1_000_000, b"")})
        await publish(b, ticks)
        service = BarService(b, store, CONFIG, from_beginning=True)
        with caplog.at_level(logging.INFO, logger="ohlcv.aggregator"):
            async with service:
                await until(lambda: service.stats.records == len(ticks), timeout_s=10)
        assert (service.stats.offsets_dropped, service.stats.replayed_skipped) == (1, 0)
        bars = await store.history("AAPL", pb.RESOLUTION_1M, 0, 2**62)
        assert sum(bar.trade_count for bar in bars) == len(ticks)
    said = [r.getMessage() for r in caplog.records if "started anew" in r.getMessage()]
    assert len(said) == 1, said
    assert "the offsets of 1 checkpoint were dropped" in said[0], said
    assert "saved under no incarnation" in said[0], said
