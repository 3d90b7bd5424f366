"""A real QuickFIX 1.16 SocketInitiator against the simulated venue.

QuickFIX validates every message against FIX44.xml (UseDataDictionary=Y), checks
sequence numbers, CompIDs and SendingTime, and drops a session whose heartbeats stop,
so a session that stays up and counts every entry proves the venue speaks its dialect.
QuickFIX calls the Application from its own threads: the callbacks only copy the message
text into a thread-safe queue; the asyncio test drains it.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
import quickfix as fix
from polling import until

from fix_session.venue import SimulatedVenue, VenueSession, incremental_refresh_fields
from fix_spec import fix44
from fix_spec.codec import FixDecodeError
from fix_spec.fix44.enums import MDEntryType, MDUpdateType, SubscriptionRequestType
from fix_spec.fix44.header import Header, Message
from fix_spec.fix44.messages import (
    MarketDataIncrementalRefresh,
    MarketDataRequest,
    MarketDataSnapshotFullRefresh,
)
from mdfeed.kernel.config import VenueConfig

SESSION_ID = ("FIX.4.4", "MDFEED", "VENUE")


class Recorder(fix.Application):  # type: ignore[misc]  # quickfix has no types: Any
    """Puts (kind, message text) on a queue; nothing else runs on QuickFIX's threads."""

    def __init__(self) -> None:
        super().__init__()
        self.events: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()

    def onCreate(self, session_id: fix.SessionID) -> None:  # noqa: N802 - QuickFIX's names
        pass

    def onLogon(self, session_id: fix.SessionID) -> None:  # noqa: N802 - QuickFIX's names
        self.events.put(("logon", session_id.toString()))

    def onLogout(self, session_id: fix.SessionID) -> None:  # noqa: N802 - QuickFIX's names
        self.events.put(("logout", session_id.toString()))

    def toAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802 - QuickFIX's names
        pass

    def fromAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802 - QuickFIX's names
        self.events.put(("admin", message.toString()))

    def toApp(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802 - QuickFIX's names
        pass

    def fromApp(self, message: fix.Message, session_id: fix.SessionID) -> None:  # noqa: N802 - QuickFIX's names
        self.events.put(("app", message.toString()))


class Events:
    """What the Recorder saw, drained from its queue by the asyncio side."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.seen: list[tuple[str, str]] = []

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.recorder.events.get_nowait())
            except queue.Empty:
                return

    def count(self, kind: str) -> int:
        self.drain()
        return sum(1 for k, _ in self.seen if k == kind)

    async def wait_for(self, kind: str, count: int, timeout_s: float) -> None:
        await until(
            lambda: self.count(kind) >= count,
            timeout_s=timeout_s,
            interval_s=0.02,
            what=f"{kind} #{count}",
        )

    def app_messages(self) -> list[Message]:
        self.drain()
        out = []
        for kind, text in self.seen:
            if kind == "app":
                message = fix44.decode(text.encode("latin-1"))
                assert isinstance(message, Message)
                out.append(message)
        return out

    def __str__(self) -> str:
        return str([(k, t[:60].replace("\x01", "|")) for k, t in self.seen[-10:]])


DICTIONARY = resources.files("fix_spec") / "dictionaries" / "FIX44.xml"


def settings_file(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "initiator.cfg"
    path.write_text(
        f"""\
[DEFAULT]
ConnectionType=initiator
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
HeartBtInt=1
ReconnectInterval=1
ResetOnLogon=Y
UseDataDictionary=Y
DataDictionary={DICTIONARY}
StartTime=00:00:00
EndTime=00:00:00
FileLogPath={tmp_path / "log"}

[SESSION]
BeginString={SESSION_ID[0]}
SenderCompID={SESSION_ID[1]}
TargetCompID={SESSION_ID[2]}
""",
        encoding="utf-8",
    )
    return path


def market_data_request(symbols: list[str]) -> fix.Message:
    request = MarketDataRequest
    typed = request(
        md_req_id="qf-1",
        subscription_request_type=SubscriptionRequestType.SNAPSHOT_AND_UPDATES,
        market_depth=10,
        md_update_type=MDUpdateType.INCREMENTAL_REFRESH,
        no_md_entry_types=[
            request.NoMDEntryTypes(md_entry_type=t)
            for t in (MDEntryType.BID, MDEntryType.OFFER, MDEntryType.TRADE)
        ],
        no_related_sym=[request.NoRelatedSym(symbol=s) for s in symbols],
        # QuickFIX rewrites the header when it sends; the codec needs one to encode.
        header=Header(
            sender_comp_id="MDFEED", target_comp_id="VENUE", msg_seq_num=1, sending_time=0
        ),
    )
    # Groups survive the trip into a quickfix.Message only through the dictionary.
    return fix44.CODEC.to_quickfix(typed, fix.DataDictionary(str(DICTIONARY)))


@dataclass
class Harness:
    """A venue, a QuickFIX initiator logged on to it and subscribed to two symbols."""

    venue: SimulatedVenue
    events: Events
    session: VenueSession


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    venue = SimulatedVenue(VenueConfig(port=0, seed=3, rate_ticks_per_s=1000))
    await venue.start()
    recorder = Recorder()
    settings = fix.SessionSettings(str(settings_file(tmp_path, venue.port)))
    initiator = fix.SocketInitiator(
        recorder, fix.MemoryStoreFactory(), settings, fix.FileLogFactory(settings)
    )
    try:
        initiator.start()
        events = Events(recorder)
        await events.wait_for("logon", 1, timeout_s=5)
        session = await venue.wait_logged_on(2)
        await asyncio.to_thread(
            fix.Session.sendToTarget,
            market_data_request(["AAPL", "MSFT"]),
            fix.SessionID(*SESSION_ID),
        )
        yield Harness(venue, events, session)
    finally:
        await asyncio.to_thread(initiator.stop)
        await venue.stop()


async def test_quickfix_streams_stays_up_on_heartbeats_and_reconnects(harness: Harness) -> None:
    venue, events, session = harness.venue, harness.events, harness.session
    assert session.heartbeat_interval == 1
    await asyncio.sleep(1.5)
    venue.pause_stream()
    # Quiet for 3 heartbeat intervals: only heartbeats keep QuickFIX from timing out.
    await asyncio.sleep(3.0)
    assert events.count("logout") == 0, events
    assert venue.session() is session
    # The venue's traffic while idle: heartbeats, and a TestRequest when QuickFIX's own
    # heartbeat comes late (its timer ticks once a second, so at HeartBtInt=1 they
    # arrive up to two seconds apart); either one resets the idle clock.
    assert session.stats.heartbeats_sent >= 1
    assert session.stats.heartbeats_sent + session.stats.test_requests_sent >= 2
    assert session.stats.received_by_type.get("0", 0) >= 2  # QuickFIX's heartbeats

    messages = events.app_messages()
    snapshots = [m for m in messages if isinstance(m, MarketDataSnapshotFullRefresh)]
    assert sorted(m.symbol or "" for m in snapshots) == ["AAPL", "MSFT"]
    assert all(len(m.no_md_entries) == 20 for m in snapshots)
    xs = [m for m in messages if isinstance(m, MarketDataIncrementalRefresh)]
    entries = [e for m in xs for e in m.no_md_entries]
    assert {e.symbol for e in entries} == {"AAPL", "MSFT"}
    # QuickFIX accepted every entry the venue sent: none rejected, none lost.
    assert len(entries) == session.stats.entries_sent > 500
    assert session.stats.rejects_received == 0
    assert session.stats.decode_errors == 0

    await venue.stop()
    await events.wait_for("logout", 1, timeout_s=5)
    await venue.start()
    await events.wait_for("logon", 2, timeout_s=8)
    again = await venue.wait_logged_on(2)
    assert again is not session
    assert venue.stats.logons == 2


async def test_quickfix_meets_malformed_messages_and_the_session_survives(
    harness: Harness,
) -> None:
    venue, events, session = harness.venue, harness.events, harness.session
    await asyncio.sleep(0.5)
    venue.pause_stream()
    await asyncio.sleep(0.3)
    entry = [(279, "0"), (269, "0"), (55, "AAPL"), (270, "1.00"), (271, "100")]

    # QuickFIX 1.16 passes a NaN price through its dictionary check to fromApp: the
    # ingest's own decoding has to catch it.
    nan_entry = [*entry[:3], (270, "NaN"), entry[4]]
    venue.send_message("X", incremental_refresh_fields("qf-1", [nan_entry]))

    def nan_seen() -> bool:
        events.drain()
        return any("\x01270=NaN\x01" in text for kind, text in events.seen if kind == "app")

    await until(
        nan_seen,
        timeout_s=3,
        interval_s=0.02,
        what="the NaN price in fromApp",
    )
    nan_text = next(t for k, t in events.seen if k == "app" and "270=NaN" in t)
    with pytest.raises(FixDecodeError) as nan_error:
        fix44.decode(nan_text.encode("latin-1"))
    assert nan_error.value.tag == 270

    # A group count that does not match the entries: QuickFIX rejects it (35=3).
    venue.send_message("X", [(262, "qf-1"), (268, "2"), *entry])
    # A broken CheckSum: QuickFIX drops the frame, sees the gap at the next message (a
    # heartbeat within a second) and asks for it again; the venue gap-fills.
    venue.send_message("X", incremental_refresh_fields("qf-1", [entry]), checksum=0)
    await until(
        lambda: session.stats.resend_requests_received >= 1 and session.stats.rejects_received >= 1,
        timeout_s=5,
        interval_s=0.05,
        what=lambda: f"a ResendRequest and a Reject: {session.stats}",
    )
    assert session.stats.rejects_received == 1
    assert session.stats.sent_by_type.get("4") == 1  # the SequenceReset-GapFill

    venue.resume_stream()
    before = session.stats.entries_sent
    await asyncio.sleep(1.0)
    assert session.stats.entries_sent > before
    assert events.count("logout") == 0, events
    assert venue.session() is session
