"""Reconciliation: recompute bars from the tick log and compare them with the stored bars.

``reconcile`` reads the tick topic from the beginning (every partition, no group, so it
disturbs no aggregator), stops once no record has arrived for ``idle_s``, recomputes every
bar with ``ohlcv.bars.recompute_bars`` (the reference, written apart from the incremental
aggregator) and compares, for the bars whose open time lies in ``[from_ns, to_ns)``:

* missing: recomputed, not stored;
* extra: stored, not recomputable from the log;
* different: both, with another open, high, low, close, volume, trade count or final flag.

Zero of each means the store holds exactly the bars of the log. ``mdfeed reconcile`` prints
the report and exits 1 when anything differs.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from mdfeed.kernel.bus import Bus
from mdfeed.kernel.config import OhlcvConfig
from mdfeed.kernel.tick_records import ticks_of
from ohlcv.bar_config import parse_resolutions, parse_session_timezone
from ohlcv.bars import BarKey, recompute_bars
from proto import mdfeed_pb2 as pb
from storage import BarStore

__all__ = ["ReconcileReport", "read_tick_log", "reconcile"]


@dataclass
class ReconcileReport:
    ticks: int = 0
    bad_records: int = 0
    recomputed: int = 0
    stored: int = 0
    missing: list[BarKey] = field(default_factory=list)
    extra: list[BarKey] = field(default_factory=list)
    different: list[tuple[BarKey, pb.Bar, pb.Bar]] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.different)

    def lines(self, examples: int = 5) -> list[str]:
        out = [
            f"ticks read {self.ticks:,} ({self.bad_records} undecodable); bars recomputed "
            f"{self.recomputed:,}, stored {self.stored:,}",
            f"missing {len(self.missing)}, extra {len(self.extra)}, "
            f"different {len(self.different)}: {self.differences} differences",
        ]
        out += [f"  missing {key}" for key in self.missing[:examples]]
        out += [f"  extra {key}" for key in self.extra[:examples]]
        for key, want, got in self.different[:examples]:
            out.append(f"  different {key}: log {_ohlcv(want)} store {_ohlcv(got)}")
        return out


def _ohlcv(bar: pb.Bar) -> tuple[int, int, int, int, int, int, bool]:
    return (
        bar.open_px_e8,
        bar.high_px_e8,
        bar.low_px_e8,
        bar.close_px_e8,
        bar.volume_e8,
        bar.trade_count,
        bar.final,
    )


async def read_tick_log(
    bus: Bus, topic: str, *, idle_s: float = 2.0, out: TextIO | None = None
) -> tuple[list[pb.Tick], int]:
    """Every tick on ``topic`` (per-partition order), and the count of undecodable records."""
    ticks: list[pb.Tick] = []
    bad = 0
    consumer = bus.consumer([topic], from_beginning=True)
    async with consumer:
        last = time.monotonic()
        shown = 0.0
        while time.monotonic() - last < idle_s:
            records = await consumer.getmany(timeout_ms=200, max_records=10_000)
            if records:
                last = time.monotonic()
            for record in records:
                try:
                    ticks += [pb.Tick.FromString(t) for t in ticks_of(record.value)]
                except Exception:  # a junk record is counted, the rest is read
                    bad += 1
            if out is not None and time.monotonic() - shown > 1.0:
                shown = time.monotonic()
                out.write(f"reading the tick log: {len(ticks):,} ticks…\n")
                out.flush()
    return ticks, bad


async def reconcile(
    bus: Bus,
    store: BarStore,
    config: OhlcvConfig,
    *,
    topic: str,
    from_ns: int = 0,
    to_ns: int = 2**62,
    idle_s: float = 2.0,
    out: TextIO | None = None,
) -> ReconcileReport:
    """Compare the stored bars with the bars recomputed from the tick log."""
    ticks, bad = await read_tick_log(bus, topic, idle_s=idle_s, out=out)
    resolutions = parse_resolutions(config.resolutions)
    expected = recompute_bars(
        ticks,
        resolutions,
        parse_session_timezone(config.session_timezone),
        mid_when_no_trades=config.mid_when_no_trades,
        allowed_lateness_ns=int(config.allowed_lateness_s * 1e9),
    )
    wanted = {k: v for k, v in expected.items() if from_ns <= k[2] < to_ns}
    report = ReconcileReport(ticks=len(ticks), bad_records=bad, recomputed=len(wanted))
    symbols = sorted({t.symbol for t in ticks if t.symbol} | set(await store.symbols()))
    stored: dict[BarKey, pb.Bar] = {}
    for symbol in symbols:
        for resolution in resolutions:
            for bar in await store.history(symbol, resolution, from_ns, to_ns):
                stored[(bar.symbol, bar.resolution, bar.open_time_ns)] = bar
    report.stored = len(stored)
    for key in sorted(wanted.keys() - stored.keys()):
        report.missing.append(key)
    for key in sorted(stored.keys() - wanted.keys()):
        report.extra.append(key)
    for key in sorted(wanted.keys() & stored.keys()):
        if _ohlcv(wanted[key]) != _ohlcv(stored[key]):
            report.different.append((key, wanted[key], stored[key]))
    return report


def print_report(report: ReconcileReport, out: TextIO = sys.stdout) -> None:
    for line in report.lines():
        out.write(line + "\n")
