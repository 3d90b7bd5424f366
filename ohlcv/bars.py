"""OHLCV bar logic: resolutions, bucket boundaries, incremental aggregation, recomputation.

Pure and deterministic: no I/O, no wall clock, no config (the ``[ohlcv]`` keys are checked
into the values taken here by :mod:`ohlcv.bar_config`). Time is the venue time of the ticks
(``Tick.venue_time_ns``), so the same tick log always yields the same bars.

Policy, shared by :class:`BarAggregator` (incremental) and :func:`recompute_bars`
(the reference recomputation used by reconciliation):

Buckets
    Intraday bars (1s, 1m, 5m, 15m, 1h) cover ``[k * width, (k + 1) * width)`` in UTC epoch
    nanoseconds. Daily bars start at local midnight of the session time zone and end at
    the next local midnight, so a daylight saving day lasts 23 h (spring forward) or 25 h
    (fall back). Where a zone skips or repeats midnight itself, a day starts at the first
    instant its local midnight denotes (``fold=0``); days never overlap and leave no gap.

Price source
    Bars come from trades (``TICK_KIND_TRADE``): ``last_px_e8`` gives the prices,
    ``last_size_e8`` (unset: 0) adds to ``volume_e8``, each trade adds 1 to
    ``trade_count``. With ``mid_when_no_trades`` a bar that has no trade in its interval is
    built from mid quotes, ``(bid_px_e8 + ask_px_e8) // 2`` (floor), with volume 0 and
    trade_count 0; quotes missing a side, and quotes of a book flagged ``book_invalid``
    (docs/book-models.md), are ignored (counted). A bar with at least one
    trade is trade-based and ignores quotes entirely: when the first trade of a bar that
    had only quotes arrives, the bar's open, high, low and close are replaced by that
    trade's and the mid prices are forgotten. Trade ticks from a snapshot
    (``from_snapshot``) restate a trade printed earlier, so they are ignored (counted),
    never added twice; snapshot quotes count as quotes.

Order
    Within a bar, open is the contributing tick with the earliest venue time and close the
    one with the latest; equal venue times go by log order (first in the log opens, last
    in the log closes). So a late tick within the lateness can change a bar's open.

Lateness and finality
    Each symbol has a watermark: the newest venue time seen for it (any tick kind) minus
    ``allowed_lateness_ns``. A tick older than the watermark is dropped and counted
    (``stats.late_dropped``); any other tick revises its bar. A bar is final once the
    watermark reaches its end (``end <= watermark``); no accepted tick can fall into it
    after that, so a final bar is never revised.

Empty intervals
    An interval without a contributing tick produces no bar: there is no carried-forward
    flat bar. This matches TradingView UDF ``/history``, which returns only existing bars
    and uses ``nextTime`` to say where earlier data is.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias
from zoneinfo import ZoneInfo

from proto import mdfeed_pb2 as pb

__all__ = [
    "RESOLUTIONS",
    "BarAggregator",
    "BarKey",
    "BarStats",
    "ResolutionInfo",
    "bucket_start_ns",
    "next_bucket_start_ns",
    "recompute_bars",
    "resolution_from_config",
    "resolution_from_udf",
    "resolution_info",
]

Resolution: TypeAlias = pb.Resolution.ValueType
#: (symbol, resolution, open_time_ns): one bar's identity, also the bar store's key.
BarKey = tuple[str, Resolution, int]

_SECOND_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ResolutionInfo:
    """One bar resolution under its three names."""

    #: The name in the config file (``ohlcv.resolutions``).
    config: str
    #: The wire value (``Bar.resolution``).
    value: Resolution
    #: The TradingView UDF resolution string.
    udf: str
    #: Bar length in nanoseconds; 0 for daily bars, whose length follows the calendar.
    width_ns: int


#: Every supported resolution, finest first.
RESOLUTIONS: tuple[ResolutionInfo, ...] = (
    ResolutionInfo("1s", pb.RESOLUTION_1S, "1S", _SECOND_NS),
    ResolutionInfo("1m", pb.RESOLUTION_1M, "1", 60 * _SECOND_NS),
    ResolutionInfo("5m", pb.RESOLUTION_5M, "5", 300 * _SECOND_NS),
    ResolutionInfo("15m", pb.RESOLUTION_15M, "15", 900 * _SECOND_NS),
    ResolutionInfo("1h", pb.RESOLUTION_1H, "60", 3600 * _SECOND_NS),
    ResolutionInfo("1D", pb.RESOLUTION_1D, "1D", 0),
)
_BY_VALUE = {r.value: r for r in RESOLUTIONS}
_BY_CONFIG = {r.config: r for r in RESOLUTIONS}
# TradingView also sends "D" for one day.
_BY_UDF = {r.udf: r for r in RESOLUTIONS} | {"D": _BY_VALUE[pb.RESOLUTION_1D]}


def resolution_info(resolution: Resolution) -> ResolutionInfo:
    """The names and width of a wire resolution; ValueError for one mdfeed does not build."""
    try:
        return _BY_VALUE[resolution]
    except KeyError:
        raise ValueError(f"unsupported bar resolution {resolution!r}") from None


def resolution_from_config(name: str) -> Resolution:
    """The wire resolution of a config name (``"5m"``); ValueError naming the known ones."""
    try:
        return _BY_CONFIG[name].value
    except KeyError:
        known = ", ".join(_BY_CONFIG)
        raise ValueError(f"unknown resolution {name!r} (known: {known})") from None


def resolution_from_udf(text: str) -> Resolution:
    """The wire resolution of a TradingView UDF string (``"15"``, ``"1D"`` or ``"D"``).

    ValueError naming the supported strings for anything else (a client's input).
    """
    try:
        return _BY_UDF[text].value
    except KeyError:
        known = ", ".join(_BY_UDF)
        raise ValueError(f"unsupported resolution {text!r} (supported: {known})") from None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_DAY = dt.timedelta(days=1)


def _midnight_ns(day: dt.date, tz: ZoneInfo) -> int:
    # fold=0: a midnight the zone skips maps to the transition; a repeated one to its first.
    delta = dt.datetime(day.year, day.month, day.day, tzinfo=tz) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _SECOND_NS + delta.microseconds * 1000


def _day_bounds(venue_time_ns: int, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) of the session day holding the instant, in UTC epoch nanoseconds."""
    local = (_EPOCH + dt.timedelta(microseconds=venue_time_ns // 1000)).astimezone(tz)
    day = local.date()
    start, end = _midnight_ns(day, tz), _midnight_ns(day + _ONE_DAY, tz)
    # Only zones whose midnight itself is skipped or repeated need these corrections.
    while venue_time_ns >= end:
        day += _ONE_DAY
        start, end = end, _midnight_ns(day + _ONE_DAY, tz)
    while venue_time_ns < start:
        day -= _ONE_DAY
        start, end = _midnight_ns(day, tz), start
    return start, end


def bucket_start_ns(resolution: Resolution, venue_time_ns: int, tz: ZoneInfo) -> int:
    """Open time of the bar holding the instant: a UTC multiple of the width for intraday
    resolutions, local midnight in ``tz`` for daily bars."""
    width = resolution_info(resolution).width_ns
    if width:
        return venue_time_ns - venue_time_ns % width
    return _day_bounds(venue_time_ns, tz)[0]


def next_bucket_start_ns(resolution: Resolution, venue_time_ns: int, tz: ZoneInfo) -> int:
    """Open time of the bar after the one holding the instant (the end of that bar)."""
    width = resolution_info(resolution).width_ns
    if width:
        return venue_time_ns - venue_time_ns % width + width
    return _day_bounds(venue_time_ns, tz)[1]


@dataclass(slots=True)
class BarStats:
    """Counters of ticks the aggregator did not turn into bar updates."""

    #: Older than their symbol's watermark: dropped, never revising a final bar.
    late_dropped: int = 0
    #: Quotes without both a bid and an ask that could have set a mid price (with
    #: mid_when_no_trades, and not into bars that already have trades).
    one_sided_quotes: int = 0
    #: Trade ticks from a snapshot: a restated earlier trade, not a new one.
    snapshot_trades: int = 0
    #: Unspecified kind, or a trade without last_px_e8.
    malformed: int = 0
    #: Quotes whose book was flagged ``book_invalid`` (crossed, or an update that named a
    #: level that was not there): no mid price is taken from them.
    invalid_book_quotes: int = 0


class _Bar:
    __slots__ = (
        "close",
        "close_t",
        "count",
        "dirty",
        "end",
        "final",
        "high",
        "low",
        "open",
        "open_t",
        "resolution",
        "start",
        "symbol",
        "volume",
    )

    # Positional on purpose: built on the tick path, where keywords cost time.
    def __init__(  # noqa: PLR0917 - positional on the tick path
        self, symbol: str, resolution: Resolution, start: int, end: int, px: int, t: int
    ) -> None:
        self.symbol = symbol
        self.resolution = resolution
        self.start = start
        self.end = end
        self.open = self.high = self.low = self.close = px
        self.open_t = self.close_t = t
        self.volume = 0
        self.count = 0
        self.dirty = False
        self.final = False

    def to_pb(self) -> pb.Bar:
        return pb.Bar(
            symbol=self.symbol,
            resolution=self.resolution,
            open_time_ns=self.start,
            open_px_e8=self.open,
            high_px_e8=self.high,
            low_px_e8=self.low,
            close_px_e8=self.close,
            volume_e8=self.volume,
            trade_count=self.count,
            final=self.final,
        )


class _Symbol:
    __slots__ = ("bars", "current", "max_t", "next_final", "watermark")

    def __init__(self, n: int) -> None:
        self.max_t = _NEVER
        self.watermark = _NEVER
        # Per resolution: the non-final bars by open time, and the last bar touched.
        self.bars: list[dict[int, _Bar]] = [{} for _ in range(n)]
        self.current: list[_Bar | None] = [None] * n
        # Smallest end among the non-final bars: the watermark must reach it to finalize.
        self.next_final = _NO_BAR


# Sentinels beyond any int64 venue time: "no tick yet" and "no open bar".
_NEVER = -(2**80)
_NO_BAR = 2**80
_TRADE = pb.TICK_KIND_TRADE
_QUOTE = pb.TICK_KIND_QUOTE


class BarAggregator:
    """Incremental OHLCV bars for any number of symbols (policy: see the module doc).

    Feed ticks with :meth:`apply` in per-symbol log order (venue times may go backwards
    within ``allowed_lateness_ns``); collect the changed bars with :meth:`drain_changed`.
    Memory holds each symbol's non-final bars and the changed bars not yet drained: a final
    bar is forgotten once drained.
    """

    def __init__(
        self,
        resolutions: Sequence[Resolution],
        tz: ZoneInfo,
        *,
        mid_when_no_trades: bool,
        allowed_lateness_ns: int,
    ) -> None:
        if allowed_lateness_ns < 0:
            raise ValueError(f"allowed_lateness_ns must be >= 0, got {allowed_lateness_ns}")
        infos = [resolution_info(r) for r in resolutions]
        if not infos or len(set(resolutions)) != len(infos):
            raise ValueError(f"resolutions must be distinct and non-empty, got {resolutions!r}")
        # Intraday finest first, daily last. Intraday widths divide one another
        # (1 s | 1 m | 5 m | 15 m | 1 h), so an intraday bucket lies inside every coarser
        # intraday bucket: once a quote meets a trade-based intraday bar, every coarser
        # intraday bar holds that trade too, and so does the day when the bar lies inside
        # it; the quote can stop there. With 10% trades most quotes touch a single bar.
        infos.sort(key=lambda r: r.width_ns or _NO_BAR)
        self._daily = not infos[-1].width_ns
        self._values = tuple(r.value for r in infos)
        self._widths = tuple(r.width_ns for r in infos)
        self._tz = tz
        self._mid = mid_when_no_trades
        self._lateness = allowed_lateness_ns
        self._symbols: dict[str, _Symbol] = {}
        self._changed: list[_Bar] = []
        # The session day last looked up: nearly every tick falls in it.
        self._day = (0, 0)
        self.stats = BarStats()

    @property
    def held_bars(self) -> int:
        """Bars in memory: non-final bars plus changed bars not yet drained."""
        open_bars = sum(len(d) for s in self._symbols.values() for d in s.bars)
        return open_bars + sum(1 for b in self._changed if b.final)

    # The tick path is inlined on purpose: a call per resolution costs more than a branch.
    def apply(self, tick: pb.Tick) -> None:  # noqa: PLR0912, PLR0915 - the tick path, inlined
        """Fold one tick into its symbol's bars (or drop and count it)."""
        t = tick.venue_time_ns
        symbol = tick.symbol
        state = self._symbols.get(symbol)
        if state is None:
            state = self._symbols[symbol] = _Symbol(len(self._widths))
        elif t < state.watermark:
            self.stats.late_dropped += 1
            return
        kind = tick.kind
        trade = kind == _TRADE
        if trade:
            if tick.from_snapshot:
                self.stats.snapshot_trades += 1
                trade = False
                px = None
            elif tick.HasField("last_px_e8"):
                px = tick.last_px_e8
                size = tick.last_size_e8
            else:
                self.stats.malformed += 1
                px = None
        elif kind == _QUOTE:
            first = state.current[0]
            if not self._mid:
                px = None
            elif (
                first is not None
                and first.count
                and first.start <= t < first.end
                and (not self._daily or self._day[0] <= first.start < first.end <= self._day[1])
            ):
                # The finest bar holding t is trade-based, so are all bars holding it (see
                # __init__): the quote changes nothing, whatever its sides.
                px = None
            elif tick.book_invalid:
                self.stats.invalid_book_quotes += 1
                px = None
            elif tick.HasField("bid_px_e8") and tick.HasField("ask_px_e8"):
                px = (tick.bid_px_e8 + tick.ask_px_e8) // 2
            else:
                self.stats.one_sided_quotes += 1
                px = None
        else:
            self.stats.malformed += 1
            px = None
        if px is not None:
            current = state.current
            i = 0
            for width in self._widths:
                bar = current[i]
                if bar is None or not bar.start <= t < bar.end:
                    bar = current[i] = self._locate(state, symbol, i, width, t, px)
                if trade:
                    if bar.count:
                        if t < bar.open_t:
                            bar.open = px
                            bar.open_t = t
                        if t >= bar.close_t:
                            bar.close = px
                            bar.close_t = t
                        if px > bar.high:
                            bar.high = px
                        elif px < bar.low:
                            bar.low = px
                        bar.volume += size
                        bar.count += 1
                    else:
                        # First trade: the bar drops whatever mid prices it had.
                        bar.open = bar.high = bar.low = bar.close = px
                        bar.open_t = bar.close_t = t
                        bar.volume = size
                        bar.count = 1
                elif bar.count:
                    if width:
                        if self._daily:
                            day_start, day_end = self._day
                            if not day_start <= bar.start < bar.end <= day_end:
                                self._mid_into_day(state, symbol, t, px)
                        break
                    i += 1
                    continue
                else:
                    if t < bar.open_t:
                        bar.open = px
                        bar.open_t = t
                    if t >= bar.close_t:
                        bar.close = px
                        bar.close_t = t
                    if px > bar.high:
                        bar.high = px
                    elif px < bar.low:
                        bar.low = px
                if not bar.dirty:
                    bar.dirty = True
                    self._changed.append(bar)
                i += 1
        if t > state.max_t:
            state.max_t = t
            watermark = state.watermark = t - self._lateness
            if watermark >= state.next_final:
                self._finalize(state, watermark)

    def _mid_into_day(self, state: _Symbol, symbol: str, t: int, px: int) -> None:
        # The rare quote whose trade-based intraday bar straddles a session midnight.
        i = len(self._widths) - 1
        bar = state.current[i]
        if bar is None or not bar.start <= t < bar.end:
            bar = state.current[i] = self._locate(state, symbol, i, 0, t, px)
        if bar.count:
            return
        if t < bar.open_t:
            bar.open = px
            bar.open_t = t
        if t >= bar.close_t:
            bar.close = px
            bar.close_t = t
        bar.high = max(bar.high, px)
        bar.low = min(bar.low, px)
        if not bar.dirty:
            bar.dirty = True
            self._changed.append(bar)

    def _locate(  # noqa: PLR0917 - tick path: positional arguments are cheaper
        self, state: _Symbol, symbol: str, i: int, width: int, t: int, px: int
    ) -> _Bar:
        if width:
            start = t - t % width
            end = start + width
        else:
            start, end = self._day
            if not start <= t < end:
                start, end = self._day = _day_bounds(t, self._tz)
        bars = state.bars[i]
        bar = bars.get(start)
        if bar is None:
            bar = bars[start] = _Bar(symbol, self._values[i], start, end, px, t)
            state.next_final = min(state.next_final, end)
        return bar

    def _finalize(self, state: _Symbol, watermark: int) -> None:
        next_final = _NO_BAR
        changed = self._changed
        for bars in state.bars:
            for start, bar in list(bars.items()):
                if bar.end <= watermark:
                    del bars[start]
                    bar.final = True
                    if not bar.dirty:
                        bar.dirty = True
                        changed.append(bar)
                elif bar.end < next_final:
                    next_final = bar.end
        state.next_final = next_final
        current = state.current
        for i, held in enumerate(current):
            if held is not None and held.final:
                current[i] = None

    def symbols(self) -> list[str]:
        """Symbols with state held (open bars or a watermark)."""
        return list(self._symbols)

    def forget(self, symbol: str) -> None:
        """Drop ``symbol``'s state and its undrained bars (its partition went to another
        member, which now writes them: an old revision must not overwrite its newer ones)."""
        self._symbols.pop(symbol, None)
        kept = []
        for bar in self._changed:
            if bar.symbol == symbol:
                bar.dirty = False
            else:
                kept.append(bar)
        self._changed = kept

    def export_symbol(self, symbol: str) -> bytes:
        """``symbol``'s state (watermark and open bars) for a checkpoint; drain first.

        The format is JSON, keyed by resolution value, so a checkpoint survives a change of
        the configured resolutions (bars of resolutions no longer built are ignored).
        """
        if any(bar.symbol == symbol for bar in self._changed):
            raise ValueError(f"{symbol}: drain the changed bars before exporting")
        state = self._symbols.get(symbol)
        if state is None:
            return b""
        bars: dict[str, list[list[int]]] = {}
        for index, value in enumerate(self._values):
            rows = []
            for bar in state.bars[index].values():
                rows.append(
                    [
                        bar.start, bar.end, bar.open, bar.high, bar.low, bar.close,
                        bar.open_t, bar.close_t, bar.volume, bar.count,
                    ]
                )  # fmt: skip
            bars[str(int(value))] = rows
        doc = {"v": 1, "max_t": state.max_t, "watermark": state.watermark, "bars": bars}
        return json.dumps(doc, separators=(",", ":")).encode()

    def import_symbol(self, symbol: str, data: bytes) -> None:
        """Restore ``symbol``'s state from ``export_symbol`` output (replacing any held)."""
        if not data:
            self._symbols.pop(symbol, None)
            return
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise ValueError(f"{symbol}: not a bar checkpoint of format 1")
        state = _Symbol(len(self._values))
        state.max_t = int(doc["max_t"])
        state.watermark = int(doc["watermark"])
        saved: dict[str, list[list[int]]] = doc["bars"]
        next_final = _NO_BAR
        for index, value in enumerate(self._values):
            for row in saved.get(str(int(value)), []):
                start, end, open_, high, low, close, open_t, close_t, volume, count = row
                bar = _Bar(symbol, value, int(start), int(end), int(open_), int(open_t))
                bar.high = int(high)
                bar.low = int(low)
                bar.close = int(close)
                bar.close_t = int(close_t)
                bar.volume = int(volume)
                bar.count = int(count)
                state.bars[index][bar.start] = bar
                next_final = min(next_final, bar.end)
        state.next_final = next_final
        self._symbols[symbol] = state

    def drain_changed(self) -> list[pb.Bar]:
        """Bars changed since the last drain, each once, in their latest state.

        In the order they first changed. A bar counts as changed when an accepted tick
        was folded into it (even one that left its values as they were, such as a repeated
        mid) or when it became final. A final bar appears once with ``final`` set and is
        then forgotten. Bars are whole states, meant for upserts keyed by :data:`BarKey`.
        """
        changed, self._changed = self._changed, []
        out = []
        for bar in changed:
            bar.dirty = False
            out.append(bar.to_pb())
        return out


def recompute_bars(
    ticks: Iterable[pb.Tick],
    resolutions: Sequence[Resolution],
    tz: ZoneInfo,
    *,
    mid_when_no_trades: bool,
    allowed_lateness_ns: int,
) -> dict[BarKey, pb.Bar]:
    """Every bar of a full tick log, recomputed from scratch (policy: see the module doc).

    The reference for reconciliation: a second, batch implementation of the rules of
    :class:`BarAggregator`. The log must be in per-symbol order (as a Kafka partition
    delivers it); which ticks are too late depends on that order. Bars are final when the
    symbol's watermark at the end of the log has reached their end.
    """
    infos = [resolution_info(r) for r in resolutions]
    # Pass 1: the watermark decides, in log order, which ticks count.
    newest: dict[str, int] = {}
    # (symbol, resolution, start) -> end, [(venue time, log index, px, size or None)]
    buckets: dict[BarKey, tuple[int, list[tuple[int, int, int, int | None]]]] = {}
    for index, tick in enumerate(ticks):
        t = tick.venue_time_ns
        top = newest.get(tick.symbol)
        if top is not None and t < top - allowed_lateness_ns:
            continue
        newest[tick.symbol] = t if top is None else max(top, t)
        entry: tuple[int, int, int, int | None]
        if tick.kind == pb.TICK_KIND_TRADE:
            if tick.from_snapshot or not tick.HasField("last_px_e8"):
                continue
            entry = (t, index, tick.last_px_e8, tick.last_size_e8)
        elif (
            tick.kind == pb.TICK_KIND_QUOTE
            and mid_when_no_trades
            and not tick.book_invalid
            and tick.HasField("bid_px_e8")
            and tick.HasField("ask_px_e8")
        ):
            entry = (t, index, (tick.bid_px_e8 + tick.ask_px_e8) // 2, None)
        else:
            continue
        for info in infos:
            key = (tick.symbol, info.value, bucket_start_ns(info.value, t, tz))
            if key not in buckets:
                buckets[key] = (next_bucket_start_ns(info.value, t, tz), [])
            buckets[key][1].append(entry)
    # Pass 2: each bar from its ticks in (venue time, log order).
    out: dict[BarKey, pb.Bar] = {}
    for key, (end, entries) in buckets.items():
        trades = [e for e in entries if e[3] is not None]
        chosen = sorted(trades or entries)
        prices = [e[2] for e in chosen]
        out[key] = pb.Bar(
            symbol=key[0],
            resolution=key[1],
            open_time_ns=key[2],
            open_px_e8=prices[0],
            high_px_e8=max(prices),
            low_px_e8=min(prices),
            close_px_e8=prices[-1],
            volume_e8=sum(e[3] or 0 for e in trades),
            trade_count=len(trades),
            final=end <= newest[key[0]] - allowed_lateness_ns,
        )
    return out
