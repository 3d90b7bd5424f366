"""Mosquitto password and ACL files generated from the entitlements (the users file).

A mobile client logs in to Mosquitto with its mdfeed user name and token (the same token
as gRPC). What it may read and write follows its entitlements, with every topic under
``mqtt.topic_prefix`` (layout: ``fanout/MQTT.md``):

=========================== ======= =====================================================
topic                       access  lines for user ``alice``
=========================== ======= =====================================================
``md/{symbol}``             read    one per entitled symbol; ``md/#`` for ``"*"``
``bars/{symbol}/#``         read    one per entitled symbol; ``bars/#`` for ``"*"``
``chat/{room}``             read    one per room; ``chat/#`` for ``"*"``
``post/{room}/alice``       write   one per room; ``post/+/alice`` for ``"*"``
``errors/alice``            read    always
=========================== ======= =====================================================

The author of a post is the last level of its topic, and the ACL lets a user write only
under its own name, so the bridge can trust it. The bridge's own login gets ``readwrite``
on ``{prefix}/#``. Nothing else is allowed (Mosquitto denies what no line grants), and
anonymous logins are off.

Passwords are stored in Mosquitto's ``$7$`` format (PBKDF2-SHA512, the format
``mosquitto_passwd`` writes since Mosquitto 2.0), computed here in Python rather than by
running ``mosquitto_passwd``: the files can be generated on a host without Mosquitto
installed (a deploy step, CI), a test can pin the exact output with a fixed salt, and no
token ever appears on a command line (``mosquitto_passwd -b`` takes the password as an
argument, visible in the process list). The integration tests check the hashes against
``mosquitto_passwd`` and a real broker.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fanout.transports.mqtt_topics import MqttTopics
from mdfeed.kernel.config import MqttConfig
from mdfeed.kernel.entitlements import Entitlements, User

__all__ = [
    "MosquittoFiles",
    "acl_file",
    "mosquitto_conf",
    "password_file",
    "password_hash",
    "write_mosquitto_files",
]

#: PBKDF2 rounds. mosquitto_passwd 2.0 writes 101; the broker reads the count from each
#: line, and 1000 costs under a millisecond per login.
DEFAULT_ITERATIONS = 1000
_SALT_BYTES = 12  # what mosquitto_passwd uses


def password_hash(password: str, *, salt: bytes | None = None, iterations: int = 0) -> str:
    """``$7$<iterations>$<salt b64>$<hash b64>``: PBKDF2-HMAC-SHA512, 64-byte key."""
    if not password:
        raise ValueError("an MQTT password must not be empty")
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    rounds = iterations or DEFAULT_ITERATIONS
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, rounds, 64)
    return f"$7${rounds}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def _check(entitlements: Entitlements, mqtt: MqttConfig) -> None:
    if not entitlements.enabled:
        raise ValueError(
            "auth.enabled is false: there are no users to give MQTT logins; turn auth on"
            " with a users file, or run Mosquitto with allow_anonymous true on loopback"
        )
    if not mqtt.username or not mqtt.password:
        raise ValueError(
            "mqtt.username and mqtt.password: the fanout's own login is required when"
            " Mosquitto uses the generated password and ACL files"
        )
    if mqtt.username in entitlements.users:
        raise ValueError(
            f"mqtt.username: {mqtt.username!r} is also a user in the users file; the"
            " fanout's login must be a name of its own"
        )
    if ":" in mqtt.username or "\n" in mqtt.username or " " in mqtt.username:
        raise ValueError(f"mqtt.username: {mqtt.username!r} cannot contain ':', spaces or newlines")


def password_file(
    entitlements: Entitlements,
    mqtt: MqttConfig,
    *,
    salt: Callable[[str], bytes] | None = None,
    iterations: int = 0,
) -> str:
    """The ``password_file`` text: the fanout's login, then each user, by name.

    ``salt(username)`` fixes the salts (for tests); by default each is random.
    """
    _check(entitlements, mqtt)
    logins = [(mqtt.username, mqtt.password)]
    logins += [(u.name, u.token) for u in sorted(entitlements.users.values(), key=_name)]
    lines = [
        f"{name}:{password_hash(pw, salt=salt(name) if salt else None, iterations=iterations)}"
        for name, pw in logins
    ]
    return "\n".join(lines) + "\n"


def _name(user: User) -> str:
    return user.name


def _user_acl(topics: MqttTopics, user: User) -> list[str]:
    name = user.name
    lines = [f"user {name}"]
    if user.all_symbols:
        lines.append(f"topic read {topics.under('md')}")
        lines.append(f"topic read {topics.under('bars')}")
    else:
        for symbol in sorted(user.symbols):
            lines.append(f"topic read {topics.md(symbol)}")
            lines.append(f"topic read {topics.under('bars', symbol)}")
    if user.all_rooms:
        lines.append(f"topic read {topics.under('chat')}")
        # Any room, but only under the user's own name.
        lines.append(f"topic write {topics.post_filter().removesuffix('/+')}/{name}")
    else:
        for room in sorted(user.rooms):
            lines.append(f"topic read {topics.chat(room)}")
            lines.append(f"topic write {topics.post(room, name)}")
    lines.append(f"topic read {topics.errors(name)}")
    return lines


def acl_file(entitlements: Entitlements, mqtt: MqttConfig) -> str:
    """The ``acl_file`` text: the fanout's login first, then each user, by name."""
    _check(entitlements, mqtt)
    topics = MqttTopics(mqtt.topic_prefix)
    blocks = [
        "# Generated by mdfeed (fanout.transports.mqtt_acl) from the users file; do not edit.",
        "",
        "# The fanout's bridge: publishes md, bars, chat and errors; reads posts.",
        f"user {mqtt.username}",
        f"topic readwrite {topics.everything()}",
    ]
    for user in sorted(entitlements.users.values(), key=_name):
        blocks.append("")
        blocks += _user_acl(topics, user)
    return "\n".join(blocks) + "\n"


