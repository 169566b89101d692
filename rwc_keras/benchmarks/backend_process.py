"""Runs a benchmark script once per Keras backend, each in a process of its own.

Keras picks its backend once, at import, so a script that compares backends runs itself with
``KERAS_BACKEND`` set and ``--measure_in_process``; that child measures and prints its result
as one JSON line, which `measure_on_backend` reads back. `rwc_keras.benchmarks.backend_bench` and
`rwc_keras.benchmarks.measurement_bench` work this way.
"""

import json
import os
import subprocess
import sys

from absl import flags

# The Keras backends, each also the name of the package it runs on.
BACKENDS = ("tensorflow", "jax", "torch")

MEASURE_IN_PROCESS = "measure_in_process"


def define_measure_in_process_flag():
    """Defines ``--measure_in_process``, the flag that makes the script the measuring child."""
    flags.DEFINE_bool(MEASURE_IN_PROCESS, False,
                      "Measure the backend this process runs (KERAS_BACKEND) and print one JSON "
                      "line; the script runs itself so for every backend.")


def print_result(result):
    """The child's output: ``result`` as the JSON line `measure_on_backend` reads."""
    print(json.dumps(result))


def measure_on_backend(module, backend, args):
    """Runs ``python -m module --measure_in_process *args`` under ``KERAS_BACKEND=backend``.

    Returns:
        The dict the child printed as its last line, with ``load``: the 1-minute load
        averages before and after it (other work on the machine slows every backend).

    Exits with the child's error output when it fails.
    """
    load_before = os.getloadavg()[0]
    result = subprocess.run([sys.executable, "-m", module, f"--{MEASURE_IN_PROCESS}", *args],
                            env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True,
                            text=True)
    if result.returncode != 0:
        sys.exit(f"{module}: error: the {backend} measurement failed:\n{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return dict(measured, load=(load_before, os.getloadavg()[0]))
