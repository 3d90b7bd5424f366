"""The grpc.aio server of the fanout: MarketData, health checking and reflection, TLS optional.

The ``MarketData`` handlers are ``fanout.transports.grpc_service``; this module serves them.

* ``grpc.health.v1.Health``: ``""`` and ``mdfeed.v1.MarketData`` are SERVING while the
  fanout runs and NOT_SERVING once it stops, so load balancers drain it first.
* Server reflection (``grpc.reflection.v1alpha``): ``grpcurl -plaintext 127.0.0.1:50051
  list`` and ``describe`` work without the .proto file.
* TLS: ``fanout.tls_cert_file`` and ``fanout.tls_key_file`` (PEM) together; both empty
  serves plaintext, meant for loopback. A missing or unreadable file fails at start with a
  ``ConfigError`` naming the key.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from fanout.transports.grpc_service import SERVICE_NAME, MarketDataServicer
from mdfeed.kernel.config import ConfigError, FanoutConfig

__all__ = ["GrpcServer", "server_credentials"]


def server_credentials(config: FanoutConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from the config, None for plaintext; ``ConfigError`` names the key."""
    cert, key = config.tls_cert_file, config.tls_key_file
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "fanout.tls_cert_file" if not cert else "fanout.tls_key_file"
        raise ConfigError(f"{missing}: required when the other TLS file is set")
    pems: list[bytes] = []
    for name, value in (("fanout.tls_cert_file", cert), ("fanout.tls_key_file", key)):
        try:
            data = Path(value).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {value}: {exc.strerror or exc}") from None
        if b"-----BEGIN" not in data:
            raise ConfigError(f"{name}: {value} is not a PEM file")
        pems.append(data)
    return grpc.ssl_server_credentials([(pems[1], pems[0])])


class GrpcServer:
    """A started grpc.aio server carrying the MarketData servicer; ``port`` is bound."""

    def __init__(self, servicer: MarketDataServicer, config: FanoutConfig) -> None:
        self.config = config
        self._servicer = servicer
        self._server: aio.Server | None = None
        self.health = HealthServicer()
        self.port = 0
        self.tls = False

    async def start(self) -> None:
        credentials = server_credentials(self.config)
        server = aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.http2.max_pings_without_data", 0),
            ]
        )
        self._servicer.add_to_server(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        address = f"{self.config.grpc_host}:{self.config.grpc_port}"
        try:
            if credentials is None:
                self.port = server.add_insecure_port(address)
            else:
                self.port = server.add_secure_port(address, credentials)
                self.tls = True
        except RuntimeError as exc:
            raise OSError(f"gRPC cannot listen on {address}: {exc} (port in use?)") from None
        await server.start()
        self._server = server
        for service in ("", SERVICE_NAME):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float | None = 1.0) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        await self.health.enter_graceful_shutdown()
        await server.stop(grace_s)
