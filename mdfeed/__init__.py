"""mdfeed: low-latency market data distribution.

Three layers, each importing only the ones below it (``docs/architecture.md``, "Layers"):

* ``mdfeed.kernel``: what every component shares (config, bus, lifecycle, clock, metrics,
  entitlements, the chat contract). It imports no component.
* the components, top-level packages of their own: ``fix_session`` (ingest and the
  simulated venue), ``fanout`` (gRPC, MQTT, chat), ``storage`` (bar and chat stores),
  ``ohlcv`` (bars and the chart datafeed); below them the wire schema ``proto`` and the
  FIX codecs ``fix_spec``.
* the top: ``mdfeed.composition``, the one place that builds services from config, and
  ``mdfeed.cli``, the command line on it. Tools beside the CLI: ``mdfeed.stack`` (the
  local Kafka, Cassandra and Mosquitto) and ``mdfeed.codegen``.
"""

__version__ = "0.1.0"
