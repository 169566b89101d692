"""What one RWC measurement costs on a model's weights: the callback's compiled measurement
of each choice of measures (the callbacks taking turns), the authors' numpy way, and the
whole ``on_epoch_end`` hook with its file writes; rows of `rwc_keras.benchmarks.bench`."""

import os

import numpy as np

from rwc_keras import spec
from rwc_keras.benchmarks.timing import alternating_milliseconds, time_calls
from rwc_keras.callbacks.rwc_callback import RWCCallback

# RWC measurements per timed repetition: one takes milliseconds, too short to time alone.
MEASUREMENT_CALLS = 5
# The measures timed in the callback's measurement: the RWC alone (its default), with each
# other measure, and all together.
METRIC_CHOICES = (spec.RWC_METRICS,
                  *((metric,) for metric in spec.METRICS if metric not in spec.RWC_METRICS),
                  spec.METRICS)

MEASUREMENT_NOTE = (
    f"RWC measurement: ms per call, {MEASUREMENT_CALLS} calls per repetition; in-graph = the "
    "callback's compiled measurement (no file writing) of the RWC alone (rwc, rwc_norm, "
    "zeros), with one more measure, or with all, the callbacks taking turns within each "
    "repetition; CPU time = the process's, all threads; naive = numpy copies of every tracked "
    "weight, then numpy mean(|curr-prev|/|prev|) and the L1-norm ratio.")


def naive_measurement(tracked):
    """The authors' way: every measurement copies the weights to numpy and computes there.

    Returns a function doing one measurement: both RWC definitions of every tensor against
    the previous call's copy, which it then replaces.
    """
    previous = [v.numpy() for v in tracked]

    def measure():
        nonlocal previous
        current = [v.numpy() for v in tracked]
        values = [(np.mean(np.abs(c - p) / np.abs(p)), np.sum(np.abs(c - p)) / np.sum(np.abs(p)))
                  for p, c in zip(previous, current)]
        previous = current
        return values

    return measure


def started_callback(model, log_dir, metrics):
    """An `RWCCallback` recording ``metrics`` on ``model``, set up as ``fit`` sets it up."""
    callback = RWCCallback(log_dir, metrics=metrics, verbose=0)
    callback.set_model(model)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    return callback


def measurement_rows(table, model, log_root, settings):
    """Adds the rows of one RWC measurement's cost on ``model``'s weights to ``table``.

    In-graph is the callback's compiled measurement alone (all tensors against the
    snapshots, and w0 for the measures needing it, then snapshots <- weights, one scalar per
    measure and tensor to the host), for each of `METRIC_CHOICES`, the callbacks taking
    turns; with files is the whole ``on_epoch_end`` hook, CSV rows and TensorBoard scalars
    included (the RWC alone and all measures taking turns): what a measurement costs a
    training run.

    Returns:
        The two with-files Rows: the RWC alone, all measures.
    """
    callbacks = [started_callback(model, os.path.join(log_root, "_".join(metrics)), metrics)
                 for metrics in METRIC_CHOICES]
    rwc_alone, everything = callbacks[0], callbacks[-1]
    try:
        wall, cpu = alternating_milliseconds([c.measure for c in callbacks], settings.repeats,
                                             MEASUREMENT_CALLS)
        with_files, _ = alternating_milliseconds(
            [lambda c=c: c.on_epoch_end(0) for c in (rwc_alone, everything)],
            settings.repeats, MEASUREMENT_CALLS)
    finally:
        for callback in callbacks:
            callback.on_train_end()
    naive = time_calls(naive_measurement(rwc_alone.tracked_variables), settings.repeats,
                       MEASUREMENT_CALLS)
    in_graph = table.add("RWC measurement, in-graph (callback)", wall[0], "ms")
    for metrics, values in zip(METRIC_CHOICES[1:-1], wall[1:-1]):
        table.add(f"RWC and {', '.join(metrics)} measurement, in-graph", values, "ms",
                  in_graph)
    table.add("all metrics measurement, in-graph", wall[-1], "ms", in_graph)
    cpu_alone = table.add("RWC measurement, in-graph, CPU time", cpu[0], "ms")
    table.add("all metrics measurement, in-graph, CPU time", cpu[-1], "ms", cpu_alone)
    table.add("RWC measurement, naive numpy", [1000 * s for s in naive], "ms", in_graph)
    rwc_files = table.add("RWC measurement + CSV and TensorBoard writes (on_epoch_end)",
                          with_files[0], "ms")
    all_files = table.add("all metrics measurement + CSV and TensorBoard writes "
                          "(on_epoch_end)", with_files[1], "ms", rwc_files)
    return rwc_files, all_files
