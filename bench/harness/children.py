"""The processes of `mdfeed bench` and the benchmarks in ``bench/``: started and driven
with JSON lines, and measured through /proc.

The box has two cores, so a measured server must not share its process (and its GIL)
with the load it serves, nor the clients with each other's: every part runs in a process
of its own. The parent starts one with :class:`Child` and drives it over its stdin and
stdout, one JSON object per line:

* the child's first line announces it: ``{"ready": true, "pid": ..., ...}`` (what else it
  says depends on the role: a port, a client count), or ``{"error": "..."}``;
* then each command, ``{"cmd": NAME, ...arguments}``, gets exactly one line back, with
  ``"error"`` in it when the command failed (the child stays up);
* ``{"cmd": "quit"}`` (or the end of stdin) stops the child.

Logs go to stderr: the parent's, or a log file. The child's side is :func:`announce` and
:func:`serve_commands`. Children run on the installed build: Python's ``-P`` keeps the
working directory (a source checkout, where ``ohlcv/bars.py`` is the pure-Python source
of a compiled module) and a script's directory off ``sys.path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "Child",
    "ChildError",
    "Handler",
    "Json",
    "announce",
    "answer_once",
    "check_compiled",
    "children",
    "compiled_modules",
    "cpu_seconds",
    "listener_pid",
    "poll",
    "python_command",
    "rss_kb",
    "say",
    "serve_commands",
]

Json = dict[str, Any]


def python_command(target: str, *args: str) -> list[str]:
    """This interpreter running ``target``: a module (``-m``), or a script when it ends in
    ``.py``; with ``-P``, so the installed build is what it imports."""
    if target.endswith(".py"):
        return [sys.executable, "-P", target, *args]
    return [sys.executable, "-P", "-m", target, *args]


# -- the parent's side ----------------------------------------------------------------


class ChildError(Exception):
    """A benchmark process failed or did not answer; the message says which and why."""


class Child:
    """One benchmark process, driven with JSON lines over its stdin and stdout.

    ``Child("bench.harness.subscribers", "grpc", "--port", "50051")`` starts it; ``read``
    takes its announcement, ``request(cmd=...)`` sends a command and returns the answer,
    ``close`` asks it to quit (and kills it if it does not). A thread reads its stdout,
    so an asyncio caller uses :meth:`arequest` and :meth:`aclose`.
    """

    def __init__(
        self, target: str, *args: str, name: str | None = None, stderr: IO[bytes] | None = None
    ) -> None:
        self.name = name or " ".join((target.rpartition(".")[2], *args[:1]))
        self.proc = subprocess.Popen(
            python_command(target, *args),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read(self, timeout_s: float = 60.0) -> Json:
        """The child's next line: its announcement, or the answer to a command."""
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise ChildError(f"{self.name}: no answer within {timeout_s:g}s") from None
        if line is None:
            code = self.proc.wait(10)
            raise ChildError(f"{self.name} exited with code {code} (see its stderr)")
        answer: Json = json.loads(line)
        if "error" in answer:
            raise ChildError(f"{self.name}: {answer['error']}")
        return answer

    def request(self, timeout_s: float = 60.0, **command: Any) -> Json:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except OSError as exc:  # the child is gone: say so as read() would
            raise ChildError(f"{self.name} is not running: {exc}") from None
        return self.read(timeout_s)

    async def aread(self, timeout_s: float = 60.0) -> Json:
        return await asyncio.to_thread(self.read, timeout_s)

    async def arequest(self, timeout_s: float = 60.0, **command: Any) -> Json:
        return await asyncio.to_thread(lambda: self.request(timeout_s, **command))

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ChildError):
                self.request(timeout_s=20, cmd="quit")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


@contextlib.contextmanager
def children(*specs: tuple[str, ...]) -> Iterator[list[Child]]:
    """Start one process per ``(target, *args)``; close them all afterwards."""
    started: list[Child] = []
    try:
        for target, *args in specs:
            started.append(Child(target, *args))
        yield started
    finally:
        for child in reversed(started):
            child.close()


# -- the child's side -----------------------------------------------------------------


def say(message: Json) -> None:
    """Write one line to the parent."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer_once(compute: Callable[[], Json]) -> None:
    """A one-shot measurement's output: its result as one JSON line, or, when it raises,
    ``{"error": ...}`` (what the parent's ``Child.read`` raises as a ChildError) and exit 1."""
    try:
        result = compute()
    except Exception as exc:
        say({"error": f"{type(exc).__name__}: {exc}"})
        raise SystemExit(1) from exc
    say(result)


def announce(**fields: Any) -> None:
    """The child's first line: ready, with its pid and ``fields``."""
    say({"ready": True, "pid": os.getpid(), **fields})


Handler = Callable[[Json], Awaitable[Json]]


async def serve_commands(handlers: dict[str, Handler]) -> None:
    """Answer commands from stdin until ``quit`` (or EOF)."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        if not line.strip():
            continue
        command: Json = json.loads(line)
        name = command.get("cmd", "")
        if name == "quit":
            say({"ok": True})
            return
        handler = handlers.get(name)
        if handler is None:
            say({"error": f"unknown command {name!r}"})
            continue
        try:
            say(await handler(command))
        except Exception as exc:  # the parent reports it; the process stays up
            say({"error": f"{name}: {exc!r}"})


async def poll(done: Callable[[], bool], command: Json) -> None:
    """Until ``done()`` or the command's ``wait_s`` (default 0: look once) has passed."""
    deadline = time.monotonic() + float(command.get("wait_s", 0))
    while not done() and time.monotonic() < deadline:  # noqa: ASYNC110 - counters, no event
        await asyncio.sleep(0.05)


# -- measuring processes (Linux /proc) --------------------------------------------------


def rss_kb(pid: int) -> int:
    """Resident set size of a process, in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU seconds a process has used so far; NaN if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` on this machine, if visible."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
    return None


def compiled_modules(
    names: Sequence[str] = (
        "ohlcv.bars",
        "fix_spec.codec",
        "fix_session.normalizer",
        "fix_session.tick_core",
        "fix_session.tick_encoding",
        "fix_spec.md_columns",
    ),
) -> dict[str, str]:
    """Where the modules that the build compiles (see setup.py) were imported from."""
    import importlib

    return {name: str(importlib.import_module(name).__file__) for name in names}


def check_compiled(files: dict[str, str] | None = None) -> None:
    """Raise unless every module of ``compiled_modules()`` (or ``files``) is the compiled
    one (a ``.so``): a benchmark that imports the source tree measures pure Python."""
    files = compiled_modules() if files is None else files
    wrong = {name: path for name, path in files.items() if not path.endswith(".so")}
    if wrong:
        raise RuntimeError(
            "benchmarks must run on the installed, compiled build (`make install`), not the "
            "source tree: " + ", ".join(f"{name} is {path}" for name, path in wrong.items())
        )
