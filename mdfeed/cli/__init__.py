"""The ``mdfeed`` command line, the top layer: each command composes its services through
``mdfeed.composition`` and adds only what a terminal or systemd needs (options, progress
lines, the notifier, exit codes)."""

from mdfeed.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
