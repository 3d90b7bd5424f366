"""The kernel: what every mdfeed component shares, importing none of them.

``config`` (the frozen typed configuration), ``bus`` (the tick, bar and chat bus and its
adapters), ``lifecycle`` (start/stop and ``async with``), ``clock`` (the one time seam),
``metrics`` (histograms and the Prometheus endpoint), ``entitlements`` (users, tokens,
symbols and rooms) and ``chat`` (the chat port and its errors, shared by the fanout that
implements it and the datafeed that uses it). A test checks that nothing here imports a
component or the CLI.
"""
