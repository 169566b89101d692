"""Micro-benchmark: one measurement of the paper's RWC alone against every measure at once.

A measurement is what `RWCCallback` does in the graph at each measurement point: for every
tracked kernel of the model, `rwc_keras.metric.layer_stats` against a snapshot of the
previous point (and, for the measures of ``INITIAL_METRICS``, against a copy of the weights
at train begin), then the snapshot moves on. Prints the median wall and CPU time over ``--repeats``
timings of ``--calls`` calls (after an untimed warm-up that traces) of the RWC alone, of it
with each optional measure, and of all measures (also with the norms of the weights at train
begin computed once, `rwc_keras.metric.initial_norms`), with the ratio to the first.

Example:
  python -m rwc_keras.metric_bench --arch=resnet18
"""

import statistics
import time

from absl import app, flags
import keras
import tensorflow as tf

from rwc_keras import spec
from rwc_keras.metric import (DEFAULT_METRICS, METRICS, initial_norms, layer_stats,
                              needs_initial)
from rwc_keras.models import build_model

_ARCH = flags.DEFINE_enum("arch", "resnet18", list(spec.ARCHITECTURES), "Model whose "
                          "kernels are measured (32x32x3 input, 10 classes).")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timings per figure; the median is printed.",
                                lower_bound=1)
_CALLS = flags.DEFINE_integer("calls", 5, "Measurements per timing.", lower_bound=1)
_JIT_COMPILE = flags.DEFINE_bool("jit_compile", False, "XLA-compile the measurement.")


def measurement(kernels, metrics, jit_compile, keep_initial_norms=False):
    """A compiled measurement of ``metrics`` of every kernel, as `RWCCallback` runs it.

    With ``keep_initial_norms``, the norms of the weights at train begin are computed once,
    outside the measurement (`rwc_keras.metric.initial_norms`).
    """
    # Perturbed copies, so that no measure sees an unchanged tensor.
    snapshots = [tf.Variable(k * 0.99, trainable=False) for k in kernels]
    initials = ([tf.Variable(k * 1.01, trainable=False) for k in kernels]
                if needs_initial(metrics) else [None] * len(kernels))
    norms = [initial_norms(i) if keep_initial_norms else None for i in initials]

    @tf.function(jit_compile=jit_compile)
    def measure():
        rows = []
        for kernel, snapshot, initial, norm in zip(kernels, snapshots, initials, norms):
            current = kernel.value.read_value()
            rows.append(layer_stats(snapshot.read_value(), current,
                                    None if initial is None else initial.read_value(),
                                    metrics, norm))
            snapshot.assign(current)
        return tf.stack(rows)

    return measure


def median_ms(measures, repeats, calls):
    """Median over ``repeats`` of the mean wall and CPU time of ``calls`` calls of each, in ms.

    The measures take turns within every repeat, so a machine whose speed drifts (other
    work starting or stopping) slows them all alike. The process's CPU time (all its
    threads) counts only the work done, which other processes on the machine hardly change.
    """
    for measure in measures:
        measure().numpy()
    timings = [[] for _ in measures]
    for _ in range(repeats):
        for measure, times in zip(measures, timings):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                values = measure()
            values.numpy()
            times.append(((time.perf_counter() - wall) / calls * 1e3,
                          (time.process_time() - cpu) / calls * 1e3))
    return [tuple(statistics.median(column) for column in zip(*times)) for times in timings]


def main(argv):
    del argv
    model = build_model(_ARCH.value)
    kernels = [v for v in model.trainable_variables if len(v.shape) > 1]
    elements = sum(int(tf.size(k)) for k in kernels)
    print(f"{_ARCH.value}: {len(kernels)} kernels, {elements:,} weights, "
          f"keras {keras.__version__}, TensorFlow {tf.__version__}, "
          f"jit_compile={_JIT_COMPILE.value}")
    # (metrics, whether w0's norms are computed once outside the measurement)
    choices = [(DEFAULT_METRICS, False),
               *(((*DEFAULT_METRICS, extra), False) for extra in METRICS[len(DEFAULT_METRICS):]),
               (METRICS, False), (METRICS, True)]
    measures = [measurement(kernels, metrics, _JIT_COMPILE.value, keep)
                for metrics, keep in choices]
    times = median_ms(measures, _REPEATS.value, _CALLS.value)
    (base_wall, base_cpu), *_ = times
    print(f"  {'metrics':78s} {'wall':>9s} {'CPU':>9s}  ratios to the first")
    for (metrics, keep), (wall, cpu) in zip(choices, times):
        name = ", ".join(metrics) + (" (w0 norms kept)" if keep else "")
        print(f"  {name:78s} {wall:6.2f} ms {cpu:6.2f} ms  "
              f"{wall / base_wall:4.2f}x {cpu / base_cpu:4.2f}x")

if __name__ == "__main__":
    app.run(main)
