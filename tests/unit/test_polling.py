"""The tests' poll helper (tests/support/polling.py): returns once true, else says what."""

from __future__ import annotations

import asyncio

import pytest
from polling import until, until_sync


async def test_until_returns_once_the_predicate_holds() -> None:
    state = {"n": 0}

    async def count() -> None:
        for _ in range(3):
            await asyncio.sleep(0.01)
            state["n"] += 1

    task = asyncio.create_task(count())
    await until(lambda: state["n"] == 3, timeout_s=5)
    await task


async def test_until_fails_naming_what_it_awaited_and_for_how_long() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.05 s waiting for the answer"):
        await until(lambda: False, timeout_s=0.05, what="the answer")


async def test_without_what_the_failure_quotes_the_predicate() -> None:
    never = 0
    with pytest.raises(AssertionError, match=r"lambda: never == 1"):
        await until(lambda: never == 1, timeout_s=0.02)


def test_until_sync_evaluates_a_callable_what_only_on_failure() -> None:
    calls: list[str] = []

    def what() -> str:
        calls.append("what")
        return "the log's last lines"

    until_sync(lambda: True, timeout_s=0.05, what=what)
    assert calls == []
    with pytest.raises(AssertionError, match="waiting for the log's last lines"):
        until_sync(lambda: False, timeout_s=0.05, interval_s=0.01, what=what)
    assert calls == ["what"]
