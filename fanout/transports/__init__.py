"""The fanout's transports: the only modules of the fanout that know a wire protocol.

* gRPC: ``grpc_service`` (the ``MarketData`` handlers, over ``fanout.client`` and
  ``fanout.tick_fanout``) and ``grpc_server`` (the grpc.aio server: health, reflection, TLS).
* MQTT: ``mqtt_bridge`` (the bridge, a client of the broker: ticks from a ``TickFanout``
  listener, bars from ``fanout.bars``) with ``mqtt_topics`` (the topic layout),
  ``mqtt_rate`` (the per-symbol quote rate cap), ``mqtt_posts`` (chat posts in),
  ``mqtt_client`` (the paho client and its thread hand-off) and ``mqtt_stats`` (counters);
  ``mqtt_chat`` (the bridge as a chat member), ``mqtt_broker`` (the embedded broker) and
  ``mqtt_acl`` (Mosquitto's password and ACL files). Layout and delivery: ``fanout/MQTT.md``.

The lanes, groups, snapshot cache, frames and clients import nothing of this package, so a
new transport reuses them whole.
"""
