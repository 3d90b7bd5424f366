"""The asyncio bridge over the Cassandra driver's ResponseFuture, with a stand-in future.

The stand-in answers from another thread, as the driver's I/O thread does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from storage.cassandra import response_rows


class ThreadedResponse:
    """Serves ``pages`` (or ``error``) to the callbacks from a new thread per page."""

    def __init__(self, pages: list[Any], error: Exception | None = None) -> None:
        self._pages = pages
        self._error = error
        self._on_page: Callable[[Any], None] | None = None
        self._on_error: Callable[[Exception], None] | None = None
        self.threads: set[int] = set()

    @property
    def has_more_pages(self) -> bool:
        return bool(self._pages)

    def add_callbacks(
        self, callback: Callable[[Any], None], errback: Callable[[Exception], None]
    ) -> None:
        self._on_page, self._on_error = callback, errback
        self._answer()

    def start_fetching_next_page(self) -> None:
        if not self._pages:
            raise RuntimeError("no more pages")
        self._answer()

    def _answer(self) -> None:
        threading.Thread(target=self._send).start()

    def _send(self) -> None:
        self.threads.add(threading.get_ident())
        assert self._on_page is not None
        assert self._on_error is not None
        if self._error is not None:
            self._on_error(self._error)
        else:
            self._on_page(self._pages.pop(0))


async def test_every_page_is_collected() -> None:
    response = ThreadedResponse([[{"seq": 1}, {"seq": 2}], [{"seq": 3}], [{"seq": 4}]])
    rows = await asyncio.wait_for(response_rows(response), 10)
    assert rows == [{"seq": 1}, {"seq": 2}, {"seq": 3}, {"seq": 4}]
    assert threading.get_ident() not in response.threads


async def test_a_statement_without_rows_gives_an_empty_list() -> None:
    # The driver passes None for DDL and for writes without a result.
    response = ThreadedResponse([None])
    assert await asyncio.wait_for(response_rows(response), 10) == []


async def test_a_driver_error_is_raised_in_the_awaiting_task() -> None:
    response = ThreadedResponse([], error=ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        await asyncio.wait_for(response_rows(response), 10)


async def test_a_failure_while_paging_is_raised_not_left_hanging() -> None:
    class BrokenPaging(ThreadedResponse):
        def start_fetching_next_page(self) -> None:
            raise RuntimeError("connection lost while paging")

    response = BrokenPaging([[{"seq": 1}], [{"seq": 2}]])
    with pytest.raises(RuntimeError, match="while paging"):
        await asyncio.wait_for(response_rows(response), 10)
