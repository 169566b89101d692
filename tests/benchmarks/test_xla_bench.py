"""The XLA benchmark as a user runs it, at a tiny size: a row per variant with positive
figures. No timing thresholds.
"""

import subprocess
import sys

import pytest


def bench(*args):
    return subprocess.run([sys.executable, "-m", "rwc_keras.benchmarks.xla_bench", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_one_row_per_variant():
    result = bench("--archs=alexnet", "--batch_size=4", "--steps=1", "--repeats=2")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in result.stdout.splitlines()
            if line.startswith("| AlexNet |")]
    assert [cells[1] for cells in rows] == ["no XLA", "XLA"]
    for cells in rows:
        assert all(float(cell) > 0 for cell in cells[2:5] + cells[6:9])  # img/s, CPU, first
    assert float(rows[1][5].split()[0]) > 0  # the speed-up's median


def test_bad_flags_fail_before_any_work():
    result = bench("--archs=lenet")
    assert result.returncode == 1
    assert "--archs must be a comma-separated subset" in result.stderr
    assert "Traceback" not in result.stderr
