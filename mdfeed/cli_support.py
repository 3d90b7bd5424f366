"""What every `mdfeed` subcommand shares: the --config option and loading the config it names.

The one place, with the CLI, that reads the environment: ``MDFEED_CONFIG`` and the
``MDFEED__<SECTION>__<KEY>`` overrides.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from mdfeed.config import MdfeedConfig, config_names, load_config

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
