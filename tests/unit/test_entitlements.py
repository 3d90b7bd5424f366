"""The users file: tokens, per-symbol and per-room entitlements, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdfeed.kernel.config import AuthConfig, ConfigError
from mdfeed.kernel.entitlements import ANONYMOUS, Entitlements, load_entitlements

USERS = """
[users.alice]
token = "alice-token-1"
symbols = ["AAPL", "MSFT"]
rooms = ["lobby"]

[users.ops]
token = "ops-token-123"
symbols = ["*"]
rooms = ["*"]
"""


def _load(tmp_path: Path, text: str) -> Entitlements:
    path = tmp_path / "users.toml"
    path.write_text(text, encoding="utf-8")
    return load_entitlements(AuthConfig(enabled=True, users_file=str(path)))


def test_tokens_map_to_users_with_their_entitlements(tmp_path: Path) -> None:
    ents = _load(tmp_path, USERS)
    alice = ents.authenticate("alice-token-1")
    assert alice is not None
    assert alice.name == "alice"
    assert alice.may_see("AAPL")
    assert not alice.may_see("TSLA")
    assert alice.denied_symbols(["AAPL", "TSLA", "NVDA"]) == ["TSLA", "NVDA"]
    assert alice.may_chat("lobby")
    assert not alice.may_chat("desk")
    ops = ents.authenticate("ops-token-123")
    assert ops is not None
    assert ops.may_see("ANY")
    assert ops.may_chat("any-room")
    assert ents.authenticate("wrong-token") is None
    assert ents.authenticate("") is None
    assert ents.authenticate(None) is None


def test_auth_off_makes_everyone_anonymous_and_entitled() -> None:
    ents = load_entitlements(AuthConfig(enabled=False))
    assert ents.authenticate(None) is ANONYMOUS
    assert ents.authenticate("whatever") is ANONYMOUS
    assert ANONYMOUS.may_see("TSLA")
    assert ANONYMOUS.may_chat("lobby")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[users.bob]\ntoken = "short"\n', "users.bob.token"),
        ('[users.bob]\ntoken = "long-enough"\nsymbols = "AAPL"\n', "users.bob.symbols"),
        ('[users.bob]\ntoken = "long-enough"\nrooms = ["a/b"]\n', "users.bob.rooms"),
        ('[users.bob]\ntoken = "long-enough"\ncolour = 1\n', "users.bob.colour"),
        ('[users."bad name"]\ntoken = "long-enough"\n', "users.bad name"),
        ("[groups.x]\n", "groups"),
        (
            '[users.a]\ntoken = "same-token"\n[users.b]\ntoken = "same-token"\n',
            "users.b.token",
        ),
        ("", "auth.users_file"),
    ],
)
def test_bad_users_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert str(info.value).startswith(f"{key}:"), str(info.value)


def test_missing_or_unset_users_file_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^auth\.users_file: required"):
        load_entitlements(AuthConfig(enabled=True))
    with pytest.raises(ConfigError, match=r"^auth\.users_file: no such file"):
        load_entitlements(AuthConfig(enabled=True, users_file=str(tmp_path / "nope.toml")))
    broken = tmp_path / "broken.toml"
    broken.write_text("[users.a\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^auth\.users_file: .* not valid TOML"):
        load_entitlements(AuthConfig(enabled=True, users_file=str(broken)))
