"""mdfeed: low-latency market data distribution.

This package is the composition root: the command line (`mdfeed.cli`), configuration
(`mdfeed.config`) and the local stack of real servers (`mdfeed.stack`). The components
live in their own top-level packages: `proto`, `fix_spec`, `fix_session`, `fanout`,
`storage` and `ohlcv`.
"""

__version__ = "0.1.0"
