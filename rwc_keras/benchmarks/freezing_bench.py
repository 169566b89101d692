"""Benchmark: how much faster the training driver's step gets as leading layer groups freeze.

For each architecture (32x32x3 input, 10 classes, generated CIFAR-shaped data) it freezes the
paper's groups one after the other, as `RWCFreezing` would (none, then the first, the first
two, ... all but the head), rebuilds the driver's train step (`rwc_keras.experiment.train.Trainer`,
the same loop and optimizer as a run) and times training epochs of ``--steps`` steps. Each
row: the median time per step over ``--repeats`` epochs (after an untimed one that traces),
its min and max, its ratio to the unfrozen step, and the analytic share of a step's
multiply-adds the frozen groups skip (`rwc_keras.freezing.freezer.saved_macs`): what the timing
should approach when the convolutions dominate. It also gives the process's CPU time per
step (all threads), which other programs sharing the machine disturb far less than the wall
clock. Each round times every model once, starting
with a different one each time, so that the machine's drift shows in every row alike.

Example:
  python -m rwc_keras.benchmarks.freezing_bench --archs=alexnet --steps=10 --repeats=3
"""

import statistics
import time

import keras
import tensorflow as tf
from absl import app, flags

from rwc_keras import spec
from rwc_keras.freezing import schema
from rwc_keras.benchmarks.workload import bench_config, generated_cifar
from rwc_keras.experiment.train import Trainer
from rwc_keras.freezing.freezer import freeze_unit, layer_units, saved_macs, training_macs

FLAGS = flags.FLAGS


def define_flags():
    """Defines the benchmark's flags; called only when it runs."""
    flags.DEFINE_list("archs", ["alexnet"], "Architectures to benchmark.")
    flags.DEFINE_integer("batch_size", spec.BATCH_SIZE, "Global batch size.", lower_bound=1)
    flags.DEFINE_integer("steps", 10, "Training steps per timed epoch.", lower_bound=1)
    flags.DEFINE_integer("repeats", 3, "Timed epochs per row.", lower_bound=1)
    flags.DEFINE_enum("batchnorm", schema.DEFAULT_FREEZE_BATCHNORM, schema.FREEZE_BATCHNORM,
                      "How frozen BatchNormalization layers normalise (see "
                      "rwc_keras.freezing.freezer).")
    flags.register_validator(
        "archs", lambda archs: bool(archs) and set(archs) <= set(spec.ARCHITECTURES),
        message=f"--archs must be a comma-separated subset of {','.join(spec.ARCHITECTURES)}")


def _trainer(arch, batch_size, steps, frozen, batchnorm):
    """A driver trainer on generated data with its first ``frozen`` groups frozen, traced."""
    trainer = Trainer(bench_config(arch, batch_size), tf.distribute.get_strategy(),
                      generated_cifar(steps, batch_size))
    units = layer_units(trainer.model, trainer.model.rwc_groups)
    for unit in units[:frozen]:
        freeze_unit(unit, batchnorm)
    trainer.rebuild_step()
    callbacks = keras.callbacks.CallbackList([], model=trainer.model)
    trainer.train_epoch(0, callbacks)  # traces
    return trainer, callbacks, units


def step_seconds(arch, batch_size, steps, repeats, batchnorm):
    """Per number of frozen leading groups: the seconds per step of each timed epoch.

    Returns:
        ``(units, wall, cpu)``: the model's `rwc_keras.freezing.freezer.LayerUnit`s (paper groups),
        and ``{frozen: [seconds per step, ...]}`` of wall-clock and of process CPU time.
    """
    # One trainer per prefix, built up front, so that the timed rounds can alternate.
    trainer, callbacks, units = _trainer(arch, batch_size, steps, 0, batchnorm)
    trainers = {0: (trainer, callbacks)}
    for frozen in range(1, len(units)):
        trainers[frozen] = _trainer(arch, batch_size, steps, frozen, batchnorm)[:2]
    wall = {frozen: [] for frozen in trainers}
    cpu = {frozen: [] for frozen in trainers}
    for repeat in range(repeats):
        # Each round starts with another model, so that no row always runs first.
        order = list(trainers)[repeat % len(trainers):] + list(trainers)[:repeat % len(trainers)]
        for frozen in order:
            trainer, callbacks = trainers[frozen]
            start, start_cpu = time.perf_counter(), time.process_time()
            trainer.train_epoch(repeat + 1, callbacks)
            wall[frozen].append((time.perf_counter() - start) / steps)
            cpu[frozen].append((time.process_time() - start_cpu) / steps)
    return units, wall, cpu


def table(arch, units, wall, cpu):
    """The markdown table of one architecture's rows."""
    base, base_cpu = statistics.median(wall[0]), statistics.median(cpu[0])
    lines = [f"### {spec.architecture(arch).title}", "",
             "| frozen groups | ms/step (median) | min | max | ratio to unfrozen | "
             "CPU ms/step | CPU ratio | MACs skipped |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for frozen, values in wall.items():
        median, median_cpu = statistics.median(values), statistics.median(cpu[frozen])
        names = ", ".join(unit.name for unit in units[:frozen]) or "none"
        share = saved_macs(units, frozen) / training_macs(units)
        lines.append(f"| {names} | {1000 * median:.1f} | {1000 * min(values):.1f} | "
                     f"{1000 * max(values):.1f} | {median / base:.3f} | "
                     f"{1000 * median_cpu:.1f} | {median_cpu / base_cpu:.3f} | {share:.1%} |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    for arch in FLAGS.archs:
        units, wall, cpu = step_seconds(arch, FLAGS.batch_size, FLAGS.steps, FLAGS.repeats,
                                        FLAGS.batchnorm)
        print(table(arch, units, wall, cpu) + "\n", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
