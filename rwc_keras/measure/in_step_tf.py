"""Per-step RWC measurement inside the compiled train step, on TensorFlow: the recorder's
state is TensorFlow variables that the traced step updates (`rwc_keras.measure.in_step`)."""

import tensorflow as tf

from rwc_keras.measure.in_step import StepRecorder, buffer_capacity, overflow_message


class GraphStepMeasurements(StepRecorder):
    """Measures every ``every`` steps inside a model's train step, and holds the values until
    the host reads them.

    Args:
        measure: a graph function returning one measurement, shape ``shape``, and moving the
            snapshots on.
        last_step: an int64 variable, the step of the last measurement.
        every: the steps between two measurements.
        shape: the shape of one measurement, (tracked tensors, measures + 1).
        steps_per_epoch: sizes the buffer to hold an epoch's measurements; None:
            `rwc_keras.measure.in_step.DEFAULT_CAPACITY` of them, one more in an epoch is an
            error.

    Example:
        ```python
        recorder = GraphStepMeasurements(snapshots.measure_in_graph, last_step, 10, shape)
        recorder.attach(model)  # then, after each epoch of fit: recorder.read()
        ```
    """

    def __init__(self, measure, last_step, every, shape, steps_per_epoch=None):
        self.measure, self.last_step, self.every = measure, last_step, every
        self.capacity = buffer_capacity(steps_per_epoch, every)
        # Beside the step counter: a few bytes per measurement to the host.
        with tf.device("/cpu:0"):
            self.values = tf.Variable(tf.zeros([self.capacity, *shape], tf.float64),
                                      trainable=False)
            self.steps = tf.Variable(tf.zeros([self.capacity], tf.int64), trainable=False)
            self.count = tf.Variable(0, dtype=tf.int64, trainable=False)

    def after_apply(self, step):
        # Once per step under a tf.distribute strategy: the measurement reads the primary
        # copy of mirrored weights, as the host-side one does.
        tf.distribute.get_replica_context().merge_call(
            lambda _: self.record_if_due(tf.cast(step, tf.int64)))

    def record_if_due(self, step):
        """In the graph: when ``every`` steps have passed since ``last_step``, appends a
        measurement and ``step``, and sets ``last_step`` to ``step``."""

        def record():
            index = self.count.read_value()
            full = tf.debugging.assert_less(index, tf.constant(self.capacity, tf.int64),
                                            message=overflow_message(self.capacity))
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
