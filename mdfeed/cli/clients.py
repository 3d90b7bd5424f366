"""The client commands: `mdfeed watch SYMBOL...` and `mdfeed chat ROOM`.

* ``mdfeed watch``: a small gRPC client printing quotes and trades as they arrive, with gap
  and resync notices; it reconnects when the server goes away.
* ``mdfeed chat``: joins a room over ``Connect``, prints its messages and posts each line
  typed on stdin (or ``--post TEXT`` once); after a reconnect it resumes from the last seq
  it printed, so nothing is missed or shown twice.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import grpc
from grpc import aio

from fanout.transports.grpc_service import SERVICE_NAME
from mdfeed.cli.support import add_config_option, config_from_args, run_async, whole_number
from mdfeed.kernel.lifecycle import cancel_and_wait
from proto import mdfeed_pb2 as pb

__all__ = ["chat", "register_cli", "watch"]

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}


def _price(e8: int) -> str:
    """At least two decimals, more only when the price has them (exact: integer math)."""
    if not e8:
        return "-"
    whole, frac = divmod(abs(e8), 100_000_000)
    digits = f"{frac:08d}".rstrip("0").ljust(2, "0")
    return f"{'-' if e8 < 0 else ''}{whole:,}.{digits}"


def format_tick(tick: pb.Tick) -> str:
    if tick.kind == pb.TICK_KIND_TRADE:
        body = f"trade {tick.last_size_e8 / 1e8:g} @ {_price(tick.last_px_e8)}"
    else:
        body = (
            f"bid {tick.bid_size_e8 / 1e8:g} @ {_price(tick.bid_px_e8)}  "
            f"ask {tick.ask_size_e8 / 1e8:g} @ {_price(tick.ask_px_e8)}"
        )
    # A book the ingest found cannot be right (docs/book-models.md): said, never shown plain.
    flag = "  [BOOK INVALID: awaiting a fresh snapshot]" if tick.book_invalid else ""
    return f"{tick.symbol:<8} #{tick.seq:<8} {body}{flag}"


def format_ladder(tick: pb.Tick, depth: int) -> list[str]:
    """A quote tick's book as a price ladder, best levels first: up to `depth` rows of
    ``bid size @ price | price @ ask size``; empty when the tick carries no depth."""
    bids, asks = tick.bid_levels[:depth], tick.ask_levels[:depth]
    rows = []
    for i in range(max(len(bids), len(asks))):
        left = (
            f"{bids[i].size_e8 / 1e8:>12g} @ {_price(bids[i].px_e8):<12}"
            if i < len(bids)
            else " " * 27
        )
        right = (
            f"{_price(asks[i].px_e8):>12} @ {asks[i].size_e8 / 1e8:<12g}" if i < len(asks) else ""
        )
        rows.append(f"    {left} | {right}".rstrip())
    return rows


def format_frame(frame: pb.ServerFrame) -> list[str]:
    body = frame.WhichOneof("body")
    if body == "ticks":
        tag = (
            " [snapshot]"
            if frame.ticks.snapshot
            else " [conflated]"
            if frame.ticks.conflated
            else ""
        )
        return [format_tick(t) + tag for t in frame.ticks.ticks]
    if body == "gap":
        gap = frame.gap
        target = gap.symbol or gap.room
        reason = pb.GapReason.Name(gap.reason).removeprefix("GAP_REASON_").lower()
        return [f"{target:<8} gap: seq {gap.from_seq}..{gap.to_seq} skipped ({reason})"]
    if body == "chat":
        m = frame.chat
        return [f"[{m.room} #{m.seq}] {m.author}: {m.text}"]
    if body == "error":
        e = frame.error
        name = grpc.StatusCode(_code(e.code)).name if _code(e.code) else str(e.code)
        ref = f" ({e.ref})" if e.ref else ""
        return [f"error {name}{ref}: {e.message}"]
    return []


def _code(number: int) -> Any:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code.value
    return None


def _will_retry(command: str, exc: aio.AioRpcError, retry_s: float) -> bool:
    """Report a failed call; True when it is worth reconnecting (server away or busy)."""
    what = f"mdfeed {command}: {exc.code().name}: {exc.details()}"
    if exc.code() not in _RETRYABLE:
        print(what, file=sys.stderr)
        return False
    print(f"{what}; reconnecting in {retry_s:g} s…", file=sys.stderr)
    return True


def _metadata(token: str | None, user: str | None) -> list[tuple[str, str]]:
    metadata = []
    if token:
        metadata.append(("authorization", f"Bearer {token}"))
    if user:
        metadata.append(("x-mdfeed-user", user))
    return metadata


def _channel(address: str, ca_file: str | None) -> aio.Channel:
    if ca_file:
        credentials = grpc.ssl_channel_credentials(Path(ca_file).read_bytes())
        return aio.secure_channel(address, credentials)
    return aio.insecure_channel(address)


async def watch(
    address: str,
    symbols: Sequence[str],
    *,
    token: str | None = None,
    ca_file: str | None = None,
    count: int | None = None,
    out: TextIO = sys.stdout,
    retry_s: float = 1.0,
    depth: int = 0,
) -> int:
    """Print ticks of ``symbols`` until Ctrl-C (or ``count`` ticks); reconnect on loss.
    With ``depth``, each quote's book as a ladder of up to that many levels a side."""
    seen = 0
    told_no_depth = False
    while True:
        async with _channel(address, ca_file) as channel:
            method = channel.unary_stream(
                f"/{SERVICE_NAME}/Subscribe",
                request_serializer=pb.SubscribeRequest.SerializeToString,
                response_deserializer=pb.ServerFrame.FromString,
            )
            call = method(
                pb.SubscribeRequest(symbols=list(symbols)), metadata=_metadata(token, None)
            )
            try:
                async for frame in call:
                    lines = format_frame(frame)
                    ticks = frame.ticks.ticks if frame.WhichOneof("body") == "ticks" else ()
                    for i, line in enumerate(lines):
                        out.write(line + "\n")
                        tick = ticks[i] if depth and i < len(ticks) else None
                        if tick is None or tick.kind != pb.TICK_KIND_QUOTE:
                            continue
                        ladder = format_ladder(tick, depth)
                        if not ladder and not told_no_depth:
                            told_no_depth = True
                            ladder = [
                                "    (no depth in the ticks: the ingest sends the top of book "
                                "only unless fix_session.publish_depth is set)"
                            ]
                        for row in ladder:
                            out.write(row + "\n")
                    out.flush()
                    seen += len(frame.ticks.ticks)
                    if count is not None and seen >= count:
                        call.cancel()
                        return 0
                return 0
            except aio.AioRpcError as exc:
                if not _will_retry("watch", exc, retry_s):
                    return 1
        await asyncio.sleep(retry_s)


