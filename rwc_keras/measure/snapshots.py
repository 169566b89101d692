"""The weights a measurement compares with, one store per backend: `GraphSnapshots` keeps
them in TensorFlow variables and measures in the graph; `HostSnapshots` keeps them as JAX or
PyTorch arrays and measures with the function `rwc_keras.measure.compiled` makes.

Either store holds a copy of every tracked weight as of the last measurement and, when a
measure needs them, the weights at train begin (w0) with their norms; ``measure`` returns the
measures of every tensor since the last call and moves the copies on.
"""

import numpy as np
from keras import ops

from rwc_keras.measure.compiled import compiled, copies, norms_of
from rwc_keras.measure.metric import initial_norms, layer_stats


def stacked_stats(metrics, snapshots, currents, initials=None, norms=None):
    """The ``metrics`` of every tensor against its snapshot (and w0), stacked:
    (tensors, measures + 1), the zero count last."""
    initials = initials or [None] * len(currents)
    norms = norms or [None] * len(currents)
    return ops.stack([layer_stats(*tensors, metrics, norm) for *tensors, norm
                      in zip(snapshots, currents, initials, norms)])


def _variable_beside(value):
    """A variable holding ``value`` on its device."""
    # TensorFlow is imported where `GraphSnapshots` uses it: JAX and PyTorch run without it.
    import tensorflow as tf  # noqa: PLC0415

    with tf.device(value.device):
        return tf.Variable(tf.identity(value), trainable=False)


class GraphSnapshots:
    """TensorFlow: a plain variable beside the primary copy of each weight, so that under
    MirroredStrategy the measurement reads the primary replica only (no cross-device
    traffic).

    Args:
        tracked: the Keras variables measured.
        metrics: the measures, as `RWCCallback` lists them.
        with_initials: keep w0 and its norms too.
    """

    def __init__(self, tracked, metrics, with_initials):
        self._tracked, self._metrics = tracked, metrics
        self.snapshots = [_variable_beside(v.value) for v in tracked]
        self.initials = self.initial_norms = None
        if with_initials:
            self.initials = [_variable_beside(v.value) for v in tracked]
            self.initial_norms = [_variable_beside(initial_norms(w0)) for w0 in self.initials]
        import tensorflow as tf  # noqa: PLC0415 (see _variable_beside)

        self._compiled = tf.function(self.measure_in_graph)

    def measure_in_graph(self):
        """The measures as a tensor, then snapshot <- now; callable inside a graph (the
        train step of `rwc_keras.measure.in_step` calls it there)."""
        currents = [variable.value.read_value() for variable in self._tracked]
        initials = norms = None
        if self.initials is not None:
            initials = [initial.read_value() for initial in self.initials]
            norms = [norm.read_value() for norm in self.initial_norms]
        values = stacked_stats(self._metrics, [s.read_value() for s in self.snapshots],
                               currents, initials, norms)
        for snapshot, current in zip(self.snapshots, currents):
            snapshot.assign(current)
        return values

    def measure(self):
        return self._compiled().numpy()

    def checkpoint_state(self):
        """The variables a checkpoint needs to resume the same comparisons."""
        state = {"snapshots": list(self.snapshots)}
        if self.initials is not None:
            state.update(initials=list(self.initials), initial_norms=list(self.initial_norms))
        return state


class HostSnapshots:
    """JAX and PyTorch: the copies are backend arrays on the weights' device, the measurement
    a compiled pure function returning the measures and the next copies.

    Args:
        model: the model trained (on JAX its trainer's latest weights are synced first).
        tracked: the Keras variables measured.
        metrics: the measures, as `RWCCallback` lists them.
        with_initials: keep w0 and its norms too.
    """

    def __init__(self, model, tracked, metrics, with_initials):
        self._model, self._tracked, self._metrics = model, tracked, metrics
        self._compiled = compiled(self._stats_and_copies)
        self._sync_weights()
        copy = compiled(copies)
        self.snapshots = copy([v.value for v in tracked])
        self.initials = self.initial_norms = None
        if with_initials:
            self.initials = copy(self.snapshots)
            self.initial_norms = compiled(norms_of)(self.initials)

    def _stats_and_copies(self, snapshots, currents, initials, norms):
        return stacked_stats(self._metrics, snapshots, currents, initials, norms), copies(currents)

    def _sync_weights(self):
        """On JAX, puts the trainer's latest weights back into the model's variables (fit
        does it only at epoch ends); a no-op on PyTorch."""
        if hasattr(self._model, "jax_state_sync"):
            self._model.jax_state_sync()

    def measure(self):
        """The measures on the host (float64); the copies moved on."""
        self._sync_weights()
        values, self.snapshots = self._compiled(
            self.snapshots, [v.value for v in self._tracked], self.initials, self.initial_norms)
        return ops.convert_to_numpy(values).astype(np.float64)
