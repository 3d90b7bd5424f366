"""`mdfeed venue`: the simulated FIX venue alone, until Ctrl-C, with a status line a second.

It composes the ``venue`` service (``fix_session.venue.SimulatedVenue``) from the
``[venue]`` section, with the command line's overrides applied.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
from typing import Any, TextIO

from fix_session.venue import SimulatedVenue, VenueStats
from mdfeed.cli.support import (
    add_config_option,
    config_from_args,
    run_async,
    setup_logging,
    whole_number,
)
from mdfeed.composition import compose
from mdfeed.kernel.config import MdfeedConfig, VenueConfig
from mdfeed.kernel.lifecycle import stop_on_signals

__all__ = ["register_cli", "run_venue_command", "serve", "venue_config_from_args"]


_CLI_DESCRIPTION = """\
Run the simulated FIX 4.4 market data venue (an acceptor) until Ctrl-C.

It accepts FIX 4.4 initiators (mdfeed's QuickFIX session, or any other), answers
MarketDataRequest (V) with a full-refresh snapshot (W) per symbol, then streams
incremental refreshes (X) of a random-walk market at the given rate, and rejects
unknown symbols with MarketDataRequestReject (Y). A status line is printed every
second: sessions, messages/s and entries/s sent.

--fast switches to the benchmark stream (venue.stream = "fast"): each session's X
messages are encoded once as a closed cycle over its subscribed symbols (size changes,
top-of-book moves as DELETE+NEW pairs undone later in the cycle, trades; up to 20
entries per X, the symbols of one request sharing messages) and written again and
again with fresh MsgSeqNum, SendingTime, MDEntryTime and CheckSum, as fast as the
reader takes them. --rate then caps it (entries/s); without --rate there is no cap.
"""

_CLI_EPILOG = """\
examples:
  mdfeed venue                              the [venue] section of the config
  mdfeed venue --port 9877 --rate 50000     override port and rate
  mdfeed venue --symbols AAPL,MSFT --seed 7 two symbols, a reproducible market
  mdfeed venue --fast                       the benchmark stream, at the reader's pace
  mdfeed venue --fast --rate 100000         the benchmark stream capped at 100K entries/s
"""


def _port_arg(text: str) -> int:
    value = whole_number(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is not within 0..65535")
    return value


def _rate_arg(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"the rate must be at least 1, got {value}")
    return value


def _symbols_arg(text: str) -> tuple[str, ...]:
    symbols = tuple(s.strip() for s in text.split(",") if s.strip())
    if not symbols:
        raise argparse.ArgumentTypeError("give at least one symbol, e.g. AAPL,MSFT")
    for symbol in symbols:
        if not symbol.isprintable() or "=" in symbol or " " in symbol:
            raise argparse.ArgumentTypeError(f"not a usable FIX symbol: {symbol!r}")
    return symbols


def register_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``venue`` subcommand to the mdfeed command line."""

    parser = subparsers.add_parser(
        "venue",
        help="run the simulated FIX 4.4 market data venue until Ctrl-C",
        description=_CLI_DESCRIPTION,
        epilog=_CLI_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_option(parser, section="venue")
    parser.add_argument("--host", default=None, help="address to listen on (default: venue.host)")
    parser.add_argument(
        "--port",
        type=_port_arg,
        metavar="N",
        default=None,
        help="TCP port to listen on; 0 picks a free one (default: venue.port)",
    )
    parser.add_argument(
        "--rate",
        type=_rate_arg,
        metavar="N",
        default=None,
        help="X entries per second across all subscribed symbols (default: venue.rate_ticks_per_s)",
    )
    parser.add_argument(
        "--symbols",
        type=_symbols_arg,
        metavar="A,B,...",
        default=None,
        help="comma-separated symbols to quote (default: venue.symbols)",
    )
    parser.add_argument(
        "--seed",
        type=whole_number,
        metavar="N",
        default=None,
        help="seed of the random walk; 0 draws one (default: venue.seed)",
    )
    parser.add_argument(
        "--book-model",
        choices=("price", "position", "entry_id"),
        default=None,
        help="how X entries name the level they update: by price, by position (level 1 "
        "moved in place too) or by entry id; the ingest's fix_session.book_model must match "
        "(docs/book-models.md; default: venue.book_model)",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="the benchmark stream: pre-encoded X cycles as fast as the reader takes them "
        "(--rate caps it); see above (default: venue.stream)",
    )
    parser.set_defaults(func=run_venue_command)


def run_venue_command(args: argparse.Namespace) -> int:
    """``mdfeed venue``: load the config, apply the options, serve until Ctrl-C."""
    config = config_from_args(args)
    venue_config = venue_config_from_args(config.venue, args)
    setup_logging(config.log)
    return run_async(_serve_until_signal(venue_config))


def venue_config_from_args(venue_config: VenueConfig, args: argparse.Namespace) -> VenueConfig:
    """The ``[venue]`` section with the command line's options applied.

    On the fast stream (``--fast`` or ``venue.stream = "fast"``) ``--rate`` is its cap,
    ``fast_rate_ticks_per_s``; otherwise the random walk's ``rate_ticks_per_s``.
    """
    overrides: dict[str, Any] = {}  # argparse's values, each parsed to its field's type
    for option, key in (
        ("host", "host"),
        ("port", "port"),
        ("rate", "rate_ticks_per_s"),
        ("symbols", "symbols"),
        ("seed", "seed"),
        ("book_model", "book_model"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "fast", False):
        overrides["stream"] = "fast"
    fast = overrides.get("stream", venue_config.stream) == "fast"
    if fast and "rate_ticks_per_s" in overrides:
        overrides["fast_rate_ticks_per_s"] = overrides.pop("rate_ticks_per_s")
    return dataclasses.replace(venue_config, **overrides)


async def _serve_until_signal(config: VenueConfig) -> int:
    try:
        await serve(config, stop_on_signals(), out=sys.stdout)
    except OSError as exc:
        print(f"mdfeed venue: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def serve(
    config: VenueConfig,
    stop: asyncio.Event,
    *,
    out: TextIO,
    status_interval_s: float = 1.0,
) -> None:
    """Run a venue until `stop` is set, writing a status line to `out` every interval."""
    async with compose(MdfeedConfig(venue=config), {"venue"}) as running:
        venue = running.venue
        assert venue is not None
        print(
            f"venue: FIX 4.4 acceptor on {config.host}:{venue.port} "
            f"(SenderCompID {config.sender_comp_id}, TargetCompID {config.target_comp_id}), "
            f"{len(config.symbols)} symbols, {_rate_text(venue)}, seed {venue.seed}; "
            "Ctrl-C stops",
            file=out,
            flush=True,
        )
        loop = asyncio.get_running_loop()
        last, last_t = venue.stats, loop.time()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), status_interval_s)
            now_stats, now_t = venue.stats, loop.time()
            print(_status_line(venue, last, now_stats, now_t - last_t), file=out, flush=True)
            last, last_t = now_stats, now_t


def _rate_text(venue: SimulatedVenue) -> str:
    if not venue.fast:
        return f"{venue.rate} entries/s"
    if venue.rate:
        return f"fast stream capped at {venue.rate} entries/s"
    return "fast stream at the reader's pace"


def _status_line(venue: SimulatedVenue, before: VenueStats, after: VenueStats, dt: float) -> str:
    dt = max(dt, 1e-9)
    sessions = venue.sessions
    logged_on = sum(1 for s in sessions if s.logged_on)
    msgs = (after.messages_sent - before.messages_sent) / dt
    entries = (after.entries_sent - before.entries_sent) / dt
    return (
        f"venue: sessions {len(sessions)} ({logged_on} logged on), "
        f"symbols streaming {len(venue.market.active)}, "
        f"{msgs:,.0f} msgs/s, {entries:,.0f} entries/s, "
        f"total {after.messages_sent:,} msgs {after.entries_sent:,} entries"
        + (f", {after.decode_errors} decode errors" if after.decode_errors else "")
    )
