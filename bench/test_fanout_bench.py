"""The tick lane's core, no transport: ticks through a lane and frames built from bytes.

Not part of `make test`; run with `make bench`. Figures, ticks per second, each reported
beside a limit or peer measured in the same run:

- frame building, 20 ticks per frame (what the gRPC stream needs: per-message overhead,
  not bytes, is the cost): ``fanout.frames.tick_batch_frame`` from encoded ticks, against
  the peer (``ServerFrame(ticks=TickBatch(ticks=[Tick...])).SerializeToString()``, which
  re-encodes every tick per client) and the limit (``b"".join`` of the same bytes, no
  tags or lengths);
- one lane keeping up: ``offer`` every tick and take a 20-tick batch every 20;
- one lane stalled: ``offer`` every tick to 200 symbols with the lane conflating.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from fanout.frames import SharedFrame, tick_batch_frame
from fanout.lane import TickLane
from proto import mdfeed_pb2 as pb

N = 200_000
BATCH = 20
SYMBOLS = [f"SYM{i:03d}" for i in range(200)]
TICKS = [
    pb.Tick(
        symbol=SYMBOLS[i % len(SYMBOLS)],
        seq=1 + i // len(SYMBOLS),
        kind=pb.TICK_KIND_QUOTE,
        bid_px_e8=1_895_000_000 + i % 977,
        bid_size_e8=12_000_000_000_000,
        ask_px_e8=1_896_000_000 + i % 977,
        ask_size_e8=8_000_000_000_000,
        venue_time_ns=1_795_357_800_125_000_000 + i * 1000,
        ingest_time_ns=1_795_357_800_125_300_000 + i * 1000,
        fix_msg_seq_num=40_000_000_000 + i,
    )
    for i in range(N)
]
ENCODED = [t.SerializeToString() for t in TICKS]


def _rate(run: Callable[[], None], ticks: int, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return ticks / best


def test_fanout_core_rates() -> None:
    chunks = [ENCODED[i : i + BATCH] for i in range(0, N, BATCH)]
    objects = [TICKS[i : i + BATCH] for i in range(0, N, BATCH)]

    def frames() -> None:
        for chunk in chunks:
            tick_batch_frame(chunk)

    def peer() -> None:
        for chunk in objects:
            pb.ServerFrame(ticks=pb.TickBatch(ticks=chunk)).SerializeToString()

    def limit() -> None:
        for chunk in chunks:
            b"".join(chunk)

    triples = [(t.symbol, t.seq, e) for t, e in zip(TICKS, ENCODED, strict=True)]
    groups = [triples[i : i + BATCH] for i in range(0, N, BATCH)]

    def keeping_up() -> None:
        lane = TickLane(max_pending_ticks=10_000)
        for group in groups:
            lane.push(SharedFrame.of_ticks(group))
            lane.take()
        assert lane.stats.conflated == 0

    def stalled() -> None:
        lane = TickLane(max_pending_ticks=100, max_pending_symbols=len(SYMBOLS))
        for group in groups:
            lane.push(SharedFrame.of_ticks(group))
        assert lane.pending == len(SYMBOLS)

    results = {
        "frames: tick_batch_frame from bytes": _rate(frames, N),
        "peer: ServerFrame re-encoding Ticks": _rate(peer, N),
        "limit: b''.join of the bytes": _rate(limit, N),
        "lane keeping up: frame + push + take": _rate(keeping_up, N),
        "lane stalled: frame + push, conflating": _rate(stalled, N),
    }
    base = results["frames: tick_batch_frame from bytes"]
    print()
    for name, rate in results.items():
        print(f"{name:45s} {rate / 1e6:8.2f}M ticks/s  x{rate / base:5.2f} of frames")
    out = Path(".benchmarks")
    out.mkdir(exist_ok=True)
    (out / "fanout_core.json").write_text(json.dumps(results, indent=2))
    # Serialize once has to beat re-encoding per client, or it is not worth having
    # (docs/architecture.md, "Principles": 5. serialize once).
    assert base > results["peer: ServerFrame re-encoding Ticks"]
