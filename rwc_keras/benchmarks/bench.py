"""Benchmark: what RWC tracking costs during training, and how fast training runs at all.

For each architecture (32x32x3 input, 10 classes) it prints one table with:

1. images/s of plain ``model.fit`` on one in-memory batch of random data, and with
   `RWCCallback` measuring every epoch, every 10 steps and every step (ratio to plain);
2. the cost of one RWC measurement: the callback's compiled, in-graph measurement of the
   RWC alone, with each other measure of ``spec.METRICS`` and with all (the callbacks taking
   turns, wall and CPU time), against the naive way the paper's authors used (copy every
   tracked weight to numpy, compute in numpy), and with its CSV and TensorBoard writes, in
   ms and as a share of the step time;
3. images/s the input pipeline (`rwc_keras.experiment.data.pipeline.Datasets`, CIFAR-10
   settings: crops and flips, on generated in-memory CIFAR-shaped images) delivers alone,
   against what the model consumes;
4. images/s of the training driver's own loop (`rwc_keras.experiment.train.Trainer` on that
   pipeline) against plain ``fit``, under the default strategy and under ``MirroredStrategy``
   over one device (alternating epochs), and how often per epoch the loop waits for the
   device (host reads of tensor values);
5. the training FLOP/s reached, as a fraction of a large matmul's FLOP/s measured in the
   same run;
6. plain ``fit`` again at the end: how much the machine's speed drifted meanwhile.

Every timing is repeated ``--repeats`` times after an untimed warm-up (tracing, compiling)
and reported as median, min and max. Ratios are median over median. ``--measurement_only``
times the measurement (2) alone, in seconds instead of minutes.

Example:
  python -m rwc_keras.benchmarks.bench --archs=alexnet --quick
  python -m rwc_keras.benchmarks.bench --archs=resnet18 --measurement_only --repeats=9
  python -m rwc_keras.benchmarks.bench --mixed_precision --output=BENCHMARKS.md
"""

import dataclasses
import datetime
import itertools
import os
import platform
import shlex
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from rwc_keras import spec
from rwc_keras.benchmarks.host_reads import HostReads
from rwc_keras.benchmarks.machine import cpu_flags, cpu_model, device_names
from rwc_keras.benchmarks.measurement_cost import MEASUREMENT_NOTE, measurement_rows
from rwc_keras.benchmarks.tables import Table, fmt, print_and_write
from rwc_keras.benchmarks.timing import EpochTimer, time_calls
from rwc_keras.benchmarks.workload import CIFAR10, bench_config, generated_cifar
from rwc_keras.callbacks.rwc_callback import RWCCallback
from rwc_keras.experiment.models import build_model
from rwc_keras.experiment.optimizer import TorchSGD
from rwc_keras.experiment.train import Trainer
from rwc_keras.freezing.freezer import layer_macs


