"""Benchmarks: run with `make bench` (pytest-benchmark). Not part of `make test`.

Figures are reported as ratios against peers or limits measured in the same run
(docs/architecture.md, "Principles": 7. measured, not assumed): these machines are shared
and noisy, so absolute numbers move from run to run.

Benchmarks measure the installed build, as the tests do (pytest's ``--import-mode=
importlib``, pyproject.toml), and so do the processes they start (bench.harness.children
runs them with ``-P``): the session stops before the first benchmark when a module the
build compiles (setup.py; ``children.compiled_modules``) is the pure-Python source rather
than the compiled module, or when ``bench.harness`` is this checkout's rather than the
installed one.
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

import pytest

# pytest imports this file as ``bench.conftest`` and makes ``bench`` a namespace of this
# directory alone, where ``bench.harness`` would then be found in the source tree: look in
# the installed ``bench`` (`mdfeed bench`'s package) first. The benchmark files are still
# found here: pytest imports them by path.
_installed = importlib.machinery.PathFinder.find_spec("bench")
if _installed is not None and _installed.submodule_search_locations is not None:
    sys.modules["bench"].__path__ = [
        *_installed.submodule_search_locations,
        *sys.modules["bench"].__path__,
    ]

from bench.harness import children  # noqa: E402 - after the path above

_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    try:
        children.check_compiled()
    except RuntimeError as exc:
        raise pytest.UsageError(str(exc)) from None
    harness = Path(str(children.__file__)).resolve()
    if harness.is_relative_to(_HERE):
        raise pytest.UsageError(
            f"benchmarks must use the installed bench.harness (`make install`), not {harness}"
        )
