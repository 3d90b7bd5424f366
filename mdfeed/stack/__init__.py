"""The local stack: real single-node Kafka, Cassandra and Mosquitto bound to 127.0.0.1.

``mdfeed stack up|down|status|logs`` (see :func:`register_cli`) installs the servers
(cached), starts them as detached processes with pid files, waits until each answers its
own protocol, and stops them again. The same operations are plain functions here.
"""

from mdfeed.stack.cli import register_cli
from mdfeed.stack.manager import down, logs, status, up
from mdfeed.stack.servers import (
    CASSANDRA_PORT,
    CASSANDRA_STORAGE_PORT,
    HOST,
    KAFKA_CONTROLLER_PORT,
    KAFKA_PORT,
    MOSQUITTO_PORT,
    SERVER_NAMES,
)

__all__ = [
    "CASSANDRA_PORT",
    "CASSANDRA_STORAGE_PORT",
    "HOST",
    "KAFKA_CONTROLLER_PORT",
    "KAFKA_PORT",
    "MOSQUITTO_PORT",
    "SERVER_NAMES",
    "down",
    "logs",
    "register_cli",
    "status",
    "up",
]
