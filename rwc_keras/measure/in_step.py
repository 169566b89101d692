"""Per-step RWC measurement inside the compiled train step (TensorFlow).

`RWCCallback(update_freq=N)` on TensorFlow wraps the model's optimizer in an
`InStepOptimizer` for the length of each ``fit`` (or driver run). Its ``apply`` updates the
weights with the wrapped optimizer, then, in the same traced step, measures when N steps
have passed since the last measurement and appends the values to a `StepMeasurements`
buffer of variables. The host reads the buffer once, at the epoch's end, and writes the
CSV and TensorBoard rows then: no batch hook, no Python and no device read per step.
docs/async.md says why this design.
"""

import tensorflow as tf
from keras import optimizers

# Measurements held when the steps per epoch are unknown (a dataset without cardinality).
DEFAULT_CAPACITY = 4096


class StepMeasurements:
    """Measures every ``every`` steps inside a model's train step, and holds the values until
    the host reads them.

    Args:
        measure: a graph function returning one measurement, shape ``shape``, and moving the
            snapshots on.
        last_step: an int64 variable, the step of the last measurement.
        every: the steps between two measurements.
        shape: the shape of one measurement, (tracked tensors, measures + 1).
        steps_per_epoch: sizes the buffer to hold an epoch's measurements; None:
            `DEFAULT_CAPACITY` of them, one more in an epoch is an error.
    """

    def __init__(self, measure, last_step, every, shape, steps_per_epoch=None):
        self.measure, self.last_step, self.every = measure, last_step, every
        self.capacity = -(-steps_per_epoch // every) if steps_per_epoch else DEFAULT_CAPACITY
        # Beside the step counter: a few bytes per measurement to the host.
        with tf.device("/cpu:0"):
            self.values = tf.Variable(tf.zeros([self.capacity, *shape], tf.float64),
                                      trainable=False)
            self.steps = tf.Variable(tf.zeros([self.capacity], tf.int64), trainable=False)
            self.count = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._model = self._optimizer = None

    def record_if_due(self, step):
        """In the graph: when ``every`` steps have passed since ``last_step``, appends a
        measurement and ``step``, and sets ``last_step`` to ``step``."""

        def record():
            index = self.count.read_value()
            full = tf.debugging.assert_less(
                index, tf.constant(self.capacity, tf.int64),
                message=f"RWCCallback holds {self.capacity} measurements per epoch; "
                        "give fit the steps per epoch (steps_per_epoch=...)")
            with tf.control_dependencies([full]):
                self.values[index].assign(self.measure())
                self.steps[index].assign(step)
                self.count.assign_add(1)
                self.last_step.assign(step)
            return tf.constant(True)

        return tf.cond(step - self.last_step.read_value() >= self.every, record,
                       lambda: tf.constant(False))

    def read(self):
        """The held measurements, oldest first, as ``[(step, values)]``; empties the buffer."""
        count = int(self.count.numpy())
        steps, values = self.steps[:count].numpy(), self.values[:count].numpy()
        self.count.assign(0)
        return list(zip(steps.tolist(), values))

    def attach(self, model):
        """Wraps ``model.optimizer`` in an `InStepOptimizer` measuring with this object, and
        has ``fit`` trace its step again."""
        self._model = model
        self._optimizer = InStepOptimizer(model.optimizer, self.record_if_due)
        model.optimizer = self._optimizer
        model.make_train_function(force=True)

    def detach(self):
        """Gives the model its own optimizer back, and ``fit`` a step without measurement."""
        if self._model.optimizer is self._optimizer:
            self._model.optimizer = self._optimizer.inner_optimizer
            self._model.make_train_function(force=True)


class InStepOptimizer(optimizers.Optimizer):
    """Wraps an optimizer and runs ``after_apply(step)`` after each of its updates, in the same
    compiled step (the pattern of `keras.optimizers.LossScaleOptimizer`).

    Its variables, step count and learning rate are the wrapped optimizer's, so checkpoints
    and learning-rate callbacks see no difference.

    Args:
        inner_optimizer: the optimizer to wrap, built or not.
        after_apply: a function of the optimizer step (an int64 scalar tensor) that adds
            graph operations; called once per step, in cross-replica context under a
            `tf.distribute` strategy (it reads the primary copy of mirrored weights).

    Example: see `StepMeasurements.attach`.
    """

    def __init__(self, inner_optimizer, after_apply):
        super().__init__(learning_rate=0.0, name=inner_optimizer.name)
        self.inner_optimizer = inner_optimizer
        self.after_apply = after_apply
        self.built = inner_optimizer.built

    def build(self, var_list):
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(var_list)
        self.built = True

    def apply(self, grads, trainable_variables=None):
        self.inner_optimizer.apply(grads, trainable_variables)
        tf.distribute.get_replica_context().merge_call(
            lambda _: self.after_apply(tf.cast(self.iterations.value, tf.int64)))

    @property
    def variables(self):
        return self.inner_optimizer.variables

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)
