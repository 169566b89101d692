"""The backend benchmark as a user runs it, at a tiny size: one row per backend, with the
backend's version and positive figures. No timing thresholds.
"""

import importlib.util
import subprocess
import sys

import pytest


def bench(*args):
    return subprocess.run([sys.executable, "-m", "rwc_keras.benchmarks.backend_bench", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_one_row_per_backend(tmp_path):
    output = tmp_path / "backends.md"
    result = bench("--arch=alexnet", "--batch_size=4", "--warmup_steps=1", "--steps=1",
                   "--repeats=2", f"--output={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for line in output.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] not in ("backend", "---"):
            rows[cells[0].split()[0]] = cells
    assert list(rows) == ["tensorflow", "jax", "torch"]
    for backend, cells in rows.items():
        if importlib.util.find_spec(backend) is None:
            assert "not installed" in cells[1]
            continue
        name, version = cells[0].split()
        assert version[0].isdigit()
        assert cells[1] == ("true" if backend == "jax" else "false")  # Keras's "auto"
        assert float(cells[3]) > 0  # the min (the table's median comes from the same values)


@pytest.mark.parametrize("flag,message", [
    ("--backends=tensorflow,mxnet", "--backends must be a comma-separated subset of "
                                    "tensorflow,jax,torch"),
    ("--arch=lenet", "value should be one of <resnet18|vgg19bn|alexnet>"),
    ("--steps=0", "0 is not a positive integer"),
])
def test_bad_flags_fail_before_any_work(flag, message):
    result = bench(flag)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
