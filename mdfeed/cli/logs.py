"""Logging set-up for every command: text lines for people, JSON lines for log shippers.

``[log] format = "json"`` writes one JSON object per record on stderr::

    {"time": "2026-03-02T14:30:00.123456Z", "level": "WARNING", "logger": "mdfeed.fanout",
     "message": "cutting off a client: ...", "client": "10.0.0.7:51234"}

``time`` is RFC 3339 in UTC with microseconds; fields passed with ``extra={...}`` follow
the four standard ones (an extra named like a standard field is written with an ``extra_``
prefix rather than overwrite it); an exception is one string field, ``exception``, with
the formatted traceback, and ``stack`` likewise for ``stack_info``. Values JSON cannot
represent are written as their ``str()``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from mdfeed.kernel.config import LogConfig

__all__ = ["JsonFormatter", "log_handler", "setup_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}
_OWN_FIELDS = frozenset({"time", "level", "logger", "message", "exception", "stack"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record; see the module docstring for the fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD_ATTRS:
                continue
            fields[f"extra_{key}" if key in _OWN_FIELDS else key] = value
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return json.dumps(fields, default=str, ensure_ascii=False)


def log_handler(config: LogConfig, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing ``config.format`` records to ``stream`` (default: stderr)."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(
        JsonFormatter() if config.format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    return handler


def setup_logging(config: LogConfig) -> None:
    """Configure the root logger from ``[log]``; a no-op if it already has handlers."""
    logging.basicConfig(level=config.level, handlers=[log_handler(config)])
    if config.level != "DEBUG":
        # The embedded broker narrates every state change at INFO; keep its warnings.
        for noisy in ("amqtt", "transitions"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
