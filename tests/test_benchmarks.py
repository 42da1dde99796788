"""The benchmark scripts keep working (a quick smoke run; no timing is asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


# Each script, and a row its table must contain: our code, measured, with a ratio.
ROWS = {
    "bench_dispatch.py": r"^eda_lesson dispatch\s+\d+\s+\d+\.\d\d$",
    "bench_store.py": r"^eda_lesson SQLite \(WAL, FULL\)\s+[\d,]+\s+\d+\.\d\d$",
    "bench_redraw.py": r"^slowest step redraw: [\d.]+ ms",
    "bench_async.py": r"^eda_lesson AsyncEventBus sequential, 1 handler\s+\d+\s+\d+\.\d\d$",
    "bench_broker.py": r"^eda_lesson outbox -> relay -> streams -> 1 worker\s+[\d,]+\s+\d+\.\d\d$",
    "bench_retry.py": r"^eda_lesson retry, no failure\s+\d+\s+\d+\.\d\d$",
    "bench_soak.py": r"^check: 0 lost, every effect exactly once, each key in order$",
}


@pytest.mark.parametrize("script", sorted(ROWS))
def test_benchmark_runs_and_prints_a_table(script: str) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert re.search(ROWS[script], run.stdout, re.MULTILINE), run.stdout