def define_flags():
    """Defines the benchmark's flags; called only when it runs, so that importing this module
    (with ``rwc_keras.main``, say) defines none."""
    flags.DEFINE_list("archs", list(spec.ARCHITECTURES), "Architectures to benchmark.")
    flags.DEFINE_integer("batch_size", spec.BATCH_SIZE, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("repeats", None, "Timed repetitions of every figure (default 5; "
                         "--quick: 3).", lower_bound=1)
    flags.DEFINE_integer("steps", None,
                         "Training steps per timed epoch (default 20; --quick: 10).",
                         lower_bound=1)
    flags.DEFINE_bool("quick", False,
                      "Fewer steps and repeats: about 4 minutes for alexnet on 2 CPU cores.")
    flags.DEFINE_bool("mixed_precision", False,
                      "Compute in bfloat16 with float32 variables (Keras 'mixed_bfloat16').")
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the training step (fit and driver).")
    flags.DEFINE_integer("matmul_size", 4096, "Side of the square matmul giving the reference "
                         "FLOP/s.", lower_bound=1)
    flags.DEFINE_bool("measurement_only", False,
                      "Only the RWC measurement rows of each architecture (no training, no "
                      "input pipeline, no driver, no matmul).")
    flags.DEFINE_string("output", None, "Also write the header and tables as markdown here.")
    flags.register_validator(
        "archs", lambda archs: bool(archs) and set(archs) <= set(spec.ARCHITECTURES),
        message=f"--archs must be a comma-separated subset of {','.join(spec.ARCHITECTURES)}")


FLAGS = flags.FLAGS

# (update_freq, row name) of the RWCCallback settings compared with plain fit.
RWC_SETTINGS = (("epoch", "fit + RWC every epoch"), (10, "fit + RWC every 10 steps"),
                (1, "fit + RWC every step"))
CIFAR10_TRAIN_EXAMPLES = 50_000


@dataclasses.dataclass(frozen=True)
class Settings:
    """The benchmark's knobs, resolved from the flags."""

    batch_size: int
    steps: int
    repeats: int
    jit_compile: bool
    mixed_precision: bool
    matmul_size: int
    measurement_only: bool


# ---------------------------------------------------------------------------------------
# The measurements


def fit_images_per_second(model, settings, callbacks=()):
    """images/s of ``model.fit`` on one random in-memory batch, one value per timed epoch.

    One ``fit`` call runs a warm-up epoch and then ``repeats`` timed epochs: the callbacks'
    once-per-run work (snapshots, tracing the RWC measurement) falls in the warm-up, as it
    falls once in a real run, instead of in every repetition as separate ``fit`` calls would
    put it. The same batch every step: the model's cost alone, no input work.
    """
    x = tf.random.normal([settings.batch_size, *CIFAR10.input_shape])
    y = tf.random.uniform([settings.batch_size], maxval=CIFAR10.num_classes, dtype=tf.int64)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    timer = EpochTimer()
    model.fit(data, epochs=1 + settings.repeats, steps_per_epoch=settings.steps, shuffle=False,
              verbose=0, callbacks=[*callbacks, timer])
    return [settings.steps * settings.batch_size / s for s in timer.seconds[1:]]


def pipeline_images_per_second(datasets, settings):
    """images/s ``datasets.train(epoch)`` delivers when nothing consumes them but a loop."""
    epochs = itertools.count()

    def one_epoch():
        for _ in datasets.train(next(epochs)):
            pass

    return [settings.steps * settings.batch_size / s
            for s in time_calls(one_epoch, settings.repeats)]


def one_device_mirrored():
    """``MirroredStrategy`` over one device: the first GPU, else the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy([gpus[0].name if gpus else "/cpu:0"])


def driver_trainer(arch, datasets, settings, strategy):
    """The driver's `Trainer` for ``arch`` on ``datasets`` under ``strategy``, with an
    empty callback list to drive ``train_epoch``."""
    config = bench_config(arch, settings.batch_size, jit_compile=settings.jit_compile,
                          mixed_precision=settings.mixed_precision)
    trainer = Trainer(config, strategy, datasets)
    return trainer, keras.callbacks.CallbackList([], model=trainer.model)


def driver_images_per_second(trainers, settings):
    """images/s of `Trainer.train_epoch` for each of ``trainers`` (name -> (trainer,
    callbacks)), one value per repeat, as a dict by name.

    The trainers take turns epoch by epoch after one warm-up epoch each, so the machine's
    drift affects them alike and their ratio holds even when the absolute figures move.
    """
    seconds = {name: [] for name in trainers}
    epochs = itertools.count()
    for repeat in range(1 + settings.repeats):
        for name, (trainer, callbacks) in trainers.items():
            start = time.perf_counter()
            trainer.train_epoch(next(epochs), callbacks)
            if repeat:  # the first round traces and compiles
                seconds[name].append(time.perf_counter() - start)
    return {name: [settings.steps * settings.batch_size / s for s in values]
            for name, values in seconds.items()}


def driver_host_reads(trainer, callbacks, settings):
    """Reads of tensor values into Python during one `Trainer.train_epoch`, beyond those of
    building and iterating its input pipeline alone (host constants read while tracing, no
    wait for the device); one value per repeat."""
    counts = []
    for epoch in range(settings.repeats):
        with HostReads() as pipeline:
            for _ in trainer.datasets.train(epoch):
                pass
        with HostReads() as loop:
            trainer.train_epoch(epoch, callbacks)
        counts.append(loop.count - pipeline.count)
    return counts


def forward_flops_per_image(model):
    """FLOPs of one image's forward pass: 2 x the multiply-adds of every layer with a kernel
    (`layer_macs`).

    Pooling, BatchNorm, ReLU and additions are left out; TensorFlow's profiler
    (``float_operation()`` on the inference graph) counts within 0.2% of this for all three
    paper models.
    """
    return 2 * sum(layer_macs(layer) for layer in model.layers)


def matmul_gflops(size, dtype, repeats):
    """GFLOP/s of a ``size`` x ``size`` matmul in ``dtype``: the device's practical peak."""
    a = tf.cast(tf.random.normal([size, size]), dtype)
    b = tf.cast(tf.random.normal([size, size]), dtype)
    # The sum brings one scalar to the host: the call waits for the product.
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    return [2 * size**3 / s / 1e9 for s in time_calls(lambda: product().numpy(), repeats)]


def compiled_model(arch, settings):
    """``arch`` built afresh (seed 0) and compiled as the driver compiles it."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    # Set per model: the driver's Trainer (measured in bench_arch) restores the default policy.
    keras.mixed_precision.set_global_policy(
        "mixed_bfloat16" if settings.mixed_precision else "float32")
    model = build_model(arch, CIFAR10.input_shape, CIFAR10.num_classes)
    model.compile(optimizer=TorchSGD(spec.BENCH_LR, spec.MOMENTUM, spec.BENCH_WEIGHT_DECAY),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=settings.jit_compile)
    return model


def bench_measurement(arch, settings):
    """The measurement rows alone for one architecture (``--measurement_only``)."""
    table = Table(arch, notes=[MEASUREMENT_NOTE])
    with tempfile.TemporaryDirectory() as log_root:
        measurement_rows(table, compiled_model(arch, settings), log_root, settings)
    return table


def arch_notes(settings, forward):
    """The notes under an architecture's table: how each kind of row was measured."""
    steps, batch = settings.steps, settings.batch_size
    return [
        f"fit rows: {settings.repeats} timed epochs of {steps} steps after a warm-up epoch. "
        f"'RWC every epoch' measures once per {steps} steps; a real CIFAR epoch has "
        f"{CIFAR10_TRAIN_EXAMPLES // batch} steps at batch {batch}, so in a real run its "
        f"relative cost is about {fmt(CIFAR10_TRAIN_EXAMPLES // batch / steps)} times smaller "
        "than this row shows.",
        MEASUREMENT_NOTE,
        "Input pipeline: rwc_keras.experiment.data.pipeline.Datasets with CIFAR-10 settings "
        "(crops and flips) on generated CIFAR-shaped uint8 images, iterated with no model.",
        "Driver rows: Trainer.train_epoch on that pipeline, the default strategy and "
        "MirroredStrategy over one device taking turns epoch by epoch; waits: tensor values "
        "read into Python during one epoch (rwc_keras.benchmarks.host_reads), less those of "
        "building the epoch's input pipeline.",
        f"Training FLOP/s: 3 x {forward / 1e9:.3g} GFLOP forward per image (2 x multiply-adds of "
        "conv and dense layers; backward counted as 2 x forward) x plain-fit images/s.",
    ]


def bench_arch(arch, settings, peak):
    """Measures everything for one architecture; returns its Table.

    Args:
        arch: a name of ``rwc_keras.spec.ARCHITECTURES``.
        settings: the `Settings`.
        peak: the matmul Row of the training compute dtype, for the FLOP/s fraction.
    """
    model = compiled_model(arch, settings)
    forward = forward_flops_per_image(model)
    table = Table(arch, notes=arch_notes(settings, forward))
    with tempfile.TemporaryDirectory() as log_root:
        plain = table.add("fit, plain", fit_images_per_second(model, settings), "img/s")
        for update_freq, name in RWC_SETTINGS:
            callback = RWCCallback(os.path.join(log_root, str(update_freq)),
                                   update_freq=update_freq, verbose=0)
            table.add(name, fit_images_per_second(model, settings, [callback]), "img/s", plain)
        with_files, all_with_files, in_step = measurement_rows(
            table, model, os.path.join(log_root, "measure"), settings)
    # Step-time fractions: more precise than the fit rows, whose run-to-run spread is
    # larger than the cost they would show.
    step_ms = 1000 * settings.batch_size / plain.median
    cifar_steps = CIFAR10_TRAIN_EXAMPLES // settings.batch_size
    table.add("RWC every step: measurement with writes / plain step time",
              [100 * ms / step_ms for ms in with_files.values], "%")
    table.add("RWC every step inside the train step (TensorFlow's update_freq=N) / plain "
              "step time", [100 * ms / step_ms for ms in in_step.values], "%")
    table.add("all metrics every step: time added to the RWC measurement / plain step time",
              [100 * (every - alone) / step_ms
               for every, alone in zip(all_with_files.values, with_files.values)], "%")
    table.add(f"RWC every epoch: the same / a CIFAR-10 epoch ({cifar_steps} steps)",
              [100 * ms / (step_ms * cifar_steps) for ms in with_files.values], "%")
    datasets = generated_cifar(settings.steps, settings.batch_size)
    table.add("input pipeline alone (generated CIFAR-shaped data)",
              pipeline_images_per_second(datasets, settings), "img/s", plain)
    trainers = {"default": driver_trainer(arch, datasets, settings, tf.distribute.get_strategy()),
                "mirrored": driver_trainer(arch, datasets, settings, one_device_mirrored())}
    driver = driver_images_per_second(trainers, settings)
    default = table.add("driver Trainer epochs (pipeline + its loop)", driver["default"],
                        "img/s", plain)
    table.add("driver Trainer epochs, MirroredStrategy over 1 device", driver["mirrored"],
              "img/s", default)
    table.add(f"driver: waits for the device per epoch ({settings.steps} steps)",
              driver_host_reads(*trainers["default"], settings), "reads")
    table.add("training FLOP/s (plain fit)", [3 * forward * v / 1e9 for v in plain.values],
              "GFLOP/s", peak)
    # The machine's own speed can drift during the minutes the rows above take; plain fit
    # again at the end shows how far, i.e. which ratios to plain are within noise.
    table.add("fit, plain, again at the end (drift check)", fit_images_per_second(model, settings),
              "img/s", plain)
    return table


# ---------------------------------------------------------------------------------------
# Report


def header(settings):
    """Markdown lines describing the machine, the software and the exact command."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join([
        "## RWC benchmark", "",
        f"- command: `python -m rwc_keras.benchmarks.bench {shlex.join(sys.argv[1:])}`",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- CPU: {cpu_model()}, {os.cpu_count()} cores "
        f"({len(os.sched_getaffinity(0))} usable), flags {cpu_flags()}, load average at "
        f"start {load} (other work running distorts every figure)",
        f"- devices: {', '.join(device_names())}",
        f"- Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, NumPy {np.__version__}",
        f"- batch {settings.batch_size}, {settings.steps} steps per timed epoch, "
        f"{settings.repeats} repeats, {'x'.join(map(str, CIFAR10.input_shape))} input, "
        f"{CIFAR10.num_classes} classes, "
        f"{'mixed_bfloat16' if settings.mixed_precision else 'float32'}, "
        f"jit_compile={settings.jit_compile}",
        "- every figure: median, min and max over the repeats; ratio = this median / the "
        "named row's median",
    ]) + "\n"


def resolve_settings():
    """`Settings` from the flags; --quick changes only the defaults of --steps and --repeats."""
    return Settings(
        batch_size=FLAGS.batch_size,
        steps=FLAGS.steps or (10 if FLAGS.quick else 20),
        repeats=FLAGS.repeats or (3 if FLAGS.quick else 5),
        jit_compile=FLAGS.jit_compile,
        mixed_precision=FLAGS.mixed_precision,
        matmul_size=FLAGS.matmul_size,
        measurement_only=FLAGS.measurement_only,
    )


def main(argv):
    if len(argv) > 1:
        sys.exit(f"rwc_keras.benchmarks.bench: error: unexpected arguments {argv[1:]}")
    settings = resolve_settings()
    top = header(settings)
    print(top, flush=True)

    if settings.measurement_only:
        tables = [bench_measurement(arch, settings) for arch in FLAGS.archs]
    else:
        size = settings.matmul_size
        machine = Table("reference matmul")
        compute_dtype = "bfloat16" if settings.mixed_precision else "float32"
        peaks = {dtype: machine.add(f"matmul {size}x{size} {dtype}",
                                    matmul_gflops(size, dtype, settings.repeats), "GFLOP/s")
                 for dtype in sorted({"float32", compute_dtype}, reverse=True)}
        peak = peaks[compute_dtype]
        tables = [machine] + [bench_arch(arch, settings, peak) for arch in FLAGS.archs]

    report = "\n".join([top] + [t.markdown() for t in tables])
    print_and_write(report, FLAGS.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
