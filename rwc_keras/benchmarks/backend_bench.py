"""Benchmark: training speed of one of the paper's models on each Keras backend.

Keras picks its backend once, at import, so each backend is measured in a process of its own:
this script runs itself with ``KERAS_BACKEND`` set and ``--measure_in_process``, which
prints one JSON line, and writes one markdown table of images per second with a row per
backend.

A step is ``model.train_on_batch`` on one fixed batch of random 32x32x3 images (10 classes)
with `TorchSGD`, the paper's optimizer, compiled with Keras's defaults for the backend
(``--jit_compile=auto``: XLA on JAX, a ``tf.function`` graph without XLA on a TensorFlow
CPU, eager on PyTorch). After ``--warmup_steps`` untimed steps (tracing, compiling),
``--repeats`` timings of ``--steps`` steps give the median, min and max. Each row also gives
the 1-minute load average before and after it: other work running on the machine slows
every row.

Example:
  python -m rwc_keras.benchmarks.backend_bench --arch=resnet18 --output=backends.md
  python -m rwc_keras.benchmarks.backend_bench --backends=jax,torch --batch_size=32 --steps=3
"""

import datetime
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import statistics
import sys
import time

import numpy as np
from absl import app, flags

from rwc_keras import spec
from rwc_keras.benchmarks import backend_process
from rwc_keras.benchmarks.tables import print_and_write

BENCH_DATA = spec.DATASETS[spec.BENCH_DATASET]
JIT_COMPILE = {"auto": "auto", "true": True, "false": False}


def define_flags():
    """Defines the flags; called only when the script runs, so that importing this module
    defines none."""
    flags.DEFINE_list("backends", list(backend_process.BACKENDS),
                      "Keras backends to measure, in this order.")
    flags.register_validator(
        "backends", lambda names: bool(names) and set(names) <= set(backend_process.BACKENDS),
        message="--backends must be a comma-separated subset of "
                f"{','.join(backend_process.BACKENDS)}")
    flags.DEFINE_enum("arch", "resnet18", list(spec.ARCHITECTURES), "Model to train.")
    flags.DEFINE_integer("batch_size", spec.BATCH_SIZE, "Images per step.", lower_bound=1)
    flags.DEFINE_integer("warmup_steps", 2, "Untimed steps first (tracing, compiling).",
                         lower_bound=1)
    flags.DEFINE_integer("steps", 5, "Steps per timing.", lower_bound=1)
    flags.DEFINE_integer("repeats", 3, "Timings per backend.", lower_bound=1)
    flags.DEFINE_enum("jit_compile", "auto", list(JIT_COMPILE),
                      "model.compile's jit_compile: auto is Keras's default for the backend.")
    flags.DEFINE_string("output", None, "Also write the table as markdown here.")
    backend_process.define_measure_in_process_flag()


FLAGS = flags.FLAGS


def compiled_model(arch, jit_compile="auto"):
    """``arch`` built for 32x32x3 images (10 classes) and compiled with `TorchSGD`, the
    paper's optimizer, at the benchmarks' settings; random weights from seed 0."""
    import keras  # noqa: PLC0415 (importing keras picks the backend: in the measuring process)

    from rwc_keras.experiment.models import build_model  # noqa: PLC0415
    from rwc_keras.experiment.optimizer import TorchSGD  # noqa: PLC0415

    keras.utils.set_random_seed(0)
    model = build_model(arch, BENCH_DATA.input_shape, BENCH_DATA.num_classes)
    model.compile(optimizer=TorchSGD(spec.BENCH_LR, spec.MOMENTUM, spec.BENCH_WEIGHT_DECAY),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    return model


def random_batches(count):
    """``count`` random 32x32x3 float32 images in [0, 1) and their labels, from seed 0."""
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(count, *BENCH_DATA.input_shape)).astype(np.float32)
    return images, rng.integers(0, BENCH_DATA.num_classes, count)


def train_images_per_second(arch, batch_size, warmup_steps, steps, repeats, jit_compile):
    """Training images per second of ``arch`` on this process's Keras backend.

    Returns:
        A dict: ``backend``, its package ``version``, the resolved ``jit_compile`` and
        ``rates``, the images per second of each of the ``repeats`` timings.
    """
    # Imported here, in the measuring process: importing keras picks its backend (and the
    # parent, which measures nothing, checks its flags before any framework loads).
    import keras

    model = compiled_model(arch, jit_compile)
    images, labels = random_batches(batch_size)
    for _ in range(warmup_steps):
        model.train_on_batch(images, labels)
    rates = []
    for _ in range(repeats):
        # train_on_batch returns the loss as a Python number: each step ends on the host.
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(images, labels)
        rates.append(steps * batch_size / (time.perf_counter() - start))
    backend = keras.backend.backend()
    return dict(backend=backend, version=importlib.metadata.version(backend),
                jit_compile=bool(model.jit_compile), rates=rates)


def row(backend):
    """A markdown table row for ``backend``; one saying so when its package is absent."""
    if importlib.util.find_spec(backend) is None:
        return f"| {backend} | not installed (pip install -e '.[backends]') | | | | | |"
    print(f"measuring {backend} ...", flush=True)
    measured = backend_process.measure_on_backend("rwc_keras.benchmarks.backend_bench", backend, [
        f"--arch={FLAGS.arch}", f"--batch_size={FLAGS.batch_size}",
        f"--warmup_steps={FLAGS.warmup_steps}", f"--steps={FLAGS.steps}",
        f"--repeats={FLAGS.repeats}", f"--jit_compile={FLAGS.jit_compile}"])
    rates = measured["rates"]
    return (f"| {backend} {measured['version']} | {str(measured['jit_compile']).lower()} "
            f"| {statistics.median(rates):.1f} | {min(rates):.1f} | {max(rates):.1f} "
            f"| {measured['load'][0]:.2f} | {measured['load'][1]:.2f} |")


def report(rows, started):
    """The markdown table with the settings, machine and command above it."""
    return "\n".join([
        f"- command: `python -m rwc_keras.benchmarks.backend_bench {shlex.join(sys.argv[1:])}`",
        f"- started: {started.isoformat(timespec='seconds')}; "
        f"{os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, "
        f"Keras {importlib.metadata.version('keras')}",
        f"- {FLAGS.arch}, batch {FLAGS.batch_size}, 32x32x3, {FLAGS.warmup_steps} warm-up "
        f"steps, then {FLAGS.repeats} timings of {FLAGS.steps} steps; "
        f"jit_compile={FLAGS.jit_compile}",
        "",
        "| backend | jit_compile | img/s median | min | max | load avg before | load avg after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]) + "\n"


def main(argv):
    if len(argv) > 1:
        sys.exit(f"rwc_keras.benchmarks.backend_bench: error: unexpected arguments {argv[1:]}")
    if FLAGS.measure_in_process:
        backend_process.print_result(train_images_per_second(
            FLAGS.arch, FLAGS.batch_size, FLAGS.warmup_steps, FLAGS.steps, FLAGS.repeats,
            JIT_COMPILE[FLAGS.jit_compile]))
        return
    started = datetime.datetime.now()
    table = report([row(backend) for backend in FLAGS.backends], started)
    print_and_write(table, FLAGS.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
