"""Detached server processes: spawning, pid files, liveness, stopping, log tails.

Servers are started through a short-lived launcher process so that they are not children
of the caller: ``mdfeed stack up`` returns while they keep running, the caller never
collects zombies, and each server leads its own session and process group
(``start_new_session``), which is what ``down`` signals as a last resort.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "StartError",
    "is_alive",
    "read_pid",
    "running_pid",
    "spawn_detached",
    "stop_process",
    "tail_lines",
]

# Runs in a separate interpreter: start argv[2:] in a new session with stdout and stderr
# appended to argv[1], print its pid, and exit without waiting for it.
#
# Popen returns as soon as exec() has closed the child's close-on-exec pipe, which is before
# the kernel has set up the new program's arguments: for a moment /proc/<pid>/cmdline is
# empty, and the caller's identity check would take a healthy server for a dead one (seen on
# a loaded machine). So the pid is printed only once the command line is visible, or the
# child has already exited.
_LAUNCHER = """\
import os, subprocess, sys, time
log = open(sys.argv[1], "ab")
proc = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log,
                        stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
deadline = time.monotonic() + 5.0
while proc.poll() is None and time.monotonic() < deadline:
    try:
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            if f.read(1):
                break
    except OSError:
        break
    time.sleep(0.001)
sys.stdout.write(str(proc.pid))
sys.stdout.flush()
os._exit(0)
"""


class StartError(Exception):
    """A server process could not be launched."""


def spawn_detached(
    argv: Sequence[str],
    log_file: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` detached (new session, reparented away from us); return its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-I", "-c", _LAUNCHER, str(log_file), *argv],
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise StartError(f"could not launch {argv[0]}: {detail}")
    return int(result.stdout.strip())


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or ')'.
    return stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else None


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", errors="replace")


def is_alive(pid: int, identity: str | None = None) -> bool:
    """The process exists, is not a zombie and (if given) its command line has ``identity``.

    The identity check keeps a recycled pid from being mistaken for our server.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else; the identity check decides
    state = _proc_state(pid)
    if state is None or state in ("Z", "X"):
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
        return False
    return identity is None or identity in _cmdline(pid)


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def running_pid(pid_file: Path, identity: str) -> int | None:
    """The pid from ``pid_file`` if that process is alive and is really our server."""
    pid = read_pid(pid_file)
    if pid is not None and is_alive(pid, identity):
        return pid
    return None


def stop_process(pid: int, identity: str, grace: float = 30.0) -> tuple[bool, float]:
    """SIGTERM, wait up to ``grace`` s, then SIGKILL the process group.

    Returns (whether SIGKILL was needed, seconds taken).
    """
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = started + grace
    while time.monotonic() < deadline:
        if not is_alive(pid, identity):
            return False, time.monotonic() - started
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 10.0
    while time.monotonic() < kill_deadline and is_alive(pid, identity):
        time.sleep(0.1)
    return True, time.monotonic() - started


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a text file (reads only the end of big files)."""
    if count <= 0:
        return []
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = 8192
            data = b""
            pos = size
            while pos > 0 and data.count(b"\n") <= count:
                step = min(block, pos)
                pos -= step
                handle.seek(pos)
                data = handle.read(step) + data
                block *= 2
    except OSError:
        return []
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:]