async def _lines(stream: TextIO) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, stream.readline)
        if not line:
            return
        yield line.rstrip("\n")


async def chat(  # noqa: PLR0912 - one reconnect loop reads clearer than split pieces
    address: str,
    room: str,
    *,
    token: str | None = None,
    user: str | None = None,
    ca_file: str | None = None,
    post: str | None = None,
    after_seq: int | None = None,
    count: int | None = None,
    stdin: TextIO | None = sys.stdin,
    out: TextIO = sys.stdout,
    retry_s: float = 1.0,
) -> int:
    """Join ``room`` and print it; post lines from ``stdin`` (or ``post`` once, then exit).

    ``after_seq`` first replays the messages after that seq. After a reconnect the room is
    resumed from the last seq printed. ``count``: exit after that many messages.
    """
    last_seq = after_seq
    printed = 0
    pending_post = post
    # One ref for every attempt: a retry after a lost answer is then stored once.
    post_ref = uuid.uuid4().hex
    while True:
        async with _channel(address, ca_file) as channel:
            method = channel.stream_stream(
                f"/{SERVICE_NAME}/Connect",
                request_serializer=pb.ClientFrame.SerializeToString,
                response_deserializer=pb.ServerFrame.FromString,
            )
            call = method(None, metadata=_metadata(token, user))  # no iterator: it writes frames
            if last_seq is None:
                await call.write(pb.ClientFrame(subscribe=pb.SubscribeRequest(rooms=[room])))
            else:
                await call.write(
                    pb.ClientFrame(resume=pb.ResumeRequest(room=room, after_seq=last_seq))
                )
            ref = ""
            if pending_post is not None:
                ref = post_ref
                await call.write(
                    pb.ClientFrame(
                        chat_post=pb.ChatPost(room=room, text=pending_post, client_ref=ref)
                    )
                )
            sender: asyncio.Task[None] | None = None
            if post is None and stdin is not None:
                sender = asyncio.create_task(_send_lines(call, room, stdin))
            try:
                async for frame in call:
                    if frame.WhichOneof("body") == "chat":
                        if last_seq is not None and frame.chat.seq <= last_seq:
                            continue
                        last_seq = frame.chat.seq
                        printed += 1
                    for line in format_frame(frame):
                        out.write(line + "\n")
                    out.flush()
                    if frame.WhichOneof("body") == "error" and frame.error.ref == ref and ref:
                        return 1
                    if (
                        pending_post is not None
                        and frame.WhichOneof("body") == "chat"
                        and frame.chat.author
                        and frame.chat.text == pending_post
                    ):
                        return 0
                    if count is not None and printed >= count:
                        call.cancel()
                        return 0
                return 0
            except aio.AioRpcError as exc:
                if not _will_retry("chat", exc, retry_s):
                    return 1
                if last_seq is None:
                    last_seq = 0
            finally:
                await cancel_and_wait(sender)
        await asyncio.sleep(retry_s)


