"""scripts/performance_report.py renders what the benchmarks recorded, misses included."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "performance_report.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("performance_report", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def check(what: str, value: float, op: str, target: float, met: bool) -> dict[str, Any]:
    return {"what": what, "value": value, "op": op, "target": target, "met": met}


def overhead(size: int, ratio: float, bare: float = 1.4) -> dict[str, Any]:
    figures: dict[str, Any] = {"readable_fraction": 0.0375, "answer_overlap_with_raw": 1.0}
    steps = {
        "raw": 500.0,
        "raw (hand filter)": 520.0,
        "store.search": 560.0,
        "guard (bare)": 500.0 * bare,
        "guard + provenance": 820.0,
        "guard + tracing": 800.0,
        "guard": 500.0 * ratio - 100,
        "guard (full)": 500.0 * ratio,
    }
    for name, p50 in steps.items():
        figures[f"{name} p50_us"] = p50
        figures[f"{name} p95_us"] = p50 * 2
        if name != "raw":
            figures[f"{name} / raw"] = p50 / 500.0
    figures["guard (bare) overhead_us"] = steps["guard (bare)"] - steps["raw"]
    figures["guard (full) overhead_us"] = steps["guard (full)"] - steps["raw"]
    figures["decide_per_hit_us"] = 7.0
    figures["verify_per_hit_us"] = 18.0
    return {
        "section": "search_overhead",
        "params": {"size": size, "subject": "bob", "k": 10},
        "figures": figures,
        "checks": [
            check(f"guard (bare) / raw (bob, {size:,})", bare, "<=", 1.1, bare <= 1.1),
            check(f"guard (full) / raw (bob, {size:,})", ratio, "<=", 1.4, ratio <= 1.4),
        ],
    }


def results() -> dict[str, Any]:
    decision = {
        "section": "decision",
        "params": {"subject": "alice", "policy_lines": 1000},
        "figures": {
            "casbin_enforce_us": 67000.0,
            "predicate_us": 39.0,
            "policy_check_us": 40.0,
            "plan_lines": 26,
            "released_in_sample": 3,
            "speedup": 1700.0,
        },
        "checks": [check("enforce / predicate (alice)", 1700.0, ">=", 100, True)],
    }
    recall = {
        "section": "recall",
        "params": {"size": 10000, "k": 10, "queries": 50},
        "figures": {
            "rows": [
                {
                    "readable": "0.05%",
                    "probe": "sel005",
                    "readable_chunks": 5,
                    "method": method,
                    "recall": recall,
                    "min_recall": recall,
                    "p50_ms": 0.4,
                }
                for method, recall in (
                    ("ragguard (exact)", 1.0),
                    ("ragguard (HNSW, default)", 1.0),
                    ("top-k then filter", 0.0),
                    ("10x over-fetch then filter", 0.01),
                )
            ],
            "hnsw_recall_without_filter": 0.97,
        },
        "checks": [check("ragguard (exact) recall@10 at 0.05%", 1.0, "==", 1.0, True)],
    }
    benchmarks = [
        {"name": "test_decision", "fullname": "tests/benchmarks/x.py::a", "extra_info": decision},
        {
            "name": "test_overhead",
            "fullname": "tests/benchmarks/x.py::b",
            "extra_info": overhead(10000, 2.3),
        },
        {"name": "test_recall", "fullname": "tests/benchmarks/x.py::c", "extra_info": recall},
        {
            "name": "test_other",
            "fullname": "tests/benchmarks/test_audit_bench.py::test_other",
            "extra_info": {},
            "stats": {"median": 0.000123},
        },
    ]
    return {"datetime": "2025-06-01T10:00:00+00:00", "benchmarks": benchmarks}


def test_a_missed_target_is_reported_as_missed() -> None:
    """The target table marks a missed check NO and the reading says the target was missed."""
    report = load_script()
    text = report.render(
        results(),
        status=1,
        duration_s=120.0,
        loads=("1.0, 1.0, 1.0", "2.0, 1.5, 1.2"),
        host={"CPU": "Test CPU", "cores": "2", "RAM": "24.0 GiB"},
        packages={"ragguard": "0.1.0"},
    )
    assert "| guard (full) / raw (bob, 10,000) | 2.30 | <= 1.40 | **NO** |" in text
    assert "| enforce / predicate (alice) | 1,700 | >= 100 | yes |" in text
    assert (
        "**Search overhead: bare guard target 1.10x missed (1.40-1.40x), full guard target "
        "1.40x missed (2.30-2.30x).**" in text
    )
    assert "2 of 4 checks met." in text
    assert "| CPU | Test CPU |" in text
    assert "| alice | 26 | 67.0 | 39.0 | 40.0 | 1,700x |" in text
    assert "| 0.05% | 5 | top-k then filter | 0 | 0 | 0.4 |" in text
    assert "| test_audit_bench.py | test_other | 123 |" in text


def test_the_overhead_target_is_read_from_the_run_not_retyped() -> None:
    """The reading states the target the benchmark checked, and its verdict, from the JSON."""
    report = load_script()
    data = results()
    [info] = [b["extra_info"] for b in data["benchmarks"] if b["name"] == "test_overhead"]
    info["checks"] = [
        check("guard (bare) / raw (bob, 10,000)", 1.4, "<=", 1.5, True),
        check("guard (full) / raw (bob, 10,000)", 2.3, "<=", 3.0, True),
    ]
    text = report.render(
        data,
        status=0,
        duration_s=1.0,
        loads=("0", "0"),
        host={"CPU": "Test CPU"},
        packages={"ragguard": "0.1.0"},
    )
    assert (
        "**Search overhead: bare guard target 1.50x met (1.40-1.40x), full guard target "
        "3.00x met (2.30-2.30x).**" in text
    )
    assert "1.25" not in text
    assert "2.15-2.43x" not in text  # a past figure this run did not compute


def test_renders_a_previous_run_from_json(tmp_path: Path) -> None:
    """--from-json renders without running pytest, keeping the run's status beside it."""
    report = load_script()
    source = tmp_path / "results.json"
    source.write_text(json.dumps(results()), encoding="utf-8")
    (tmp_path / "results.run.json").write_text(
        json.dumps({"status": 0, "duration_s": 60.0, "loads": ["0.5", "0.7"]}), encoding="utf-8"
    )
    output = tmp_path / "performance.md"
    assert report.main(["--from-json", str(source), "-o", str(output)]) == 0
    text = output.read_text(encoding="utf-8")
    assert text.startswith("# Performance")
    assert "| pytest exit status | 0 (all passed) |" in text
    assert "| load average before / after | 0.5 / 0.7 |" in text


