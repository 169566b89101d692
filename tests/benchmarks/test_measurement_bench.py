"""The measurement benchmark as a user runs it, at its smallest: one row per backend with
ResNet-18's 21 kernels, positive figures and the ratio of all measures to the RWC. No timing
thresholds.
"""

import importlib.util
import re
import subprocess
import sys

import pytest


def bench(*args):
    return subprocess.run([sys.executable, "-m", "rwc_keras.benchmarks.measurement_bench", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_one_row_per_backend():
    result = bench("--repeats=1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("backend", "---"):
            rows[cells[0]] = cells
    assert list(rows) == ["tensorflow", "jax", "torch"]
    for backend, cells in rows.items():
        if importlib.util.find_spec(backend) is None:
            assert "not installed" in cells[1]
            continue
        assert cells[1] == "21"
        for cell in cells[2:4]:
            assert re.fullmatch(r"\d+\.\d \(\d+\.\d-\d+\.\d\)", cell), cell  # median (min-max)
            assert float(cell.split()[0]) > 0
        assert re.fullmatch(r"\d+\.\d\d \(\d+\.\d\d-\d+\.\d\d\)", cells[4]), cells[4]  # all / RWC


def test_bad_flags_fail_before_any_work():
    result = bench("--repeats=0")
    assert result.returncode == 1
    assert "0 is not a positive integer" in result.stderr and "Traceback" not in result.stderr
