"""systemd service notifications (``Type=notify``): READY, STATUS, STOPPING, WATCHDOG.

Under systemd a service finds ``$NOTIFY_SOCKET`` (a datagram socket; a leading ``@`` means
the abstract namespace) and, with ``WatchdogSec=``, ``$WATCHDOG_USEC``. Outside systemd
both are absent and every call here does nothing, so the commands behave the same from a
terminal.

The keep-alives come from a task on the event loop itself, every half watchdog interval: a
loop that is stuck stops them and systemd restarts the service, which is the point.
Only the composition root (the CLI) reads the environment; it builds a ``Notifier`` with
``Notifier.from_environ(os.environ)``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from collections.abc import Mapping

from mdfeed.kernel.lifecycle import cancel_and_wait

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages to ``address``; a no-op when ``address`` is None."""

    def __init__(self, address: str | None, *, watchdog_s: float | None = None) -> None:
        self.address = address
        self.watchdog_s = watchdog_s
        self._task: asyncio.Task[None] | None = None
        #: The last messages that went out (bounded: a watchdog runs for months).
        self.sent: collections.deque[str] = collections.deque(maxlen=64)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Notifier:
        address = environ.get("NOTIFY_SOCKET") or None
        watchdog_s = None
        usec = environ.get("WATCHDOG_USEC", "")
        if usec.isdigit() and int(usec) > 0:
            watchdog_s = int(usec) / 1_000_000
        return cls(address, watchdog_s=watchdog_s)

    @property
    def active(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Send one ``KEY=value`` message; True if sent (errors are logged, never raised)."""
        address = self.address
        if address is None:
            return False
        target = "\0" + address[1:] if address.startswith("@") else address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the event loop on a reader that is behind: drop and log.
                sock.setblocking(False)
                sock.sendto(message.encode(), target)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", address, exc)
            return False
        self.sent.append(message)
        return True

    def ready(self, status: str = "") -> None:
        """The service is really serving now (sent once everything has started)."""
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))
        self._start_watchdog()

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    async def stopping(self) -> None:
        self.notify("STOPPING=1")
        task, self._task = self._task, None
        await cancel_and_wait(task)

    def _start_watchdog(self) -> None:
        if self.watchdog_s is None or self.address is None or self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._keep_alive(self.watchdog_s / 2), name="sd-watchdog"
        )

    async def _keep_alive(self, interval_s: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(interval_s)
