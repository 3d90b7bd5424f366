"""Distribution of ticks, bars and chat to gRPC and MQTT clients.

The tick path goes one way (docs/architecture.md, "Data flow"), one module a step::

    bus, tick topic
      │  TickFanout: the consume loop; decode, hop stamps,          fanout.tick_fanout
      │  resync detection
      ├──────────────► SnapshotCache: latest tick per symbol        fanout.snapshot_cache
      ▼
    SubscriptionGroups → SubscriptionGroup, one per symbol set      fanout.groups
      │  each group frames its ticks once
      ▼
    SharedFrame: encoded ServerFrame bytes, shared                  fanout.frames
      │  a reference pushed to every member
      ▼
    FanoutClient → TickLane, one per client: bounded, conflating    fanout.client, fanout.lane
      │  the client's frames(), as they are
      ▼
    transports                                                      fanout.transports
      gRPC MarketData: Subscribe, Connect                           .grpc_service, .grpc_server
      MQTT bridge: md/{symbol}, from a TickFanout listener          .mqtt_bridge, .mqtt_rate

The cache, groups, frames, lanes and clients import no transport (no grpc, no paho), so a
new transport (the WebSocket) reuses them whole; ``tests/unit/test_fanout_modules.py``
checks it.

Beside the tick path:

* chat, the no-loss lane: ``fanout.chat`` (``ChatService``: validated, sequenced, persisted
  posts), ``fanout.chat_port`` (the kernel's ``ChatPort`` on it, for the datafeed) and
  ``fanout.transports.mqtt_chat`` (the MQTT bridge as a member of every room);
* bars: ``fanout.bars`` (``BarFanout``: the bus's bar topic to subscribed clients and MQTT);
* ``fanout.parts`` (``FanoutParts``: what a started fanout is made of, built by
  ``mdfeed.composition``) and ``fanout.metrics`` (its Prometheus metrics).
"""
