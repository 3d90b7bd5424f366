"""The fast venue as a benchmark process: `SimulatedVenue` on its benchmark stream.

`mdfeed bench --scenarios ingest` runs the venue in a process of its own, so the venue's
core is not the measured reader's. Run as ``python -P -m bench.harness.fast_venue
--symbols A,B,...``; it announces ``{"ready": true, "port": P}`` and answers the
commands of `bench.harness.children`:

* ``stats``: what the venue has sent so far, cumulative: ``x_messages``, ``w_messages``,
  ``entries`` (X entries), ``bytes``, ``cpu_s`` (its own CPU seconds) and ``t`` (its
  monotonic clock).
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

from bench.harness.children import Json, announce, serve_commands
from fix_session.venue import SimulatedVenue
from mdfeed.cli.support import run_async
from mdfeed.kernel.config import VenueConfig

__all__ = ["main"]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _serve(symbols: tuple[str, ...], seed: int, rate: int) -> None:
    config = VenueConfig(
        port=0, symbols=symbols, seed=seed, stream="fast", fast_rate_ticks_per_s=rate
    )
    async with SimulatedVenue(config) as venue:

        async def stats(_: Json) -> dict[str, Any]:
            s = venue.stats
            return {
                "x_messages": s.sent_by_type.get("X", 0),
                "w_messages": s.sent_by_type.get("W", 0),
                "entries": s.entries_sent,
                "bytes": s.bytes_sent,
                "cpu_s": _cpu_s(),
                "t": time.monotonic(),
            }

        announce(port=venue.port, seed=venue.seed)
        await serve_commands({"stats": stats})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", required=True, help="comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=int, default=0, help="entries/s cap; 0: none")
    args = parser.parse_args(argv)
    run_async(_serve(tuple(args.symbols.split(",")), args.seed, args.rate))


if __name__ == "__main__":
    main()
