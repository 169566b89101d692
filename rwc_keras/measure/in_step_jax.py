"""Per-step RWC measurement inside the compiled train step, on JAX: the recorder's state is
Keras variables that the stateless step threads through like optimizer state
(`rwc_keras.measure.in_step`)."""

import jax
import keras
import numpy as np
from keras import ops

from rwc_keras.measure.in_step import StepRecorder, buffer_capacity, overflow_message
from rwc_keras.measure.snapshots import stacked_stats


def _state_variable(value, name):
    return keras.Variable(value, trainable=False, name=name)


def _as_float32_pair(value):
    """A float64 array as float32 ``[high, low]`` with ``high + low`` equal to it to about
    1e-14: a variable of Keras's JAX step cannot hold float64."""
    value = np.asarray(value, np.float64)
    high = value.astype(np.float32)
    return np.stack([high, (value - high).astype(np.float32)])


def _from_float32_pair(pair):
    """`_as_float32_pair` undone, with float64 enabled."""
    return ops.cast(pair[0], "float64") + ops.cast(pair[1], "float64")


class StatelessStepMeasurements(StepRecorder):
    """Measures every ``every`` steps inside a JAX train step, and holds the values until the
    host reads them.

    The snapshots and w0 move from ``store`` into variables of the wrapped optimizer for the
    length of ``fit`` (the store holds none meanwhile: ``fit`` donates the variables' arrays
    to its step), and back at `detach`. Keras's jitted step runs with
    float64 disabled; the measurement enables it for its own sums, as the host-side one does
    (`rwc_keras.measure.compiled`), and the buffer holds float32 values (ratios to 6e-8, zero
    counts exact up to 2**24 elements). Inside a step nothing can raise: an epoch with more
    measurements than the buffer holds overwrites its last one and `read` raises.

    Args:
        store: the callback's `rwc_keras.measure.snapshots.HostSnapshots`.
        tracked: the Keras variables measured.
        metrics: the measures, as `RWCCallback` lists them.
        last_step: the step of the last measurement (an int).
        every: the steps between two measurements.
        steps_per_epoch: sizes the buffer to hold an epoch's measurements; None:
            `rwc_keras.measure.in_step.DEFAULT_CAPACITY` of them.

    Example:
        ```python
        recorder = StatelessStepMeasurements(store, tracked, metrics, 0, 10)
        recorder.attach(model)  # then, after each epoch of fit: recorder.read()
        ```
    """

    def __init__(self, store, tracked, metrics, last_step, every, steps_per_epoch=None):
        self._store, self._tracked, self._metrics = store, tracked, metrics
        self.every = every
        self.capacity = buffer_capacity(steps_per_epoch, every)
        self._snapshots = [_state_variable(s, "rwc_snapshot") for s in store.snapshots]
        self._initials = []
        if store.initials is not None:
            self._initials = [*(_state_variable(w0, "rwc_initial") for w0 in store.initials),
                              *(_state_variable(_as_float32_pair(norm), "rwc_initial_norm")
                                for norm in store.initial_norms)]
        shape = (len(tracked), len(metrics) + 1)
        self._last_step = _state_variable(np.asarray(last_step, np.int32), "rwc_last_step")
        self._values = _state_variable(np.zeros((self.capacity, *shape), np.float32),
                                       "rwc_values")
        self._steps = _state_variable(np.zeros(self.capacity, np.int32), "rwc_steps")
        self._count = _state_variable(np.asarray(0, np.int32), "rwc_count")
        self.variables = [*self._snapshots, *self._initials, self._last_step, self._values,
                          self._steps, self._count]
        self._positions = None
        store.snapshots = store.initials = None

    def attach(self, model):
        # The order in which stateless_apply receives the weights (Keras's own pairing).
        trainable = model.optimizer._trainable_variables
        self._positions = [next(i for i, v in enumerate(trainable) if v is tracked)
                           for tracked in self._tracked]
        super().attach(model)

    def after_stateless_apply(self, step, trainable_values, state_values):
        tensors, fixed_count = len(self._snapshots), len(self._initials)
        snapshots = state_values[:tensors]
        fixed = state_values[tensors:tensors + fixed_count]  # w0 and its norms
        initials, norms = (fixed[:tensors], fixed[tensors:]) if fixed else (None, None)
        last_step, values, steps, count = state_values[tensors + fixed_count:]
        currents = [trainable_values[i] for i in self._positions]
        step = ops.cast(step, last_step.dtype)

        def record():
            with jax.enable_x64(True):
                measured = stacked_stats(self._metrics, snapshots, currents, initials,
                                         norms and [_from_float32_pair(n) for n in norms])
            index = ops.minimum(count, self.capacity - 1)
            return (currents, step, values.at[index].set(ops.cast(measured, values.dtype)),
                    steps.at[index].set(step), count + 1)

        new_snapshots, last_step, values, steps, count = ops.cond(
            step - last_step >= self.every, record,
            lambda: (snapshots, last_step, values, steps, count))
        return [*new_snapshots, *fixed, last_step, values, steps, count]

    def read(self):
        """The held measurements, oldest first, as ``[(step, values)]``; empties the buffer.

        Raises:
            RuntimeError: the epoch took more measurements than the buffer holds.
        """
        count = int(ops.convert_to_numpy(self._count.value))
        if count > self.capacity:
            raise RuntimeError(overflow_message(self.capacity))
        steps = ops.convert_to_numpy(self._steps.value)[:count]
        values = ops.convert_to_numpy(self._values.value)[:count].astype(np.float64)
        self._count.assign(0)
        return list(zip(steps.tolist(), values))

    def detach(self):
        """Gives the model its optimizer back, and the store the snapshots moved on."""
        super().detach()
        self._store.snapshots = [variable.value for variable in self._snapshots]
        if self._initials:
            self._store.initials = [variable.value
                                    for variable in self._initials[:len(self._snapshots)]]
