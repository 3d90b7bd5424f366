"""The MQTT bridge's paho client, and the hand-off from paho's network thread to the loop.

paho calls back on its own network thread. The callbacks here do the minimum: they copy
what they need (a reason code as text, a topic, a payload) and hand off with
``loop.call_soon_threadsafe`` to the bridge's handlers; all state lives on the event loop. A
callback after the loop closed is dropped.

The client speaks MQTT 3.1.1 with a persistent session (clean session off: posts sent while
the bridge is away are queued by the broker at QoS 1 and delivered when it returns, so
``client_id`` must be unique per fanout process), reconnects every
``reconnect_interval_s`` (no backoff) and keeps at most 100 QoS 1 messages in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from mdfeed.kernel.config import MqttConfig

__all__ = ["MqttHandlers", "paho_client"]


@dataclass(frozen=True, slots=True)
class MqttHandlers:
    """Where each paho event goes; every handler runs on the event loop."""

    #: ``(reason, failure)``: the broker's answer to a connect, and whether it refused.
    connected: Callable[[str, bool], None]
    #: ``(reason)``: the TCP connection could not be made.
    connect_failed: Callable[[str], None]
    #: ``(reason)``: the connection was lost or closed.
    disconnected: Callable[[str], None]
    #: ``(mid, refused)``: a SUBACK, with the reason codes of the refused filters.
    subscribed: Callable[[int, list[str]], None]
    #: ``(mid)``: a QoS 1 publish was acknowledged (PUBACK).
    published: Callable[[int], None]
    #: ``(topic, payload)``: a message arrived on a subscription.
    message: Callable[[str, bytes], None]


def paho_client(
    config: MqttConfig, handlers: MqttHandlers, loop: asyncio.AbstractEventLoop
) -> mqtt.Client:
    """A paho client for ``config``, not connected yet, handing its events to ``handlers``."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=config.client_id,
        clean_session=False,
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    if config.username:
        client.username_pw_set(config.username, config.password or None)
    # paho annotates int seconds but sleeps on any number; a fixed interval, no backoff.
    interval: Any = config.reconnect_interval_s
    client.reconnect_delay_set(min_delay=interval, max_delay=interval)
    client.max_inflight_messages_set(100)
    _Handoff(loop, handlers).attach(client)
    return client


class _Handoff:
    """paho's callbacks, on paho's network thread: copy, hand off, return."""

    __slots__ = ("_handlers", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, handlers: MqttHandlers) -> None:
        self._loop = loop
        self._handlers = handlers

    def attach(self, client: mqtt.Client) -> None:
        client.on_connect = self._cb_connect
        client.on_connect_fail = self._cb_connect_fail
        client.on_disconnect = self._cb_disconnect
        client.on_subscribe = self._cb_subscribe
        client.on_publish = self._cb_publish
        client.on_message = self._cb_message

    def _handoff(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed under a late callback
            self._loop.call_soon_threadsafe(callback, *args)

    def _cb_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self._handoff(self._handlers.connected, str(reason_code), reason_code.is_failure)

    def _cb_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        self._handoff(self._handlers.connect_failed, "TCP connect failed: refused or unreachable")

    def _cb_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self._handoff(self._handlers.disconnected, str(reason_code))

    def _cb_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: object,
    ) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        self._handoff(self._handlers.subscribed, mid, refused)

    def _cb_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self._handoff(self._handlers.published, mid)

    def _cb_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # an exception here would end paho's network loop
            topic = "<topic is not UTF-8>"
        self._handoff(self._handlers.message, topic, message.payload)
