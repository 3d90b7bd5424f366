"""`mdfeed aggregate` (the bar service alone), `mdfeed datafeed` (the chart datafeed alone) and
`mdfeed reconcile` (bars against the log).

``mdfeed datafeed`` serves the TradingView UDF endpoints and the chart page from the
configured bar store, and its live bars (``/stream``) from ``bus.bar_topic``, which
``mdfeed aggregate`` publishes. It has no chat bridge: chat is the fanout's (``mdfeed
fanout`` persists, sequences and serves it over gRPC and MQTT), and the standalone
datafeed runs no chat service of its own. The page's ``/chat/...`` endpoints answer 404
("chat is not enabled on this datafeed") and its chat panel says "Chat is not available
on this datafeed". ``mdfeed run`` keeps the bridge, on the pipeline's chat service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from mdfeed.cli.support import (
    add_config_option,
    config_from_args,
    run_async,
    run_service,
    setup_logging,
)
from mdfeed.cli.systemd import Notifier
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.kernel.lifecycle import stop_on_signals

if TYPE_CHECKING:
    from fanout.bars import BarFanout
    from ohlcv.aggregator import BarService
    from ohlcv.datafeed import Datafeed

__all__ = ["register_cli", "run_aggregator", "run_datafeed"]


async def run_aggregator(
    config: MdfeedConfig, *, out: TextIO = sys.stderr, notifier: Notifier | None = None
) -> int:
    """The bar service until SIGINT/SIGTERM, with a progress line every few seconds."""
    from mdfeed.composition import compose

    stop = stop_on_signals()
    async with compose(config, {"bars"}, metrics="aggregate") as running:
        service, metrics = running.bars, running.metrics
        assert service is not None
        assert metrics is not None
        out.write(metrics.describe() + "\n")
        notifier = notifier or Notifier(None)
        notifier.ready(f"group {config.ohlcv.group_id}")
        try:
            await _report_until(stop, service, config, out)
        finally:
            await notifier.stopping()
    if service.failure is not None:
        # Exit non-zero: under systemd (Restart=on-failure) that is a restart.
        out.write(f"mdfeed aggregate: the bar service stopped: {service.failure!r}\n")
        return 1
    return 0


async def _report_until(
    stop: asyncio.Event, service: BarService, config: MdfeedConfig, out: TextIO
) -> None:
    out.write(
        f"aggregator ready: group {config.ohlcv.group_id}, topic {config.bus.tick_topic}, "
        f"store {config.store.kind}, bars {', '.join(config.ohlcv.resolutions)}\n"
    )
    out.flush()
    while not stop.is_set() and service.failure is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=2.0)
        stats = service.stats
        out.write(
            f"ticks {stats.records:,} | bars written {stats.bars_written:,} | "
            f"flushes {stats.flushes:,} | store errors {stats.store_errors} | "
            f"late dropped {service.aggregator.stats.late_dropped} | "
            f"restored {stats.restored} | replayed skipped {stats.replayed_skipped}\n"
        )
        out.flush()
    out.write("stopping…\n")


async def run_datafeed(
    config: MdfeedConfig,
    *,
    out: TextIO = sys.stderr,
    notifier: Notifier | None = None,
    interval_s: float = 5.0,
) -> int:
    """The datafeed alone until SIGINT/SIGTERM: history from the store, live bars from the bus.

    Live bars come from ``bus.bar_topic`` (read from the latest offset, as every fanout
    does) into ``datafeed.hub``; history and symbols from the bar store. No chat bridge
    (see the module docstring). READY once the HTTP server is bound and the bar consumer
    has started.
    """
    from mdfeed.composition import compose

    stop = stop_on_signals()
    notifier = notifier or Notifier(None)
    if config.bus.kind == "memory":
        out.write(
            "warning: bus.kind is 'memory': no other process can publish bars to it, so "
            "/stream stays quiet; set bus.kind = 'kafka' to get the bars of 'mdfeed aggregate'\n"
        )
    async with compose(config, {"datafeed"}, metrics="datafeed") as running:
        datafeed, bars, metrics = running.datafeed, running.live_bars, running.metrics
        assert datafeed is not None
        assert bars is not None
        assert metrics is not None
        out.write(metrics.describe() + "\n")
        where = f"http://{config.datafeed.http_host}:{datafeed.port}/"
        out.write(
            f"datafeed ready on {where} (store {config.store.kind}, live bars from "
            f"{config.bus.kind} topic {config.bus.bar_topic}, no chat)\n"
        )
        out.flush()
        # As in `mdfeed run` and `mdfeed fanout`: long-lived state out of the collector's
        # scans, whose pauses set the p99 of a large /history (bench/test_datafeed_bench.py).
        gc.freeze()
        notifier.ready(f"serving {where}")
        try:
            await _report_datafeed_until(stop, datafeed, bars, out, interval_s)
        finally:
            await notifier.stopping()
    return 0


async def _report_datafeed_until(
    stop: asyncio.Event, datafeed: Datafeed, bars: BarFanout, out: TextIO, interval_s: float
) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        out.write(
            f"live bars {bars.bars:,} | bad records {bars.bad_records} | "
            f"stream readers {datafeed.hub.subscriber_count}\n"
        )
        out.flush()
    out.write("stopping…\n")


def _time_ns(text: str | None, default: int) -> int:
    if text is None:
        return default
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: an ISO time (2026-11-22T14:30:00+00:00) or nanoseconds since the epoch"
        ) from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone offset (+00:00)")
    return int(moment.timestamp() * 1_000_000_000)


async def _reconcile(config: MdfeedConfig, args: argparse.Namespace) -> int:
    from mdfeed.composition import reconcile_bars
    from ohlcv.reconcile import print_report

    report = await reconcile_bars(
        config,
        from_ns=_time_ns(args.start, 0),
        to_ns=_time_ns(args.end, 2**62),
        idle_s=args.idle,
        out=sys.stderr,
    )
    print_report(report)
    return 0 if report.differences == 0 else 1


def _cmd_aggregate(args: argparse.Namespace) -> int:
    return run_service(args, run_aggregator)


def _cmd_datafeed(args: argparse.Namespace) -> int:
    return run_service(args, run_datafeed)


def _cmd_reconcile(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    setup_logging(config.log)
    try:
        _time_ns(args.start, 0)
        _time_ns(args.end, 0)
    except argparse.ArgumentTypeError as exc:
        print(f"mdfeed reconcile: {exc}", file=sys.stderr)
        return 2
    return run_async(_reconcile(config, args))


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    aggregate = sub.add_parser(
        "aggregate",
        help="run the bar aggregator alone: ticks from the bus to OHLCV bars in the store",
        description=(
            "Consume the tick topic as a member of ohlcv.group_id (run several: they split "
            "the partitions), build OHLCV bars and upsert them into the bar store, committing "
            "offsets only after the writes. Prints progress every 2 seconds."
        ),
    )
    add_config_option(aggregate)
    aggregate.set_defaults(func=_cmd_aggregate)

    datafeed = sub.add_parser(
        "datafeed",
        help="run the TradingView datafeed and chart page alone, over the bar store",
        description=(
            "Serve the TradingView UDF endpoints (/config, /symbols, /search, /time, "
            "/history) and the chart page on datafeed.http_host:http_port from the configured "
            "bar store, with live bars on /stream taken from bus.bar_topic (published by "
            "'mdfeed aggregate'; use bus.kind = 'kafka'). No chat bridge: /chat/... answers "
            "404 and the page's chat panel says chat is not available; chat is served by "
            "'mdfeed fanout' over "
            "gRPC and MQTT. Prints a progress line every 5 seconds (live bars received, bad "
            "records, stream readers). Under systemd (Type=notify) it sends READY once the "
            "HTTP server is bound and the bar consumer has started, and watchdog keep-alives."
        ),
    )
    add_config_option(datafeed)
    datafeed.set_defaults(func=_cmd_datafeed)

    rec = sub.add_parser(
        "reconcile",
        help="recompute bars from the tick log and compare them with the stored bars",
        description=(
            "Read the whole tick topic, recompute every bar, and compare with the bar store "
            "for bars opening in [--from, --to). Prints missing, extra and different bars; "
            "exits 1 when there is any difference."
        ),
    )
    add_config_option(rec)
    rec.add_argument("--from", dest="start", metavar="TIME", help="ISO time or ns (default: all)")
    rec.add_argument("--to", dest="end", metavar="TIME", help="ISO time or ns (default: all)")
    rec.add_argument(
        "--idle",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="stop reading the log after this long without a record (default 2)",
    )
    rec.set_defaults(func=_cmd_reconcile)
