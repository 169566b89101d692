"""Benchmark: the driver's training speed with and without XLA (``--jit_compile``), per model.

For each architecture (32x32x3 input, 10 classes, generated CIFAR-shaped data through the
real pipeline) it builds two of the driver's trainers (`rwc_keras.experiment.train.Trainer`),
one with the forward and backward pass XLA-compiled and one without, and times training
epochs of ``--steps`` steps, the two taking turns (each round starting with the other), so
that the machine's drift weighs on both alike. Each row: images/s (median, min, max over
``--repeats`` epochs), the median of the per-round ratios XLA / no XLA with their min and
max, the process's CPU time per step (all threads, which other programs disturb less than the
wall clock) and the first epoch of each, which traces and compiles. The per-model defaults of
``--jit_compile`` (``rwc_keras.spec.Architecture.xla``) come from this table (BENCHMARKS.md).

Example:
  python -m rwc_keras.benchmarks.xla_bench --archs=alexnet,resnet18,vgg19bn --batch_size=64 --steps=3
"""

import statistics
import time

import keras
import tensorflow as tf
from absl import app, flags

from rwc_keras import spec
from rwc_keras.benchmarks.workload import bench_config, generated_cifar
from rwc_keras.experiment.train import Trainer

FLAGS = flags.FLAGS

VARIANTS = {"no XLA": False, "XLA": True}


def define_flags():
    """Defines the benchmark's flags; called only when it runs."""
    flags.DEFINE_list("archs", list(spec.ARCHITECTURES), "Architectures to benchmark.")
    flags.DEFINE_integer("batch_size", spec.BATCH_SIZE, "Global batch size.", lower_bound=1)
    flags.DEFINE_integer("steps", 3, "Training steps per timed epoch.", lower_bound=1)
    flags.DEFINE_integer("repeats", 3, "Timed epochs per variant.", lower_bound=1)
    flags.register_validator(
        "archs", lambda archs: bool(archs) and set(archs) <= set(spec.ARCHITECTURES),
        message=f"--archs must be a comma-separated subset of {','.join(spec.ARCHITECTURES)}")


def epoch_seconds(arch, batch_size, steps, repeats):
    """Per variant: ``{"first": seconds, "wall": [...], "cpu": [...]}``, the first epoch
    (tracing, compiling) and the wall and CPU seconds per step of each timed epoch."""
    datasets = generated_cifar(steps, batch_size)
    trainers = {}
    times = {}
    for name, jit_compile in VARIANTS.items():
        trainer = Trainer(bench_config(arch, batch_size, jit_compile=jit_compile),
                          tf.distribute.get_strategy(), datasets)
        callbacks = keras.callbacks.CallbackList([], model=trainer.model)
        start = time.perf_counter()
        trainer.train_epoch(0, callbacks)
        trainers[name] = (trainer, callbacks)
        times[name] = {"first": time.perf_counter() - start, "wall": [], "cpu": []}
    names = list(VARIANTS)
    for repeat in range(repeats):
        for name in names[repeat % 2:] + names[:repeat % 2]:
            trainer, callbacks = trainers[name]
            start, start_cpu = time.perf_counter(), time.process_time()
            trainer.train_epoch(repeat + 1, callbacks)
            times[name]["wall"].append((time.perf_counter() - start) / steps)
            times[name]["cpu"].append((time.process_time() - start_cpu) / steps)
    return times


def table(arch, times, batch_size):
    """The markdown rows of one architecture."""
    base = times["no XLA"]
    ratios = [off / on for off, on in zip(base["wall"], times["XLA"]["wall"])]
    rows = []
    for name, measured in times.items():
        rates = [batch_size / seconds for seconds in measured["wall"]]
        ratio = (f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
                 if name == "XLA" else "1")
        cpu = statistics.median(measured["cpu"])
        rows.append(f"| {spec.architecture(arch).title} | {name} | {statistics.median(rates):.1f} "
                    f"| {min(rates):.1f} | {max(rates):.1f} | {ratio} | {1000 * cpu:.0f} "
                    f"| {statistics.median(base['cpu']) / cpu:.2f} | {measured['first']:.1f} |")
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    print("| model | variant | img/s median | min | max | speed-up per round, median (min-max) "
          "| CPU ms/step | CPU speed-up | first epoch s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for arch in FLAGS.archs:
        times = epoch_seconds(arch, FLAGS.batch_size, FLAGS.steps, FLAGS.repeats)
        print("\n".join(table(arch, times, FLAGS.batch_size)), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
