"""A scratch Kafka: a throwaway single-node broker on free ports in a directory of its own.

For tests that kill a broker to check outage handling without disturbing the shared local
stack on 9092. It is the stack's own Kafka description (:class:`~mdfeed.stack.servers.Kafka`,
KRaft, broker and controller in one process) with other ports and directories, running from
the jars ``mdfeed stack up`` installed (installed on first use when they are missing).

    with ScratchKafka(tmp_path, kafka_jars(stack_dir)) as kafka:
        ...  # kafka.bootstrap_servers
        kafka.kill()   # SIGKILL, like a crash: no clean shutdown, no flush
        kafka.start()  # the same data dir: log recovery, the topics are still there

Blocking calls: run them from a thread (``asyncio.to_thread``) inside async tests.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import socket
import time
from pathlib import Path
from types import TracebackType

from mdfeed.stack import install, manager, probes, process
from mdfeed.stack.servers import HOST, Kafka

__all__ = ["ScratchKafka", "ScratchKafkaError", "free_port", "kafka_jars"]


class ScratchKafkaError(Exception):
    """The scratch broker could not be started; the message carries its output and log."""


#: Ports this process handed out: asked for several at once, a caller must get distinct ones.
_HANDED_OUT: set[int] = set()


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on, below the kernel's ephemeral range (32768 and up).

    A client that keeps reconnecting to an ephemeral port with nothing listening can end up
    connected to itself (TCP simultaneous open) and hold the port; a broker restarted there
    could then not bind it. Ports below that range are never a client's local port.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        if port in _HANDED_OUT:  # not bound yet by whoever asked: still spoken for
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            _HANDED_OUT.add(port)
            return port
    raise ScratchKafkaError("no free port between 20000 and 32000")


def kafka_jars(stack_root: Path) -> Path:
    """The Kafka jars of the stack in ``stack_root``, installed with Maven if missing."""
    stack_kafka = Kafka(root=stack_root)
    lines: list[str] = []
    install.install_jars(stack_kafka.pom, stack_kafka.lib_dir, lines.append)
    return stack_kafka.lib_dir


class ScratchKafka:
    """One Kafka broker under ``root``, on free ports unless given; a context manager."""

    def __init__(
        self,
        root: Path,
        jars_dir: Path,
        *,
        broker_port: int | None = None,
        controller_port: int | None = None,
    ) -> None:
        self.server = Kafka(
            root=root,
            broker_port=broker_port or free_port(),
            controller_port=controller_port or free_port(),
            heap=("128m", "512m"),
            jars_dir=jars_dir,
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.server.host}:{self.server.broker_port}"

    @property
    def pid(self) -> int | None:
        """The broker's pid while it runs."""
        return process.running_pid(self.server.pid_file, self.server.identity)

    def start(self) -> None:
        """Start (formatting the storage the first time) and wait until it serves requests."""
        out = io.StringIO()
        code = manager.up_servers([self.server], manager._Out(out, out))
        if code != 0:
            raise ScratchKafkaError(f"scratch kafka failed to start:\n{out.getvalue()}")

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would, and wait until it is gone."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10.0
        while process.is_alive(pid, self.server.identity) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The kernel releases a killed JVM's listening sockets a moment after the process is
        # gone; a start() before then would find its own ports taken.
        while time.monotonic() < deadline and not all(
            probes.port_is_bindable(self.server.host, port) for port in self.server.ports
        ):
            time.sleep(0.05)
        self.server.pid_file.unlink(missing_ok=True)

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after a short grace); harmless when not running."""
        pid = self.pid
        if pid is not None:
            process.stop_process(pid, self.server.identity, grace=10.0)
        self.server.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> ScratchKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
