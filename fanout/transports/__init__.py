"""The fanout's transports: the only modules of the fanout that know a wire protocol.

* gRPC: ``grpc_service`` (the ``MarketData`` handlers, over ``fanout.client`` and
  ``fanout.tick_fanout``) and ``grpc_server`` (the grpc.aio server: health, reflection, TLS).

The lanes, groups, snapshot cache, frames and clients import nothing of this package, so a
new transport reuses them whole.
"""
