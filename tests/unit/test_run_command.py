"""`mdfeed run` on the embedded default: venue, FIX session and bus in one process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from mdfeed.stack.scratch import free_port


def test_run_shows_ticks_flowing_and_stops_cleanly(tmp_path: Path) -> None:
    port = str(free_port())
    env = {
        **os.environ,
        "MDFEED__VENUE__PORT": port,
        "MDFEED__FIX_SESSION__PORT": port,
        "MDFEED__FIX_SESSION__LOG_DIR": str(tmp_path / "fix"),
        "MDFEED__FIX_SESSION__HEARTBEAT_INTERVAL_S": "5",
    }
    mdfeed = Path(sys.executable).parent / "mdfeed"
    result = subprocess.run(
        [str(mdfeed), "run", "--duration", "5"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("venue ")]
    assert lines, result.stderr[-2000:]
    # After logon the status line reports FIX messages and ticks per second and prices.
    rates = [
        (float(m.group(1).replace(",", "")), float(m.group(2).replace(",", "")))
        for ln in lines
        if "fix logged on" in ln and (m := re.search(r"([\d,]+) msgs/s in, ([\d,]+) ticks/s", ln))
    ]
    assert any(msgs > 0 and ticks > 0 for msgs, ticks in rates), lines
    assert re.search(r"50 symbols \| AAPL \d+\.\d\d/\d+\.\d\d", lines[-1]), lines[-1]
    assert "rejected 0" in lines[-1]
    assert "stopping" in result.stderr
