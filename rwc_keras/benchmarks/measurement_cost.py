"""What one RWC measurement costs on a model's weights: the callback's compiled measurement
of each choice of measures (the callbacks taking turns), the authors' numpy way, and the
whole ``on_epoch_end`` hook with its file writes; rows of `rwc_keras.benchmarks.bench`."""

import itertools
import os

import numpy as np
import tensorflow as tf

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
    "weight, then numpy mean(|curr-prev|/|prev|) and the L1-norm ratio. Inside the train step "
    "= RWCCallback(update_freq=1) on TensorFlow: what its optimizer wrapper adds to a step "
    "(the measurement into the buffer, timed without the step), and at every "
    f"{MEASUREMENT_CALLS}th measurement an epoch's end reading the buffer and writing the rows; "
    "it takes turns with the two on_epoch_end rows.")


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


def started_in_step_callback(model, log_dir):
    """``RWCCallback(update_freq=1)`` set up on TensorFlow as ``fit`` sets it up, for epochs of
    ``MEASUREMENT_CALLS`` steps, and a function doing what it adds per step: the graph work
    its wrapper adds to a train step (`rwc_keras.measure.in_step`: the measurement into the buffer),
    timed without the step, and at every ``MEASUREMENT_CALLS``-th call the epoch's end
    (reading the buffer, writing the rows)."""
    callback = RWCCallback(log_dir, update_freq=1, verbose=0)
    callback.set_model(model)
    callback.set_params({"steps": MEASUREMENT_CALLS})
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    in_step = callback._in_step  # what the wrapped optimizer runs after each update
    record = tf.function(lambda: in_step.record_if_due(in_step.last_step + 1))
    calls = itertools.count(1)

    def measure_in_step():
        record()
        if next(calls) % MEASUREMENT_CALLS == 0:
            callback.on_epoch_end(0)

    for _ in range(MEASUREMENT_CALLS):  # tracing the measurement and the summaries
        measure_in_step()
    return callback, measure_in_step


def measurement_rows(table, model, log_root, settings):
    """Adds the rows of one RWC measurement's cost on ``model``'s weights to ``table``.

    In-graph is the callback's compiled measurement alone (all tensors against the
    snapshots, and w0 for the measures needing it, then snapshots <- weights, one scalar per
    measure and tensor to the host), for each of `METRIC_CHOICES`, the callbacks taking
    turns; with files is the whole ``on_epoch_end`` hook, CSV rows and TensorBoard scalars
    included (the RWC alone and all measures taking turns): what a measurement costs a
    training run.

    Returns:
        The with-files Rows: the RWC alone, all measures, and the RWC every step inside the
        train step.
    """
    callbacks = [started_callback(model, os.path.join(log_root, "_".join(metrics)), metrics)
                 for metrics in METRIC_CHOICES]
    rwc_alone, everything = callbacks[0], callbacks[-1]
    in_step, measure_in_step = started_in_step_callback(model, os.path.join(log_root, "step"))
    try:
        wall, cpu = alternating_milliseconds([c.measure for c in callbacks], settings.repeats,
                                             MEASUREMENT_CALLS)
        with_files, _ = alternating_milliseconds(
            [lambda c=c: c.on_epoch_end(0) for c in (rwc_alone, everything)] + [measure_in_step],
            settings.repeats, MEASUREMENT_CALLS)
    finally:
        for callback in [*callbacks, in_step]:
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
    in_step_files = table.add("RWC every step inside the train step: measurement + its share "
                              "of the epoch-end writes", with_files[2], "ms", rwc_files)
    return rwc_files, all_files, in_step_files