def mosquitto_conf(
    *, port: int, password_file: Path | str, acl_file: Path | str, bind_address: str = "127.0.0.1"
) -> str:
    """A Mosquitto 2.x config snippet: one listener, logins required, the generated files."""
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not a TCP port (1-65535)")
    return (
        "# Generated by mdfeed (fanout.transports.mqtt_acl).\n"
        f"listener {port} {bind_address}\n"
        "allow_anonymous false\n"
        f"password_file {Path(password_file).resolve()}\n"
        f"acl_file {Path(acl_file).resolve()}\n"
    )


@dataclass(frozen=True, slots=True)
class MosquittoFiles:
    password_file: Path
    acl_file: Path
    conf_file: Path


def write_mosquitto_files(
    directory: Path,
    entitlements: Entitlements,
    mqtt: MqttConfig,
    *,
    port: int | None = None,
    bind_address: str = "127.0.0.1",
) -> MosquittoFiles:
    """Write ``passwd`` (mode 0600), ``acl`` and ``mdfeed.conf`` into ``directory``.

    The conf listens on ``port`` (default ``mqtt.port``); include it from the main
    ``mosquitto.conf`` or pass it with ``mosquitto -c``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    passwd = directory / "passwd"
    acl = directory / "acl"
    conf = directory / "mdfeed.conf"
    text = password_file(entitlements, mqtt)
    fd = os.open(passwd, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(passwd, 0o600)  # an existing file keeps its old mode through O_CREAT
    acl.write_text(acl_file(entitlements, mqtt), encoding="utf-8")
    conf.write_text(
        mosquitto_conf(
            port=port if port is not None else mqtt.port,
            password_file=passwd,
            acl_file=acl,
            bind_address=bind_address,
        ),
        encoding="utf-8",
    )
    return MosquittoFiles(password_file=passwd, acl_file=acl, conf_file=conf)
