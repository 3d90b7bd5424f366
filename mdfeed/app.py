"""`mdfeed run`: the whole pipeline in one process, wired from one config.

With the embedded config: the simulated venue, the QuickFIX session, the in-process bus.
With local-stack: the same against the real Kafka. Components join as they are built; what
runs is what the status line reports, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from fanout.metrics import register_fanout_metrics
from fanout.runtime import Fanout
from fix_session.ingest import FixIngest
from fix_session.metrics import register_ingest_metrics
from fix_session.venue import SimulatedVenue
from mdfeed.bus import Bus, open_bus
from mdfeed.config import MdfeedConfig
from mdfeed.lifecycle import stop_on_signals
from mdfeed.metrics import MetricsServer
from mdfeed.systemd import Notifier
from ohlcv.aggregator import BarService
from ohlcv.datafeed import Datafeed
from ohlcv.metrics import register_bar_metrics, register_datafeed_metrics
from proto import mdfeed_pb2 as pb
from storage import open_bar_store


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
        self, ingest: FixIngest, venue: SimulatedVenue | None, fanout: Fanout | None = None
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


async def _start_bars(
    stack: contextlib.AsyncExitStack,
    config: MdfeedConfig,
    bus: Bus,
    fanout: Fanout,
    symbols: Sequence[str],
    *,
    metrics: MetricsServer,
) -> Datafeed:
    """The bar store, the bar service and the datafeed, live bars to the chart and MQTT."""
    store = await stack.enter_async_context(open_bar_store(config.store, config.ohlcv))
    datafeed = await stack.enter_async_context(
        Datafeed(
            config.datafeed,
            store,
            chat=fanout.chat,
            symbols=symbols,
            session_timezone=config.ohlcv.session_timezone,
            web_root=Path(config.datafeed.web_root),
        )
    )
    bars = BarService(bus, store, config.ohlcv, topic=config.bus.tick_topic)
    hub = datafeed.hub
    producer = await stack.enter_async_context(bus.producer())
    topic = config.bus.bar_topic

    def publish(changed: Sequence[pb.Bar]) -> None:
        # The chart directly; gRPC and MQTT clients through the bar topic, as when the
        # aggregator runs in a process of its own (fanout.bars).
        for bar in changed:
            hub.publish(bar)
            producer.send(topic, bar.symbol.encode(), bar.SerializeToString())

    bars.add_listener(publish)
    await stack.enter_async_context(bars)
    register_bar_metrics(metrics, bars, producer)
    register_datafeed_metrics(metrics, datafeed)
    return datafeed


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
    async with contextlib.AsyncExitStack() as stack:
        metrics = await stack.enter_async_context(MetricsServer(config.metrics, "run"))
        venue: SimulatedVenue | None = None
        if config.venue.enabled:
            venue = SimulatedVenue(config.venue)
            await stack.enter_async_context(venue)
            out.write(f"simulated venue listening on {config.venue.host}:{venue.port}\n")
        bus = await stack.enter_async_context(open_bus(config.bus))
        producer = await stack.enter_async_context(bus.producer())
        symbols = config.symbols
        ingest = FixIngest(
            config.fix_session, symbols=symbols, producer=producer, topic=config.bus.tick_topic
        )
        producer.on_resumed = ingest.resync
        await stack.enter_async_context(ingest)
        register_ingest_metrics(metrics, ingest)
        out.write(
            f"bus: {config.bus.kind}; FIX session {config.fix_session.sender_comp_id} -> "
            f"{config.fix_session.host}:{config.fix_session.port}, {len(symbols)} symbols\n"
        )
        fanout = await stack.enter_async_context(Fanout(config, bus))
        register_fanout_metrics(metrics, fanout)
        for line in fanout.describe():
            out.write(line + "\n")
        datafeed = await _start_bars(stack, config, bus, fanout, symbols, metrics=metrics)
        out.write(
            f"chart and TradingView datafeed on http://{config.datafeed.http_host}:"
            f"{datafeed.port}/ (bars: {', '.join(config.ohlcv.resolutions)})\n"
        )
        out.write(metrics.describe() + "\n")
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
                status.show(status.render(ingest, venue, fanout))
                if deadline is not None and loop.time() >= deadline:
                    break
        finally:
            status.finish()
            out.write("stopping…\n")
            await notifier.stopping()
    return 0
