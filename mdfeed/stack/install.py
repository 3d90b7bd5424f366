"""Cached installs: Maven-resolved class paths for the JVM servers, Mosquitto from apt."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "InstallError",
    "install_jars",
    "install_mosquitto",
    "jars_installed",
    "pom_digest",
]

MARKER_NAME = ".installed-pom.sha256"
MOSQUITTO_PACKAGES = ("mosquitto", "mosquitto-clients")

# One Maven at a time: concurrent runs may race on the same ~/.m2 downloads.
_MAVEN_LOCK = threading.Lock()


class InstallError(Exception):
    """An install step failed; the message says what to do about it."""


def pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def jars_installed(pom: Path, lib_dir: Path) -> bool:
    """True when ``lib_dir`` was filled from exactly this pom (its hash is in the marker)."""
    try:
        marker = (lib_dir / MARKER_NAME).read_text(encoding="ascii").strip()
    except OSError:
        return False
    return marker == pom_digest(pom)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def install_jars(pom: Path, lib_dir: Path, say: Callable[[str], None]) -> bool:
    """Copy the pom's dependency jars into ``lib_dir`` unless already there.

    Returns True when it installed, False when the cached install was current.  The new
    jars go to a sibling directory first, so an interrupted install never leaves a
    half-filled lib/ behind a valid marker.
    """
    if jars_installed(pom, lib_dir):
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise InstallError(
            "Maven (mvn) is not on PATH; it resolves the server jars from Maven Central "
            "(Debian/Ubuntu: apt-get install -y maven)"
        )
    say("installing jars…")
    started = time.monotonic()
    parent = lib_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".install-", dir=parent) as tmp:
        work = Path(tmp)
        shutil.copy2(pom, work / "pom.xml")
        staged = work / "lib"
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staged}",
        ]
        with _MAVEN_LOCK:
            result = subprocess.run(
                argv,
                cwd=work,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
            )
        if result.returncode != 0 or not any(staged.glob("*.jar")):
            raise InstallError(
                f"`mvn dependency:copy-dependencies` failed (exit {result.returncode}):\n"
                + _tail(result.stdout + "\n" + result.stderr)
            )
        (staged / MARKER_NAME).write_text(pom_digest(pom) + "\n", encoding="ascii")
        if lib_dir.exists():
            shutil.rmtree(lib_dir)
        staged.rename(lib_dir)
    jars = list(lib_dir.glob("*.jar"))
    size_mb = sum(jar.stat().st_size for jar in jars) / 1e6
    say(f"installed {len(jars)} jars ({size_mb:.0f} MB) in {time.monotonic() - started:.1f} s")
    return True


def install_mosquitto(binary: Path, say: Callable[[str], None]) -> bool:
    """Install the distribution's mosquitto packages when ``binary`` is missing.

    Returns True when it installed.  Needs root (apt-get); says so when it fails.
    """
    if binary.exists():
        return False
    apt = shutil.which("apt-get")
    if apt is None:
        raise InstallError(
            f"{binary} is missing and apt-get is not available: install the mosquitto "
            "broker with your package manager"
        )
    packages = " ".join(MOSQUITTO_PACKAGES)
    say(f"{binary} not found: installing apt packages {packages} (apt-get update + install)…")
    env = dict(os.environ)
    env["DEBIAN_FRONTEND"] = "noninteractive"
    started = time.monotonic()
    for argv in ([apt, "update"], [apt, "install", "-y", *MOSQUITTO_PACKAGES]):
        result = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise InstallError(
                f"`{' '.join(argv)}` failed (exit {result.returncode}; it needs root):\n"
                + _tail(result.stdout + "\n" + result.stderr)
            )
    if not binary.exists():
        raise InstallError(f"apt-get installed {packages} but {binary} is still missing")
    say(f"installed {packages} in {time.monotonic() - started:.1f} s")
    return True
