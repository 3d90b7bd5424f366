"""``up``, ``down``, ``status`` and ``logs`` for the local stack.

Each function takes the stack directory and server names, prints progress lines prefixed
with the server name, and returns a process exit code.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from mdfeed.stack import install, probes, process
from mdfeed.stack.servers import (
    SERVER_NAMES,
    Kafka,
    Mosquitto,
    Server,
    java_executable,
    make_server,
    new_kafka_cluster_id,
)

__all__ = ["down", "down_servers", "logs", "status", "up", "up_servers"]

#: Lines of log shown when a server fails to start.
FAILURE_TAIL_LINES = 40

_POLL_INTERVAL = 0.25


class _Out:
    """Thread-safe line printer: servers start concurrently and report as they go."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self._out = out
        self._err = err
        self._lock = threading.Lock()

    def line(self, text: str, *, error: bool = False) -> None:
        stream = (self._err or sys.stderr) if error else (self._out or sys.stdout)
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    def block(self, lines: Sequence[str], *, error: bool = False) -> None:
        stream = (self._err or sys.stderr) if error else (self._out or sys.stdout)
        with self._lock:
            stream.write("".join(line + "\n" for line in lines))
            stream.flush()


def _resolve(root: Path, names: Sequence[str]) -> list[Server]:
    chosen = list(names) or list(SERVER_NAMES)
    unique = [name for i, name in enumerate(chosen) if name not in chosen[:i]]
    return [make_server(name, root) for name in unique]


def _log_excerpt(server: Server, count: int) -> list[str]:
    """Tail of the server's own log, plus its console output when there is any."""
    lines: list[str] = []
    for path in (server.main_log, server.console_log):
        tail = process.tail_lines(path, count)
        if tail:
            lines.append(f"----- {server.name}: last {len(tail)} lines of {path} -----")
            lines.extend(tail)
    if not lines:
        lines.append(f"----- {server.name}: no log output in {server.logs_dir} -----")
    return lines


def _port_conflicts(server: Server) -> list[int]:
    return [port for port in server.ports if not probes.port_is_bindable(server.host, port)]


def _conflict_message(server: Server, ports: Sequence[int]) -> str:
    where = ", ".join(f"{server.host}:{port}" for port in ports)
    plural = "s" if len(ports) > 1 else ""
    return (
        f"{server.name}: cannot start: port{plural} {where} already in use by another "
        f"process (not the {server.name} of this stack in {server.root}); stop it or free "
        f"the port{plural}"
    )


_INTERRUPTED = "interrupted"


def _wait_ready(
    server: Server, pid: int, started: float, cancel: threading.Event
) -> tuple[str | None, str]:
    """Poll the probe until ready; (description, "") on success or (None, reason)."""
    deadline = started + server.ready_timeout
    last_error = "no answer yet"
    while True:
        if cancel.is_set():
            return None, _INTERRUPTED
        if not process.is_alive(pid, server.identity):
            # It may have answered in its last moments; the exit is what matters.
            return None, f"exited during startup (pid {pid})"
        try:
            return server.probe(), ""
        except probes.ProbeError as exc:
            last_error = str(exc)
        if time.monotonic() >= deadline:
            return None, (
                f"not ready after {server.ready_timeout:.0f} s (last probe: {last_error})"
            )
        cancel.wait(_POLL_INTERVAL)


