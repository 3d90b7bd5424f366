"""What every `mdfeed` subcommand shares: the --config option and loading the config it
names, logging, the event loop, and (``run_service``) the start of a long-running command.

The one place, with the CLI, that reads the environment: ``MDFEED_CONFIG``, the
``MDFEED__<SECTION>__<KEY>`` overrides, and systemd's ``NOTIFY_SOCKET``/``WATCHDOG_USEC``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from mdfeed.kernel.config import LogConfig, MdfeedConfig, config_names, load_config

if TYPE_CHECKING:
    from mdfeed.cli.systemd import Notifier

T = TypeVar("T")

DEFAULT_CONFIG = "embedded"


def add_config_option(parser: argparse.ArgumentParser, *, section: str | None = None) -> None:
    """Add ``-c/--config NAME|PATH``; `section` names the part of the config a command uses."""
    overrides = (
        f"The [{section}] section is used; any key can be overridden with "
        f"MDFEED__{section.upper()}__<KEY>."
        if section
        else "Any key can be overridden with an environment variable MDFEED__<SECTION>__<KEY>."
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="NAME|PATH",
        default=None,
        help=(
            "a shipped config name (" + ", ".join(config_names()) + ") or a TOML file; "
            f"default: $MDFEED_CONFIG, else '{DEFAULT_CONFIG}'. {overrides}"
        ),
    )


def config_from_args(args: argparse.Namespace) -> MdfeedConfig:
    """The config `--config` names (else $MDFEED_CONFIG, else the default), env applied."""
    name = args.config or os.environ.get("MDFEED_CONFIG") or DEFAULT_CONFIG
    return load_config(name, os.environ)


def setup_logging(log: LogConfig) -> None:
    """Configure logging from ``[log]`` (level, text or JSON lines)."""
    from mdfeed.cli.logs import setup_logging as setup

    setup(log)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop, the event loop mdfeed is measured on."""
    import uvloop

    result: T = uvloop.run(main)
    return result


def run_service(args: argparse.Namespace, main: Callable[..., Coroutine[Any, Any, int]]) -> int:
    """Start a long-running command: its config, logging, the systemd notifier, the loop.

    ``main(config, notifier=...)`` runs until SIGINT/SIGTERM; its result is the exit code.
    """
    from mdfeed.cli.systemd import Notifier

    config = config_from_args(args)
    setup_logging(config.log)
    notifier: Notifier = Notifier.from_environ(os.environ)
    return run_async(main(config, notifier=notifier))


def whole_number(text: str) -> int:
    """An argparse ``type``: a whole number, or an error that says so."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        value = whole_number(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"whole number >= {minimum}"  # argparse names the type in errors
    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def book_faults_text(faults: dict[str, int], invalid: int) -> str:
    """The status line's book part: empty while no book ever faulted; else the faults by
    reason and how many symbols are flagged now (awaiting a fresh snapshot)."""
    found = {reason: n for reason, n in faults.items() if n}
    if not found:
        return ""
    parts = ", ".join(f"{reason} {n:,}" for reason, n in sorted(found.items()))
    return f" | book faults: {parts}; {invalid} flagged"
