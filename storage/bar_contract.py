"""The bar store contract: the checks every adapter must pass, written once.

Each check is an async function that takes a :class:`BarStoreFactory` and raises
``AssertionError`` when the adapter breaks the contract (see :mod:`storage.bars` for the
policy it checks). The unit tests run them on :class:`~storage.SqliteBarStore`, the
integration tests on :class:`~storage.CassandraBarStore` against a real Cassandra::

    @pytest.mark.parametrize("check", BAR_CONTRACT_CHECKS.values(), ids=BAR_CONTRACT_CHECKS)
    async def test_contract(check: BarContractCheck, tmp_path: Path) -> None:
        await check(lambda: SqliteBarStore(tmp_path / "bars.sqlite3"))

A factory returns a new store, not started, on the same database each time it is called
(the same file, the same keyspace): a new store after ``close()`` stands for a restart.
Each check needs a database of its own, which no other check has written to. The stores
must keep bars for good (no TTL), as the checks write bars dated years apart.

Checkpoint checks (:data:`CHECKPOINT_CONTRACT_CHECKS`) take a
:class:`CheckpointStoreFactory` instead: given a checkpoint group, it returns a new, not
started store of that group on the check's database, so a check can open stores of two
groups on one database::

    async def test_checkpoints(check: CheckpointContractCheck, tmp_path: Path) -> None:
        path = tmp_path / "bars.sqlite3"
        await check(lambda group: SqliteBarStore(path, checkpoint_group=group))

Several checks write series that cross partition boundaries of any sensible time
bucketing (1s bars across midnight UTC and several days apart, 1m bars over four months,
1h bars over three years, 1D bars over 25 years), so adapters that split a series by time
are checked across their buckets.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Sequence

from proto import mdfeed_pb2 as pb
from storage.bars import (
    MAX_CHECKPOINT_STATE_BYTES,
    MAX_INCARNATION_CHARS,
    RESOLUTIONS,
    BarStore,
    Checkpoint,
)
from storage.errors import StoreClosedError

__all__ = [
    "BAR_CONTRACT_CHECKS",
    "CHECKPOINT_CONTRACT_CHECKS",
    "BarContractCheck",
    "BarStoreFactory",
    "CheckpointContractCheck",
    "CheckpointStoreFactory",
    "check_bad_arguments_are_refused",
    "check_bad_checkpoints_are_refused",
    "check_checkpoint_groups_are_independent",
    "check_checkpoint_round_trips",
    "check_checkpoint_state_is_binary_and_may_be_large",
    "check_checkpoint_symbols_are_independent",
    "check_checkpoints_survive_a_restart",
    "check_close_is_safe_twice",
    "check_countback_takes_the_last_bars_before_to",
    "check_every_field_round_trips",
    "check_history_range_is_half_open_and_ascending",
    "check_last_before",
    "check_many_bars_in_one_call",
    "check_no_checkpoint_is_none",
    "check_ranges_span_partition_buckets",
    "check_resolutions_are_independent",
    "check_restart_keeps_bars",
    "check_revised_bar_overwrites",
    "check_save_checkpoints_overwrites",
    "check_symbols_are_independent",
    "check_upsert_is_idempotent",
    "make_bar",
]

#: Makes a new, not started store on the check's database (see the module docstring).
BarStoreFactory = Callable[[], BarStore]
BarContractCheck = Callable[[BarStoreFactory], Awaitable[None]]
#: Makes a new, not started store of the given checkpoint group on the check's database.
CheckpointStoreFactory = Callable[[str], BarStore]
CheckpointContractCheck = Callable[[CheckpointStoreFactory], Awaitable[None]]

S = 1_000_000_000
M = 60 * S
H = 60 * M
DAY = 24 * H
#: 2026-01-01T00:00:00Z: a UTC midnight, a month, a year start.
T0 = 1_767_225_600 * S
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def make_bar(
    symbol: str,
    resolution: pb.Resolution.ValueType,
    open_time_ns: int,
    n: int = 0,
    *,
    final: bool = True,
) -> pb.Bar:
    """A bar whose values all derive from ``n``, so different ``n`` give a different bar."""
    base = 10_000_000_000 + 1_000 * n
    return pb.Bar(
        symbol=symbol,
        resolution=resolution,
        open_time_ns=open_time_ns,
        open_px_e8=base,
        high_px_e8=base + 500,
        low_px_e8=base - 500,
        close_px_e8=base + 100,
        volume_e8=100_000_000 * (n + 1),
        trade_count=n + 1,
        final=final,
    )


def _series(
    symbol: str, resolution: pb.Resolution.ValueType, start_ns: int, step_ns: int, count: int
) -> list[pb.Bar]:
    return [make_bar(symbol, resolution, start_ns + i * step_ns, i) for i in range(count)]


async def _all(store: BarStore, symbol: str, resolution: pb.Resolution.ValueType) -> list[pb.Bar]:
    return await store.history(symbol, resolution, _INT64_MIN, _INT64_MAX)


def _times(bars: Sequence[pb.Bar]) -> list[int]:
    return [b.open_time_ns for b in bars]


async def check_upsert_is_idempotent(make_store: BarStoreFactory) -> None:
    """Replaying bars, in any chunking and order, stores each key once."""
    bars = _series("IDEM", pb.RESOLUTION_1M, T0, M, 100)
    async with make_store() as store:
        await store.upsert([])  # nothing to do, and no error
        await store.upsert(bars)
        assert await _all(store, "IDEM", pb.RESOLUTION_1M) == bars
        await store.upsert(bars)
        replay = list(reversed(bars))
        for start in range(0, len(replay), 7):
            await store.upsert(replay[start : start + 7])
        await store.upsert(tuple(bars[:10]))  # any sequence
        stored = await _all(store, "IDEM", pb.RESOLUTION_1M)
    assert len(stored) == 100, f"a replay duplicated bars: {len(stored)} stored, 100 written"
    assert stored == bars


async def check_revised_bar_overwrites(make_store: BarStoreFactory) -> None:
    """A bar upserted again under its key replaces the stored one; in a call the last wins."""
    async with make_store() as store:
        neighbours = _series("REV", pb.RESOLUTION_5M, T0, 5 * M, 3)
        await store.upsert(neighbours)
        live = make_bar("REV", pb.RESOLUTION_5M, T0 + 5 * M, 1, final=False)
        await store.upsert([live])
        revised = pb.Bar()
        revised.CopyFrom(live)
        revised.high_px_e8 += 7_000
        revised.close_px_e8 += 6_000
        revised.volume_e8 *= 3
        revised.trade_count += 9
        revised.final = True
        await store.upsert([revised])
        stored = await _all(store, "REV", pb.RESOLUTION_5M)
        assert stored == [neighbours[0], revised, neighbours[2]], "the revision did not replace"

        versions = [make_bar("REV", pb.RESOLUTION_5M, T0 + 10 * M, n) for n in (50, 51, 52)]
        await store.upsert([versions[0], neighbours[0], versions[1], versions[2]])
        stored = await _all(store, "REV", pb.RESOLUTION_5M)
        assert stored == [neighbours[0], revised, versions[2]], "the last bar of a key must win"


async def check_history_range_is_half_open_and_ascending(make_store: BarStoreFactory) -> None:
    """history gives from_ns <= open_time_ns < to_ns, ascending, whatever the write order."""
    bars = _series("RNG", pb.RESOLUTION_1M, T0, M, 60)
    shuffled = list(bars)
    random.Random(7).shuffle(shuffled)
    async with make_store() as store:
        for start in range(0, 60, 20):
            await store.upsert(shuffled[start : start + 20])
        got = await store.history("RNG", pb.RESOLUTION_1M, T0 + 10 * M, T0 + 20 * M)
        assert got == bars[10:20], f"[10m, 20m) gave {_times(got)}"
        got = await store.history("RNG", pb.RESOLUTION_1M, T0 + 10 * M + 1, T0 + 20 * M + 1)
        assert got == bars[11:21], "from_ns is inclusive, to_ns exclusive, to the nanosecond"
        assert await store.history("RNG", pb.RESOLUTION_1M, T0 - DAY, T0 + DAY) == bars
        assert await store.history("RNG", pb.RESOLUTION_1M, T0 + 5 * M, T0 + 5 * M) == []
        assert await store.history("RNG", pb.RESOLUTION_1M, T0 + 5 * M, T0 + 5 * M + 1) == [bars[5]]
        assert await store.history("RNG", pb.RESOLUTION_1M, T0 - DAY, T0) == []
        assert await store.history("RNG", pb.RESOLUTION_1M, T0 + 60 * M, T0 + DAY) == []
        assert await store.history("NOPE", pb.RESOLUTION_1M, T0, T0 + DAY) == []


async def check_countback_takes_the_last_bars_before_to(make_store: BarStoreFactory) -> None:
    """countback > 0: the last countback bars with open_time_ns < to_ns, whatever from_ns."""
    bars = _series("CB", pb.RESOLUTION_15M, T0, 15 * M, 40)
    async with make_store() as store:
        await store.upsert(bars)
        to = T0 + 30 * 15 * M
        assert await store.history("CB", pb.RESOLUTION_15M, to - 15 * M, to, 5) == bars[25:30]
        assert await store.history("CB", pb.RESOLUTION_15M, to, to, 5) == bars[25:30], (
            "countback must ignore an empty [from, to)"
        )
        assert await store.history("CB", pb.RESOLUTION_15M, to + DAY, to, 5) == bars[25:30], (
            "countback must ignore a from_ns after to_ns"
        )
        assert await store.history("CB", pb.RESOLUTION_15M, 0, to + 1, 5) == bars[26:31]
        assert await store.history("CB", pb.RESOLUTION_15M, 0, to, 1000) == bars[:30]
        assert await store.history("CB", pb.RESOLUTION_15M, 0, T0, 10) == []
        assert await store.history("CB", pb.RESOLUTION_15M, 0, T0 + 1, 10) == bars[:1]
        assert await store.history("NOPE", pb.RESOLUTION_15M, 0, to, 10) == []


async def check_ranges_span_partition_buckets(make_store: BarStoreFactory) -> None:
    """Ranges, countbacks and last_before across midnight, months, years and decades."""
    # 1s: four minutes around midnight UTC, and ten bars three days before.
    around_midnight = _series("SPAN", pb.RESOLUTION_1S, T0 - 2 * M, S, 240)
    days_before = _series("SPAN", pb.RESOLUTION_1S, T0 - 3 * DAY, S, 10)
    # 1m: every 6 hours from 100 days before T0 to 20 days after (five months' boundaries).
    minutes = _series("SPAN", pb.RESOLUTION_1M, T0 - 100 * DAY + 7 * M, 6 * H, 480)
    # 1h: every 3 days over three years; 1D: every 30 days over 25 years, at 05:00 UTC.
    hours = _series("SPAN", pb.RESOLUTION_1H, T0 - 500 * DAY, 3 * DAY, 365)
    days = _series("SPAN", pb.RESOLUTION_1D, T0 - 20 * 365 * DAY + 5 * H, 30 * DAY, 300)
    async with make_store() as store:
        await store.upsert(days_before + around_midnight[::-1])
        await store.upsert(minutes + hours + days)

        one_s = pb.RESOLUTION_1S
        got = await store.history("SPAN", one_s, T0 - 30 * S, T0 + 30 * S)
        assert got == around_midnight[90:150], f"across midnight: {_times(got)[:3]}..."
        assert await store.history("SPAN", one_s, T0 - 5 * DAY, T0 + DAY) == (
            days_before + around_midnight
        )
        assert await store.history("SPAN", one_s, 0, T0 + 60 * S, 150) == around_midnight[30:180]
        got = await store.history("SPAN", one_s, 0, T0 - M, 65)
        assert got == days_before[5:] + around_midnight[:60], "countback over empty days"
        assert await store.history("SPAN", one_s, T0 - 2 * DAY, T0 - 3 * M) == []
        assert await store.last_before("SPAN", one_s, T0 - 3 * M) == days_before[-1]

        one_m = pb.RESOLUTION_1M
        # 2025-11-01T00:00Z .. 2025-12-01T00:00Z: one calendar month, across any bucket.
        november, december = 1_761_955_200 * S, 1_764_547_200 * S
        got = await store.history("SPAN", one_m, november, december)
        assert got == [b for b in minutes if november <= b.open_time_ns < december]
        assert len(got) == 120
        assert (
            await store.history("SPAN", one_m, 0, T0 + DAY, 300)
            == [b for b in minutes if b.open_time_ns < T0 + DAY][-300:]
        )
        assert await _all(store, "SPAN", one_m) == minutes

        got = await store.history("SPAN", pb.RESOLUTION_1H, T0 - 400 * DAY, T0 + 300 * DAY)
        assert got == [b for b in hours if T0 - 400 * DAY <= b.open_time_ns < T0 + 300 * DAY]
        assert (
            await store.history("SPAN", pb.RESOLUTION_1H, 0, T0, 200)
            == [b for b in hours if b.open_time_ns < T0][-200:]
        )
        assert await _all(store, "SPAN", pb.RESOLUTION_1D) == days
        assert (
            await store.history("SPAN", pb.RESOLUTION_1D, 0, T0, 200)
            == [b for b in days if b.open_time_ns < T0][-200:]
        )
        last = await store.last_before("SPAN", pb.RESOLUTION_1D, days[3].open_time_ns)
        assert last == days[2]


async def check_last_before(make_store: BarStoreFactory) -> None:
    """last_before: the newest bar strictly before before_ns, across gaps; None if none."""
    async with make_store() as store:
        assert await store.last_before("LB", pb.RESOLUTION_1H, T0) is None
        early = _series("LB", pb.RESOLUTION_1H, T0, H, 5)
        late = _series("LB", pb.RESOLUTION_1H, T0 + 40 * DAY, H, 5)
        await store.upsert(early + late)
        assert await store.last_before("LB", pb.RESOLUTION_1H, T0) is None
        assert await store.last_before("LB", pb.RESOLUTION_1H, T0 + 1) == early[0]
        assert await store.last_before("LB", pb.RESOLUTION_1H, T0 + 2 * H) == early[1]
        assert await store.last_before("LB", pb.RESOLUTION_1H, T0 + 39 * DAY) == early[-1]
        assert await store.last_before("LB", pb.RESOLUTION_1H, T0 + 400 * DAY) == late[-1]
        assert await store.last_before("LB", pb.RESOLUTION_1M, T0 + 400 * DAY) is None
        assert await store.last_before("OTHER", pb.RESOLUTION_1H, T0 + 400 * DAY) is None


async def check_resolutions_are_independent(make_store: BarStoreFactory) -> None:
    """Bars of one symbol and open time at each resolution are separate bars."""
    async with make_store() as store:
        mine = {r: make_bar("RES", r, T0, 10 * r) for r in RESOLUTIONS}
        await store.upsert(list(mine.values()))
        for resolution, bar in mine.items():
            name = pb.Resolution.Name(resolution)
            assert await _all(store, "RES", resolution) == [bar], f"{name} got others' bars"
            assert await store.last_before("RES", resolution, T0 + 1) == bar
            assert await store.history("RES", resolution, 0, T0 + 1, 10) == [bar]
        revised = make_bar("RES", pb.RESOLUTION_1H, T0, 999)
        await store.upsert([revised])
        assert await _all(store, "RES", pb.RESOLUTION_1H) == [revised]
        assert await _all(store, "RES", pb.RESOLUTION_1M) == [mine[pb.RESOLUTION_1M]]


async def check_symbols_are_independent(make_store: BarStoreFactory) -> None:
    """Each symbol has its own bars; symbols() lists every symbol with a bar, sorted."""
    names = ["MSFT", "AAPL", "AAP", "AAPL.OQ", "株価.T", "ESZ6 Index"]
    async with make_store() as store:
        assert await store.symbols() == []
        for n, symbol in enumerate(names):
            await store.upsert(_series(symbol, pb.RESOLUTION_1M, T0 + n * S, M, 3 + n))
        for n, symbol in enumerate(names):
            got = await _all(store, symbol, pb.RESOLUTION_1M)
            assert got == _series(symbol, pb.RESOLUTION_1M, T0 + n * S, M, 3 + n), symbol
            assert await store.last_before(symbol, pb.RESOLUTION_1M, T0 + DAY) == got[-1]
        assert await store.symbols() == sorted(names)
        await store.upsert(_series("MSFT", pb.RESOLUTION_1D, T0, DAY, 2))
        assert await store.symbols() == sorted(names), "a symbol is listed once"


async def check_every_field_round_trips(make_store: BarStoreFactory) -> None:
    """Every field, at the int64 extremes and negative, comes back exactly."""
    extremes = [
        pb.Bar(
            symbol="EXT",
            resolution=pb.RESOLUTION_1D,
            open_time_ns=-5 * DAY,  # before the epoch
            open_px_e8=_INT64_MIN,
            high_px_e8=_INT64_MAX,
            low_px_e8=-1,
            close_px_e8=0,
            volume_e8=_INT64_MAX,
            trade_count=_INT64_MAX,
            final=False,
        ),
        pb.Bar(
            symbol="EXT",
            resolution=pb.RESOLUTION_1D,
            open_time_ns=T0 + 5 * H,
            open_px_e8=-3_700_000_000,  # a negative price (a spread, a future in 2020)
            high_px_e8=-100_000_000,
            low_px_e8=-4_000_000_000,
            close_px_e8=-200_000_000,
            volume_e8=0,
            trade_count=0,
            final=True,
        ),
    ]
    async with make_store() as store:
        await store.upsert(extremes)
    async with make_store() as store:
        assert await _all(store, "EXT", pb.RESOLUTION_1D) == extremes
        got = await store.history("EXT", pb.RESOLUTION_1D, -10 * DAY, 0)
        assert got == extremes[:1]


async def check_restart_keeps_bars(make_store: BarStoreFactory) -> None:
    """A new store on the database (a restart) has every bar and keeps upserting by key."""
    first = _series("DUR", pb.RESOLUTION_1S, T0 - 10 * S, S, 20)
    async with make_store() as store:
        await store.upsert(first)
    async with make_store() as store:
        assert await _all(store, "DUR", pb.RESOLUTION_1S) == first
        assert await store.symbols() == ["DUR"]
        replacement = make_bar("DUR", pb.RESOLUTION_1S, first[3].open_time_ns, 77)
        more = _series("DUR", pb.RESOLUTION_1S, T0 + 10 * S, S, 5)
        await store.upsert([replacement, *more])
        expected = [*first[:3], replacement, *first[4:], *more]
        assert await _all(store, "DUR", pb.RESOLUTION_1S) == expected
    async with make_store() as store:
        assert await _all(store, "DUR", pb.RESOLUTION_1S) == expected


async def check_many_bars_in_one_call(make_store: BarStoreFactory) -> None:
    """One call of thousands of bars (a backfill) stores them all."""
    bars = _series("BULK", pb.RESOLUTION_1S, T0 - 1_500 * S, S, 3_000)
    async with make_store() as store:
        await store.upsert(bars)
        assert await _all(store, "BULK", pb.RESOLUTION_1S) == bars
        assert await store.history("BULK", pb.RESOLUTION_1S, 0, T0 + DAY, 2_000) == bars[-2000:]


async def _refused_when_closed(store: BarStore, when: str) -> None:
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "upsert": lambda: store.upsert([make_bar("X", pb.RESOLUTION_1M, T0)]),
        "upsert([])": lambda: store.upsert([]),
        "history": lambda: store.history("X", pb.RESOLUTION_1M, 0, T0),
        "last_before": lambda: store.last_before("X", pb.RESOLUTION_1M, T0),
        "symbols": store.symbols,
        "save_checkpoints": lambda: store.save_checkpoints({"X": Checkpoint(0, 1, b"s")}),
        "save_checkpoints({})": lambda: store.save_checkpoints({}),
        "load_checkpoint": lambda: store.load_checkpoint("X"),
    }
    for name, call in calls.items():
        try:
            await call()
        except StoreClosedError:
            continue
        raise AssertionError(f"{name} {when} did not raise StoreClosedError")


async def check_close_is_safe_twice(make_store: BarStoreFactory) -> None:
    """close() twice (and before start) is fine; calls before start or after close refuse."""
    never_started = make_store()
    await _refused_when_closed(never_started, "before start()")
    await never_started.close()
    await never_started.close()

    store = make_store()
    async with store as entered:
        assert entered is store, "async with must give the store itself"
        await store.start()  # starting a started store changes nothing
        await store.upsert([make_bar("X", pb.RESOLUTION_1M, T0)])
    await store.close()
    await store.close()
    await _refused_when_closed(store, "after close()")
    try:
        await store.start()
    except StoreClosedError:
        pass
    else:
        raise AssertionError("start() after close() did not raise StoreClosedError")


async def check_bad_arguments_are_refused(make_store: BarStoreFactory) -> None:
    """Bad arguments raise ValueError naming what is wrong, and a bad call stores nothing."""
    good = make_bar("OK", pb.RESOLUTION_1M, T0)
    no_symbol = make_bar("", pb.RESOLUTION_1M, T0)
    unspecified = make_bar("OK", pb.RESOLUTION_UNSPECIFIED, T0 + M)
    huge_count = make_bar("OK", pb.RESOLUTION_1M, T0 + 2 * M)
    huge_count.trade_count = 2**64 - 1
    bad_calls: list[tuple[str, Callable[[BarStore], Awaitable[object]]]] = [
        ("bars", lambda s: s.upsert(good)),  # type: ignore[arg-type]  # a Bar, not a list
        ("bars[1]", lambda s: s.upsert([good, "bar"])),  # type: ignore[list-item]  # a str among the bars
        ("bars[1].symbol", lambda s: s.upsert([good, no_symbol])),
        ("bars[1].resolution", lambda s: s.upsert([good, unspecified])),
        ("bars[1].trade_count", lambda s: s.upsert([good, huge_count])),
        ("symbol", lambda s: s.history("", pb.RESOLUTION_1M, 0, T0)),
        ("resolution", lambda s: s.history("OK", 99, 0, T0)),  # type: ignore[arg-type]  # no such resolution
        ("resolution", lambda s: s.history("OK", pb.RESOLUTION_UNSPECIFIED, 0, T0)),
        ("from_ns", lambda s: s.history("OK", pb.RESOLUTION_1M, T0, 0)),
        ("to_ns", lambda s: s.history("OK", pb.RESOLUTION_1M, 0, 2**63)),
        ("countback", lambda s: s.history("OK", pb.RESOLUTION_1M, 0, T0, -1)),
        ("before_ns", lambda s: s.last_before("OK", pb.RESOLUTION_1M, 1.5)),  # type: ignore[arg-type]  # a float time
        ("symbol", lambda s: s.last_before("\ud800", pb.RESOLUTION_1M, T0)),
    ]
    async with make_store() as store:
        for argument, call in bad_calls:
            message = ""
            try:
                await call(store)
            except ValueError as exc:
                message = str(exc)
            if not message:
                raise AssertionError(f"a bad {argument} was accepted")
            assert argument in message, f"the error does not name {argument!r}: {message}"
        assert await store.symbols() == [], "a refused upsert stored bars"
        assert await _all(store, "OK", pb.RESOLUTION_1M) == []


BAR_CONTRACT_CHECKS: dict[str, BarContractCheck] = {
    "upsert_is_idempotent": check_upsert_is_idempotent,
    "revised_bar_overwrites": check_revised_bar_overwrites,
    "history_range_is_half_open_and_ascending": check_history_range_is_half_open_and_ascending,
    "countback_takes_the_last_bars_before_to": check_countback_takes_the_last_bars_before_to,
    "ranges_span_partition_buckets": check_ranges_span_partition_buckets,
    "last_before": check_last_before,
    "resolutions_are_independent": check_resolutions_are_independent,
    "symbols_are_independent": check_symbols_are_independent,
    "every_field_round_trips": check_every_field_round_trips,
    "restart_keeps_bars": check_restart_keeps_bars,
    "many_bars_in_one_call": check_many_bars_in_one_call,
    "close_is_safe_twice": check_close_is_safe_twice,
    "bad_arguments_are_refused": check_bad_arguments_are_refused,
}


# Aggregator checkpoints ---------------------------------------------------------------------

_GROUP = "mdfeed-ohlcv"


async def check_checkpoint_round_trips(make_store: CheckpointStoreFactory) -> None:
    """A saved checkpoint loads back equal, every field, at the extremes too."""
    saved = {
        "AAPL": Checkpoint(3, 1_234_567, b"open bars", "kafka:Tz6FHFgmTSOPs8UvrGYvMg/md.ticks"),
        "ZERO": Checkpoint(partition=0, offset=0, state=b""),
        "MAX": Checkpoint(2**31 - 1, _INT64_MAX, b"\xff", "i" * MAX_INCARNATION_CHARS),
        "Ünï/код 📈": Checkpoint(1, 2, b"x", "memory:Ünï/код 📈"),
    }
    async with make_store(_GROUP) as store:
        await store.save_checkpoints({})  # nothing to do, and no error
        await store.save_checkpoints(saved)
        for symbol, checkpoint in saved.items():
            got = await store.load_checkpoint(symbol)
            assert got == checkpoint, f"{symbol}: saved {checkpoint!r}, loaded {got!r}"
            assert got is not None
            assert type(got.state) is bytes, f"{symbol}: state must load as bytes"


async def check_save_checkpoints_overwrites(make_store: CheckpointStoreFactory) -> None:
    """Each save replaces the symbol's checkpoint, whatever it held (also a larger offset)."""
    async with make_store(_GROUP) as store:
        first = Checkpoint(2, 100, b"first state, longer than the next")
        await store.save_checkpoints({"OVR": first})
        await store.save_checkpoints({"OVR": first})  # idempotent
        assert await store.load_checkpoint("OVR") == first
        later = Checkpoint(2, 250, b"later")
        await store.save_checkpoints({"OVR": later})
        assert await store.load_checkpoint("OVR") == later, "a save did not overwrite"
        moved = Checkpoint(5, 7, b"")  # another partition (a repartitioned topic): no merge
        await store.save_checkpoints({"OVR": moved})
        assert await store.load_checkpoint("OVR") == moved
        anew = Checkpoint(5, 3, b"", "memory:second-run")  # a bus that started anew
        await store.save_checkpoints({"OVR": anew})
        assert await store.load_checkpoint("OVR") == anew, "the incarnation was not saved"
        await store.save_checkpoints({"OVR": moved})
        assert await store.load_checkpoint("OVR") == moved, "an empty incarnation was not"
        for offset in range(1, 21):  # a run of flushes: the last save is what loads
            await store.save_checkpoints({"OVR": Checkpoint(5, offset, offset.to_bytes(2))})
        assert await store.load_checkpoint("OVR") == Checkpoint(5, 20, (20).to_bytes(2))