def test_renders_the_tenant_lines_decision_rows() -> None:
    """The tenant-per-line benchmark gets its own table (lines evaluated, speed-up)."""
    report = load_script()
    infos = [
        {
            "section": "tenant_decision",
            "params": {"outcome": outcome, "policy_lines": 1000},
            "figures": {
                "casbin_enforce_us": 5800.0,
                "policy_check_us": check_us,
                "plan_lines": 1000,
                "max_lines_evaluated": 4,
                "released_in_sample": 20 if outcome == "released" else 0,
                "speedup": speedup,
            },
            "checks": [check("decisions that differ from casbin.enforce", 0, "==", 0, True)],
        }
        for outcome, check_us, speedup in (("released", 1.1, 5300.0), ("denied", 2.1, 2700.0))
    ]
    text = report.tenant_decision_section(infos)
    assert "| released | 1,000 | 1,000 | 4 | 5.80 | 1.10 | 5,300x |" in text
    assert "| denied | 1,000 | 1,000 | 4 | 5.80 | 2.10 | 2,700x |" in text
    assert "agreed on every one" in text
    assert report.tenant_decision_section([]) == ""


def test_renders_the_kb_paths_recall_table() -> None:
    """The kb-paths recall benchmark (path grants) gets its own table after section 4."""
    report = load_script()
    info = {
        "section": "recall_kb_paths",
        "params": {"size": 10000, "k": 10, "queries": 50},
        "figures": {
            "rows": [
                {
                    "grant": "keyMatch2 pattern (relaxed)",
                    "readable": "0.05%",
                    "probe": "sel005",
                    "readable_chunks": 5,
                    "method": "ragguard (exact)",
                    "recall": 1.0,
                    "min_recall": 1.0,
                    "p50_ms": 0.7,
                }
            ]
        },
        "checks": [
            check("kb-paths keyMatch2 ragguard (exact) recall@10 at 0.05%", 1.0, "==", 1.0, True)
        ],
    }
    data = results()
    data["benchmarks"].append(
        {"name": "test_kb", "fullname": "tests/benchmarks/x.py::d", "extra_info": info}
    )
    text = report.render(
        data,
        status=0,
        duration_s=60.0,
        loads=("1.0", "1.0"),
        host={"CPU": "Test CPU"},
        packages={"ragguard": "0.1.0"},
    )
    assert "## 4b. Recall on path grants (`policies/kb-paths`)" in text
    assert (
        "| 0.05% | 5 | keyMatch2 pattern (relaxed) | ragguard (exact) | 1.00 | 1.00 | 0.7 |" in text
    )
    assert text.index("## 4. Recall") < text.index("## 4b.")


