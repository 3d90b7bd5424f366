"""The local stack that the test command started with `mdfeed stack up`.

These tests neither start nor stop the stack's servers; they check what `status`, `up` and
the probes say about the running ones, and that a second stack cannot take their ports.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mdfeed.stack import SERVER_NAMES, status, up
from mdfeed.stack.process import read_pid
from mdfeed.stack.servers import make_server

pytestmark = pytest.mark.integration


def _stack_dir() -> Path:
    """Where `mdfeed stack up` put the stack: $MDFEED_STACK_DIR, else ./.stack."""
    return Path(os.environ.get("MDFEED_STACK_DIR", ".stack")).absolute()


@pytest.fixture(scope="module")
def stack_dir() -> Path:
    root = _stack_dir()
    missing = [name for name in SERVER_NAMES if read_pid(root / name / "server.pid") is None]
    if missing:
        pytest.fail(
            f"no running {', '.join(missing)} in {root}; start the stack with 'mdfeed stack up'"
        )
    return root


def _pids(root: Path) -> dict[str, int | None]:
    return {name: read_pid(root / name / "server.pid") for name in SERVER_NAMES}


def test_status_reports_all_three_running(
    stack_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert status(stack_dir, []) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == set(SERVER_NAMES)
    for name, pid in _pids(stack_dir).items():
        server = make_server(name, stack_dir)
        assert lines[name].split()[1:4] == ["running", "pid", str(pid)], lines[name]
        assert lines[name].endswith(f"127.0.0.1:{server.port}")


def test_up_again_is_harmless(stack_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _pids(stack_dir)
    assert up(stack_dir, []) == 0
    out = capsys.readouterr().out
    for name in SERVER_NAMES:
        assert f"{name}: already running (pid {before[name]})" in out
    assert "starting" not in out
    assert _pids(stack_dir) == before


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_servers_answer_their_own_protocol(stack_dir: Path, name: str) -> None:
    answer = make_server(name, stack_dir).probe()
    if name == "cassandra":
        assert answer == "release_version 5.0.5"
    assert answer


def test_a_second_stack_cannot_take_the_ports(
    stack_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    del stack_dir  # only needs the running stack
    assert up(tmp_path, ["mosquitto", "kafka"]) == 1
    err = capsys.readouterr().err
    assert "mosquitto: cannot start: port 127.0.0.1:1883 already in use" in err
    assert "kafka: cannot start: ports 127.0.0.1:9092, 127.0.0.1:9093 already in use" in err
    assert not (tmp_path / "kafka" / "lib").exists()  # refused before installing anything
    assert not (tmp_path / "mosquitto" / "server.pid").exists()
