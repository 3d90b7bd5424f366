"""`mdfeed fanout` (the fanout alone) and `mdfeed mqtt-acl` (Mosquitto files from the users).

``mdfeed fanout`` composes the ``fanout`` service (gRPC, MQTT bridge, chat) against the
configured bus and store, for running several instances side by side behind one Kafka.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import TextIO

from mdfeed.cli.support import add_config_option, config_from_args, run_service
from mdfeed.cli.systemd import Notifier
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.kernel.lifecycle import stop_on_signals

__all__ = ["register_cli", "run_fanout"]


async def run_fanout(
    config: MdfeedConfig, *, out: TextIO = sys.stderr, notifier: Notifier | None = None
) -> int:
    """The fanout alone, until SIGINT/SIGTERM; READY to systemd once it serves."""
    from mdfeed.composition import compose

    stop = stop_on_signals()
    async with compose(config, {"fanout"}, metrics="fanout") as running:
        fanout, metrics = running.fanout, running.metrics
        assert fanout is not None
        assert metrics is not None
        for line in fanout.describe():
            out.write(line + "\n")
        out.write(metrics.describe() + "\n")
        out.write("fanout ready\n")
        out.flush()
        gc.freeze()  # long-lived state out of the collector's scans (latency tails)
        notifier = notifier or Notifier(None)
        notifier.ready(f"gRPC on port {fanout.grpc.port if fanout.grpc else '-'}")
        await stop.wait()
        out.write("stopping…\n")
        await notifier.stopping()
    return 0


def _cmd_fanout(args: argparse.Namespace) -> int:
    return run_service(args, run_fanout)


def _cmd_mqtt_acl(args: argparse.Namespace) -> int:
    from fanout.transports.mqtt_acl import write_mosquitto_files
    from mdfeed.kernel.config import ConfigError
    from mdfeed.kernel.entitlements import load_entitlements

    config = config_from_args(args)
    if not config.auth.enabled:
        raise ConfigError(
            "auth.enabled: false, so every client is anonymous and there is no ACL to "
            "generate; set auth.enabled = true and auth.users_file"
        )
    entitlements = load_entitlements(config.auth)
    files = write_mosquitto_files(Path(args.out), entitlements, config.mqtt, port=args.port)
    for path in (files.password_file, files.acl_file, files.conf_file):
        print(f"wrote {path}")
    print(f"{len(entitlements.users)} users; start Mosquitto with: mosquitto -c {files.conf_file}")
    return 0


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``fanout`` and ``mqtt-acl`` subcommands."""
    fanout = sub.add_parser(
        "fanout",
        help="run the fanout alone (gRPC + MQTT + chat) against the configured bus and store",
        description=(
            "Run the client-facing fanout without the FIX ingest: it consumes ticks and chat "
            "from the configured bus, persists chat in the configured store and serves gRPC "
            "(with health and reflection) and MQTT. Several can run side by side on one Kafka."
        ),
    )
    add_config_option(fanout)
    fanout.set_defaults(func=_cmd_fanout)

    acl = sub.add_parser(
        "mqtt-acl",
        help="write Mosquitto password, ACL and listener files from the auth users file",
        description=(
            "Generate the Mosquitto side of the entitlements in [auth] users_file: a "
            "password file (each user's token is its MQTT password; the fanout's own login "
            "from mqtt.username/password), an ACL with per-symbol read topics, room topics "
            "and the user's own post topic, and a listener config using both. See "
            "fanout/MQTT.md."
        ),
    )
    add_config_option(acl)
    acl.add_argument("--out", required=True, metavar="DIR", help="folder to write into")
    acl.add_argument(
        "--port", type=int, default=None, help="listener port (default: mqtt.port of the config)"
    )
    acl.set_defaults(func=_cmd_mqtt_acl)
