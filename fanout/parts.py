"""What a started fanout is made of: a plain record, built by ``mdfeed.composition``.

Each part may be None when it does not run in this process (MQTT off, say). The metrics
(``fanout.metrics``), the status line and the start-up banner read the parts from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from fanout.bars import BarFanout
from fanout.chat import ChatService
from fanout.tick_fanout import TickFanout
from fanout.transports.grpc_server import GrpcServer
from fanout.transports.grpc_service import MarketDataServicer
from fanout.transports.mqtt_bridge import MqttBridge
from fanout.transports.mqtt_broker import EmbeddedBroker
from mdfeed.kernel.config import MdfeedConfig
from mdfeed.kernel.entitlements import Entitlements
from storage import BarStore, ChatStore

__all__ = ["FanoutParts"]


@dataclass(slots=True)
class FanoutParts:
    """The started parts of one fanout instance."""

    config: MdfeedConfig
    entitlements: Entitlements
    chat_store: ChatStore | None = None
    chat: ChatService | None = None
    ticks: TickFanout | None = None
    bars: BarFanout | None = None
    bar_store: BarStore | None = None
    broker: EmbeddedBroker | None = None
    bridge: MqttBridge | None = None
    servicer: MarketDataServicer | None = None
    grpc: GrpcServer | None = None

    def describe(self) -> list[str]:
        """What is listening where, for the start-up banner."""
        lines = []
        if self.grpc is not None:
            scheme = "TLS" if self.grpc.tls else "plaintext"
            auth = "token auth" if self.entitlements.enabled else "no auth"
            lines.append(
                f"gRPC MarketData on {self.config.fanout.grpc_host}:{self.grpc.port} "
                f"({scheme}, {auth}; health and reflection on)"
            )
        mqtt = self.config.mqtt
        if self.bridge is None:
            lines.append("MQTT: off (mqtt.enabled = false)")
        else:
            kind = "embedded broker" if self.broker is not None else "external broker"
            lines.append(
                f"MQTT: {kind} on {mqtt.host}:{mqtt.port} (topics md/, bars/, chat/, post/)"
            )
        lines.append(f"chat store: {self.config.store.kind}")
        return lines
