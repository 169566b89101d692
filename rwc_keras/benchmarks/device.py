"""Benchmark: what RWCCallback costs a training step on one device, for the GPU figures.

Runs on the Keras backend ``KERAS_BACKEND`` selects (TensorFlow, JAX or PyTorch) and needs no
other: the GPU machine this is written for has JAX and PyTorch but no TensorFlow. For each
model and batch size, ``fit`` trains on random 32x32x3 images held in memory, one epoch of
``--steps`` steps untimed (tracing, compiling), then ``--repeats`` timed epochs; a row's
figure is the median over them. Rows, in one process and on one model:

- the step time of a plain ``fit``, and its images per second;
- the step time with `RWCCallback` per epoch, every step, every `EVERY` steps, and with all
  measures (``spec.METRICS``) every `EVERY` steps, each as a share of the plain step;
- one measurement alone (`RWCCallback.measure`), RWC only and all measures;
- the peak accelerator memory, where the backend reports it (not on a CPU).

It prints the tables as markdown and writes them as JSON (``--output``). The defaults take
a few minutes on one GPU; ``--tiny`` runs one small configuration on a CPU in under a minute.

Example:
  KERAS_BACKEND=jax python -m rwc_keras.benchmarks.device --output=device.json
  python -m rwc_keras.benchmarks.device --tiny
"""

import dataclasses
import importlib.metadata
import json
import os
import shlex
import sys
import tempfile

import keras
from absl import app, flags

from rwc_keras import spec
from rwc_keras.benchmarks import machine
from rwc_keras.benchmarks.backend_bench import compiled_model, random_batches
from rwc_keras.benchmarks.tables import Table, print_and_write
from rwc_keras.benchmarks.timing import EpochTimer, time_calls
from rwc_keras.callbacks import rwc_callback

EVERY = 10
# The callback rows: each a fit of its own with one RWCCallback made with these arguments.
CALLBACK_ROWS = (
    ("RWC per epoch", dict(update_freq="epoch")),
    ("RWC every step", dict(update_freq=1)),
    (f"RWC every {EVERY} steps", dict(update_freq=EVERY)),
    (f"all measures every {EVERY} steps", dict(update_freq=EVERY, metrics=spec.METRICS)),
)
# Measurements per timing of one measurement alone: one takes milliseconds.
CALLS = 5
MIB = 2**20
# --tiny: one epoch of EVERY steps, so that every callback row measures at least once.
TINY = dict(archs=["resnet18"], batch_sizes=[4], steps=EVERY, repeats=2)


def define_flags():
    """Defines the flags; called only when the script runs, so that importing this module
    defines none."""
    flags.DEFINE_list("archs", ["resnet18", "vgg19bn"], "Models to measure.")
    flags.register_validator("archs", lambda names: set(names) <= set(spec.ARCHITECTURES),
                             message=f"--archs must be a subset of {','.join(spec.ARCHITECTURES)}")
    flags.DEFINE_list("batch_sizes", ["128", "256", "512"],
                      "Batch sizes to measure each model at.")
    flags.DEFINE_integer("steps", 20, "Steps per epoch, the unit of one timing.",
                         lower_bound=EVERY)
    flags.DEFINE_integer("repeats", 3, "Timed epochs per row (median, min, max).",
                         lower_bound=1)
    flags.DEFINE_bool("tiny", False, f"Overrides the four flags above with {TINY}: "
                      "a check on a CPU in under a minute.")
    flags.DEFINE_string("output", None, "Also write the tables as JSON here.")


FLAGS = flags.FLAGS


def step_milliseconds(model, data, batch_size, repeats, callbacks=()):
    """ms per step of ``fit`` over ``data``: one value per epoch after the first (tracing,
    compiling), which is left out."""
    timer = EpochTimer()
    model.fit(*data, batch_size=batch_size, epochs=1 + repeats, shuffle=False, verbose=0,
              callbacks=[*callbacks, timer])
    steps = len(data[0]) // batch_size
    return [1000 * seconds / steps for seconds in timer.seconds[1:]]


def measurement_milliseconds(callback, repeats):
    """ms per `RWCCallback.measure` of a callback that has trained (its state is built)."""
    return [1000 * seconds for seconds in time_calls(callback.measure, repeats, CALLS)]


