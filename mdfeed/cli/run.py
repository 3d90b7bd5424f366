"""`mdfeed run`: the whole pipeline in one process, composed by ``mdfeed.composition``.

With the embedded config: the simulated venue, the QuickFIX session, the in-process bus,
the fanout, the bars and the datafeed. With local-stack: the same against the real Kafka,
Cassandra and Mosquitto. This module adds the start-up banner and the status line.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from typing import TextIO

from fanout.parts import FanoutParts
from fix_session.ingest import FixIngest
from fix_session.venue import SimulatedVenue
from mdfeed.cli.support import book_faults_text
from mdfeed.cli.systemd import Notifier
from mdfeed.composition import compose
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.kernel.lifecycle import stop_on_signals

#: What ``mdfeed run`` composes (the venue only while ``venue.enabled``).
PIPELINE = frozenset({"venue", "ingest", "fanout", "bars", "datafeed"})


def _price(e8: int | None) -> str:
    return "-" if e8 is None else f"{e8 / 1e8:.2f}"


class StatusLine:
    """One compact line per interval: rates, session state, a few last prices."""

    def __init__(self, out: TextIO, *, watch: int = 3) -> None:
        self.out = out
        self.watch = watch
        self._tty = out.isatty()
        self._last: tuple[float, int, int, int] | None = None

    def render(
        self, ingest: FixIngest, venue: SimulatedVenue | None, fanout: FanoutParts | None = None
    ) -> str:
        now = time.monotonic()
        stats = ingest.stats
        mqtt_out = 0
        if fanout is not None and fanout.bridge is not None:
            mqtt_out = fanout.bridge.stats.quotes_published
        rate_in = rate_out = rate_mqtt = 0.0
        if self._last is not None:
            then, messages, ticks, mqtt = self._last
            elapsed = max(now - then, 1e-9)
            rate_in = (stats.messages_in - messages) / elapsed
            rate_out = (stats.ticks_out - ticks) / elapsed
            rate_mqtt = (mqtt_out - mqtt) / elapsed
        self._last = (now, stats.messages_in, stats.ticks_out, mqtt_out)
        normalizer = ingest.normalizer
        symbols = normalizer.symbols
        prices = []
        for symbol in symbols[: self.watch]:
            bid, ask, last = normalizer.top(symbol)
            prices.append(f"{symbol} {_price(bid)}/{_price(ask)} last {_price(last)}")
        state = "logged on" if ingest.logged_on else "connecting"
        rejected = stats.decode_errors + stats.rejected_messages
        line = (
            f"fix {state} | {rate_in:,.0f} msgs/s in, {rate_out:,.0f} ticks/s out | "
            f"{len(symbols)} symbols | {' | '.join(prices)} | rejected {rejected}"
            f"{book_faults_text(normalizer.faults, len(normalizer.invalid))}"
        )
        if venue is not None:
            line = f"venue {venue.stats.entries_sent:,} entries sent | " + line
        if fanout is not None and fanout.ticks is not None:
            chat = fanout.chat.posted if fanout.chat is not None else 0
            line += (
                f" | gRPC {fanout.ticks.client_count} clients | MQTT {rate_mqtt:,.0f} quotes/s"
                f" | chat {chat} posts"
            )
        return line

    def finish(self) -> None:
        """End the status line so what follows starts on a line of its own."""
        if self._tty:
            self.out.write("\n")

    def show(self, line: str) -> None:
        if self._tty:
            self.out.write("\r\x1b[2K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()


async def run_pipeline(
    config: MdfeedConfig,
    *,
    duration_s: float | None = None,
    out: TextIO = sys.stderr,
    notifier: Notifier | None = None,
) -> int:
    """Run until SIGINT/SIGTERM (or `duration_s`); return the process exit code."""
    stop = stop_on_signals()
    loop = asyncio.get_running_loop()
    status = StatusLine(out)
    services = PIPELINE if config.venue.enabled else PIPELINE - {"venue"}
    async with compose(config, services, metrics="run") as running:
        assert running.ingest is not None
        assert running.fanout is not None
        assert running.datafeed is not None
        assert running.metrics is not None
        if running.venue is not None:
            out.write(f"simulated venue listening on {config.venue.host}:{running.venue.port}\n")
        out.write(
            f"bus: {config.bus.kind}; FIX session {config.fix_session.sender_comp_id} -> "
            f"{config.fix_session.host}:{config.fix_session.port}, {len(config.symbols)} symbols\n"
        )
        for line in running.fanout.describe():
            out.write(line + "\n")
        out.write(
            f"chart and TradingView datafeed on http://{config.datafeed.http_host}:"
            f"{running.datafeed.port}/ (bars: {', '.join(config.ohlcv.resolutions)})\n"
        )
        out.write(running.metrics.describe() + "\n")
        # Everything long-lived exists now: keep it out of the collector's scans, which
        # otherwise put 25 ms pauses into the p99 of a 5,000-bar /history (bench/).
        gc.freeze()
        notifier = notifier or Notifier(None)
        notifier.ready("pipeline running")
        deadline = None if duration_s is None else loop.time() + duration_s
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                status.show(status.render(running.ingest, running.venue, running.fanout))
                if deadline is not None and loop.time() >= deadline:
                    break
        finally:
            status.finish()
            out.write("stopping…\n")
            await notifier.stopping()
    return 0
