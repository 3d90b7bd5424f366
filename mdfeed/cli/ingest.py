"""`mdfeed ingest`: the FIX market data session alone, publishing ticks to the bus.

The standalone form of the ingest half of ``mdfeed run``, for running each service in a
unit of its own (systemd/): ``mdfeed.composition`` composes the ``ingest`` service, a
QuickFIX initiator (``fix_session.ingest.FixIngest``) whose ticks go to a bus producer on
``bus.tick_topic``. No simulated venue is started, whatever
``venue.enabled`` says: the session connects to ``fix_session.host:port`` (start
``mdfeed venue`` there to try it). With ``bus.kind = "memory"`` the ticks stay inside this
process, so a separate ``mdfeed aggregate`` or ``mdfeed fanout`` sees none; use Kafka.

Scale out: ``--shard K/N`` (or ``fix_session.shard = "K/N"``) makes this process shard K
of N: it subscribes only the symbols with ``zlib.crc32(symbol) % N == K - 1``, on a FIX
session of its own (SenderCompID ``<fix_session.sender_comp_id>-K`` unless
``fix_session.shard_comp_id_suffix = false``), and publishes into the same topic, keyed
by symbol: run N processes with shards 1/N .. N/N for every symbol exactly once, each
symbol's sequence intact.

systemd: READY once the producer and the initiator have started (QuickFIX then connects and
reconnects in the background); STATUS says "logged on" or "connecting" whenever the
session's state changes, checked every progress interval.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from mdfeed.cli.support import add_config_option, book_faults_text, run_service
from mdfeed.cli.systemd import Notifier
from mdfeed.kernel.config import MdfeedConfig, parse_shard
from mdfeed.kernel.lifecycle import stop_on_signals

if TYPE_CHECKING:
    from fix_session.ingest import FixIngest
    from mdfeed.kernel.bus import BusProducer

__all__ = ["register_cli", "run_ingest"]

#: Seconds between two progress lines (and logon state checks).
PROGRESS_INTERVAL_S = 2.0


def _session_name(config: MdfeedConfig, ingest: FixIngest | None = None) -> str:
    session = config.fix_session if ingest is None else ingest.config
    return (
        f"FIX {session.sender_comp_id}->{session.target_comp_id} at {session.host}:{session.port}"
    )


async def run_ingest(
    config: MdfeedConfig,
    *,
    out: TextIO = sys.stderr,
    notifier: Notifier | None = None,
    interval_s: float = PROGRESS_INTERVAL_S,
) -> int:
    """The FIX session alone until SIGINT/SIGTERM, with a progress line every `interval_s`."""
    from mdfeed.composition import compose

    stop = stop_on_signals()
    notifier = notifier or Notifier(None)
    symbols = config.symbols
    if config.bus.kind == "memory":
        out.write(
            "warning: bus.kind is 'memory': ticks stay in this process and reach no other "
            "mdfeed command; set bus.kind = 'kafka' to feed aggregate/fanout\n"
        )
    async with compose(config, {"ingest"}, metrics="ingest") as running:
        ingest, producer, metrics = running.ingest, running.tick_producer, running.metrics
        assert ingest is not None
        assert producer is not None
        assert metrics is not None
        out.write(metrics.describe() + "\n")
        shard = config.fix_session.shard
        of_all = f" (shard {shard} of {len(symbols)})" if shard else ""
        out.write(
            f"ingest ready: {_session_name(config, ingest)}, {len(ingest.symbols)} symbols"
            f"{of_all} -> {config.bus.kind} topic {config.bus.tick_topic}\n"
        )
        out.flush()
        gc.freeze()  # as the other tick-path commands: long-lived state out of GC scans
        notifier.ready(f"connecting: {_session_name(config, ingest)}")
        try:
            await _report_until(
                stop,
                ingest,
                producer=producer,
                notifier=notifier,
                out=out,
                interval_s=interval_s,
            )
        finally:
            await notifier.stopping()
    return 0


async def _report_until(
    stop: asyncio.Event,
    ingest: FixIngest,
    *,
    producer: BusProducer,
    notifier: Notifier,
    out: TextIO,
    interval_s: float,
) -> None:
    state = "connecting"
    then = time.monotonic()
    stats = ingest.stats
    messages, ticks = stats.messages_in, stats.ticks_out
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        now = time.monotonic()
        elapsed = max(now - then, 1e-9)
        stats = ingest.stats
        rate_in = (stats.messages_in - messages) / elapsed
        rate_out = (stats.ticks_out - ticks) / elapsed
        then, messages, ticks = now, stats.messages_in, stats.ticks_out
        now_state = "logged on" if ingest.logged_on else "connecting"
        if now_state != state:
            state = now_state
            notifier.status(f"{state}: {ingest.config.sender_comp_id} at {ingest.config.host}")
        produced = producer.stats
        out.write(
            f"fix {state} | {rate_in:,.0f} msgs/s in | {rate_out:,.0f} ticks/s out | "
            f"rejected {stats.decode_errors + stats.rejected_messages}"
            f"{book_faults_text(ingest.normalizer.faults, len(ingest.normalizer.invalid))} | "
            f"producer buffered {produced.buffered:,}, dropped {produced.dropped:,}\n"
        )
        out.flush()
    out.write("stopping…\n")


def _shard_arg(text: str) -> str:
    try:
        parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _cmd_ingest(args: argparse.Namespace) -> int:
    shard: str | None = args.shard
    if shard is None:
        return run_service(args, run_ingest)

    async def sharded(config: MdfeedConfig, **options: Any) -> int:
        session = dataclasses.replace(config.fix_session, shard=shard)
        return await run_ingest(dataclasses.replace(config, fix_session=session), **options)

    return run_service(args, sharded)


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``ingest`` subcommand to the mdfeed command line."""
    ingest = sub.add_parser(
        "ingest",
        help="run the FIX market data session alone: venue quotes to ticks on the bus",
        description=(
            "Run the QuickFIX market data session without the rest of the pipeline: log on "
            "to fix_session.host:port, subscribe to fix_session.symbols (empty: venue.symbols) "
            "and publish sequenced ticks to bus.tick_topic, keyed by symbol. No simulated "
            "venue is started (run 'mdfeed venue' for one). Use bus.kind = 'kafka' so that "
            "'mdfeed aggregate' and 'mdfeed fanout' in other processes get the ticks. Prints "
            "a progress line every 2 seconds: logon state, FIX messages/s in, ticks/s out, "
            "rejected messages, records buffered in the producer. --shard K/N runs shard K "
            "of N ingest processes: only the symbols with crc32(symbol) % N == K-1, on a FIX "
            "session of its own (SenderCompID <fix_session.sender_comp_id>-K), into the same "
            "topic; run 1/N .. N/N to cover every symbol once. Under systemd "
            "(Type=notify) it sends READY once the producer and the initiator have started, "
            "STATUS when the session logs on or goes back to connecting, and watchdog "
            "keep-alives."
        ),
    )
    add_config_option(ingest)
    ingest.add_argument(
        "--shard",
        metavar="K/N",
        type=_shard_arg,
        default=None,
        help="be shard K of N ingest processes (default: fix_session.shard; empty: all symbols)",
    )
    ingest.set_defaults(func=_cmd_ingest)
