"""Start-up: ``import ragguard`` and ``ragguard --help`` in fresh interpreters.

Run with ``pytest tests/benchmarks/test_import_bench.py``. Each sample is a new
``python -c`` process; the figures are its wall time and its user + system CPU time
(``os.wait4``), min and median over the samples. On a loaded machine wall time includes
waiting for a core; CPU time does not, so the check is on CPU time, with a generous
margin over the 0.3 s target (measured ~0.28 s user CPU on the 2-core development
machine after the server clients became lazy; it was ~0.9 s with qdrant-client).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from _measure import Report, env_int, median

SAMPLES = env_int("RAGGUARD_BENCH_IMPORT_SAMPLES", 9)
CPU_LIMIT_S = 0.6  # generous: twice the 0.3 s target, for a slower or busier machine


def _timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, f"{argv} exited with {proc.returncode}"
    return wall, usage.ru_utime + usage.ru_stime


def _figures(report: Report, name: str, argv: list[str]) -> float:
    samples = [_timed(argv) for _ in range(SAMPLES)]
    walls = [w for w, _ in samples]
    cpus = [c for _, c in samples]
    report.figure(f"{name} wall min (s)", min(walls))
    report.figure(f"{name} wall median (s)", median(walls))
    report.figure(f"{name} CPU min (s)", min(cpus))
    report.figure(f"{name} CPU median (s)", median(cpus))
    return min(cpus)


def test_import_and_cli_start_up(benchmark: Any) -> None:
    report = Report(benchmark, "start_up", samples=SAMPLES)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    _figures(report, "python -c pass", [sys.executable, "-c", "pass"])
    cpu = _figures(report, "import ragguard", [sys.executable, "-c", "import ragguard"])
    _figures(report, "ragguard --help", [sys.executable, "-m", "ragguard", "--help"])
    report.check("import ragguard CPU min (s)", cpu, "<=", CPU_LIMIT_S)
    report.assert_checks()
