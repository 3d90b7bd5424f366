"""OHLCV bar logic: exact bars on hand cases, DST days, lateness, and equality with the
reference recomputation for any tick log."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdfeed.kernel.config import ConfigError
from ohlcv import (
    RESOLUTIONS,
    BarAggregator,
    BarKey,
    ResolutionInfo,
    bucket_start_ns,
    next_bucket_start_ns,
    parse_resolutions,
    parse_session_timezone,
    recompute_bars,
    resolution_from_config,
    resolution_from_udf,
    resolution_info,
)
from proto import mdfeed_pb2 as pb

NY = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
S = 1_000_000_000
E8 = 100_000_000
ALL = tuple(r.value for r in RESOLUTIONS)
#: 2026-06-15 14:00:00 UTC, a whole hour: every intraday bucket starts here.
T0 = int(dt.datetime(2026, 6, 15, 14, 0, tzinfo=dt.UTC).timestamp()) * S


def ns(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, *, tz: ZoneInfo = NY
) -> int:
    return int(dt.datetime(year, month, day, hour, minute, tzinfo=tz).timestamp()) * S


def trade(t: int, px: int, size: int = 1, symbol: str = "AAPL") -> pb.Tick:
    return pb.Tick(
        symbol=symbol, kind=pb.TICK_KIND_TRADE, venue_time_ns=t, last_px_e8=px, last_size_e8=size
    )


def quote(t: int, bid: int | None, ask: int | None, symbol: str = "AAPL") -> pb.Tick:
    tick = pb.Tick(symbol=symbol, kind=pb.TICK_KIND_QUOTE, venue_time_ns=t)
    if bid is not None:
        tick.bid_px_e8 = bid
    if ask is not None:
        tick.ask_px_e8 = ask
    return tick


def aggregator(
    resolutions: tuple[pb.Resolution.ValueType, ...] = ALL,
    *,
    mid: bool = True,
    lateness_ns: int = 2 * S,
    tz: ZoneInfo = NY,
) -> BarAggregator:
    return BarAggregator(
        resolutions,
        tz,
        mid_when_no_trades=mid,
        allowed_lateness_ns=lateness_ns,
    )


def run(agg: BarAggregator, ticks: list[pb.Tick]) -> dict[BarKey, pb.Bar]:
    for tick in ticks:
        agg.apply(tick)
    return {(b.symbol, b.resolution, b.open_time_ns): b for b in agg.drain_changed()}


def ohlcv(bar: pb.Bar) -> tuple[int, int, int, int, int, int, bool]:
    return (
        bar.open_px_e8,
        bar.high_px_e8,
        bar.low_px_e8,
        bar.close_px_e8,
        bar.volume_e8,
        bar.trade_count,
        bar.final,
    )


# --- resolutions and config ---------------------------------------------------------


def test_resolution_names_map_between_config_wire_and_udf() -> None:
    table = [(r.config, r.value, r.udf) for r in RESOLUTIONS]
    assert table == [
        ("1s", pb.RESOLUTION_1S, "1S"),
        ("1m", pb.RESOLUTION_1M, "1"),
        ("5m", pb.RESOLUTION_5M, "5"),
        ("15m", pb.RESOLUTION_15M, "15"),
        ("1h", pb.RESOLUTION_1H, "60"),
        ("1D", pb.RESOLUTION_1D, "1D"),
    ]
    for config, value, udf in table:
        assert resolution_from_config(config) == value
        assert resolution_from_udf(udf) == value
        assert resolution_info(value).udf == udf
    assert resolution_from_udf("D") == pb.RESOLUTION_1D


def test_unknown_udf_resolution_is_named() -> None:
    with pytest.raises(ValueError, match=r"unsupported resolution '240' \(supported: 1S, 1, "):
        resolution_from_udf("240")
    with pytest.raises(ValueError, match="unsupported bar resolution 0"):
        resolution_info(pb.RESOLUTION_UNSPECIFIED)


def test_parse_resolutions_orders_finest_first() -> None:
    assert parse_resolutions(["1D", "1m", "1s"]) == (
        pb.RESOLUTION_1S,
        pb.RESOLUTION_1M,
        pb.RESOLUTION_1D,
    )


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (
            ["1m", "2m", "1d"],
            "ohlcv.resolutions: unknown '2m', '1d' (known: 1s, 1m, 5m, 15m, 1h, 1D)",
        ),
        (["1m", "5m", "1m"], "ohlcv.resolutions: repeated '1m'"),
        ([], "ohlcv.resolutions: empty: name at least one resolution"),
    ],
)
def test_parse_resolutions_names_bad_entries(names: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_resolutions(names)
    assert str(info.value) == message


@pytest.mark.parametrize("name", ["America/Nowhere", "", "../etc/passwd", "EST5EDT/x"])
def test_bad_session_timezone_names_the_key(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^ohlcv.session_timezone: unknown time zone '{name}'"):
        parse_session_timezone(name)
    assert parse_session_timezone("America/New_York") == NY


def test_the_compiled_core_imports_no_config() -> None:
    # ohlcv/bars.py is compiled with mypyc: it takes plain values, ohlcv.bar_config checks
    # the [ohlcv] keys into them.
    source = Path(__file__).resolve().parents[2] / "ohlcv" / "bars.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "datetime", "json", "collections", "dataclasses",
                        "typing", "zoneinfo", "proto"}, imported  # fmt: skip


def test_aggregator_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="allowed_lateness_ns must be >= 0, got -1"):
        aggregator(lateness_ns=-1)
    with pytest.raises(ValueError, match="distinct and non-empty"):
        aggregator((pb.RESOLUTION_1M, pb.RESOLUTION_1M))


# --- buckets ------------------------------------------------------------------------


@pytest.mark.parametrize("info", RESOLUTIONS[:-1], ids=lambda r: r.config)
def test_intraday_buckets_are_utc_multiples(info: ResolutionInfo) -> None:
    width = info.width_ns
    assert width == {"1s": 1, "1m": 60, "5m": 300, "15m": 900, "1h": 3600}[info.config] * S
    t = T0 + width - 1
    assert bucket_start_ns(info.value, t, NY) == T0
    assert next_bucket_start_ns(info.value, t, NY) == T0 + width
    assert bucket_start_ns(info.value, T0 + width, NY) == T0 + width
    assert bucket_start_ns(info.value, -1, NY) == -width


@pytest.mark.parametrize(
    ("day", "hours"),
    [((2026, 3, 8), 23), ((2026, 11, 1), 25), ((2026, 6, 15), 24)],
    ids=["spring-forward", "fall-back", "ordinary"],
)
def test_daily_bar_starts_at_local_midnight_across_dst(
    day: tuple[int, int, int], hours: int
) -> None:
    midnight = ns(*day, 0, 0)
    noon = ns(*day, 12, 0)
    assert bucket_start_ns(pb.RESOLUTION_1D, noon, NY) == midnight
    assert next_bucket_start_ns(pb.RESOLUTION_1D, noon, NY) - midnight == hours * 3600 * S
    # The day's first and last nanoseconds are in it.
    assert bucket_start_ns(pb.RESOLUTION_1D, midnight, NY) == midnight
    end = midnight + hours * 3600 * S
    assert bucket_start_ns(pb.RESOLUTION_1D, end - 1, NY) == midnight
    assert bucket_start_ns(pb.RESOLUTION_1D, end, NY) == end
    # The aggregator agrees, bar included.
    bars = run(aggregator((pb.RESOLUTION_1D,)), [trade(noon, 5 * E8)])
    assert list(bars) == [("AAPL", pb.RESOLUTION_1D, midnight)]


def test_spring_forward_midnight_in_utc() -> None:
    # 2026-03-08 00:00 EST is 05:00 UTC; the next day starts at 04:00 UTC (EDT).
    assert bucket_start_ns(pb.RESOLUTION_1D, ns(2026, 3, 8, 12, 0), NY) == ns(
        2026, 3, 8, 5, 0, tz=UTC
    )
    assert next_bucket_start_ns(pb.RESOLUTION_1D, ns(2026, 3, 8, 12, 0), NY) == ns(
        2026, 3, 9, 4, 0, tz=UTC
    )


@pytest.mark.parametrize("zone", ["America/Santiago", "America/Havana", "Asia/Beirut", "UTC"])
def test_days_tile_the_year_without_gap_or_overlap(zone: str) -> None:
    # Some zones skip or repeat midnight itself; days must still be contiguous.
    tz = ZoneInfo(zone)
    t = ns(2025, 1, 1, 0, 0, tz=UTC)
    start = bucket_start_ns(pb.RESOLUTION_1D, t, tz)
    while t < ns(2026, 1, 1, 0, 0, tz=UTC):
        end = next_bucket_start_ns(pb.RESOLUTION_1D, start, tz)
        assert bucket_start_ns(pb.RESOLUTION_1D, start, tz) == start
        assert bucket_start_ns(pb.RESOLUTION_1D, end - 1, tz) == start
        assert 23 * 3600 * S <= end - start <= 25 * 3600 * S
        local = dt.datetime.fromtimestamp(start // S, tz)
        assert (local.hour, local.minute) in {(0, 0), (1, 0)}  # 01:00 where 00:00 is skipped
        start = t = end


# --- OHLCV from trades and mids -----------------------------------------------------


def test_trades_give_exact_ohlcv_at_every_resolution() -> None:
    ticks = [
        trade(T0 + 100_000_000, 150 * E8, 10 * E8),
        trade(T0 + 200_000_000, 152 * E8, 5 * E8),
        trade(T0 + 300_000_000, 149 * E8, 1 * E8),
        trade(T0 + 900_000_000, 151 * E8, 2 * E8),
    ]
    bars = run(aggregator(), ticks)
    day = bucket_start_ns(pb.RESOLUTION_1D, T0, NY)
    assert day == ns(2026, 6, 15, 0, 0)
    assert sorted(bars) == sorted(
        [("AAPL", r, T0) for r in ALL[:-1]] + [("AAPL", pb.RESOLUTION_1D, day)]
    )
    for bar in bars.values():
        assert ohlcv(bar) == (150 * E8, 152 * E8, 149 * E8, 151 * E8, 18 * E8, 4, False)


def test_empty_intervals_produce_no_bar() -> None:
    bars = run(aggregator((pb.RESOLUTION_1S,)), [trade(T0, 1), trade(T0 + 5 * S, 2)])
    assert sorted(k[2] for k in bars) == [T0, T0 + 5 * S]


def test_mid_fallback_then_switch_to_trades() -> None:
    agg = aggregator((pb.RESOLUTION_1M,))
    bars = run(
        agg,
        [
            quote(T0 + 1 * S, 100 * E8, 101 * E8),  # mid 100.5
            quote(T0 + 2 * S, 103 * E8, 104 * E8),  # mid 103.5
            quote(T0 + 3 * S, 99, None),  # one-sided: ignored
            quote(T0 + 4 * S, 98 * E8 + 1, 99 * E8),  # mid floors to 98.5
        ],
    )
    (bar,) = bars.values()
    assert ohlcv(bar) == (10050000000, 10350000000, 9850000000, 9850000000, 0, 0, False)
    assert agg.stats.one_sided_quotes == 1
    # The first trade replaces the mid prices; later quotes no longer move the bar.
    bars = run(agg, [trade(T0 + 5 * S, 120 * E8, 3), quote(T0 + 6 * S, 1, 3)])
    (bar,) = bars.values()
    assert ohlcv(bar) == (120 * E8, 120 * E8, 120 * E8, 120 * E8, 3, 1, False)
    # A quote into a trade-based bar is no change: nothing to drain.
    agg.apply(quote(T0 + 7 * S, 1, 3))
    assert agg.drain_changed() == []


def test_a_book_flagged_invalid_makes_no_mid_price() -> None:
    # A crossed book (bid above ask) flagged by the ingest: its mid is no price.
    crossed = quote(T0 + 2 * S, 339 * E8, 328 * E8)
    crossed.book_invalid = True
    ticks = [quote(T0 + 1 * S, 100 * E8, 102 * E8), crossed, quote(T0 + 3 * S, 104 * E8, 106 * E8)]
    agg = aggregator((pb.RESOLUTION_1M,))
    bars = run(agg, ticks)
    (bar,) = bars.values()
    assert ohlcv(bar) == (101 * E8, 105 * E8, 101 * E8, 105 * E8, 0, 0, False)
    assert agg.stats.invalid_book_quotes == 1
    assert bars == recompute_bars(
        ticks, (pb.RESOLUTION_1M,), NY, mid_when_no_trades=True, allowed_lateness_ns=0
    )
    # Trades are the venue's prints, not the book's: an invalid book's trades still count.
    flagged_trade = trade(T0 + 4 * S, 103 * E8, 2)
    flagged_trade.book_invalid = True
    (bar,) = run(agg, [flagged_trade]).values()
    assert ohlcv(bar) == (103 * E8, 103 * E8, 103 * E8, 103 * E8, 2, 1, False)


def test_quote_after_midnight_inside_a_trade_based_hour_starts_a_mid_day() -> None:
    # Kolkata midnight is 18:30 UTC: the 18:00 UTC hourly bar spans two session days.
    kolkata = ZoneInfo("Asia/Kolkata")
    midnight = ns(2026, 6, 16, 0, 0, tz=kolkata)
    ticks = [trade(midnight - 600 * S, 10 * E8, 1), quote(midnight + 600 * S, 20 * E8, 22 * E8)]
    resolutions = (pb.RESOLUTION_1H, pb.RESOLUTION_1D)
    bars = run(aggregator(resolutions, tz=kolkata, lateness_ns=0), ticks)
    assert ohlcv(bars["AAPL", pb.RESOLUTION_1H, midnight - 1800 * S]) == (
        (10 * E8,) * 4 + (1, 1, False)
    )
    assert ohlcv(bars["AAPL", pb.RESOLUTION_1D, midnight]) == (21 * E8,) * 4 + (0, 0, False)
    assert bars == recompute_bars(
        ticks, resolutions, kolkata, mid_when_no_trades=True, allowed_lateness_ns=0
    )


def test_quotes_make_no_bar_without_mid_fallback() -> None:
    assert run(aggregator(mid=False), [quote(T0, 1, 3)]) == {}


def test_snapshot_trades_and_malformed_ticks_are_counted_not_added() -> None:
    agg = aggregator((pb.RESOLUTION_1M,))
    snap = trade(T0, 7 * E8, 100)
    snap.from_snapshot = True
    no_price = pb.Tick(symbol="AAPL", kind=pb.TICK_KIND_TRADE, venue_time_ns=T0)
    unspecified = pb.Tick(symbol="AAPL", venue_time_ns=T0)
    bars = run(agg, [snap, no_price, unspecified, trade(T0 + 1, 8 * E8, 1)])
    (bar,) = bars.values()
    assert ohlcv(bar) == (8 * E8, 8 * E8, 8 * E8, 8 * E8, 1, 1, False)
    assert (agg.stats.snapshot_trades, agg.stats.malformed) == (1, 2)


# --- lateness and finality ----------------------------------------------------------


def test_late_tick_within_lateness_revises_its_bar_and_can_open_it() -> None:
    agg = aggregator((pb.RESOLUTION_1S,), lateness_ns=2 * S)
    run(agg, [trade(T0 + 500_000_000, 10, 1), trade(T0 + 2 * S, 11, 1)])
    # 1.5 s behind the newest tick: accepted, earliest venue time, so it becomes the open.
    bars = run(agg, [trade(T0 + 100_000_000, 9, 2)])
    assert ohlcv(bars["AAPL", pb.RESOLUTION_1S, T0]) == (9, 10, 9, 10, 3, 2, False)
    assert agg.stats.late_dropped == 0


def test_too_late_tick_is_dropped_and_never_revises_a_final_bar() -> None:
    agg = aggregator((pb.RESOLUTION_1S,), lateness_ns=2 * S)
    run(agg, [trade(T0, 10, 1)])
    # Watermark T0 + 1 s reaches the end of the T0 bar: it is final.
    bars = run(agg, [trade(T0 + 3 * S, 20, 1)])
    assert bars["AAPL", pb.RESOLUTION_1S, T0].final
    assert not bars["AAPL", pb.RESOLUTION_1S, T0 + 3 * S].final
    assert agg.held_bars == 1
    agg.apply(trade(T0 + 999_999_999, 99, 1))
    assert agg.stats.late_dropped == 1
    assert agg.drain_changed() == []
    # Exactly at the watermark is still in time.
    agg.apply(trade(T0 + 1 * S, 30, 1))
    (bar,) = agg.drain_changed()
    assert (bar.open_time_ns, bar.close_px_e8, bar.final) == (T0 + 1 * S, 30, False)


def test_final_needs_the_watermark_to_reach_the_bar_end() -> None:
    agg = aggregator((pb.RESOLUTION_1M,), lateness_ns=2 * S)
    run(agg, [trade(T0, 1)])
    # Watermark T0 + 59 s: the T0 bar stays open and unchanged, so it is not drained.
    assert list(run(agg, [trade(T0 + 61 * S, 2)])) == [("AAPL", pb.RESOLUTION_1M, T0 + 60 * S)]
    assert agg.held_bars == 2
    bars = run(agg, [trade(T0 + 62 * S, 3)])
    assert bars["AAPL", pb.RESOLUTION_1M, T0].final
    # Other symbols have their own watermark.
    other = run(agg, [trade(T0, 5, symbol="MSFT")])
    assert not other["MSFT", pb.RESOLUTION_1M, T0].final


def test_drain_gives_each_changed_bar_once_in_latest_state() -> None:
    agg = aggregator((pb.RESOLUTION_1M, pb.RESOLUTION_1H))
    for i in range(5):
        agg.apply(trade(T0 + i * S, 100 + i, 1))
    bars = agg.drain_changed()
    assert len(bars) == 2
    assert {b.close_px_e8 for b in bars} == {104}
    assert agg.drain_changed() == []


def test_memory_stays_bounded_over_many_intervals() -> None:
    agg = aggregator(lateness_ns=2 * S)
    symbols = [f"S{i}" for i in range(5)]
    sizes = []
    for step in range(20_000):  # 20,000 s: over 5 hours of 1 s bars
        for symbol in symbols:
            agg.apply(trade(T0 + step * S + 250_000_000, 100, 1, symbol=symbol))
        if step % 100 == 99:
            agg.drain_changed()
            sizes.append(agg.held_bars)
    # At most: per symbol, three 1 s bars within the lateness plus one per coarser
    # resolution, however many intervals went by.
    assert len(sizes) == 200
    assert max(sizes) <= len(symbols) * (3 + 5)
    # Three days later every old bar is final, drained once more, and forgotten.
    for symbol in symbols:
        agg.apply(trade(T0 + 3 * 86_400 * S, 100, 1, symbol=symbol))
    assert all(b.final for b in agg.drain_changed() if b.open_time_ns < T0 + 86_400 * S)
    assert agg.held_bars == len(symbols) * len(ALL)


# --- the incremental aggregator equals the recomputation ----------------------------

LATENESS = 3 * S


@st.composite
def tick_logs(draw: st.DrawFn) -> list[pb.Tick]:
    """Per-symbol ordered logs whose venue times jitter, sometimes beyond the lateness."""
    start = draw(
        st.sampled_from(
            [
                T0,
                ns(2026, 3, 8, 1, 59),  # New York: DST starts at 02:00
                ns(2026, 11, 1, 23, 59),  # New York: the 25 h day ends
                # Midnight in zones with half and quarter hour offsets, inside 1 h bars.
                ns(2026, 6, 15, 23, 59, tz=ZoneInfo("Asia/Kolkata")),
                ns(2026, 6, 15, 23, 58, tz=ZoneInfo("Asia/Kathmandu")),
            ]
        )
    )
    clocks = {"A": start, "B": start}
    ticks = []
    for seq in range(draw(st.integers(0, 120))):
        symbol = draw(st.sampled_from(sorted(clocks)))
        clocks[symbol] += draw(st.integers(0, 40 * S))
        jitter = draw(st.one_of(st.just(0), st.integers(0, LATENESS + S)))
        t = clocks[symbol] - jitter
        px = draw(st.integers(-5, 5)) * E8 + 100 * E8
        kind = draw(st.sampled_from(["trade", "quote", "one-sided", "snapshot"]))
        if kind == "trade":
            tick = trade(t, px, draw(st.integers(0, 9)), symbol=symbol)
        elif kind == "snapshot":
            tick = trade(t, px, 1, symbol=symbol)
            tick.from_snapshot = True
        else:
            tick = quote(t, px, px + draw(st.integers(0, 3)), symbol=symbol)
            if kind == "one-sided":
                tick.ClearField("ask_px_e8")
        tick.seq = seq
        ticks.append(tick)
    return ticks


@settings(max_examples=400, deadline=None)
@given(
    zone=st.sampled_from(["America/New_York", "Asia/Kolkata", "Asia/Kathmandu"]),
    ticks=tick_logs(),
    drains=st.sets(st.integers(0, 120)),
    mid=st.booleans(),
    resolutions=st.sets(st.sampled_from(ALL), min_size=1),
)
def test_aggregator_equals_recomputation(
    zone: str,
    ticks: list[pb.Tick],
    drains: set[int],
    mid: bool,
    resolutions: set[pb.Resolution.ValueType],
) -> None:
    tz = ZoneInfo(zone)
    chosen = tuple(sorted(resolutions))
    agg = aggregator(chosen, mid=mid, lateness_ns=LATENESS, tz=tz)
    seen: dict[BarKey, pb.Bar] = {}
    finals: set[BarKey] = set()
    for i, tick in enumerate(ticks):
        if i in drains:
            drained = agg.drain_changed()
            assert len({(b.symbol, b.resolution, b.open_time_ns) for b in drained}) == len(drained)
            for bar in drained:
                key = (bar.symbol, bar.resolution, bar.open_time_ns)
                assert key not in finals, "a final bar changed"
                seen[key] = bar
                if bar.final:
                    finals.add(key)
        agg.apply(tick)
    for bar in agg.drain_changed():
        key = (bar.symbol, bar.resolution, bar.open_time_ns)
        assert key not in finals, "a final bar changed"
        seen[key] = bar
    expected = recompute_bars(
        ticks,
        chosen,
        tz,
        mid_when_no_trades=mid,
        allowed_lateness_ns=LATENESS,
    )
    assert seen == expected
    # Nothing final stays in memory once drained.
    assert agg.held_bars == sum(1 for b in expected.values() if not b.final)


# --- checkpoints ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    ticks=tick_logs(),
    cut=st.integers(0, 120),
    mid=st.booleans(),
    resolutions=st.sets(st.sampled_from(ALL), min_size=1),
)
def test_a_restored_checkpoint_continues_exactly(
    ticks: list[pb.Tick], cut: int, mid: bool, resolutions: set[pb.Resolution.ValueType]
) -> None:
    # Another process takes over after `cut` ticks from the exported state alone: the bars
    # it goes on to write, over the first process's, equal the recomputation of the log.
    chosen = tuple(sorted(resolutions))
    first = aggregator(chosen, mid=mid, lateness_ns=LATENESS)
    seen: dict[BarKey, pb.Bar] = {}
    for tick in ticks[:cut]:
        first.apply(tick)
    for bar in first.drain_changed():
        seen[(bar.symbol, bar.resolution, bar.open_time_ns)] = bar
    saved = {symbol: first.export_symbol(symbol) for symbol in first.symbols()}
    second = aggregator(chosen, mid=mid, lateness_ns=LATENESS)
    for symbol, blob in saved.items():
        second.import_symbol(symbol, blob)
    for tick in ticks[cut:]:
        second.apply(tick)
    for bar in second.drain_changed():
        seen[(bar.symbol, bar.resolution, bar.open_time_ns)] = bar
    expected = recompute_bars(
        ticks,
        chosen,
        NY,
        mid_when_no_trades=mid,
        allowed_lateness_ns=LATENESS,
    )
    assert seen == expected


def test_forget_drops_the_symbols_undrained_bars_too() -> None:
    # Handed over to another member: its newer revisions must not be overwritten by ours.
    agg = aggregator()
    agg.apply(trade(T0, 100 * E8))
    agg.apply(trade(T0, 101 * E8, symbol="MSFT"))
    agg.forget("AAPL")
    drained = agg.drain_changed()
    assert drained
    assert {bar.symbol for bar in drained} == {"MSFT"}


def test_export_refuses_undrained_bars_and_import_checks_the_format() -> None:
    agg = aggregator()
    agg.apply(trade(T0, 100 * E8))
    with pytest.raises(ValueError, match="drain the changed bars"):
        agg.export_symbol("AAPL")
    agg.drain_changed()
    assert agg.export_symbol("NONE") == b""
    with pytest.raises(ValueError, match="not a bar checkpoint"):
        agg.import_symbol("AAPL", b'{"v": 9}')
    blob = agg.export_symbol("AAPL")
    agg.forget("AAPL")
    assert agg.symbols() == []
    agg.import_symbol("AAPL", blob)
    assert agg.symbols() == ["AAPL"]