async def check_checkpoint_symbols_are_independent(make_store: CheckpointStoreFactory) -> None:
    """A symbol's checkpoint is its own: saving others (in one call or not) leaves it be."""
    many = {f"S{i:03}": Checkpoint(i % 12, 1_000 + i, f"state {i}".encode()) for i in range(300)}
    async with make_store(_GROUP) as store:
        await store.save_checkpoints(many)  # one flush of many symbols
        await store.save_checkpoints({"S007": Checkpoint(7, 5_000, b"seven again")})
        assert await store.load_checkpoint("S007") == Checkpoint(7, 5_000, b"seven again")
        for symbol in ("S000", "S006", "S008", "S299"):
            assert await store.load_checkpoint(symbol) == many[symbol], symbol
        assert await store.load_checkpoint("S300") is None
        assert await store.load_checkpoint("s000") is None, "symbols are case-sensitive"
        assert await store.load_checkpoint("S00") is None, "no prefix match"
        assert await store.symbols() == [], "checkpoints are not bars"


async def check_checkpoint_groups_are_independent(make_store: CheckpointStoreFactory) -> None:
    """Two groups on one database each see only their own checkpoints."""
    async with make_store("group-a") as a, make_store("group-b") as b:
        await a.save_checkpoints({"AAPL": Checkpoint(1, 10, b"a"), "ONLY_A": Checkpoint(0, 1, b"")})
        assert await b.load_checkpoint("AAPL") is None, "group b sees group a's checkpoint"
        await b.save_checkpoints({"AAPL": Checkpoint(2, 20, b"b")})
        assert await a.load_checkpoint("AAPL") == Checkpoint(1, 10, b"a"), "b overwrote a"
        assert await b.load_checkpoint("AAPL") == Checkpoint(2, 20, b"b")
        assert await b.load_checkpoint("ONLY_A") is None
    async with make_store("group-a") as a:
        assert await a.load_checkpoint("AAPL") == Checkpoint(1, 10, b"a")


