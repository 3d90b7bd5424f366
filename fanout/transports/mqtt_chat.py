"""Chat between the MQTT bridge and the chat service: the bridge as a member of every
room (messages out on ``chat/{room}``), and posts taken from ``post/{room}/{user}`` checked
against the entitlements and handed to the chat service."""

from __future__ import annotations

from fanout.chat import ChatService
from fanout.transports.mqtt_bridge import MqttBridge
from mdfeed.kernel.chat import ChatRejected
from mdfeed.kernel.entitlements import ANONYMOUS, Entitlements, User
from proto import mdfeed_pb2 as pb

__all__ = ["MqttChatLink"]

# google.rpc.Code numbers of the errors an MQTT post can get back.
_UNAUTHENTICATED = 16
_UNAVAILABLE = 14


class MqttChatLink:
    """Joins ``bridge`` to every room of ``chat`` and takes the bridge's posts."""

    def __init__(self, chat: ChatService, entitlements: Entitlements) -> None:
        self._chat = chat
        self._entitlements = entitlements
        self._bridge: MqttBridge | None = None

    def attach(self, bridge: MqttBridge) -> None:
        """Start delivering every room's messages to ``bridge``."""
        self._bridge = bridge
        self._chat.join_all_rooms(self)

    def detach(self) -> None:
        self._chat.leave_all(self)
        self._bridge = None

    def deliver_chat(self, message: pb.ChatMessage, frame: bytes) -> None:
        del frame  # MQTT carries the ChatMessage itself, not the ServerFrame
        if self._bridge is not None:
            self._bridge.publish_chat(message)

    async def on_post(
        self, username: str, room: str, text: str, client_ref: str
    ) -> pb.Error | None:
        """Post for ``username``; the error to send back, or None once stored."""
        user: User | None
        if self._entitlements.enabled:
            user = self._entitlements.user(username)
            if user is None:
                return pb.Error(
                    code=_UNAUTHENTICATED, message=f"unknown user {username!r}", ref=client_ref
                )
        else:
            user = User(name=username, token="", symbols=ANONYMOUS.symbols, rooms=ANONYMOUS.rooms)
        try:
            await self._chat.post(user, room, text, client_ref)
        except ChatRejected as exc:
            return pb.Error(code=int(exc.code), message=exc.message, ref=client_ref)
        return None
