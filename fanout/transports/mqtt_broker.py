"""The embedded MQTT broker of the default single-process run (amqtt, in-process).

Production runs Mosquitto (``mqtt.kind = "external"``, with the password and ACL files of
``fanout.transports.mqtt_acl``). The embedded broker is for the first run on one machine
(docs/architecture.md, "Principles": 2. embedded default for the first run): it listens on a
loopback address only, lets anyone in anonymously (so it refuses any non-loopback host:
there is no ACL to protect it) and keeps retained messages in memory for its lifetime,
which is what gives a new subscriber the last quote of each symbol. amqtt forwards about
2.4K messages/s with paho on loopback (docs/architecture.md, "Measured facts that shaped
the design"): enough behind the bridge's per-symbol conflation, not for production fan-out.

Only the plugins named in the config are loaded: amqtt's entry-point plugin loading and
its ``$SYS`` plugin are deprecated and warn (pytest turns warnings into errors), and
neither is wanted here.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from typing import Any

# amqtt ships no type information (no py.typed); its Broker is used as Any here.
from amqtt.broker import Broker
from amqtt.errors import BrokerError

from mdfeed.kernel.lifecycle import Service

__all__ = ["EmbeddedBroker", "EmbeddedBrokerError"]

log = logging.getLogger(__name__)


class EmbeddedBrokerError(Exception):
    """The embedded broker could not start; the message says why and what to change."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmbeddedBroker(Service):
    """An in-process MQTT 3.1.1 broker on ``host:port`` (loopback); an async context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        if not _is_loopback(host):
            raise ValueError(
                f"mqtt.host: the embedded broker listens on loopback only (anonymous, no ACL);"
                f' got {host!r}. Use 127.0.0.1, or mqtt.kind = "external" with Mosquitto'
            )
        if not 0 < port < 65536:
            raise ValueError(f"mqtt.port: {port} is not a TCP port (1-65535)")
        self.host = host
        self.port = port
        self._broker: Any = None

    @property
    def running(self) -> bool:
        return self._broker is not None

    def _bind(self) -> str:
        host = self.host
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Listen; ``EmbeddedBrokerError`` when the port is taken. Starting twice is a no-op."""
        if self._broker is not None:
            return
        config = {
            "listeners": {"default": {"type": "tcp", "bind": self._bind()}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        broker = Broker(config)
        try:
            await broker.start()
        except BrokerError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
                raise EmbeddedBrokerError(
                    f"embedded MQTT broker cannot listen on {self._bind()}: the port is taken"
                    f" (is another broker, e.g. Mosquitto, running there? set mqtt.port, or"
                    f' mqtt.kind = "external" to use that broker)'
                ) from None
            raise EmbeddedBrokerError(
                f"embedded MQTT broker failed to start on {self._bind()}: {exc}"
            ) from exc
        self._broker = broker
        log.info("embedded MQTT broker listening on %s (anonymous, loopback)", self._bind())

    async def stop(self) -> None:
        """Disconnect every client and close the listener. Safe to call twice."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        await broker.shutdown()
        log.info("embedded MQTT broker on %s stopped", self._bind())
