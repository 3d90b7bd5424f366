"""The MQTT topic layout (``fanout/MQTT.md``): where quotes, bars, chat, posts and errors go.

Every topic is under ``mqtt.topic_prefix`` when it is set. A symbol, room or user name is
one topic level, so one that is empty or holds ``/``, ``+``, ``#`` or NUL has no topic: the
methods raise ``ValueError`` and the caller decides (the bridge skips such a symbol's quotes
and counts them). The broker's ACL (``fanout.transports.mqtt_acl``) is written from the same
layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from proto import mdfeed_pb2 as pb

__all__ = ["MqttTopics", "resolution_level"]

_FORBIDDEN_IN_LEVEL = frozenset("/+#\x00")


def resolution_level(resolution: int) -> str:
    """The topic level of a ``pb.Resolution``: ``RESOLUTION_1M`` is ``"1m"``.

    ``ValueError`` for ``RESOLUTION_UNSPECIFIED`` or a number the schema does not know.
    """
    if resolution == pb.RESOLUTION_UNSPECIFIED:
        raise ValueError("bar resolution is RESOLUTION_UNSPECIFIED; a bar needs its resolution")
    try:
        name = pb.Resolution.Name(resolution)  # type: ignore[arg-type]  # any int: Name() checks it
    except ValueError:
        raise ValueError(f"bar resolution {resolution} is not a pb.Resolution") from None
    return name.removeprefix("RESOLUTION_").lower()


def _check_level(value: str, what: str) -> str:
    if not value or not _FORBIDDEN_IN_LEVEL.isdisjoint(value):
        raise ValueError(
            f"{what} {value!r} cannot be an MQTT topic level (it is empty or has / + # or NUL)"
        )
    return value


@dataclass(frozen=True, slots=True)
class MqttTopics:
    """The topic layout (``fanout/MQTT.md``), under ``prefix`` when it is not empty."""

    prefix: str = ""

    def __post_init__(self) -> None:
        prefix = self.prefix
        if prefix and (
            prefix.startswith(("/", "$"))
            or prefix.endswith("/")
            or "//" in prefix
            or not {"+", "#", "\x00"}.isdisjoint(prefix)
        ):
            raise ValueError(
                f"mqtt.topic_prefix: {prefix!r} is not a topic prefix (levels separated by /, "
                "no leading or trailing /, no + # or $ at the start)"
            )

    def _join(self, *levels: str) -> str:
        topic = "/".join(levels)
        return f"{self.prefix}/{topic}" if self.prefix else topic

    def md(self, symbol: str) -> str:
        return self._join("md", _check_level(symbol, "symbol"))

    def bars(self, symbol: str, resolution: int) -> str:
        return self._join("bars", _check_level(symbol, "symbol"), resolution_level(resolution))

    def chat(self, room: str) -> str:
        return self._join("chat", _check_level(room, "room"))

    def post(self, room: str, username: str) -> str:
        return self._join("post", _check_level(room, "room"), _check_level(username, "username"))

    def errors(self, username: str) -> str:
        return self._join("errors", _check_level(username, "username"))

    def under(self, *levels: str) -> str:
        """The filter of everything below ``levels``: ``under("bars", "AAPL")`` is
        ``bars/AAPL/#``; ``levels`` are checked like topic levels, ``+`` allowed."""
        for level in levels:
            if level != "+":
                _check_level(level, "topic level")
        return self._join(*levels, "#")

    def post_filter(self) -> str:
        """What the bridge subscribes to for posts: ``post/+/+``."""
        return self._join("post", "+", "+")

    def everything(self) -> str:
        """Every topic of this deployment: ``{prefix}/#``, or ``#`` without a prefix."""
        return self._join("#")

    def parse_post(self, topic: str) -> tuple[str, str] | None:
        """``(room, username)`` of a post topic, either possibly empty (``post//bob``);
        None when ``topic`` is not ``post/{room}/{username}`` under the prefix."""
        if self.prefix:
            if not topic.startswith(self.prefix + "/"):
                return None
            topic = topic[len(self.prefix) + 1 :]
        levels = topic.split("/")
        if len(levels) != 3 or levels[0] != "post":
            return None
        return levels[1], levels[2]