def measure_config(arch, batch_size, steps, repeats, log_root):
    """The `Table` of ``arch`` at ``batch_size``: every row, on one model."""
    table = Table(f"{arch}, batch {batch_size}")
    reset_peak_memory()
    model = compiled_model(arch)
    data = random_batches(steps * batch_size)
    plain = table.add("plain fit step", step_milliseconds(model, data, batch_size, repeats), "ms")
    table.add("images per second", [1000 * batch_size / ms for ms in plain.values], "img/s")
    callbacks = []
    for name, arguments in CALLBACK_ROWS:
        log_dir = os.path.join(log_root, f"{arch}_{batch_size}_{len(callbacks)}")
        callbacks.append(rwc_callback.RWCCallback(log_dir, verbose=0, **arguments))
        table.add(name, step_milliseconds(model, data, batch_size, repeats, callbacks[-1:]),
                  "ms", reference=plain)
    # The first callback measures the RWC alone, the last every measure.
    alone = table.add("one RWC measurement", measurement_milliseconds(callbacks[0], repeats),
                      "ms", reference=plain)
    table.add("one measurement, all measures", measurement_milliseconds(callbacks[-1], repeats),
              "ms", reference=alone)
    memory = peak_memory_bytes()
    if memory is not None:
        table.add("peak accelerator memory", [memory / MIB], "MiB")
    keras.backend.clear_session()
    return table


def reset_peak_memory():
    """Starts the backend's peak memory count again, where it can (JAX cannot)."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch  # noqa: PLC0415 (each backend's package only on that backend)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    elif backend == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415
        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.reset_memory_stats("GPU:0")


def peak_memory_bytes():
    """The first accelerator's peak memory in use; None where the backend reports none (a
    CPU). On JAX it is the process's peak so far (`reset_peak_memory` cannot reset it)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # noqa: PLC0415
        stats = jax.devices()[0].memory_stats()
        return stats.get("peak_bytes_in_use") if stats else None
    if backend == "torch":
        import torch  # noqa: PLC0415
        return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    import tensorflow as tf  # noqa: PLC0415
    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"]


def device_name():
    """The device the backend computes on, by its model name."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # noqa: PLC0415
        return f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}"
    if backend == "torch":
        import torch  # noqa: PLC0415
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return ", ".join(machine.device_names())


def settings():
    """The archs, batch sizes, steps and repeats to run: the flags', or `TINY`."""
    if FLAGS.tiny:
        return TINY
    return dict(archs=FLAGS.archs, batch_sizes=[int(size) for size in FLAGS.batch_sizes],
                steps=FLAGS.steps, repeats=FLAGS.repeats)


def left_out():
    """What this backend and machine leave out of the measurement, each with the reason."""
    reasons = []
    if rwc_callback.tf is None:
        reasons.append("TensorBoard events: TensorFlow, which writes them, is not installed; "
                       "the callback rows write rwc.csv only")
    if peak_memory_bytes() is None:
        reasons.append("the memory row: this backend reports no accelerator memory here")
    return reasons


def header(run):
    """The lines above the tables: command, machine, backend, settings, what was left out."""
    backend = keras.backend.backend()
    lines = [
        f"- command: `KERAS_BACKEND={backend} python -m rwc_keras.benchmarks.device "
        f"{shlex.join(sys.argv[1:])}`",
        f"- {backend} {importlib.metadata.version(backend)}, Keras {keras.__version__}, "
        f"on {device_name()}; CPU {machine.cpu_model()} ({os.cpu_count()} cores)",
        f"- random 32x32x3 images in memory, {run['steps']} steps per epoch: one epoch "
        f"untimed, then {run['repeats']} timed; ratios are of medians",
    ]
    return lines + [f"- left out: {reason}" for reason in left_out()]


def write_json(path, run, lines, tables):
    """The run as JSON: the header's lines, the settings, what was left out, every row."""
    result = dict(backend=keras.backend.backend(), header=lines, settings=run,
                  left_out=left_out(),
                  tables=[dict(title=table.title,
                               rows=[dict(dataclasses.asdict(row), median=row.median)
                                     for row in table.rows])
                          for table in tables])
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"Written to {path}")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"rwc_keras.benchmarks.device: error: unexpected arguments {argv[1:]}")
    run = settings()
    with tempfile.TemporaryDirectory() as log_root:
        tables = [measure_config(arch, batch_size, run["steps"], run["repeats"], log_root)
                  for arch in run["archs"] for batch_size in run["batch_sizes"]]
    lines = header(run)
    print_and_write("\n".join(lines) + "\n\n" + "\n".join(t.markdown() for t in tables), None)
    if FLAGS.output:
        write_json(FLAGS.output, run, lines, tables)

if __name__ == "__main__":
    define_flags()
    app.run(main)
