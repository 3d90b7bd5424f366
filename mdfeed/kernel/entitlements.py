"""Who may connect, and to which symbols and chat rooms.

One users file (TOML) feeds every door: gRPC token auth, chat room permissions and the
Mosquitto password and ACL files (``fanout.transports.mqtt_acl``). A user entry::

    [users.alice]
    token = "s3cret-alice"          # gRPC: metadata "authorization: Bearer s3cret-alice";
                                    # MQTT: username "alice", password the token
    symbols = ["AAPL", "MSFT"]      # ticks and bars; ["*"] for every symbol
    rooms = ["lobby"]               # chat rooms to read and post in; ["*"] for all

With ``auth.enabled = false`` (the default, for loopback use) everyone is the anonymous
user, entitled to everything. A bad users file fails at start with a ``ConfigError``
naming the key, like any other config value.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mdfeed.kernel.config import AuthConfig, ConfigError

__all__ = [
    "ANONYMOUS",
    "WILDCARD",
    "Entitlements",
    "User",
    "load_entitlements",
    "parse_users",
]

WILDCARD = "*"
#: User names double as MQTT usernames and ACL topic levels: keep them plain.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Symbols and rooms become MQTT topic levels: no wildcards, separators or spaces.
_TOPIC_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:=^-]{0,63}$")


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated (or anonymous) client and what it may see and do."""

    name: str
    token: str
    symbols: frozenset[str]
    rooms: frozenset[str]

    @property
    def all_symbols(self) -> bool:
        return WILDCARD in self.symbols

    @property
    def all_rooms(self) -> bool:
        return WILDCARD in self.rooms

    def may_see(self, symbol: str) -> bool:
        return WILDCARD in self.symbols or symbol in self.symbols

    def may_chat(self, room: str) -> bool:
        return WILDCARD in self.rooms or room in self.rooms

    def denied_symbols(self, symbols: Iterable[str]) -> list[str]:
        """The symbols of ``symbols`` this user is not entitled to, in request order."""
        if WILDCARD in self.symbols:
            return []
        return [s for s in symbols if s not in self.symbols]


ANONYMOUS = User(
    name="anonymous",
    token="",
    symbols=frozenset({WILDCARD}),
    rooms=frozenset({WILDCARD}),
)


class Entitlements:
    """Token lookup; ``enabled`` False means everyone is ``ANONYMOUS``."""

    def __init__(self, users: Iterable[User] = (), *, enabled: bool = False) -> None:
        self.enabled = enabled
        self.users: dict[str, User] = {}
        self._by_token: dict[str, User] = {}
        for user in users:
            if user.name in self.users:
                raise ValueError(f"duplicate user {user.name!r}")
            if user.token in self._by_token:
                raise ValueError(
                    f"users {self._by_token[user.token].name!r} and {user.name!r} share a token"
                )
            self.users[user.name] = user
            self._by_token[user.token] = user

    @classmethod
    def open(cls) -> Entitlements:
        """Auth off: everyone is anonymous and entitled to everything."""
        return cls(enabled=False)

    def authenticate(self, token: str | None) -> User | None:
        """The user holding ``token``; None when auth is on and the token is unknown."""
        if not self.enabled:
            return ANONYMOUS
        if not token:
            return None
        return self._by_token.get(token)

    def user(self, name: str) -> User | None:
        return self.users.get(name)


def _str_list(value: object, key: str, source: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of strings, got {value!r} (in {source})")
    for item in value:
        if item != WILDCARD and not _TOPIC_LEVEL.match(item):
            raise ConfigError(
                f"{key}: {item!r} is not a valid name (letters, digits and _ . : = ^ -, "
                f'at most 64; or "*" for all) (in {source})'
            )
    return frozenset(value)


def parse_users(data: Mapping[str, object], source: str) -> list[User]:
    """Users from the parsed users file; ``ConfigError`` names the offending key."""
    unknown = set(data) - {"users"}
    if unknown:
        raise ConfigError(
            f"{sorted(unknown)[0]}: unknown section; expected [users.NAME] (in {source})"
        )
    table = data.get("users", {})
    if not isinstance(table, dict):
        raise ConfigError(f"users: expected tables [users.NAME] (in {source})")
    users: list[User] = []
    tokens: dict[str, str] = {}
    for name, entry in table.items():
        key = f"users.{name}"
        if not _NAME.match(name):
            raise ConfigError(
                f"{key}: user names are letters, digits, _ . - (at most 64) (in {source})"
            )
        if not isinstance(entry, dict):
            raise ConfigError(f"{key}: expected a table (in {source})")
        extra = set(entry) - {"token", "symbols", "rooms"}
        if extra:
            raise ConfigError(
                f"{key}.{sorted(extra)[0]}: unknown key; expected token, "
                f"symbols, rooms (in {source})"
            )
        token = entry.get("token")
        if not isinstance(token, str) or len(token) < 8:
            raise ConfigError(
                f"{key}.token: a string of at least 8 characters is required (in {source})"
            )
        if token in tokens:
            raise ConfigError(f"{key}.token: the same token as users.{tokens[token]} (in {source})")
        tokens[token] = name
        users.append(
            User(
                name=name,
                token=token,
                symbols=_str_list(entry.get("symbols", []), f"{key}.symbols", source),
                rooms=_str_list(entry.get("rooms", []), f"{key}.rooms", source),
            )
        )
    return users


def load_entitlements(config: AuthConfig) -> Entitlements:
    """The entitlements ``config`` describes; ``ConfigError`` names the bad key."""
    if not config.enabled:
        return Entitlements.open()
    if not config.users_file:
        raise ConfigError("auth.users_file: required when auth.enabled is true")
    path = Path(config.users_file)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"auth.users_file: no such file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"auth.users_file: cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"auth.users_file: {path} is not valid TOML: {exc}") from None
    users = parse_users(data, str(path))
    if not users:
        raise ConfigError(
            f"auth.users_file: {path} defines no [users.NAME] (auth is on, so nobody could connect)"
        )
    return Entitlements(users, enabled=True)
