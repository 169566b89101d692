"""Runs the backend-neutral tests, tests/backends/, under JAX and under PyTorch.

Keras picks its backend once, at import, and this session's is TensorFlow (tests/backends/
runs here too, under TensorFlow, with the rest of the suite). Each other backend gets a
pytest process of its own over tests/backends/ with ``KERAS_BACKEND`` set; tests/conftest.py
sets that process up. A test module added to tests/backends/ thus runs on all three backends.
"""

import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
BACKEND_TESTS = "tests/backends"


def run_backend_tests(backend):
    """``python -m pytest tests/backends`` with ``KERAS_BACKEND=backend``; the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", BACKEND_TESTS],
        cwd=ROOT, env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True, text=True,
        timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_backend_neutral_tests_pass(backend):
    # The backend's package has the backend's name.
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} backend is not installed: pip install -e '.[backends]' "
                    "(make test does)")
    result = run_backend_tests(backend)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    summary = output.strip().splitlines()[-1]
    assert re.search(r"\d+ passed", summary), output[-8000:]
    print(f"{backend}: {summary}")
