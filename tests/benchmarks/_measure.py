"""Timing helpers for the performance benchmarks: interleaved rounds, paired ratios, checks.

The machine is shared, so absolute times drift while a benchmark runs. Every figure
that has a target is therefore measured *interleaved* with its baseline: each round
times every variant once, in a rotating order, and a ratio is the median of the
per-round ratios (a slow second hits both sides of a pair alike).

Figures go into ``benchmark.extra_info`` (kept by ``--benchmark-json``) in one shape
that ``scripts/performance_report.py`` renders::

    {"section": "...", "params": {...}, "figures": {...},
     "checks": [{"what": "...", "value": 1.12, "op": "<=", "target": 1.25, "met": true}]}

Tests record every figure and check first and assert afterwards, so a missed target
still leaves its numbers in the JSON.
"""

from __future__ import annotations

import itertools
import math
import operator
import os
import resource
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
}


def interleaved(
    benchmark: Any,
    variants: Mapping[str, Callable[[int], object]],
    *,
    rounds: int,
    warmup: int = 3,
) -> dict[str, list[float]]:
    """Seconds per call of each variant, ``rounds`` samples each, measured interleaved.

    Each variant is called with the round number (to pick a query vector, say). Runs
    under ``benchmark.pedantic`` so pytest-benchmark reports one round of all
    variants; with ``--benchmark-disable`` the same rounds run without it.
    """
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    counter = itertools.count()
    clock = time.perf_counter

    def one_round() -> None:
        index = next(counter)
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            call = variants[name]
            started = clock()
            call(index)
            samples[name].append(clock() - started)

    if getattr(benchmark, "disabled", False):
        # pedantic() calls the target once when disabled: run every round in that call.
        def every_round() -> None:
            for _ in range(warmup + rounds):
                one_round()

        benchmark.pedantic(every_round)
    else:
        benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=warmup, iterations=1)
    return {name: values[-rounds:] for name, values in samples.items()}


def per_call(function: Callable[[], object], *, repeat: int) -> float:
    """Seconds per call of a fast function: the call repeated ``repeat`` times, averaged."""
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - started) / repeat


def median(values: list[float]) -> float:
    return float(np.median(values))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of per-round ratios (both lists measured interleaved, same length)."""
    return float(np.median(np.asarray(numerator) / np.asarray(denominator)))


def us(seconds: float) -> float:
    """Microseconds, rounded for the report."""
    return round(seconds * 1e6, 1)


def ms(seconds: float) -> float:
    """Milliseconds, rounded for the report."""
    return round(seconds * 1e3, 3)


class Report:
    """Collects one benchmark's figures and checks into ``benchmark.extra_info``."""

    def __init__(self, benchmark: Any, section: str, **params: Any) -> None:
        self._info = benchmark.extra_info
        self._info["section"] = section
        self._info["params"] = params
        self._info["figures"] = {}
        self._info["checks"] = []

    def figure(self, name: str, value: Any) -> None:
        """Record a figure (a number, or a small JSON-able structure)."""
        if isinstance(value, float):
            value = round(value, 6)
        self._info["figures"][name] = value

    def check(self, what: str, value: float, op: str, target: float) -> None:
        """Record whether ``value op target`` holds (asserted by :meth:`assert_checks`)."""
        met = bool(_OPERATORS[op](value, target)) and not math.isnan(value)
        self._info["checks"].append(
            {"what": what, "value": round(value, 6), "op": op, "target": target, "met": met}
        )

    def assert_checks(self) -> None:
        """Fail the test listing every missed target (after everything was recorded)."""
        missed = [c for c in self._info["checks"] if not c["met"]]
        assert not missed, "targets missed: " + "; ".join(
            f"{c['what']} = {c['value']} (target {c['op']} {c['target']})" for c in missed
        )


def rss_mib() -> float:
    """The current resident set size of this process, in MiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return math.nan


def peak_rss_mib() -> float:
    """The peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment (benchmark scale knobs)."""
    raw = os.environ.get(name)
    return default if raw is None or not raw.strip() else int(raw)