def _format_kafka(server: Kafka, java: str, out: _Out) -> None:
    cluster_id = new_kafka_cluster_id()
    out.line(f"kafka: formatting KRaft storage in {server.data_dir} (cluster id {cluster_id})…")
    result = subprocess.run(
        server.format_command(java, cluster_id),
        cwd=server.base,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise install.InstallError(
            f"kafka storage format failed (exit {result.returncode}):\n{output}"
        )


class _UpError(Exception):
    """A server could not be brought up; the reason has already been printed."""


def _already_running(server: Server, out: _Out, cancel: threading.Event) -> bool:
    """Handle a server this stack already started; False when there is none."""
    pid = process.read_pid(server.pid_file)
    if pid is None:
        return False
    if not process.is_alive(pid, server.identity):
        server.pid_file.unlink(missing_ok=True)  # stale: that process is gone
        return False
    try:
        server.probe()
    except probes.ProbeError:
        out.line(f"{server.name}: already started (pid {pid}) but not answering yet; waiting…")
        description, reason = _wait_ready(server, pid, time.monotonic(), cancel)
        if description is None:
            out.line(f"{server.name}: {reason}", error=True)
            if reason != _INTERRUPTED:
                out.block(_log_excerpt(server, FAILURE_TAIL_LINES), error=True)
            raise _UpError(reason) from None
    out.line(f"{server.name}: already running (pid {pid}) on {server.host}:{server.port}")
    return True


def _check_ports(server: Server, out: _Out) -> None:
    conflicts = _port_conflicts(server)
    if conflicts:
        out.line(_conflict_message(server, conflicts), error=True)
        raise _UpError("port in use")


def _prepare(server: Server, out: _Out) -> str:
    """Install if needed, write the config, format Kafka storage; returns the java path."""
    say = _Say(out, server.name)
    java = ""
    try:
        server.make_dirs()
        if isinstance(server, Mosquitto):
            if install.install_mosquitto(server.binary, say):
                _check_ports(server, out)  # the package may have started its own broker
        else:
            found = java_executable()
            if found is None:
                raise install.InstallError(
                    "java is not on PATH; Kafka 3.9 and Cassandra 5.0 need a Java 17 runtime "
                    "(Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless)"
                )
            java = found
            if server.pom is not None:
                install.install_jars(server.pom, server.lib_dir, say)
        server.write_config()
        if isinstance(server, Kafka) and not server.formatted:
            _format_kafka(server, java, out)
    except (install.InstallError, OSError) as exc:
        out.line(f"{server.name}: {exc}", error=True)
        raise _UpError("install failed") from exc
    return java


def _launch(server: Server, java: str, out: _Out, cancel: threading.Event) -> None:
    """Start the process and wait until it answers; on failure show its log and stop it."""
    out.line(f"{server.name}: starting…")
    started = time.monotonic()
    try:
        pid = process.spawn_detached(server.command(java), server.console_log, server.base)
    except (process.StartError, OSError) as exc:
        out.line(f"{server.name}: {exc}", error=True)
        raise _UpError("launch failed") from exc
    server.pid_file.write_text(f"{pid}\n", encoding="ascii")

    description, reason = _wait_ready(server, pid, started, cancel)
    elapsed = time.monotonic() - started
    if description is None:
        if reason == _INTERRUPTED:
            out.line(f"{server.name}: interrupted while starting; stopping it", error=True)
        else:
            out.line(f"{server.name}: failed to start: {reason}", error=True)
            out.block(_log_excerpt(server, FAILURE_TAIL_LINES), error=True)
        if process.is_alive(pid, server.identity):
            process.stop_process(pid, server.identity, grace=10.0)
        server.pid_file.unlink(missing_ok=True)
        raise _UpError(reason)
    out.line(
        f"{server.name}: ready in {elapsed:.1f} s on {server.host}:{server.port} "
        f"(pid {pid}; {description})"
    )


def _up_one(server: Server, out: _Out, cancel: threading.Event) -> bool:
    try:
        if _already_running(server, out, cancel):
            return True
        _check_ports(server, out)
        java = _prepare(server, out)
        if cancel.is_set():
            return False
        _launch(server, java, out, cancel)
    except _UpError:
        return False
    return True


class _Say:
    """Prefixes a server's progress lines with its name."""

    def __init__(self, out: _Out, name: str) -> None:
        self._out = out
        self._name = name

    def __call__(self, text: str) -> None:
        self._out.line(f"{self._name}: {text}")


def up_servers(servers: Sequence[Server], out: _Out | None = None) -> int:
    """Start ``servers`` concurrently and wait until each is ready (or failed)."""
    printer = out or _Out()
    if not servers:
        return 0
    started = time.monotonic()
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="stack-up")
    try:
        futures = [pool.submit(_up_one, server, printer, cancel) for server in servers]
        outcomes = [future.result() for future in futures]
    except KeyboardInterrupt:
        # Servers run in their own sessions, so Ctrl-C reaches only us: stop waiting, and
        # stop the servers that were still starting; ready ones keep running.
        cancel.set()
        printer.line("stack up interrupted", error=True)
        return 130
    finally:
        pool.shutdown(wait=True)
    failed = [s.name for s, ok in zip(servers, outcomes, strict=True) if not ok]
    if failed:
        printer.line(f"stack up failed: {', '.join(failed)}", error=True)
        return 1
    names = ", ".join(server.name for server in servers)
    printer.line(f"stack: {names} up in {time.monotonic() - started:.1f} s")
    return 0