async def check_checkpoint_state_is_binary_and_may_be_large(
    make_store: CheckpointStoreFactory,
) -> None:
    """State comes back byte for byte: every byte value, zero bytes, and 200 KB of it."""
    every_byte = bytes(range(256)) * 4
    zeros = b"\x00" * 1_000
    large = random.Random(7).randbytes(200 * 1024)
    saved = {
        "BYTES": Checkpoint(0, 1, every_byte),
        "ZEROS": Checkpoint(0, 2, zeros),
        "NUL_EDGES": Checkpoint(0, 3, b"\x00state\x00"),
        "LARGE": Checkpoint(0, 4, large),
    }
    async with make_store(_GROUP) as store:
        await store.save_checkpoints(saved)
    async with make_store(_GROUP) as store:
        for symbol, checkpoint in saved.items():
            got = await store.load_checkpoint(symbol)
            assert got is not None, f"{symbol}: nothing loaded"
            assert len(got.state) == len(checkpoint.state), f"{symbol}: state length changed"
            assert got == checkpoint, f"{symbol}: state changed on the way"


async def check_checkpoints_survive_a_restart(make_store: CheckpointStoreFactory) -> None:
    """A new store of the group on the database (a takeover, a restart) loads the last save."""
    async with make_store(_GROUP) as store:
        await store.save_checkpoints(
            {"DUR": Checkpoint(4, 41, b"before"), "KEEP": Checkpoint(1, 1, b"k")}
        )
        await store.save_checkpoints({"DUR": Checkpoint(4, 42, b"crash point")})
    async with make_store(_GROUP) as store:
        assert await store.load_checkpoint("DUR") == Checkpoint(4, 42, b"crash point")
        await store.save_checkpoints({"DUR": Checkpoint(4, 43, b"after")})
    async with make_store(_GROUP) as store:
        assert await store.load_checkpoint("DUR") == Checkpoint(4, 43, b"after")
        assert await store.load_checkpoint("KEEP") == Checkpoint(1, 1, b"k")


