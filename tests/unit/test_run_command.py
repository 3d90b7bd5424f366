"""`mdfeed run` on the embedded default: venue, FIX session and bus in one process."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from polling import until_sync

from mdfeed.stack.scratch import free_port


def run_embedded(tmp_path: Path, seconds: int, **settings: str) -> tuple[list[str], str]:
    """`mdfeed run --duration seconds` on its own ports with ``MDFEED__...`` settings; its
    status lines and its whole stderr."""
    port = str(free_port())
    env = {
        **os.environ,
        "MDFEED__VENUE__PORT": port,
        "MDFEED__FIX_SESSION__PORT": port,
        "MDFEED__FIX_SESSION__LOG_DIR": str(tmp_path / "fix"),
        "MDFEED__METRICS__PORT": str(free_port()),
        **{f"MDFEED__{key}": value for key, value in settings.items()},
    }
    mdfeed = Path(sys.executable).parent / "mdfeed"
    result = subprocess.run(
        [str(mdfeed), "run", "--duration", str(seconds)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("venue ")]
    return lines, result.stderr


def test_run_shows_ticks_flowing_and_stops_cleanly(tmp_path: Path) -> None:
    lines, stderr = run_embedded(tmp_path, 5, FIX_SESSION__HEARTBEAT_INTERVAL_S="5")
    assert lines, stderr[-2000:]
    # After logon the status line reports FIX messages and ticks per second and prices.
    rates = [
        (float(m.group(1).replace(",", "")), float(m.group(2).replace(",", "")))
        for ln in lines
        if "fix logged on" in ln and (m := re.search(r"([\d,]+) msgs/s in, ([\d,]+) ticks/s", ln))
    ]
    assert any(msgs > 0 and ticks > 0 for msgs, ticks in rates), lines
    assert re.search(r"50 symbols \| AAPL \d+\.\d\d/\d+\.\d\d", lines[-1]), lines[-1]
    assert "rejected 0" in lines[-1]
    assert "book faults" not in lines[-1]
    assert "stopping" in stderr


def test_run_with_mismatched_book_models_shows_the_book_faults(tmp_path: Path) -> None:
    # The venue keys its book by position (level 1 moved in place); the session reads it by
    # price: the books go wrong, and the status line says so instead of showing them plain.
    lines, stderr = run_embedded(
        tmp_path, 6, VENUE__BOOK_MODEL="position", FIX_SESSION__BOOK_MODEL="price"
    )
    assert re.search(r"book faults: .*\d+ flagged", lines[-1]), lines[-1]
    # Logged once per symbol per spell of invalidity, naming the symbol and the reason.
    assert re.search(r"WARNING mdfeed\.fix_session: [A-Z]+: book fault \w+", stderr)


def test_run_serves_ticks_over_grpc_and_mqtt_and_chat(tmp_path: Path) -> None:  # noqa: PLR0915 - one end-to-end story
    """`mdfeed run` end to end: `mdfeed watch`, `mdfeed chat` and an MQTT subscriber."""
    from proto import mdfeed_pb2 as pb

    venue, grpc_port, mqtt_port = str(free_port()), str(free_port()), free_port()
    http_port = free_port()
    env = {
        **os.environ,
        "MDFEED__VENUE__PORT": venue,
        "MDFEED__FIX_SESSION__PORT": venue,
        "MDFEED__FIX_SESSION__LOG_DIR": str(tmp_path / "fix"),
        "MDFEED__FANOUT__GRPC_PORT": grpc_port,
        "MDFEED__MQTT__PORT": str(mqtt_port),
        "MDFEED__STORE__SQLITE_PATH": str(tmp_path / "store.sqlite3"),
        "MDFEED__DATAFEED__HTTP_PORT": str(http_port),
        "MDFEED__METRICS__PORT": str(free_port()),
        "MDFEED__DATAFEED__WEB_ROOT": str(Path(__file__).resolve().parents[2] / "web"),
    }
    mdfeed = str(Path(sys.executable).parent / "mdfeed")
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        run = subprocess.Popen(
            [mdfeed, "run", "--duration", "40"], stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=tmp_path,
        )  # fmt: skip

    def serving() -> bool:
        text = log.read_text()
        if "fix logged on" in text and "MQTT:" in text:
            return True
        assert run.poll() is None, text[-3000:]
        return False

    try:
        until_sync(
            serving,
            timeout_s=30,
            interval_s=0.2,
            what=lambda: f"the FIX logon and MQTT:\n{log.read_text()[-3000:]}",
        )
        address = f"127.0.0.1:{grpc_port}"
        client = [mdfeed]
        watch = subprocess.run(
            [*client, "watch", "AAPL", "MSFT", "--count", "20", "--address", address],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert watch.returncode == 0, watch.stderr
        lines = watch.stdout.splitlines()
        assert len(lines) >= 20
        assert all(re.match(r"(AAPL|MSFT) +#\d+ +(bid|trade)", ln) for ln in lines), lines
        assert lines[0].endswith("[snapshot]")
        seqs: dict[str, list[int]] = {}
        for ln in lines:
            symbol, seq = ln.split()[:2]
            seqs.setdefault(symbol, []).append(int(seq[1:]))
        assert all(s == sorted(set(s)) for s in seqs.values()), seqs  # per-symbol order

        chat = subprocess.run(
            [*client, "chat", "lobby", "--user", "ann", "--post", "hello", "--address", address],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert chat.returncode == 0, chat.stderr
        assert "[lobby #1] ann: hello" in chat.stdout
        replay = subprocess.run(
            [*client, "chat", "lobby", "--after-seq", "0", "--count", "1", "--address", address],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert replay.stdout.splitlines() == ["[lobby #1] ann: hello"], replay

        # Bars from the aggregator, through the datafeed's UDF /history, and the page.
        base = f"http://127.0.0.1:{http_port}"
        history = _get_json(
            f"{base}/history?symbol=AAPL&resolution=1S&from=0&to={int(time.time()) + 60}"
        )
        assert history["s"] == "ok", history
        times = history["t"]
        assert isinstance(times, list)
        assert len(times) >= 1
        assert times == sorted(times)
        with urllib.request.urlopen(f"{base}/", timeout=10) as page:
            assert b"<html" in page.read().lower()

        payload = _first_message(mqtt_port, "md/AAPL")
        assert payload is not None, "no quote on md/AAPL"
        assert pb.Tick.FromString(payload).symbol == "AAPL"
        # Bars go from the aggregator through the bus's bar topic to the MQTT bridge.
        payload = _first_message(mqtt_port, "bars/AAPL/1s")
        assert payload is not None, "no bar on bars/AAPL/1s"
        bar = pb.Bar.FromString(payload)
        assert (bar.symbol, bar.resolution) == ("AAPL", pb.RESOLUTION_1S)
    finally:
        run.terminate()
        run.wait(30)
    assert run.returncode == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert re.search(r"gRPC \d+ clients \| MQTT [\d,]+ quotes/s \| chat 1 posts", text), text[
        -2000:
    ]


def _first_message(port: int, topic: str, timeout_s: float = 10.0) -> bytes | None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[bytes] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="run-test")
    sub.on_message = lambda _c, _u, message: got.append(bytes(message.payload))
    sub.connect("127.0.0.1", port)
    sub.subscribe(topic, qos=0)
    sub.loop_start()
    try:
        deadline = time.monotonic() + timeout_s
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    return got[0] if got else None


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        data: dict[str, object] = json.loads(reply.read())
    return data


def _pipeline_env(tmp_path: Path) -> dict[str, str]:
    """The embedded config on free ports; the data directory is ``tmp_path/.mdfeed``."""
    venue = str(free_port())
    return {
        **os.environ,
        "MDFEED__VENUE__PORT": venue,
        "MDFEED__FIX_SESSION__PORT": venue,
        "MDFEED__FIX_SESSION__HEARTBEAT_INTERVAL_S": "5",
        "MDFEED__FANOUT__GRPC_PORT": str(free_port()),
        "MDFEED__MQTT__PORT": str(free_port()),
        "MDFEED__DATAFEED__HTTP_PORT": str(free_port()),
        "MDFEED__METRICS__PORT": str(free_port()),
        "MDFEED__DATAFEED__WEB_ROOT": str(Path(__file__).resolve().parents[2] / "web"),
    }


def _first_bar_event(url: str, since_s: int, timeout_s: float) -> dict[str, object] | None:
    """The first ``bar`` event of the SSE stream at ``url`` with ``time >= since_s``."""
    deadline = time.monotonic() + timeout_s
    with urllib.request.urlopen(url, timeout=timeout_s) as stream:
        while time.monotonic() < deadline:
            line = stream.readline()
            if not line:
                return None
            if line.startswith(b"data: "):
                event: dict[str, object] = json.loads(line[len(b"data: ") :])
                time_s = event["time"]
                assert isinstance(time_s, int)
                if time_s >= since_s:
                    return event
    return None


def test_a_second_run_on_the_same_data_directory_has_bars(tmp_path: Path) -> None:
    """`make run` twice: the in-process bus starts empty, the SQLite checkpoints do not.

    The second run's ticks start again at offset 0 of a new bus; its bars must reach the
    store (/history) and the chart (/stream) at once, not after the offsets of the first
    run's checkpoints are passed.
    """
    mdfeed = str(Path(sys.executable).parent / "mdfeed")
    first = subprocess.run(
        [mdfeed, "run", "--duration", "20"], capture_output=True, text=True,
        env=_pipeline_env(tmp_path), cwd=tmp_path, timeout=90, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    assert "fix logged on" in first.stderr, first.stderr[-3000:]
    assert (tmp_path / ".mdfeed" / "mdfeed.sqlite3").is_file()

    env = _pipeline_env(tmp_path)
    base = f"http://127.0.0.1:{env['MDFEED__DATAFEED__HTTP_PORT']}"
    log = tmp_path / "second.log"
    # The first run's last ticks may fall in the current second: its bars are before this.
    started_s = math.ceil(time.time())
    with log.open("wb") as out:
        second = subprocess.Popen(
            [mdfeed, "run", "--duration", "60"], stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=tmp_path,
        )  # fmt: skip

    def logged_on() -> bool:
        text = log.read_text()
        if "fix logged on" in text:
            return True
        assert second.poll() is None, text[-3000:]
        return False

    try:
        until_sync(
            logged_on,
            timeout_s=30,
            interval_s=0.2,
            what=lambda: f"the FIX logon:\n{log.read_text()[-3000:]}",
        )
        # Well before the second run's offsets reach the first run's (~20 s of ticks).
        deadline = time.monotonic() + 10
        query = f"symbol=AAPL&resolution=1S&from={started_s}&to={int(time.time()) + 60}"
        while True:
            history = _get_json(f"{base}/history?{query}")
            if history["s"] == "ok":
                break
            assert time.monotonic() < deadline, (history, log.read_text()[-3000:])
            time.sleep(0.25)
        times = history["t"]
        assert isinstance(times, list)
        assert times, history
        assert min(times) >= started_s, times
        event = _first_bar_event(f"{base}/stream?symbol=AAPL&resolution=1S", started_s, 10.0)
        assert event is not None, "no bar of the second run on /stream"
    finally:
        second.terminate()
        second.wait(30)
    assert second.returncode == 0, log.read_text()[-3000:]
    said = re.search(r"bus started anew.*offsets of \d+ checkpoints? were dropped", log.read_text())
    assert said, log.read_text()[-3000:]
    assert "bus started anew" not in first.stderr
