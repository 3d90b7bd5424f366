"""Benchmarks: run with `make bench` (pytest-benchmark). Not part of `make test`.

Figures are reported as ratios against peers or limits measured in the same run: these
machines are shared and noisy, so absolute numbers move from run to run.
"""
