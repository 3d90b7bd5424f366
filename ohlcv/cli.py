"""`mdfeed aggregate` (the bar service alone) and `mdfeed reconcile` (bars against the log)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from mdfeed.cli_support import add_config_option, config_from_args
from mdfeed.config import MdfeedConfig
from mdfeed.lifecycle import stop_on_signals
from mdfeed.systemd import Notifier
from proto import mdfeed_pb2 as pb

if TYPE_CHECKING:
    from ohlcv.aggregator import BarService

__all__ = ["register_cli", "run_aggregator"]


async def run_aggregator(
    config: MdfeedConfig, *, out: TextIO = sys.stderr, notifier: Notifier | None = None
) -> int:
    """The bar service until SIGINT/SIGTERM, with a progress line every few seconds."""
    from mdfeed.bus import open_bus
    from ohlcv.aggregator import BarService
    from storage import open_bar_store

    stop = stop_on_signals()
    async with (
        open_bus(config.bus) as bus,
        open_bar_store(config.store, config.ohlcv) as store,
        bus.producer() as producer,
    ):
        service = BarService(bus, store, config.ohlcv, topic=config.bus.tick_topic)
        topic = config.bus.bar_topic

        def publish(changed: Sequence[pb.Bar]) -> None:
            for bar in changed:  # to the fanouts: gRPC BarUpdate and MQTT bars/...
                producer.send(topic, bar.symbol.encode(), bar.SerializeToString())

        service.add_listener(publish)
        await service.start()
        notifier = notifier or Notifier(None)
        notifier.ready(f"group {config.ohlcv.group_id}")
        try:
            await _report_until(stop, service, config, out)
        finally:
            await notifier.stopping()
            await service.stop()
    return 0


async def _report_until(
    stop: asyncio.Event, service: BarService, config: MdfeedConfig, out: TextIO
) -> None:
    out.write(
        f"aggregator ready: group {config.ohlcv.group_id}, topic {config.bus.tick_topic}, "
        f"store {config.store.kind}, bars {', '.join(config.ohlcv.resolutions)}\n"
    )
    out.flush()
    while not stop.is_set():
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
    from mdfeed.bus import open_bus
    from ohlcv.reconcile import print_report, reconcile
    from storage import open_bar_store

    async with open_bus(config.bus) as bus, open_bar_store(config.store, config.ohlcv) as store:
        report = await reconcile(
            bus,
            store,
            config.ohlcv,
            topic=config.bus.tick_topic,
            from_ns=_time_ns(args.start, 0),
            to_ns=_time_ns(args.end, 2**62),
            idle_s=args.idle,
            out=sys.stderr,
        )
    print_report(report)
    return 0 if report.differences == 0 else 1


def _cmd_aggregate(args: argparse.Namespace) -> int:
    from mdfeed.cli import _run_async, _setup_logging

    config = config_from_args(args)
    _setup_logging(config.log.level)
    return _run_async(run_aggregator(config, notifier=Notifier.from_environ(os.environ)))


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from mdfeed.cli import _run_async, _setup_logging

    config = config_from_args(args)
    _setup_logging(config.log.level)
    try:
        _time_ns(args.start, 0)
        _time_ns(args.end, 0)
    except argparse.ArgumentTypeError as exc:
        print(f"mdfeed reconcile: {exc}", file=sys.stderr)
        return 2
    return _run_async(_reconcile(config, args))


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
