"""The MQTT bridge's counters: quotes (``mqtt_rate``), posts (``mqtt_posts``), publishes and
reconnects (``mqtt_bridge``); the metrics (``fanout.metrics``) read them at scrape time."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MqttStats"]


@dataclass(slots=True)
class MqttStats:
    """Counters since start; read them, never write them."""

    quotes_in: int = 0  # ticks offered by publish_tick
    quotes_published: int = 0
    quotes_conflated: int = 0  # replaced by a newer tick of their symbol before publishing
    quotes_unpublishable: int = 0  # symbol cannot be a topic level (has / + # or is empty)
    bars_published: int = 0
    chat_published: int = 0  # acknowledged by the broker (PUBACK)
    chat_dropped: int = 0  # refused: max_pending_chat unacknowledged already
    errors_published: int = 0  # Error messages to errors/{user}, acknowledged
    posts_received: int = 0  # every message on post/+/+, junk included
    posts_rejected: int = 0  # well-formed posts refused by on_post or by a full queue
    junk: int = 0  # bad topic, undecodable payload or room mismatch
    reconnects: int = 0
