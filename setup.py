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

from setuptools import Extension, setup

# The ingest's native core (fix_session/tick_core.c): raw W/X -> books -> encoded Ticks. C,
# not compiled Python: the README's "Why a native core" has the measurement behind it.
native = [
    Extension(
        "fix_session.tick_core",
        ["fix_session/tick_core.c"],
        extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    )
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