def test_renders_the_replica_section_with_the_load_it_ran_under() -> None:
    script = load_script()
    figures: dict[str, Any] = {
        "cpus": 2,
        "load average before (1, 5, 15 min)": [5.5, 4.0, 3.0],
        "load average after (1, 5, 15 min)": [6.25, 4.5, 3.5],
        "snapshot s": 1.25,
        "snapshot disk MiB": 310.0,
        "replica disk MiB": 305.0,
        "replica open s": 0.5,
        "replica open RSS MiB": 20.0,
        "refresh s": 1.5,
        "worker RSS MiB (start, imported, replica open, after 300 searches)": [10, 100, 120, 432],
        "1 processes /s": 500.0,
        "2 processes /s": 850.0,
        "2 processes / 1": 1.7,
    }
    text = script.replicas_section([{"params": {"size": 100000}, "figures": figures}])
    assert "## 7. Worker processes on read replicas" in text
    assert "| 2 | 850 | 1.70 | n/m | n/m |" in text
    assert "load average 5.50 / 4.00 / 3.00 before, 6.25 / 4.50 / 3.50 after" in text
    assert "| 1.25 | 310 | 305 | 0.5 | 20.0 | 1.50 | 432 |" in text
    assert script.replicas_section([]) == ""


def test_renders_the_search_params_and_start_up_tables() -> None:
    report = load_script()
    cell = {"recall@10": 0.66, "p50 ms": 0.443}
    search_params = {
        "section": "search_params",
        "params": {"size": 100000, "dim": 64, "k": 10, "queries": 50},
        "figures": {
            "table": {
                "default": {"unfiltered": cell, "50 %": {"recall@10": 0.506, "p50 ms": 0.524}},
                "exact": {
                    "unfiltered": {"recall@10": 1.0, "p50 ms": 2.2},
                    "50 %": {"recall@10": 1.0, "p50 ms": 2.0},
                },
            }
        },
        "checks": [check("exact recall@10, unfiltered", 1.0, ">=", 1.0, True)],
    }
    start_up = {
        "section": "start_up",
        "params": {"samples": 9},
        "figures": {
            f"{what} {kind} (s)": value
            for what, value in (
                ("python -c pass", 0.01),
                ("import ragguard", 0.3),
                ("ragguard --help", 0.35),
            )
            for kind in ("wall min", "wall median", "CPU min", "CPU median")
        },
        "checks": [check("import ragguard CPU min (s)", 0.3, "<=", 0.6, True)],
    }
    data = results()
    for name, info in (("test_sp", search_params), ("test_start", start_up)):
        data["benchmarks"].append(
            {"name": name, "fullname": f"tests/benchmarks/x.py::{name}", "extra_info": info}
        )
    text = report.render(
        data,
        status=0,
        duration_s=60.0,
        loads=("1.0", "1.0"),
        host={"CPU": "Test CPU"},
        packages={"ragguard": "0.1.0"},
    )
    assert "## Search parameters (`rg.SearchParams`)" in text
    assert "**100,000 chunks, 50 queries**" in text
    assert "| search_params | recall@10, unfiltered | p50 (ms), unfiltered |" in text
    assert "| exact | 1.00 |" in text
    assert "## Start-up" in text
    assert "| `import ragguard` |" in text
