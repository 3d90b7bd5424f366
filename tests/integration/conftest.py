"""Integration tests talk to the real servers that `mdfeed stack up` starts.

They are not skipped when a server is down: the test command starts the stack, so a
missing server is a failure, reported with the command that fixes it. Each test gets its
own Kafka topic, Cassandra keyspace and MQTT topic prefix.
"""

from __future__ import annotations

import socket
import uuid

import pytest

from mdfeed.kernel.config import MdfeedConfig, load_config

SERVERS = {"kafka": 9092, "cassandra": 9042, "mosquitto": 1883}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_config() -> MdfeedConfig:
    """The shipped local-stack config, after checking every server accepts connections."""
    down = []
    for name, port in SERVERS.items():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            down.append(f"{name} (127.0.0.1:{port})")
    if down:
        pytest.fail(f"local stack not running: {', '.join(down)}; start it with 'mdfeed stack up'")
    return load_config("local-stack")


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses: a Kafka topic, keyspace or MQTT prefix of its own."""
    test = "".join(c if c.isalnum() else "_" for c in request.node.name)[:24].lower()
    return f"t_{test}_{uuid.uuid4().hex[:10]}"
