"""Build hook: compile the hot loops with mypyc when it is available.

The FIX codec, the market data fast decoder, the bar aggregator and the tick path's
normalizer (its books, its Tick encoder and the MdMessage columns it reads) are plain,
strictly typed Python; mypyc turns them into C extensions at install time (about 1.5x
faster decoding, 2x faster aggregation).
With MDFEED_PURE_PYTHON=1, or without mypy in the build environment, the same modules
install as pure Python. The ingest's native core (fix_session/tick_core.c) is C and is
always built.
"""

import os
from pathlib import Path

from setuptools import Extension, setup

# The QuickFIX C++ headers fix_session/quickfix_feed.cpp is compiled against: those of the
# quickfix version pyproject.toml pins, from its source distribution (`make install` gets
# it from PyPI into .build/ and sets this variable).
QUICKFIX_INCLUDE = os.environ.get("MDFEED_QUICKFIX_INCLUDE", "")
if not Path(QUICKFIX_INCLUDE, "Application.h").is_file():
    raise SystemExit(
        "mdfeed: MDFEED_QUICKFIX_INCLUDE must name the C++ folder of the quickfix source "
        f"distribution (got {QUICKFIX_INCLUDE!r}); `make install` fetches it"
    )

# The ingest's native parts, C and C++, not compiled Python: the README's "Why a native
# core" has the measurements behind them. tick_core: raw W/X -> books -> encoded Ticks, and
# the inbox; quickfix_feed: the QuickFIX session whose C++ Application fills that inbox.
native = [
    Extension(
        "fix_session.tick_core",
        ["fix_session/tick_core.c"],
        include_dirs=["fix_session"],
        extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    ),
    Extension(
        "fix_session.quickfix_feed",
        ["fix_session/quickfix_feed.cpp"],
        include_dirs=["fix_session", QUICKFIX_INCLUDE],
        language="c++",
        extra_compile_args=["-O2", "-std=c++17", "-Wno-deprecated", "-Wno-deprecated-declarations"],
    ),
]
ext_modules: list[Extension] = []
if os.environ.get("MDFEED_PURE_PYTHON") != "1":
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("mdfeed: mypyc not available, installing the hot loops as pure Python")
    else:
        ext_modules = mypycify(
            [
                "fix_spec/codec.py",
                "fix_spec/md_decoder.py",
                "ohlcv/bars.py",
                "fix_spec/md_columns.py",
                "fix_session/normalizer.py",
                "fix_session/tick_encoding.py",
            ],
            opt_level="3",
        )

setup(ext_modules=[*native, *ext_modules])
