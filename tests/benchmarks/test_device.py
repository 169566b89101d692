"""The device benchmark at ``--tiny``, as CI runs it, on each Keras backend in a process of
its own: every row comes out, with positive finite figures. No timing thresholds.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from ..helpers import ROOT
from ..test_backends import skip_unless_installed

ROWS = ["plain fit step", "images per second", "RWC per epoch", "RWC every step",
        "RWC every 10 steps", "all measures every 10 steps", "one RWC measurement",
        "one measurement, all measures"]
# Runs the benchmark as `python -m` would, with `import tensorflow` failing: the GPU
# machine has no TensorFlow.
WITHOUT_TENSORFLOW = ("import runpy, sys; sys.modules['tensorflow'] = None; "
                      "runpy.run_module('rwc_keras.benchmarks.device', run_name='__main__', "
                      "alter_sys=True)")


def run_tiny(backend, output, without_tensorflow=False):
    """The benchmark at ``--tiny`` under ``KERAS_BACKEND=backend``; its JSON."""
    start = (["-c", WITHOUT_TENSORFLOW] if without_tensorflow
             else ["-m", "rwc_keras.benchmarks.device"])
    # One thread per framework: with the machine's cores busy elsewhere (CI's are shared),
    # PyTorch's two CPU threads ran a ResNet-18 step at batch 4 in 5 s here, one in 0.45 s.
    env = dict(os.environ, KERAS_BACKEND=backend, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, *start, "--tiny", f"--output={output}"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    print(result.stdout[-2000:])
    return json.loads(output.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_tiny_gives_every_row(backend, tmp_path):
    """JAX runs as on the GPU machine, without TensorFlow: rwc.csv without events."""
    skip_unless_installed(backend)
    without_tensorflow = backend == "jax"
    measured = run_tiny(backend, tmp_path / "device.json", without_tensorflow)
    assert measured["backend"] == backend
    [table] = measured["tables"]  # --tiny: one model at one batch size
    # No accelerator here: no memory row, and the run says so.
    assert [row["name"] for row in table["rows"]] == ROWS
    left_out = ["TensorBoard events"] * without_tensorflow + ["the memory row"]
    assert [reason.split(":")[0] for reason in measured["left_out"]] == left_out
    for row in table["rows"]:
        assert len(row["values"]) == measured["settings"]["repeats"]
        assert all(math.isfinite(value) and value > 0 for value in row["values"]), row
