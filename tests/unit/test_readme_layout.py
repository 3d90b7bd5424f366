"""The README's "Where things live" table names paths that exist, and every top-level
folder of the project is in it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _table() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Where things live")
    return text[start : text.index("\n## ", start + 1)]


def _tracked_folders() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    return {name.split("/")[0] for name in files if "/" in name and not name.startswith(".")}


def test_every_path_the_table_names_exists() -> None:
    table = _table()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) >= 10
    missing = []
    for row in rows:
        first = row.split("|")[1]
        for path in re.findall(r"`([^`]+)`", first):
            if not (ROOT / path).exists():
                missing.append(path)
        # Files named in the description are relative to the row's folder.
        folders = re.findall(r"`([^`]+/)`", first)
        for name in re.findall(r"`([a-z_/]+\.py)`", row.split("|")[2]):
            if folders and not any((ROOT / folder / name).exists() for folder in folders):
                missing.append(f"{folders[0]}{name}")
    assert not missing, f"README names paths that do not exist: {missing}"


def test_every_top_level_folder_is_in_the_table() -> None:
    table = _table()
    absent = sorted(f for f in _tracked_folders() if f"`{f}/" not in table)
    assert not absent, f"top-level folders missing from the README table: {absent}"
