"""Benchmark: the cost of one RWC measurement of ResNet-18 on each Keras backend.

One measurement is `RWCCallback.measure`: every tracked kernel (ResNet-18 has 21) against
its snapshot, compiled as the callback compiles it on the backend (``tf.function``,
``jax.jit``, eager PyTorch), the values to the host and the snapshots moved on. Keras picks
its backend once, at import, so this script runs itself once per backend with
``KERAS_BACKEND`` set and ``--measure_in_process``, which prints one JSON line; it then
prints a markdown table: per backend the RWC alone and all measures (the two taking turns),
their ratio per repeat, and the 1-minute load average before and after each row (other
work on the machine slows every row).

Example:
  python -m rwc_keras.benchmarks.measurement_bench --repeats=7
"""

import importlib.util
import os
import statistics
import tempfile
import time

from absl import app, flags

from rwc_keras import spec
from rwc_keras.benchmarks import backend_process

BENCH_DATA = spec.DATASETS[spec.BENCH_DATASET]

# Measurements per timing: one takes milliseconds, too short to time alone.
CALLS = 5


def define_flags():
    flags.DEFINE_integer("repeats", 7, "Timings per backend and measure set (median, min, max).",
                         lower_bound=1)
    backend_process.define_measure_in_process_flag()


FLAGS = flags.FLAGS


def measurement_milliseconds(repeats):
    """Milliseconds per measurement of ResNet-18's kernels on this process's backend, for
    the RWC alone and for every measure, taking turns: ``{"rwc": [...], "all": [...]}``."""
    # Imported here, in the measuring process: importing keras picks its backend.
    import keras

    from rwc_keras import RWCCallback
    from rwc_keras.experiment.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("resnet18", BENCH_DATA.input_shape, BENCH_DATA.num_classes)
    model.compile(optimizer="sgd")
    choices = {"rwc": spec.RWC_METRICS, "all": spec.METRICS}
    timings = {name: [] for name in choices}
    with tempfile.TemporaryDirectory() as log_root:
        callbacks = {}
        for name, metrics in choices.items():
            callback = RWCCallback(os.path.join(log_root, name), metrics=metrics, verbose=0)
            callback.set_model(model)
            callback.on_train_begin()
            callback.measure()  # tracing and compiling
            callbacks[name] = callback
        # The two take turns within each repeat, so that the machine's drift (other work on
        # its cores) weighs on both alike and their per-repeat ratio cancels it.
        for _ in range(repeats):
            for name, callback in callbacks.items():
                start = time.perf_counter()
                for _ in range(CALLS):
                    callback.measure()
                timings[name].append(1000 * (time.perf_counter() - start) / CALLS)
    return dict(timings, tensors=len(callback.tracked_variables))


def row(backend):
    if importlib.util.find_spec(backend) is None:
        return f"| {backend} | not installed (pip install -e '.[backends]') | | | | | |"
    measured = backend_process.measure_on_backend(
        "rwc_keras.benchmarks.measurement_bench", backend, [f"--repeats={FLAGS.repeats}"])
    cells = [f"{statistics.median(measured[name]):.1f} ({min(measured[name]):.1f}-"
             f"{max(measured[name]):.1f})" for name in ("rwc", "all")]
    ratios = [every / alone for alone, every in zip(measured["rwc"], measured["all"])]
    ratio = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
    return (f"| {backend} | {measured['tensors']} | {cells[0]} | {cells[1]} | {ratio} "
            f"| {measured['load'][0]:.2f} | {measured['load'][1]:.2f} |")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.measure_in_process:
        backend_process.print_result(measurement_milliseconds(FLAGS.repeats))
        return
    print("| backend | tensors | RWC ms median (min-max) | all measures ms median (min-max) "
          "| all / RWC per repeat, median (min-max) | load avg before | load avg after |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for backend in backend_process.BACKENDS:
        print(row(backend), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
