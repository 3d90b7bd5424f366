"""Configuration: shipped configs load, overrides apply, bad input names the key."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from mdfeed.kernel.config import (
    ConfigError,
    MdfeedConfig,
    build_config,
    config_names,
    dump_config,
    load_config,
)


def test_shipped_configs_are_embedded_and_local_stack() -> None:
    assert config_names() == ["embedded", "local-stack"]


def test_embedded_needs_no_servers() -> None:
    config = load_config("embedded")
    assert (config.bus.kind, config.store.kind, config.mqtt.kind) == (
        "memory",
        "sqlite",
        "embedded",
    )
    assert config.venue.enabled


def test_local_stack_points_at_the_stack_servers() -> None:
    config = load_config("local-stack")
    assert config.bus.kind == "kafka"
    assert config.bus.bootstrap_servers == "127.0.0.1:9092"
    assert config.store.kind == "cassandra"
    assert config.store.cassandra_contact_points == ("127.0.0.1",)
    assert config.store.cassandra_port == 9042
    assert (config.mqtt.kind, config.mqtt.port) == ("external", 1883)


def test_defaults_without_a_file_equal_the_dataclass_defaults() -> None:
    assert load_config(None) == MdfeedConfig()


def test_config_is_frozen() -> None:
    config = load_config("embedded")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.bus.kind = "kafka"  # type: ignore[misc]  # frozen: the error is the test


def test_environment_overrides_the_file() -> None:
    env = {
        "MDFEED__BUS__KIND": "kafka",
        "MDFEED__BUS__TICK_PARTITIONS": "12",
        "MDFEED__VENUE__ENABLED": "false",
        "MDFEED__VENUE__SYMBOLS": "AAPL, MSFT",
        "MDFEED__MQTT__QUOTE_MAX_RATE_PER_SYMBOL_HZ": "2.5",
        "UNRELATED": "x",
    }
    config = load_config("embedded", env)
    assert config.bus.kind == "kafka"
    assert config.bus.tick_partitions == 12
    assert config.venue.enabled is False
    assert config.venue.symbols == ("AAPL", "MSFT")
    assert config.mqtt.quote_max_rate_per_symbol_hz == 2.5


def test_a_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "my.toml"
    path.write_text('[bus]\nkind = "kafka"\n[fanout]\ngrpc_port = 6000\n')
    config = load_config(str(path))
    assert config.bus.kind == "kafka"
    assert config.fanout.grpc_port == 6000
    assert config.store == MdfeedConfig().store


@pytest.mark.parametrize(
    ("raw", "env", "message"),
    [
        ({"buss": {}}, {}, "unknown section [buss] (did you mean 'bus'?)"),
        (
            {"bus": {"bootstrap_server": "x"}},
            {},
            "unknown key 'bus.bootstrap_server' (did you mean 'bootstrap_servers'?)",
        ),
        (
            {"bus": {"kind": "rabbit"}},
            {},
            "bus.kind: expected one of 'memory', 'kafka', got 'rabbit'",
        ),
        (
            {"bus": {"tick_partitions": "6"}},
            {},
            "bus.tick_partitions: expected an integer, got '6'",
        ),
        ({"bus": {"tick_partitions": True}}, {}, "bus.tick_partitions: expected an integer"),
        ({"bus": {"tick_partitions": 0}}, {}, "bus.tick_partitions: must be at least 1, got 0"),
        (
            {"fanout": {"grpc_port": 70000}},
            {},
            "fanout.grpc_port: must be at most 65535, got 70000",
        ),
        ({"venue": {"symbols": "AAPL"}}, {}, "venue.symbols: expected a list of strings"),
        ({"venue": {"enabled": "yes"}}, {}, "venue.enabled: expected true or false"),
        ({"bus": 3}, {}, "'bus' must be a table"),
        (
            {},
            {"MDFEED__FANOUT__GRPC_PORT": "abc"},
            "environment variable MDFEED__FANOUT__GRPC_PORT: fanout.grpc_port: expected an integer",
        ),
        (
            {},
            {"MDFEED__FANOUT__GRCP_PORT": "1"},
            "unknown key 'fanout.grcp_port' (did you mean 'grpc_port'?)",
        ),
        (
            {},
            {"MDFEED__NOPE__X": "1"},
            "environment variable MDFEED__NOPE__X: expected MDFEED__<SECTION>__<KEY>",
        ),
        ({}, {"MDFEED__MQTT__QUOTE_MAX_RATE_PER_SYMBOL_HZ": "0"}, "must be at least"),
        (
            {"fix_session": {"symbols_per_request": 0}},
            {},
            "fix_session.symbols_per_request: must be at least 1, got 0",
        ),
    ],
)
def test_bad_config_names_the_key(
    raw: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_config(raw, "test.toml", env)
    assert message in str(excinfo.value)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[bus\nkind = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_config(str(path))


def test_missing_file_lists_the_shipped_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found .*embedded, local-stack"):
        load_config(str(tmp_path / "nope.toml"))


def test_dump_is_toml_that_loads_back_to_the_same_config() -> None:
    config = load_config("local-stack", {"MDFEED__VENUE__SYMBOLS": 'A"B,C'})
    text = dump_config(config)
    assert build_config(tomllib.loads(text), "dump", {}) == config
