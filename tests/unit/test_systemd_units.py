"""The systemd units of systemd/: systemd's own checks, the sandbox score, our conventions.

``systemd-analyze verify`` loads each unit offline (no running systemd needed) and warns
about unknown keys, bad values and missing units; it also requires ExecStart's binary to
exist, so the units are checked from a copy whose ExecStart points at this virtualenv's
``mdfeed``. ``systemd-analyze security --offline=true`` rates each service's sandbox
(0 = locked down, 10 = exposed); ours must stay at 2.5 or below.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mdfeed.cli import build_parser
from mdfeed.kernel.metrics import DEFAULT_PORTS

UNITS_DIR = Path(__file__).resolve().parents[2] / "systemd"
INSTALLED_MDFEED = "/opt/mdfeed/venv/bin/mdfeed"
#: unit -> (mdfeed subcommand, metrics port, per-service env file name)
SERVICES = {
    "mdfeed-fix-session.service": ("ingest", 9461, "fix-session"),
    "mdfeed-fanout.service": ("fanout", 9462, "fanout"),
    "mdfeed-ohlcv.service": ("aggregate", 9463, "ohlcv"),
    "mdfeed-datafeed.service": ("datafeed", 9464, "datafeed"),
}
TARGET = "mdfeed.target"
MAX_EXPOSURE = 2.5


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze") or (
        "/usr/bin/systemd-analyze" if Path("/usr/bin/systemd-analyze").exists() else None
    )
    if found is None:
        pytest.fail(
            "systemd-analyze not found: install the 'systemd' Debian package "
            "(apt-get install systemd) to check the units of systemd/"
        )
    return found


def settings(unit: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every value, in order (systemd keys repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (UNITS_DIR / unit).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: str, section: str, key: str) -> str:
    values = settings(unit).get(section, {}).get(key, [])
    assert len(values) == 1, f"{unit}: [{section}] {key}= set {len(values)} times: {values}"
    return values[0]


def test_the_unit_files_are_the_ones_expected() -> None:
    found = {p.name for p in UNITS_DIR.iterdir() if p.suffix in {".service", ".target"}}
    assert found == {*SERVICES, TARGET}


def verify(directory: Path) -> subprocess.CompletedProcess[str]:
    units = sorted(str(p) for p in directory.iterdir())
    return subprocess.run(
        [systemd_analyze(), "verify", *units],
        capture_output=True, text=True, timeout=120, check=False, cwd=directory,
    )  # fmt: skip


def copy_with_existing_mdfeed(directory: Path) -> None:
    mdfeed = Path(sys.executable).parent / "mdfeed"
    assert mdfeed.is_file(), f"{mdfeed}: the virtualenv has no mdfeed script (pip install -e .)"
    for unit in (*SERVICES, TARGET):
        text = (UNITS_DIR / unit).read_text(encoding="utf-8")
        (directory / unit).write_text(text.replace(INSTALLED_MDFEED, str(mdfeed)), "utf-8")


def our_warnings(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if "mdfeed" in line]


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    copy_with_existing_mdfeed(tmp_path)
    result = verify(tmp_path)
    assert our_warnings(result) == [], result.stderr
    assert result.returncode == 0, result.stderr


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    # The check above passes only because the units are right, not because verify is mute.
    copy_with_existing_mdfeed(tmp_path)
    unit = tmp_path / "mdfeed-fanout.service"
    unit.write_text(unit.read_text().replace("WatchdogSec=", "WatchdogSecs="), "utf-8")
    assert any("WatchdogSecs" in line for line in our_warnings(verify(tmp_path)))


@pytest.mark.parametrize("unit", SERVICES)
def test_security_exposure_is_at_most_2_5(unit: str) -> None:
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", "--no-pager", str(UNITS_DIR / unit)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    found = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", result.stdout)
    assert found is not None, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


@pytest.mark.parametrize("unit", SERVICES)
def test_service_conventions(unit: str) -> None:
    command, port, env_name = SERVICES[unit]
    service = settings(unit)["Service"]
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert re.fullmatch(r"\d+s", one(unit, "Service", "WatchdogSec"))
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Service", "RestartSec")
    assert one(unit, "Service", "TimeoutStopSec")
    assert one(unit, "Unit", "StartLimitIntervalSec")
    assert one(unit, "Unit", "StartLimitBurst")
    assert service["EnvironmentFile"] == ["/etc/mdfeed/mdfeed.env", f"-/etc/mdfeed/{env_name}.env"]
    environment = service["Environment"]
    # The port is the command's own default (metrics.port = 0), so a metrics.port in the
    # config file still applies; the units do not pin it.
    assert not any(e.startswith("MDFEED__METRICS__PORT=") for e in environment)
    assert DEFAULT_PORTS[command] == port
    assert "MDFEED__LOG__FORMAT=json" in environment
    assert one(unit, "Service", "DynamicUser") == "yes"
    assert one(unit, "Service", "MemoryDenyWriteExecute") == "yes"
    assert one(unit, "Service", "IPAddressDeny") == "any"
    assert one(unit, "Unit", "PartOf") == TARGET
    assert one(unit, "Install", "WantedBy") == TARGET


def test_every_service_has_a_metrics_port_of_its_own() -> None:
    ports = [port for _, port, _ in SERVICES.values()]
    assert len(set(ports)) == len(ports)


def test_the_target_enables_every_service() -> None:
    assert one(TARGET, "Install", "WantedBy") == "multi-user.target"
    assert sorted(one(TARGET, "Install", "Also").split()) == sorted(SERVICES)


@pytest.mark.parametrize("unit", SERVICES)
def test_exec_start_runs_an_existing_mdfeed_command(unit: str) -> None:
    argv = shlex.split(one(unit, "Service", "ExecStart"))
    assert argv == [INSTALLED_MDFEED, SERVICES[unit][0], "--config", "${MDFEED_CONFIG}"]
    listed = re.findall(r"^ {4}(\S+)", build_parser().format_help(), re.MULTILINE)
    assert argv[1] in listed, f"{unit}: 'mdfeed {argv[1]}' is not in 'mdfeed --help'"
    args = build_parser().parse_args([argv[1], "--config", "/etc/mdfeed/mdfeed.toml"])
    assert args.config == "/etc/mdfeed/mdfeed.toml"
