"""The `mdfeed` command line: the parser of every subcommand and the entry point.

With ``mdfeed.cli.support`` the one place that reads the environment (``MDFEED_CONFIG``,
``MDFEED__<SECTION>__<KEY>`` overrides, ``MDFEED_STACK_DIR``); the services a command
runs are built from the frozen config by ``mdfeed.composition``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mdfeed import __version__
from mdfeed.cli.support import add_config_option, config_from_args, run_service
from mdfeed.kernel.config import ConfigError, dump_config

Handler = Callable[[argparse.Namespace], int]


def _cmd_run(args: argparse.Namespace) -> int:
    from mdfeed.cli.run import run_pipeline

    return run_service(args, functools.partial(run_pipeline, duration_s=args.duration))


def _cmd_config_check(args: argparse.Namespace) -> int:
    config_from_args(args)
    print("config ok")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    print(dump_config(config_from_args(args)), end="")
    return 0


def _cmd_codegen_proto(args: argparse.Namespace) -> int:
    from mdfeed.codegen import generate_proto

    out_dir: Path = args.out
    source: Path | None = args.source
    if source is None and (out_dir / "mdfeed.proto").exists():
        source = out_dir / "mdfeed.proto"
    for path in generate_proto(out_dir, source):
        print(f"wrote {path}")
    return 0


def _cmd_codegen_fix(args: argparse.Namespace) -> int:
    from fix_spec.dictionary import DictionaryError
    from fix_spec.generator import PackageSpec, generate_package, generate_shipped

    out_dir: Path = args.out
    try:
        if args.dictionary is None:
            dictionaries: Path = args.dictionaries or _installed_dictionaries()
            files = generate_shipped(dictionaries, out_dir, progress=True)
        else:
            spec = PackageSpec(
                package=args.package,
                title=args.title or args.package,
                dictionary=str(Path(args.dictionary).absolute()),
                transport=str(Path(args.transport).absolute()) if args.transport else None,
                extensions=tuple(str(Path(e).absolute()) for e in args.extension),
                write_merged_xml=bool(args.extension),
            )
            files = generate_package(spec, Path("/"), out_dir)
            print(f"{args.package}: {len(files)} files")
    except DictionaryError as exc:
        print(f"mdfeed: dictionary error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} files under {out_dir}")
    return 0


def _installed_dictionaries() -> Path:
    local = Path("fix_spec/dictionaries")
    if local.is_dir():
        return local
    from importlib import resources

    return Path(str(resources.files("fix_spec") / "dictionaries"))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every `mdfeed` subcommand."""
    parser = argparse.ArgumentParser(
        prog="mdfeed",
        description=(
            "mdfeed: low-latency market data distribution. A FIX session ingests quotes into "
            "a bus (Kafka, or in-process); a fanout streams them to gRPC and MQTT clients with "
            "chat on the same connection; an aggregator stores OHLCV bars (Cassandra, or "
            "SQLite) and serves a TradingView datafeed."
        ),
        epilog="Run 'mdfeed COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"mdfeed {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run the whole pipeline in one process (embedded default: no servers needed)",
        description=(
            "Run the whole pipeline in one process: a simulated FIX venue, the QuickFIX market "
            "data session, the bus and the fanout (gRPC with chat, health and reflection; "
            "MQTT), with a status line every second (messages and ticks per second, symbols, "
            "a few last prices, gRPC clients, MQTT quotes/s, chat posts). With the default "
            "'embedded' config it needs no servers (in-process bus, SQLite, an embedded MQTT "
            "broker on 1884); with '--config local-stack' it uses the Kafka, Cassandra and "
            "Mosquitto that 'mdfeed stack up' starts. Try 'mdfeed watch AAPL' and "
            "'mdfeed chat lobby' in another terminal."
        ),
    )
    add_config_option(run)
    run.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    run.set_defaults(func=_cmd_run)

    config = sub.add_parser("config", help="check or print the configuration")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = config_sub.add_parser(
        "check", help="load the config with environment overrides; exit 1 naming a bad key"
    )
    add_config_option(check)
    check.set_defaults(func=_cmd_config_check)
    show = config_sub.add_parser("show", help="print the effective config as TOML, every key")
    add_config_option(show)
    show.set_defaults(func=_cmd_config_show)

    codegen = sub.add_parser("codegen", help="regenerate committed generated code")
    codegen_sub = codegen.add_subparsers(dest="codegen_command", metavar="TARGET", required=True)
    proto = codegen_sub.add_parser(
        "proto",
        help="compile proto/mdfeed.proto into Python messages, gRPC stubs and .pyi stubs",
    )
    proto.add_argument(
        "--out", type=Path, default=Path("proto"), help="output folder (default: ./proto)"
    )
    proto.add_argument(
        "--source",
        type=Path,
        default=None,
        help="the .proto file (default: OUT/mdfeed.proto, else the installed schema)",
    )
    proto.set_defaults(func=_cmd_codegen_proto)

    fix = codegen_sub.add_parser(
        "fix",
        help="generate typed FIX message packages from QuickFIX XML dictionaries",
        description=(
            "Without --dictionary: regenerate the packages mdfeed ships (fix44, fix50sp2 and "
            "venue44) from fix_spec/dictionaries. With --dictionary: generate one package, "
            "for example a venue's FIX 4.4 plus its extension file."
        ),
    )
    fix.add_argument(
        "--out", type=Path, default=Path("fix_spec"), help="output folder (default: ./fix_spec)"
    )
    fix.add_argument(
        "--dictionaries",
        type=Path,
        default=None,
        help="folder of the shipped dictionaries (default: ./fix_spec/dictionaries)",
    )
    fix.add_argument("--dictionary", help="a QuickFIX XML dictionary (FIX44.xml, FIX50SP2.xml)")
    fix.add_argument("--transport", help="the transport dictionary for FIX 5 (FIXT11.xml)")
    fix.add_argument(
        "--extension",
        action="append",
        default=[],
        help="a venue extension merged on top (repeatable); see fix_spec/dictionaries",
    )
    fix.add_argument("--package", default="venue", help="package name to write (default: venue)")
    fix.add_argument("--title", default=None, help="what the docstrings call the dictionary")
    fix.set_defaults(func=_cmd_codegen_fix)

    _register_commands(sub)
    return parser


def _register_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bench.harness.cli import register_cli as register_bench
    from mdfeed.cli.bars import register_cli as register_bars
    from mdfeed.cli.clients import register_cli as register_clients
    from mdfeed.cli.fanout import register_cli as register_fanout
    from mdfeed.cli.ingest import register_cli as register_ingest
    from mdfeed.cli.venue import register_cli as register_venue
    from mdfeed.stack import register_cli as register_stack

    register_bench(sub)
    register_fanout(sub)
    register_clients(sub)
    register_ingest(sub)
    register_bars(sub)
    register_stack(sub)
    register_venue(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mdfeed` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "command", None) == "stack" and getattr(args, "dir", None) is None:
        args.dir = Path(os.environ.get("MDFEED_STACK_DIR", ".stack"))
    handler: Handler = args.func
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"mdfeed: config error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