async def _send_lines(
    call: aio.StreamStreamCall[pb.ClientFrame, pb.ServerFrame], room: str, stdin: TextIO
) -> None:
    async for line in _lines(stdin):
        if line.strip():
            await call.write(
                pb.ClientFrame(
                    chat_post=pb.ChatPost(room=room, text=line, client_ref=uuid.uuid4().hex)
                )
            )


def _depth_arg(text: str) -> int:
    value = whole_number(text)
    if not 1 <= value <= 50:
        raise argparse.ArgumentTypeError(f"depth must be 1 to 50 levels, got {value}")
    return value


def _address(args: argparse.Namespace) -> str:
    if args.address:
        return str(args.address)
    config = config_from_args(args)
    return f"{config.fanout.grpc_host}:{config.fanout.grpc_port}"


def _cmd_watch(args: argparse.Namespace) -> int:

    return run_async(
        watch(
            _address(args),
            args.symbols,
            token=args.token,
            ca_file=args.ca,
            count=args.count,
            depth=args.depth,
        )
    )


def _cmd_chat(args: argparse.Namespace) -> int:

    return run_async(
        chat(
            _address(args),
            args.room,
            token=args.token,
            user=args.user,
            ca_file=args.ca,
            post=args.post,
            after_seq=args.after_seq,
            count=args.count,
        )
    )


def _client_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser, section="fanout")
    parser.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the fanout's gRPC address (default: fanout.grpc_host:grpc_port of the config)",
    )
    parser.add_argument(
        "--token", help="auth token, sent as 'authorization: Bearer TOKEN' (when auth is on)"
    )
    parser.add_argument("--ca", metavar="PEM", help="CA certificate: connect with TLS")
    parser.add_argument(
        "--count", type=int, default=None, metavar="N", help="exit after N ticks/messages"
    )


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``watch`` and ``chat`` subcommands."""
    watch_p = sub.add_parser(
        "watch",
        help="print live quotes and trades of SYMBOL... from a running fanout",
        description=(
            "Subscribe to symbols over gRPC and print each tick: a snapshot first, then updates "
            "with their per-symbol sequence numbers, and gap notices when the server conflated "
            "or resynced. Reconnects when the server goes away."
        ),
    )
    watch_p.add_argument("symbols", nargs="+", metavar="SYMBOL")
    watch_p.add_argument(
        "--depth",
        type=_depth_arg,
        default=0,
        metavar="N",
        help="also print each quote's book as a ladder of up to N levels a side (1-50; the "
        "ingest must publish depth: fix_session.publish_depth)",
    )
    _client_options(watch_p)
    watch_p.set_defaults(func=_cmd_watch)

    chat_p = sub.add_parser(
        "chat",
        help="join a chat ROOM: print its messages, post lines typed on stdin",
        description=(
            "Join a chat room over the gRPC Connect stream. Each line typed is posted; "
            "messages print as '[room #seq] author: text'. After a reconnect it resumes "
            "from the last seq printed (nothing missed, nothing twice)."
        ),
    )
    chat_p.add_argument("room")
    _client_options(chat_p)
    chat_p.add_argument(
        "--user", help="your name in the room when auth is off (sent as x-mdfeed-user)"
    )
    chat_p.add_argument("--post", metavar="TEXT", help="post TEXT, wait for it to be stored, exit")
    chat_p.add_argument(
        "--after-seq",
        type=int,
        default=None,
        metavar="N",
        help="first replay the room's messages after seq N (0: the whole history)",
    )
    chat_p.set_defaults(func=_cmd_chat)
