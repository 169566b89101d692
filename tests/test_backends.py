"""Runs the backend-neutral tests, tests/backends/, under JAX and under PyTorch.

Keras picks its backend once, at import, and this session's is TensorFlow (tests/backends/
runs here too, under TensorFlow, with the rest of the suite). Each other backend gets a
pytest process of its own over tests/backends/ with ``KERAS_BACKEND`` set; tests/conftest.py
sets that process up. A test module added to tests/backends/ thus runs on all three backends.
The rwc.csv files that one test writes on each backend are then compared with each other.
"""

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from rwc_keras import spec

from .helpers import ROOT

BACKEND_TESTS = "tests/backends"
# Writes <backend>.csv into RWC_BACKEND_CSV_DIR: the same fit from the same weights.
CSV_TEST = "tests/backends/test_callback_backends.py::test_fit_matches_float64_recomputation"


def run_backend_tests(backend, tests=BACKEND_TESTS, **env):
    """``python -m pytest tests`` with ``KERAS_BACKEND=backend`` and ``env``; the
    CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests],
        cwd=ROOT, env=dict(os.environ, KERAS_BACKEND=backend, **env), capture_output=True,
        text=True, timeout=900)


def skip_unless_installed(backend):
    # The backend's package has the backend's name.
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} backend is not installed: pip install -e '.[backends]' "
                    "(make test does)")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_neutral_tests_pass(backend):
    skip_unless_installed(backend)
    result = run_backend_tests(backend)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    summary = output.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), output[-8000:]
    print(f"{backend}: {summary}")


@pytest.mark.slow
def test_rwc_csv_matches_across_backends(tmp_path):
    frames = {}
    for backend in ["tensorflow", "jax", "torch"]:
        skip_unless_installed(backend)
        result = run_backend_tests(backend, CSV_TEST, RWC_BACKEND_CSV_DIR=str(tmp_path))
        assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
        frames[backend] = pd.read_csv(tmp_path / f"{backend}.csv", keep_default_na=False)
    keys = ["epoch", "step", "layer", "group", spec.ZEROS, "size"]
    for backend in ["jax", "torch"]:
        ours, theirs = frames[backend], frames["tensorflow"]
        assert list(ours.columns) == list(theirs.columns)
        pd.testing.assert_frame_equal(ours[keys], theirs[keys])
        # The same weights and data, but each backend's training steps round differently
        # (here by ~1e-7). The element-wise mean rwc divides by each previous weight, so
        # weights near zero magnify that rounding (measured: 9e-5 between JAX and
        # TensorFlow); the norm-based measures keep it (under 2e-7).
        for metric in spec.METRICS:
            np.testing.assert_allclose(ours[metric], theirs[metric],
                                       rtol=1e-3 if metric == "rwc" else 1e-5,
                                       err_msg=f"{backend} {metric}")
            difference = np.abs(ours[metric] / theirs[metric] - 1).max()
            print(f"{backend} {metric}: largest relative difference from tensorflow "
                  f"{difference:.1e}")
