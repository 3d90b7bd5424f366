"""up/down/status/logs behaviour, with small Python processes standing in for the servers."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from polling import until_sync

from mdfeed.stack import down, install, logs, manager, probes, process, register_cli, status, up
from mdfeed.stack.servers import SERVER_NAMES, Mosquitto, Server

# Listens on argv[2], writes its pid to argv[3], logs to argv[4]; argv[1] is the identity.
LISTENER = """
import socket, sys, os, time
open(sys.argv[3], "w").write(str(os.getpid()))
with open(sys.argv[4], "a") as log:
    log.write("fake server listening\\n")
srv = socket.create_server(("127.0.0.1", int(sys.argv[2])))
while True:
    conn, _ = srv.accept()
    conn.close()
"""
CRASHER = """
import sys
print("boom: the fake server cannot start", file=sys.stderr)
sys.exit(3)
"""
SLEEPER = """
import os, sys, time
open(sys.argv[3], "w").write(str(os.getpid()))
time.sleep(120)
"""


@dataclass(frozen=True)
class FakeServer(Server):
    name: ClassVar[str] = "fake"
    ready_timeout: ClassVar[float] = 15.0
    main_log_name: ClassVar[str] = "fake.log"

    fake_port: int = 0
    script: str = LISTENER

    @property
    def port(self) -> int:
        return self.fake_port

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.fake_port,)

    @property
    def identity(self) -> str:
        return str(self.conf_dir / "fake.conf")

    @property
    def child_pid_file(self) -> Path:
        return self.base / "child.pid"

    def write_config(self) -> None:
        (self.conf_dir / "fake.conf").write_text("fake\n")

    def command(self, java: str) -> list[str]:
        del java
        return [
            sys.executable,
            "-c",
            self.script,
            self.identity,
            str(self.fake_port),
            str(self.child_pid_file),
            str(self.main_log),
        ]

    def probe(self, timeout: float = 2.0) -> str:
        try:
            socket.create_connection((self.host, self.fake_port), timeout=timeout).close()
        except OSError as exc:
            raise probes.ProbeError(str(exc)) from exc
        return "accepting"


@dataclass(frozen=True)
class SlowFakeServer(FakeServer):
    ready_timeout: ClassVar[float] = 1.0


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def fake(tmp_path: Path) -> FakeServer:
    return FakeServer(tmp_path, fake_port=_free_port())


def test_fake_server_goes_up_once_and_down(
    fake: FakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert manager.up_servers([fake]) == 0
    out = capsys.readouterr().out
    assert "fake: starting…" in out
    assert "fake: ready in " in out
    assert f"127.0.0.1:{fake.port}" in out
    pid = process.read_pid(fake.pid_file)
    assert pid is not None
    assert process.is_alive(pid, fake.identity)
    # The server is detached: its own session, not our child.
    assert os.getsid(pid) == pid
    assert "running" in manager.status_line(fake)

    assert manager.up_servers([fake]) == 0
    out = capsys.readouterr().out
    assert f"fake: already running (pid {pid})" in out
    assert "starting" not in out
    assert process.read_pid(fake.pid_file) == pid

    assert manager.down_servers([fake]) == 0
    out = capsys.readouterr().out
    assert f"fake: stopping (pid {pid})" in out
    assert "fake: stopped in" in out
    assert not fake.pid_file.exists()
    assert not process.is_alive(pid, fake.identity)
    assert "stopped" in manager.status_line(fake)


def test_server_exiting_early_fails_with_its_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crasher = FakeServer(tmp_path, fake_port=_free_port(), script=CRASHER)
    assert manager.up_servers([crasher]) == 1
    err = capsys.readouterr().err
    assert "fake: failed to start: exited during startup" in err
    assert "boom: the fake server cannot start" in err
    assert str(crasher.console_log) in err
    assert err.rstrip().endswith("stack up failed: fake")
    assert not crasher.pid_file.exists()


def test_server_not_ready_in_time_is_stopped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slow = SlowFakeServer(tmp_path, fake_port=_free_port(), script=SLEEPER)
    assert manager.up_servers([slow]) == 1
    assert "fake: failed to start: not ready after 1 s" in capsys.readouterr().err
    child = process.read_pid(slow.child_pid_file)
    assert child is not None
    assert not process.is_alive(child, slow.identity)
    assert not slow.pid_file.exists()


def test_port_taken_by_another_process_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        taken = Mosquitto(tmp_path, mqtt_port=port)
        assert manager.up_servers([taken]) == 1
    finally:
        holder.close()
    err = capsys.readouterr().err
    assert f"mosquitto: cannot start: port 127.0.0.1:{port} already in use" in err
    assert "stack up failed: mosquitto" in err
    assert not taken.pid_file.exists()
    assert not taken.conf_file.exists()  # nothing was prepared, let alone started


def test_down_on_an_empty_dir_says_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert down(tmp_path / "never-used", []) == 0
    out = capsys.readouterr().out
    for name in SERVER_NAMES:
        assert f"{name}: not running" in out
    assert "nothing to stop" in out


def test_status_on_an_empty_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert status(tmp_path, []) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(SERVER_NAMES)
    assert all(line.split()[1] == "stopped" for line in lines)


def test_stale_pid_file(fake: FakeServer, capsys: pytest.CaptureFixture[str]) -> None:
    fake.make_dirs()
    fake.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not our server
    assert "stale pid file" in manager.status_line(fake)
    assert manager.down_servers([fake]) == 0
    assert "fake: not running (removed stale pid file)" in capsys.readouterr().out
    assert not fake.pid_file.exists()


def test_unknown_server_names_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert up(tmp_path, ["zookeeper"]) == 2
    assert "unknown server 'zookeeper'" in capsys.readouterr().err


def test_is_alive_checks_identity() -> None:
    me = os.getpid()
    assert process.is_alive(me)
    assert process.is_alive(me, "python")
    assert not process.is_alive(me, "no-such-marker-in-the-command-line")
    assert not process.is_alive(0)


def test_tail_lines(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("".join(f"line {i} {'x' * 200}\n" for i in range(5000)))
    tail = process.tail_lines(log, 40)
    assert len(tail) == 40
    assert tail[0].startswith("line 4960 ")
    assert tail[-1].startswith("line 4999 ")
    assert process.tail_lines(tmp_path / "missing.log", 5) == []
    short = tmp_path / "short.log"
    short.write_text("a\nb\n")
    assert process.tail_lines(short, 10) == ["a", "b"]


def test_logs_prints_the_end_of_the_server_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert logs(tmp_path, "kafka", 3) == 1
    assert "no logs yet" in capsys.readouterr().err
    log = tmp_path / "kafka" / "logs" / "server.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"{i}\n" for i in range(10)))
    assert logs(tmp_path, "kafka", 3) == 0
    assert capsys.readouterr().out.splitlines() == [f"==> {log} <==", "7", "8", "9"]


def test_cached_jars_are_not_installed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pom = tmp_path / "pom.xml"
    pom.write_text("<project/>")
    lib = tmp_path / "lib"
    assert not install.jars_installed(pom, lib)
    lib.mkdir()
    (lib / install.MARKER_NAME).write_text(install.pom_digest(pom) + "\n")
    assert install.jars_installed(pom, lib)
    monkeypatch.setattr(shutil, "which", lambda name: None)  # no mvn needed
    assert install.install_jars(pom, lib, lambda text: None) is False
    pom.write_text("<project><!-- changed --></project>")
    assert not install.jars_installed(pom, lib)
    with pytest.raises(install.InstallError, match="mvn"):
        install.install_jars(pom, lib, lambda text: None)


def test_mosquitto_install_only_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    present = tmp_path / "mosquitto"
    present.touch()
    assert install.install_mosquitto(present, lambda text: None) is False
    said: list[str] = []
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(install.InstallError, match="apt-get is not available"):
        install.install_mosquitto(tmp_path / "missing", said.append)


def _parse(*argv: str, default_dir: Path | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mdfeed")
    register_cli(parser.add_subparsers(dest="command"), default_dir=default_dir)
    return parser.parse_args(argv)


def test_cli_actions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _parse("stack", "up", "kafka", "mosquitto", "--dir", str(tmp_path))
    assert (args.command, args.servers, args.dir) == ("stack", ["kafka", "mosquitto"], tmp_path)
    assert _parse("stack", "down").servers == []
    logs_args = _parse("stack", "logs", "cassandra", "-n", "5")
    assert (logs_args.server, logs_args.lines) == ("cassandra", 5)
    with pytest.raises(SystemExit):
        _parse("stack", "up", "zookeeper")
    assert "unknown server 'zookeeper'" in capsys.readouterr().err

    monkeypatch.chdir(tmp_path)
    status_args = _parse("stack", "status")
    assert status_args.func(status_args) == 0
    assert (tmp_path / ".stack").exists() is False  # status creates nothing
    down_args = _parse("stack", "down", default_dir=tmp_path / "elsewhere")
    assert down_args.func(down_args) == 0
    assert str(tmp_path / "elsewhere") in capsys.readouterr().out

    bare = _parse("stack")
    assert bare.func(bare) == 2
    assert "up" in capsys.readouterr().out


def test_cli_dir_defaults_to_dot_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = _parse("stack", "down")
    assert args.func(args) == 0
    assert f"the stack in {tmp_path / '.stack'} is not running" in capsys.readouterr().out


def test_down_is_quick_for_a_cooperative_server(fake: FakeServer) -> None:
    assert manager.up_servers([fake]) == 0
    started = time.monotonic()
    assert manager.down_servers([fake]) == 0
    assert time.monotonic() - started < 5


def test_stop_kills_the_process_group_when_sigterm_is_ignored(tmp_path: Path) -> None:
    marker = str(tmp_path / "stubborn")
    script = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
    pid = process.spawn_detached(
        [sys.executable, "-c", script, marker], tmp_path / "console.log", tmp_path
    )
    until_sync(lambda: process.is_alive(pid, marker), timeout_s=10, interval_s=0.05)
    time.sleep(0.3)  # let it install the SIGTERM handler
    killed, elapsed = process.stop_process(pid, marker, grace=0.5)
    assert killed
    assert elapsed < 5
    assert not process.is_alive(pid, marker)


def test_spawned_process_is_recognisable_as_soon_as_its_pid_is_known(tmp_path: Path) -> None:
    # The pid is handed back only once /proc/<pid>/cmdline shows the new program; an empty
    # command line mid-exec made a healthy server look dead on a loaded machine.
    marker = str(tmp_path / "recognisable")
    pids = []
    try:
        for _ in range(10):
            pid = process.spawn_detached(
                [sys.executable, "-c", "import time; time.sleep(30)", marker],
                tmp_path / "console.log",
                tmp_path,
            )
            pids.append(pid)
            assert process.is_alive(pid, marker)
    finally:
        for pid in pids:
            process.stop_process(pid, marker, grace=2.0)


def test_a_program_that_exits_at_once_is_reported_dead(tmp_path: Path) -> None:
    marker = str(tmp_path / "short-lived")
    pid = process.spawn_detached(
        [sys.executable, "-c", "raise SystemExit(3)", marker], tmp_path / "console.log", tmp_path
    )
    until_sync(lambda: not process.is_alive(pid, marker), timeout_s=5, interval_s=0.02)
