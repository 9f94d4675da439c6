"""`run.py --self-check`: the table logic on known figures, then one tiny row on each runtime.

The bench has no tests in tests/ (speed lives here, not in `make test`), so it checks itself.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from report import Cell, Comparison, format_value, markdown_table, merge_runs, ratio_meets, text_table
from rows import ROWS, ROWS_BY_KEY, select_rows, workloads_for
from runner import Runtime, run_workload

TINY_WORKLOAD = "put_small"


def check_logic() -> list[str]:
    """Known inputs, known verdicts; returns what went wrong."""
    problems = []

    def expect(label: str, got: object, want: object) -> None:
        if got != want:
            problems.append(f"{label}: got {got!r}, want {want!r}")

    tasks, init, memory, pip = (ROWS_BY_KEY[k] for k in ("tasks_sync", "init_ready", "idle_memory",
                                                         "pip_env_second_task"))
    expect("2x tasks meets", ratio_meets(tasks, 2.0), True)
    expect("1.9x tasks misses", ratio_meets(tasks, 1.9), False)
    expect("init at 1/5 meets", ratio_meets(init, 0.2), True)
    expect("init at 1/4 misses", ratio_meets(init, 0.25), False)
    expect("memory at 1/3 meets", ratio_meets(memory, 1 / 3), True)
    expect("memory at 0.4 misses", ratio_meets(memory, 0.4), False)
    expect("ratio", Comparison(tasks, Cell(900.0), Cell(450.0)).ratio, 2.0)
    expect("pip over 1 s misses even when faster than Ray",
           Comparison(pip, Cell(1.5), Cell(3.0)).meets_target, False)
    expect("pip under 1 s and faster meets", Comparison(pip, Cell(0.5), Cell(3.0)).meets_target, True)
    expect("error is not comparable", Comparison(tasks, Cell(error="boom"), Cell(450.0)).meets_target, None)
    expect("format big", format_value(1234.567), "1,235")
    expect("format small", format_value(0.01234), "0.0123")
    expect("format mid", format_value(9.87654), "9.88")
    expect("select by pattern", [r.key for r in select_rows("put_small,wait")], ["put_small", "wait_1k_refs"])
    expect("pip rows share one workload", workloads_for([pip, ROWS_BY_KEY["pip_env_cached_actor"]]), ["pip_env"])
    expect("row keys unique", len({r.key for r in ROWS}), len(ROWS))
    expect("scale rows only with --only", any(r.scaled for r in select_rows(None)), False)
    expect("--only envelope picks them all", [r.key for r in select_rows("envelope")], [r.key for r in ROWS if r.scaled])
    from rows import parse_scale, scale_of

    scales = argparse.Namespace(scale=parse_scale("0.1,envelope_gcs_memory=0.01"))
    expect("--scale default", scale_of(scales, "envelope_pg_1000"), 0.1)
    expect("--scale per workload", scale_of(scales, "envelope_gcs_memory"), 0.01)
    expect("no --scale is full size", scale_of(argparse.Namespace(scale={}), "envelope_pg_1000"), 1.0)
    merged = merge_runs([Cell(3.0), Cell(error="boom"), Cell(1.0), Cell(2.0)])
    expect("median of repeated runs", merged.value, 2.0)
    expect("every run listed", merged.details["runs"], [3.0, "ERR boom", 1.0, 2.0])
    expect("all runs failed keeps the error", merge_runs([Cell(error="x"), Cell(error="y")]).error, "x")
    comparisons = [Comparison(tasks, Cell(error="a|b " * 30), Cell(450.0))]
    expect("markdown escapes pipes", "a\\|b" in markdown_table(comparisons), True)
    expect("text table cuts long errors", max(len(x) for x in text_table(comparisons).splitlines()) < 140, True)
    return problems


def self_check(args: argparse.Namespace, runtimes: list[Runtime]) -> int:
    problems = check_logic()
    print(f"table logic: {'ok' if not problems else 'FAILED'}")
    for problem in problems:
        print(f"  {problem}")
    failed = bool(problems)
    with tempfile.TemporaryDirectory(prefix="orb-selfcheck") as logs:
        for runtime in runtimes:
            result = run_workload(runtime, TINY_WORKLOAD, 0.5, 120 * args.timeout_scale, Path(logs))
            figure = result.rows.get(TINY_WORKLOAD, {}).get("value")
            if result.error or not figure or figure <= 0:
                failed = True
                print(f"{runtime.name} ({runtime.python}): FAILED {TINY_WORKLOAD}: {result.error}")
                print("  log tail:\n    " + "\n    ".join(Path(result.log_path).read_text().splitlines()[-15:]))
            else:
                print(f"{runtime.name} ({runtime.python}, ray {result.ray_version}): {TINY_WORKLOAD} "
                      f"{figure:,.0f}/s in {result.wall_s:.1f} s, {result.leftover_processes} leftover processes {result.leftover_names}")
    print("self-check " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0
