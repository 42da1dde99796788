"""The benchmark scripts keep working (a quick smoke run; no timing is asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script", ["bench_dispatch.py"])
def test_benchmark_runs_and_prints_a_table(script: str) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = re.findall(r"^(eda_lesson[^\n]*?)\s+(-?\d+)\s+(-?\d+\.\d\d)$", run.stdout, re.MULTILINE)
    assert len(rows) >= 4, run.stdout
    assert "reference bus" in run.stdout