def up(root: Path, servers: Sequence[str] = ()) -> int:
    """Install (cached), start and wait for ``servers`` (default: all) under ``root``."""
    try:
        chosen = _resolve(root, servers)
    except ValueError as exc:
        _Out().line(f"stack: {exc}", error=True)
        return 2
    return up_servers(chosen)


def _down_one(server: Server, out: _Out) -> bool:
    """Stop one server; True when it was running."""
    pid = process.read_pid(server.pid_file)
    if pid is None or not process.is_alive(pid, server.identity):
        if pid is not None:
            server.pid_file.unlink(missing_ok=True)
            out.line(f"{server.name}: not running (removed stale pid file)")
        else:
            out.line(f"{server.name}: not running")
        return False
    out.line(f"{server.name}: stopping (pid {pid})…")
    killed, elapsed = process.stop_process(pid, server.identity)
    server.pid_file.unlink(missing_ok=True)
    how = "killed (SIGKILL) after" if killed else "stopped in"
    out.line(f"{server.name}: {how} {elapsed:.1f} s")
    return True


def down_servers(servers: Sequence[Server], out: _Out | None = None) -> int:
    printer = out or _Out()
    if not servers:
        return 0
    with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="stack-down") as pool:
        was_running = list(pool.map(lambda server: _down_one(server, printer), servers))
    if not any(was_running):
        root = servers[0].root
        printer.line(f"stack: nothing to stop, the stack in {root} is not running")
    return 0


def down(root: Path, servers: Sequence[str] = ()) -> int:
    """Stop ``servers`` (default: all): SIGTERM, up to 30 s grace, then SIGKILL."""
    try:
        chosen = _resolve(root, servers)
    except ValueError as exc:
        _Out().line(f"stack: {exc}", error=True)
        return 2
    return down_servers(chosen)


def status_line(server: Server) -> str:
    pid = process.read_pid(server.pid_file)
    width = max(len(name) for name in SERVER_NAMES)
    label = server.name.ljust(width)
    if pid is not None and process.is_alive(pid, server.identity):
        try:
            server.probe(timeout=1.0)
        except probes.ProbeError:
            return f"{label}  starting  pid {pid}  {server.host}:{server.port} (not answering yet)"
        return f"{label}  running   pid {pid}  {server.host}:{server.port}"
    note = " (stale pid file)" if pid is not None else ""
    busy = _port_conflicts(server)
    if busy:
        ports = ", ".join(str(port) for port in busy)
        note += f" (port {ports} in use by another process)"
    return f"{label}  stopped{note}"


def status(root: Path, servers: Sequence[str] = ()) -> int:
    """One line per server: running with pid and port, or stopped."""
    try:
        chosen = _resolve(root, servers)
    except ValueError as exc:
        _Out().line(f"stack: {exc}", error=True)
        return 2
    out = _Out()
    for server in chosen:
        out.line(status_line(server))
    return 0


def logs(root: Path, server_name: str, lines: int = FAILURE_TAIL_LINES) -> int:
    """Print the last ``lines`` lines of a server's log (and its console output)."""
    try:
        server = make_server(server_name, root)
    except ValueError as exc:
        _Out().line(f"stack: {exc}", error=True)
        return 2
    out = _Out()
    shown = False
    for path in (server.main_log, server.console_log):
        tail = process.tail_lines(path, lines)
        if tail:
            out.line(f"==> {path} <==")
            out.block(tail)
            shown = True
    if not shown:
        out.line(f"{server.name}: no logs yet in {server.logs_dir}", error=True)
        return 1
    return 0
