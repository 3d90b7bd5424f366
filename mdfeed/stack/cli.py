"""The ``stack`` subcommand: ``up``, ``down``, ``status`` and ``logs``."""

from __future__ import annotations

import argparse
from pathlib import Path

from mdfeed.stack import manager
from mdfeed.stack.servers import (
    CASSANDRA_PORT,
    HOST,
    KAFKA_PORT,
    MOSQUITTO_PORT,
    SERVER_NAMES,
)

__all__ = ["register_cli"]

DEFAULT_DIR_NAME = ".stack"

_DESCRIPTION = f"""\
Run the real servers of mdfeed on this machine, bound to {HOST} only:
  kafka      Kafka 3.9.1, KRaft single node (broker {KAFKA_PORT}, controller 9093)
  cassandra  Cassandra 5.0.5, single node (CQL {CASSANDRA_PORT}, storage 7000, JMX off)
  mosquitto  Mosquitto MQTT broker (port {MOSQUITTO_PORT})

Each server lives in DIR/<server>/{{lib,data,logs,conf}} with its pid in
DIR/<server>/server.pid. The JVM servers' jars are resolved once with Maven (needs
`mvn` and Java 17); Mosquitto is installed with apt-get when /usr/sbin/mosquitto is
missing. Data persists across restarts; delete DIR/<server>/data to start afresh.
"""


def _server_name(text: str) -> str:
    if text not in SERVER_NAMES:
        raise argparse.ArgumentTypeError(
            f"unknown server {text!r} (choose from {', '.join(SERVER_NAMES)})"
        )
    return text


def _root(args: argparse.Namespace, default_dir: Path | None) -> Path:
    chosen: Path | None = args.dir or default_dir
    return (chosen if chosen is not None else Path.cwd() / DEFAULT_DIR_NAME).absolute()


def register_cli(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    default_dir: Path | None = None,
) -> None:
    """Add the ``stack`` subcommand to the main CLI.

    ``default_dir`` is the stack directory used when ``--dir`` is not given (the CLI
    layer passes ``$MDFEED_STACK_DIR`` here); otherwise it is ``./.stack``.
    """
    shown_default = default_dir if default_dir is not None else "$MDFEED_STACK_DIR, else ./.stack"
    dir_help = (
        f"stack directory holding each server's lib, data, logs and conf (default: {shown_default})"
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, metavar="DIR", help=dir_help)

    stack = subparsers.add_parser(
        "stack",
        help="install, start, check and stop the local Kafka, Cassandra and Mosquitto",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = stack.add_subparsers(title="actions", metavar="ACTION")

    def show_help(args: argparse.Namespace) -> int:
        del args
        stack.print_help()
        return 2

    stack.set_defaults(func=show_help)
    names = ", ".join(SERVER_NAMES)

    up_parser = actions.add_parser(
        "up",
        parents=[common],
        help="start servers and wait until each really answers",
        description=(
            "Install (first time only), start and wait for the servers; prints each one's "
            "start time. Servers already running are left alone. Exits non-zero naming the "
            "server that failed (with the end of its log) or whose port is taken."
        ),
    )
    up_parser.add_argument(
        "servers",
        nargs="*",
        type=_server_name,
        metavar="SERVER",
        help=f"servers to start: {names} (default: all)",
    )
    up_parser.set_defaults(func=lambda a: manager.up(_root(a, default_dir), a.servers))

    down_parser = actions.add_parser(
        "down",
        parents=[common],
        help="stop servers",
        description=(
            "Stop the servers: SIGTERM, up to 30 s to shut down cleanly, then SIGKILL. "
            "Stopping servers that are not running is not an error."
        ),
    )
    down_parser.add_argument(
        "servers",
        nargs="*",
        type=_server_name,
        metavar="SERVER",
        help=f"servers to stop: {names} (default: all)",
    )
    down_parser.set_defaults(func=lambda a: manager.down(_root(a, default_dir), a.servers))

    status_parser = actions.add_parser(
        "status",
        parents=[common],
        help="show which servers are running",
        description="One line per server: running (pid, address) or stopped. Always exits 0.",
    )
    status_parser.set_defaults(func=lambda a: manager.status(_root(a, default_dir)))

    logs_parser = actions.add_parser(
        "logs",
        parents=[common],
        help="print the end of a server's log",
        description="Print the last lines of a server's log and of its console output.",
    )
    logs_parser.add_argument("server", choices=SERVER_NAMES, metavar="SERVER", help=names)
    logs_parser.add_argument(
        "-n",
        "--lines",
        type=int,
        default=manager.FAILURE_TAIL_LINES,
        metavar="N",
        help=f"number of lines (default: {manager.FAILURE_TAIL_LINES})",
    )
    logs_parser.set_defaults(func=lambda a: manager.logs(_root(a, default_dir), a.server, a.lines))