async def check_no_checkpoint_is_none(make_store: CheckpointStoreFactory) -> None:
    """A symbol never saved, on an empty store, in a group never used, loads ``None``."""
    async with make_store(_GROUP) as store:
        assert await store.load_checkpoint("NONE") is None
        await store.upsert([make_bar("BARS_ONLY", pb.RESOLUTION_1M, T0)])
        assert await store.load_checkpoint("BARS_ONLY") is None, "a bar is not a checkpoint"
    async with make_store("never-used") as store:
        assert await store.load_checkpoint("NONE") is None


async def check_bad_checkpoints_are_refused(make_store: CheckpointStoreFactory) -> None:
    """Bad arguments raise ValueError naming what is wrong, and a bad call saves nothing."""
    good = Checkpoint(0, 1, b"ok")
    too_large = b"x" * (MAX_CHECKPOINT_STATE_BYTES + 1)
    too_long = "i" * (MAX_INCARNATION_CHARS + 1)
    bad_saves: list[tuple[str, object]] = [
        ("checkpoints", [("OK", good)]),  # pairs, not a mapping
        ("checkpoints key", {"OK": good, "": good}),
        ("checkpoints key", {"OK": good, 7: good}),
        ("checkpoints key", {"OK": good, "\ud800": good}),
        ("checkpoints['BAD']", {"OK": good, "BAD": (0, 1, b"")}),
        ("checkpoints['BAD'].partition", {"OK": good, "BAD": Checkpoint(-1, 1, b"")}),
        ("checkpoints['BAD'].partition", {"OK": good, "BAD": Checkpoint(2**31, 1, b"")}),
        ("checkpoints['BAD'].partition", {"OK": good, "BAD": Checkpoint(True, 1, b"")}),
        ("checkpoints['BAD'].offset", {"OK": good, "BAD": Checkpoint(0, -1, b"")}),
        ("checkpoints['BAD'].offset", {"OK": good, "BAD": Checkpoint(0, 2**63, b"")}),
        ("checkpoints['BAD'].offset", {"OK": good, "BAD": Checkpoint(0, 1.0, b"")}),  # type: ignore[arg-type]  # a float offset
        ("checkpoints['BAD'].state", {"OK": good, "BAD": Checkpoint(0, 1, "text")}),  # type: ignore[arg-type]  # a str, not bytes
        ("checkpoints['BAD'].state", {"OK": good, "BAD": Checkpoint(0, 1, bytearray(b"x"))}),  # type: ignore[arg-type]  # not bytes
        ("checkpoints['BAD'].state", {"OK": good, "BAD": Checkpoint(0, 1, None)}),  # type: ignore[arg-type]  # no state
        ("checkpoints['BAD'].state", {"OK": good, "BAD": Checkpoint(0, 1, too_large)}),
        ("checkpoints['BAD'].incarnation", {"OK": good, "BAD": Checkpoint(0, 1, b"", 7)}),  # type: ignore[arg-type]  # not a str, on purpose
        ("checkpoints['BAD'].incarnation", {"OK": good, "BAD": Checkpoint(0, 1, b"", None)}),  # type: ignore[arg-type]  # not a str, on purpose
        ("checkpoints['BAD'].incarnation", {"OK": good, "BAD": Checkpoint(0, 1, b"", b"k")}),  # type: ignore[arg-type]  # not a str, on purpose
        ("checkpoints['BAD'].incarnation", {"OK": good, "BAD": Checkpoint(0, 1, b"", "\ud800")}),
        ("checkpoints['BAD'].incarnation", {"OK": good, "BAD": Checkpoint(0, 1, b"", too_long)}),
    ]
    bad_loads: list[tuple[str, object]] = [("symbol", ""), ("symbol", None), ("symbol", "\ud800")]
    async with make_store(_GROUP) as store:
        for argument, given in bad_saves:
            await _expect_value_error(
                argument,
                store.save_checkpoints(given),  # type: ignore[arg-type]  # each a bad value, on purpose
            )
        for argument, symbol in bad_loads:
            await _expect_value_error(
                argument,
                store.load_checkpoint(symbol),  # type: ignore[arg-type]  # None among them, on purpose
            )
        assert await store.load_checkpoint("OK") is None, "a refused call saved a checkpoint"


async def _expect_value_error(argument: str, call: Awaitable[object]) -> None:
    message = ""
    try:
        await call
    except ValueError as exc:
        message = str(exc)
    if not message:
        raise AssertionError(f"a bad {argument} was accepted")
    assert argument in message, f"the error does not name {argument!r}: {message}"


CHECKPOINT_CONTRACT_CHECKS: dict[str, CheckpointContractCheck] = {
    "checkpoint_round_trips": check_checkpoint_round_trips,
    "save_checkpoints_overwrites": check_save_checkpoints_overwrites,
    "checkpoint_symbols_are_independent": check_checkpoint_symbols_are_independent,
    "checkpoint_groups_are_independent": check_checkpoint_groups_are_independent,
    "checkpoint_state_is_binary_and_large": check_checkpoint_state_is_binary_and_may_be_large,
    "checkpoints_survive_a_restart": check_checkpoints_survive_a_restart,
    "no_checkpoint_is_none": check_no_checkpoint_is_none,
    "bad_checkpoints_are_refused": check_bad_checkpoints_are_refused,
}
