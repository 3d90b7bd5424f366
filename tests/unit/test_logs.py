"""Structured logs: the JSON line formatter and the [log] set-up."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from mdfeed.cli.logs import JsonFormatter, log_handler
from mdfeed.kernel.config import ConfigError, LogConfig, build_config


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("mdfeed.fanout", logging.WARNING, __file__, 10, message, args, None)
    record.created = 1_767_225_600.123456  # 2026-01-01T00:00:00.123456Z
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_record_is_one_json_object_with_the_standard_fields() -> None:
    line = JsonFormatter().format(_record("cutting off %s: %d ticks", "client-7", 12))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-01-01T00:00:00.123456Z",
        "level": "WARNING",
        "logger": "mdfeed.fanout",
        "message": "cutting off client-7: 12 ticks",
    }


def test_extra_fields_follow_and_never_overwrite_the_standard_ones() -> None:
    line = JsonFormatter().format(
        _record("x", client="10.0.0.7:5123", pending=42, level="mine", when=object)
    )
    fields = json.loads(line)
    assert fields["client"] == "10.0.0.7:5123"
    assert fields["pending"] == 42
    assert fields["level"] == "WARNING"
    assert fields["extra_level"] == "mine"
    assert fields["when"] == str(object), "what JSON cannot hold is written as str()"


def test_an_exception_is_one_string_field() -> None:
    try:
        raise ValueError("bad tick")
    except ValueError:
        record = logging.LogRecord(
            "mdfeed.x", logging.ERROR, __file__, 1, "failed", None, __import__("sys").exc_info()
        )
    fields = json.loads(JsonFormatter().format(record))
    assert fields["message"] == "failed"
    assert fields["exception"].startswith("Traceback (most recent call last):")
    assert fields["exception"].endswith("ValueError: bad tick")


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("mdfeed.test_logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        for handler in logger.handlers[:]:
            logger.removeHandler(handler)
            handler.close()
        logger.propagate = True


def test_the_json_handler_writes_json_lines(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logger.addHandler(log_handler(LogConfig(format="json"), stream))
    logger.info("ready", extra={"port": 9462})
    logger.info("second")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    fields = json.loads(lines[0])
    assert (fields["level"], fields["logger"], fields["message"], fields["port"]) == (
        "INFO",
        "mdfeed.test_logs",
        "ready",
        9462,
    )


def test_text_is_the_default(logger: logging.Logger) -> None:
    stream = io.StringIO()
    logger.addHandler(log_handler(LogConfig(), stream))
    logger.warning("plain")
    assert stream.getvalue().endswith(" WARNING mdfeed.test_logs: plain\n")


def test_log_format_is_checked() -> None:
    config = build_config({}, "test", {"MDFEED__LOG__FORMAT": "json"})
    assert config.log.format == "json"
    with pytest.raises(ConfigError, match=r"log\.format: expected one of 'text', 'json'"):
        build_config({"log": {"format": "xml"}}, "test", {})
