"""Build hook: compile the hot loops with mypyc when it is available.

The FIX codec, the market data fast decoder, the bar aggregator and the tick path's
normalizer (its books, its Tick encoder and the MdMessage columns it reads) are plain,
strictly typed Python; mypyc turns them into C extensions at install time (about 1.5x
faster decoding, 2x faster aggregation).
With MDFEED_PURE_PYTHON=1, or without mypy in the build environment, the same modules
install as pure Python.
"""

import os

from setuptools import setup

ext_modules = []
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
                "fix_session/books.py",
                "fix_session/normalizer.py",
                "fix_session/tick_encoding.py",
            ],
            opt_level="3",
        )

setup(ext_modules=ext_modules)
