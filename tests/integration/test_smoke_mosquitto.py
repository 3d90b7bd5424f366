"""A publish and a receive through the real Mosquitto with paho-mqtt."""

from __future__ import annotations

import queue
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from mdfeed.kernel.config import MdfeedConfig
from proto import mdfeed_pb2 as pb


def test_retained_quote_reaches_a_later_subscriber(
    stack_config: MdfeedConfig, unique_name: str
) -> None:
    host, port = stack_config.mqtt.host, stack_config.mqtt.port
    topic = f"{unique_name}/md/AAPL"
    tick = pb.Tick(symbol="AAPL", seq=7, bid_px_e8=15_025_000_000, ask_px_e8=15_026_000_000)

    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{unique_name}-pub")
    publisher.connect(host, port)
    publisher.loop_start()
    try:
        info = publisher.publish(topic, tick.SerializeToString(), qos=1, retain=True)
        info.wait_for_publish(timeout=10)
        assert info.is_published()
    finally:
        publisher.disconnect()
        publisher.loop_stop()

    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{unique_name}-sub")
    subscriber.on_message = lambda _client, _userdata, message: received.put(message)
    subscriber.on_subscribe = lambda *_args: subscribed.set()
    subscriber.connect(host, port)
    subscriber.loop_start()
    try:
        subscriber.subscribe(topic, qos=1)
        assert subscribed.wait(10)
        message = received.get(timeout=10)
    finally:
        # Clear the retained value so the broker keeps nothing of this test.
        subscriber.publish(topic, b"", qos=1, retain=True).wait_for_publish(timeout=10)
        subscriber.disconnect()
        subscriber.loop_stop()
    assert message.retain
    assert pb.Tick.FromString(bytes(message.payload)) == tick
