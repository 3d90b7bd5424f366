"""`mdfeed mqtt-acl`, and how `mdfeed watch`/`chat` print frames."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mdfeed.cli.clients import format_frame
from mdfeed.kernel.bus import BusRecord
from proto import mdfeed_pb2 as pb

MDFEED = str(Path(sys.executable).parent / "mdfeed")


def test_mqtt_acl_writes_mosquitto_files_from_the_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text(
        '[users.alice]\ntoken = "alice-token-1"\nsymbols = ["AAPL"]\nrooms = ["lobby"]\n'
    )
    env = {
        **os.environ,
        "MDFEED__AUTH__ENABLED": "true",
        "MDFEED__AUTH__USERS_FILE": str(users),
        "MDFEED__MQTT__USERNAME": "fanout",
        "MDFEED__MQTT__PASSWORD": "fanout-secret",
    }
    out = tmp_path / "mosquitto"
    result = subprocess.run(
        [MDFEED, "mqtt-acl", "--out", str(out), "--port", "18830"],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    acl = (out / "acl").read_text()
    assert "user alice\ntopic read md/AAPL\n" in acl
    assert "topic write post/lobby/alice" in acl
    assert "md/TSLA" not in acl
    assert (out / "passwd").stat().st_mode & 0o777 == 0o600
    assert [ln.split(":")[0] for ln in (out / "passwd").read_text().splitlines()] == [
        "fanout",
        "alice",
    ]
    assert "listener 18830 127.0.0.1" in (out / "mdfeed.conf").read_text()


def test_mqtt_acl_without_auth_fails_naming_the_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDFEED")}
    result = subprocess.run(
        [MDFEED, "mqtt-acl", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "config error: auth.enabled:" in result.stderr


def test_frames_print_exact_prices_seqs_and_notices() -> None:
    tick = pb.Tick(
        symbol="AAPL", seq=7, kind=pb.TICK_KIND_QUOTE,
        bid_px_e8=15_025_000_000, bid_size_e8=100_00000000,
        ask_px_e8=15_026_125_000, ask_size_e8=200_00000000,
    )  # fmt: skip
    lines = format_frame(pb.ServerFrame(ticks=pb.TickBatch(ticks=[tick], snapshot=True)))
    assert lines == ["AAPL     #7        bid 100 @ 150.25  ask 200 @ 150.26125 [snapshot]"]
    crossed = pb.Tick(
        symbol="AAPL", seq=8, kind=pb.TICK_KIND_QUOTE, book_invalid=True,
        bid_px_e8=33_912_000_000, bid_size_e8=1_00000000,
        ask_px_e8=32_861_000_000, ask_size_e8=1_00000000,
    )  # fmt: skip
    assert format_frame(pb.ServerFrame(ticks=pb.TickBatch(ticks=[crossed]))) == [
        "AAPL     #8        bid 1 @ 339.12  ask 1 @ 328.61  [BOOK INVALID: awaiting a fresh snapshot]"
    ]
    gap = pb.ServerFrame(
        gap=pb.GapNotice(symbol="AAPL", from_seq=8, to_seq=9, reason=pb.GAP_REASON_CONFLATED)
    )
    assert format_frame(gap) == ["AAPL     gap: seq 8..9 skipped (conflated)"]
    chat = pb.ServerFrame(chat=pb.ChatMessage(room="lobby", seq=3, author="ann", text="hi"))
    assert format_frame(chat) == ["[lobby #3] ann: hi"]
    error = pb.ServerFrame(error=pb.Error(code=7, message="not entitled", ref="TSLA"))
    assert format_frame(error) == ["error PERMISSION_DENIED (TSLA): not entitled"]


async def test_watch_reconnects_until_the_server_comes_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import asyncio
    import io

    from fanout.tick_fanout import TickFanout
    from fanout.transports.grpc_server import GrpcServer
    from fanout.transports.grpc_service import MarketDataServicer
    from mdfeed.cli.clients import watch
    from mdfeed.kernel.bus import MemoryBus
    from mdfeed.kernel.config import FanoutConfig
    from mdfeed.stack.scratch import free_port

    port = free_port()
    out = io.StringIO()
    task = asyncio.create_task(watch(f"127.0.0.1:{port}", ["AAPL"], count=3, out=out, retry_s=0.2))
    async with asyncio.timeout(20):
        while "reconnecting in 0.2 s" not in capsys.readouterr().err:  # noqa: ASYNC110 - stderr text
            await asyncio.sleep(0.1)
        async with MemoryBus() as bus, TickFanout(bus, poll_timeout_ms=20) as fanout:
            server = GrpcServer(MarketDataServicer(fanout), FanoutConfig(grpc_port=port))
            await server.start()
            try:
                while fanout.client_count == 0:  # noqa: ASYNC110 - a plain counter
                    await asyncio.sleep(0.05)
                fanout.ingest(
                    [
                        BusRecord(
                            "md.ticks",
                            0,
                            s,
                            b"AAPL",
                            pb.Tick(symbol="AAPL", seq=s).SerializeToString(),
                            0,
                        )
                        for s in (1, 2, 3)
                    ]
                )
                assert await task == 0
            finally:
                await server.stop(None)
    assert [ln.split()[:2] for ln in out.getvalue().splitlines()] == [
        ["AAPL", "#1"], ["AAPL", "#2"], ["AAPL", "#3"],
    ]  # fmt: skip


def test_a_quote_with_depth_prints_as_a_ladder() -> None:
    from mdfeed.cli.clients import format_ladder

    tick = pb.Tick(
        symbol="AAPL", seq=9, kind=pb.TICK_KIND_QUOTE,
        bid_levels=[pb.BookLevel(px_e8=15_025_000_000, size_e8=100_00000000),
                    pb.BookLevel(px_e8=15_024_000_000, size_e8=300_00000000)],
        ask_levels=[pb.BookLevel(px_e8=15_026_000_000, size_e8=200_00000000)],
    )  # fmt: skip
    assert format_ladder(tick, 5) == [
        "             100 @ 150.25       |       150.26 @ 200",
        "             300 @ 150.24       |",
    ]
    assert format_ladder(tick, 1) == ["             100 @ 150.25       |       150.26 @ 200"]
    assert format_ladder(pb.Tick(symbol="AAPL"), 5) == []


async def test_watch_depth_prints_the_ladder_of_each_quote_through_the_fanout() -> None:
    import asyncio
    import io

    from fanout.tick_fanout import TickFanout
    from fanout.transports.grpc_server import GrpcServer
    from fanout.transports.grpc_service import MarketDataServicer
    from mdfeed.cli.clients import watch
    from mdfeed.kernel.bus import MemoryBus
    from mdfeed.kernel.config import FanoutConfig
    from mdfeed.stack.scratch import free_port

    port = free_port()
    out = io.StringIO()
    levels = [pb.BookLevel(px_e8=(100 - i) * 10**8, size_e8=(i + 1) * 10**8) for i in range(5)]
    ticks = [
        pb.Tick(symbol="AAPL", seq=1, kind=pb.TICK_KIND_QUOTE, bid_levels=levels),
        pb.Tick(symbol="AAPL", seq=2, kind=pb.TICK_KIND_TRADE, last_px_e8=100 * 10**8),
    ]
    async with MemoryBus() as bus, TickFanout(bus, poll_timeout_ms=20) as fanout:
        server = GrpcServer(MarketDataServicer(fanout), FanoutConfig(grpc_port=port))
        await server.start()
        try:
            task = asyncio.create_task(
                watch(f"127.0.0.1:{port}", ["AAPL"], count=2, out=out, retry_s=0.2, depth=3)
            )
            async with asyncio.timeout(20):
                while fanout.client_count == 0:  # noqa: ASYNC110 - a plain counter
                    await asyncio.sleep(0.05)
                fanout.ingest(
                    [
                        BusRecord("md.ticks", 0, t.seq, b"AAPL", t.SerializeToString(), 0)
                        for t in ticks
                    ]
                )
                assert await task == 0
        finally:
            await server.stop(None)
    lines = out.getvalue().splitlines()
    # Through the fanout the quote keeps its levels: three rows of the five, then the trade.
    assert lines[0].startswith("AAPL     #1")
    assert [ln.split()[0] for ln in lines[1:4]] == ["1", "2", "3"]
    assert [float(ln.split()[2]) for ln in lines[1:4]] == [100, 99, 98]
    assert lines[4].startswith("AAPL     #2")
    assert "trade" in lines[4]
    assert len(lines) == 5
