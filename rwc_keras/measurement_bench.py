"""Benchmark: the cost of one RWC measurement of ResNet-18 on each Keras backend.

One measurement is `RWCCallback.measure`: every tracked kernel (ResNet-18 has 21) against
its snapshot, compiled as the callback compiles it on the backend (``tf.function``,
``jax.jit``, eager PyTorch), the values to the host and the snapshots moved on. Keras picks
its backend once, at import, so this script runs itself once per backend with
``KERAS_BACKEND`` set and ``--measure_in_process``, which prints one JSON line; it then
prints a markdown table, with the 1-minute load average before and after each row (other
work on the machine slows every row).

Example:
  python -m rwc_keras.measurement_bench --repeats=7
"""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from rwc_keras import spec

BACKENDS = ("tensorflow", "jax", "torch")  # each backend's package has its name
NUM_CLASSES = 10
# Measurements per timing: one takes milliseconds, too short to time alone.
CALLS = 5


def define_flags():
    flags.DEFINE_integer("repeats", 7, "Timings per backend and measure set (median, min, max).",
                         lower_bound=1)
    flags.DEFINE_bool("measure_in_process", False,
                      "Measure the backend this process runs (KERAS_BACKEND) and print one JSON "
                      "line; the script runs itself so for every backend.")


FLAGS = flags.FLAGS


def measurement_milliseconds(repeats):
    """Milliseconds per measurement of ResNet-18's kernels on this process's backend, for
    the RWC alone and for every measure: ``{"rwc": [...], "all": [...]}``."""
    # Imported here, in the measuring process: importing keras picks its backend.
    import keras

    from rwc_keras import RWCCallback
    from rwc_keras.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("resnet18", (spec.IMAGE_SIZE, spec.IMAGE_SIZE, 3), NUM_CLASSES)
    model.compile(optimizer="sgd")
    timings = {}
    with tempfile.TemporaryDirectory() as log_root:
        for name, metrics in (("rwc", spec.RWC_METRICS), ("all", spec.METRICS)):
            callback = RWCCallback(os.path.join(log_root, name), metrics=metrics, verbose=0)
            callback.set_model(model)
            callback.on_train_begin()
            callback.measure()  # tracing and compiling
            timings[name] = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(CALLS):
                    callback.measure()
                timings[name].append(1000 * (time.perf_counter() - start) / CALLS)
    return dict(timings, tensors=len(callback.tracked_variables))


def measure_in_subprocess(backend):
    """This script under ``KERAS_BACKEND=backend``: its result and the load averages."""
    load_before = os.getloadavg()[0]
    result = subprocess.run(
        [sys.executable, "-m", "rwc_keras.measurement_bench", "--measure_in_process",
         f"--repeats={FLAGS.repeats}"],
        env=dict(os.environ, KERAS_BACKEND=backend), capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"rwc_keras.measurement_bench: error: the {backend} measurement failed:\n"
                 f"{result.stderr[-3000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    return dict(measured, load=(load_before, os.getloadavg()[0]))


def row(backend):
    if importlib.util.find_spec(backend) is None:
        return f"| {backend} | not installed (pip install -e '.[backends]') | | | | |"
    measured = measure_in_subprocess(backend)
    cells = [f"{statistics.median(measured[name]):.1f} ({min(measured[name]):.1f}-"
             f"{max(measured[name]):.1f})" for name in ("rwc", "all")]
    return (f"| {backend} | {measured['tensors']} | {cells[0]} | {cells[1]} "
            f"| {measured['load'][0]:.2f} | {measured['load'][1]:.2f} |")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.measure_in_process:
        print(json.dumps(measurement_milliseconds(FLAGS.repeats)))
        return
    print("| backend | tensors | RWC ms median (min-max) | all measures ms median (min-max) "
          "| load avg before | load avg after |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for backend in BACKENDS:
        print(row(backend), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
