"""``mdfeed venue``: options, help, status lines and a clean stop on Ctrl-C (SIGINT)."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fix_spec import fix44
from fix_spec.fix44.enums import EncryptMethod
from fix_spec.fix44.header import Header
from fix_spec.fix44.messages import Logon
from mdfeed.cli.venue import register_cli, run_venue_command, serve, venue_config_from_args
from mdfeed.kernel.config import ConfigError, VenueConfig

# The venue subcommand as mdfeed/cli/main.py mounts it, in a process of its own (run with -P:
# the installed build, not the source tree that may be the working directory).
RUN_VENUE = """
import argparse, sys
from mdfeed.cli.venue import register_cli
parser = argparse.ArgumentParser(prog="mdfeed")
register_cli(parser.add_subparsers(dest="command", required=True))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.func(args))
"""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mdfeed")
    register_cli(root.add_subparsers(dest="command", required=True))
    return root


def test_options_parse_into_the_namespace_the_handler_reads() -> None:
    args = parser().parse_args(
        ["venue", "--config", "local-stack", "--port", "0", "--rate", "500",
         "--symbols", "AAPL, MSFT", "--seed", "9"]
    )  # fmt: skip
    assert args.func is run_venue_command
    assert (args.config, args.port, args.rate, args.seed) == ("local-stack", 0, 500, 9)
    assert args.symbols == ("AAPL", "MSFT")
    defaults = parser().parse_args(["venue"])
    assert (defaults.config, defaults.port, defaults.rate, defaults.symbols) == (None,) * 4


def test_fast_takes_the_rate_as_its_cap_and_the_random_walk_keeps_its_own() -> None:
    base = VenueConfig()
    fast = venue_config_from_args(base, parser().parse_args(["venue", "--fast", "--rate", "9000"]))
    assert (fast.stream, fast.fast_rate_ticks_per_s) == ("fast", 9000)
    assert fast.rate_ticks_per_s == base.rate_ticks_per_s
    uncapped = venue_config_from_args(base, parser().parse_args(["venue", "--fast"]))
    assert (uncapped.stream, uncapped.fast_rate_ticks_per_s) == ("fast", 0)
    walk = venue_config_from_args(base, parser().parse_args(["venue", "--rate", "9000"]))
    assert (walk.stream, walk.rate_ticks_per_s, walk.fast_rate_ticks_per_s) == ("random", 9000, 0)


def test_book_model_option_sets_the_venue_model() -> None:
    base = VenueConfig()
    assert base.book_model == "price"
    chosen = venue_config_from_args(
        base, parser().parse_args(["venue", "--book-model", "entry_id"])
    )
    assert chosen.book_model == "entry_id"
    assert venue_config_from_args(base, parser().parse_args(["venue"])).book_model == "price"
    with pytest.raises(SystemExit):
        parser().parse_args(["venue", "--book-model", "level"])


def test_help_names_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["venue", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--config", "--port", "--rate", "--symbols", "--seed", "--book-model", "Ctrl-C"):
        assert option in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "0..65535"),
        (["--port", "http"], "not a whole number: 'http'"),
        (["--rate", "0"], "at least 1"),
        (["--symbols", " , "], "at least one symbol"),
        (["--symbols", "A=B"], "not a usable FIX symbol"),
    ],
)
def test_bad_options_are_refused_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["venue", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    args = parser().parse_args(["venue", "--config", str(tmp_path / "missing.toml")])
    with pytest.raises(ConfigError):
        run_venue_command(args)


async def test_serve_prints_a_status_line_per_interval() -> None:
    out = io.StringIO()
    stop = asyncio.Event()
    config = VenueConfig(port=0, rate_ticks_per_s=100, symbols=("AAPL",), seed=1)
    task = asyncio.create_task(serve(config, stop, out=out, status_interval_s=0.2))
    await asyncio.sleep(0.7)
    stop.set()
    await task
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("venue: FIX 4.4 acceptor on 127.0.0.1:")
    assert "seed 1" in lines[0]
    status = [line for line in lines[1:] if line.startswith("venue: sessions")]
    assert len(status) >= 3
    assert "msgs/s" in status[0]
    assert "entries/s" in status[0]


def test_the_command_serves_until_sigint_and_exits_zero() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDFEED")}
    proc = subprocess.Popen(
        [sys.executable, "-P", "-c", RUN_VENUE, "venue", "--port", "0", "--rate", "200",
         "--symbols", "AAPL,MSFT", "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "acceptor on 127.0.0.1:" in banner, banner
        port = int(banner.split("127.0.0.1:")[1].split()[0])
        logon = Logon(
            encrypt_method=EncryptMethod.NONE,
            heart_bt_int=30,
            reset_seq_num_flag=True,
            header=Header(
                sender_comp_id="MDFEED",
                target_comp_id="VENUE",
                msg_seq_num=1,
                sending_time=time.time_ns() // 1_000_000 * 1_000_000,
            ),
        )
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(fix44.encode(logon))
            assert b"\x0135=A\x01" in sock.recv(4096)
            lines = [proc.stdout.readline() for _ in range(2)]
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        assert any("sessions 1 (1 logged on)" in line for line in lines), lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
