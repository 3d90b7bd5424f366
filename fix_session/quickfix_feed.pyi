"""Types of fix_session/quickfix_feed.cpp: the ingest's QuickFIX session, C++ Application."""

from collections.abc import Callable

from .tick_core import TickCore

class QuickfixFeed:
    #: (session-level Rejects sent, ResendRequests sent)
    counters: tuple[int, int]
    def __init__(
        self,
        settings_path: str,
        core: TickCore,
        on_event: Callable[[str, str, str, str], None],
        username: str = "",
        password: str = "",
        file_log: bool = False,
    ) -> None: ...
    def start(self) -> None: ...
    def stop(self, force: bool = False) -> None: ...
