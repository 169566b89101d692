"""Per-step RWC measurement inside the compiled train step: what TensorFlow and JAX share.

`RWCCallback(update_freq=N)` wraps the model's optimizer in an `InStepOptimizer` for the
length of each ``fit`` (or driver run). After the wrapped optimizer has updated the weights,
in the same compiled step, a recorder measures when N steps have passed since the last
measurement and appends the values to a buffer kept on the device. The host reads the buffer
once, at the epoch's end, and writes the CSV and TensorBoard rows then: no batch hook, no
Python and no device read per step. docs/async.md says why this design.

The recorders: `rwc_keras.measure.in_step_tf.GraphStepMeasurements` (TensorFlow variables
updated in the traced step) and `rwc_keras.measure.in_step_jax.StatelessStepMeasurements`
(state threaded through JAX's stateless step as optimizer variables).
"""

from keras import optimizers

# Measurements held when the steps per epoch are unknown (a dataset without cardinality).
DEFAULT_CAPACITY = 4096


def buffer_capacity(steps_per_epoch, every):
    """How many measurements an epoch can hold: all of its own, or `DEFAULT_CAPACITY`."""
    return -(-steps_per_epoch // every) if steps_per_epoch else DEFAULT_CAPACITY


def overflow_message(capacity):
    return (f"RWCCallback holds {capacity} measurements per epoch; give fit the steps per "
            "epoch (steps_per_epoch=...)")


class StepRecorder:
    """Puts a recorder's `InStepOptimizer` around a model's optimizer for one ``fit``.

    A recorder defines ``variables`` (the Keras variables a stateless step threads through;
    empty where the step updates its own variables), ``after_apply(step)`` and
    ``after_stateless_apply(step, trainable_values, state_values)`` (see `InStepOptimizer`),
    and ``read()``: the held measurements, oldest first, as ``[(step, values)]``.
    """

    variables = ()
    _model = _optimizer = None

    def attach(self, model):
        """Wraps ``model.optimizer`` in an `InStepOptimizer` recording with this object, and
        has ``fit`` trace its step again."""
        self._model = model
        self._optimizer = InStepOptimizer(model.optimizer, self)
        model.optimizer = self._optimizer
        model.make_train_function(force=True)

    def detach(self):
        """Gives the model its own optimizer back, and ``fit`` a step without measurement."""
        if self._model.optimizer is self._optimizer:
            self._model.optimizer = self._optimizer.inner_optimizer
            self._model.make_train_function(force=True)


class InStepOptimizer(optimizers.Optimizer):
    """Wraps an optimizer and has a recorder act after each of its updates, in the same
    compiled step (the pattern of `keras.optimizers.LossScaleOptimizer`).

    Its step count and learning rate are the wrapped optimizer's, and so are its variables
    but for the recorder's, so checkpoints and learning-rate callbacks see no difference.

    Args:
        inner_optimizer: the optimizer to wrap, built or not.
        recorder: a `StepRecorder`. Stateful ``apply`` (TensorFlow) calls
            ``recorder.after_apply(step)`` with the optimizer step, an int scalar tensor, to
            add graph operations. JAX's ``stateless_apply`` calls
            ``recorder.after_stateless_apply(step, trainable_values, state_values)`` with the
            updated weights and the current values of ``recorder.variables``, and threads the
            new values it returns through the step.

    Example: see `StepRecorder.attach`.
    """

    def __init__(self, inner_optimizer, recorder):
        super().__init__(learning_rate=0.0, name=inner_optimizer.name)
        self.inner_optimizer = inner_optimizer
        self.recorder = recorder
        self.built = inner_optimizer.built

    def build(self, var_list):
        if not self.inner_optimizer.built:
            self.inner_optimizer.build(var_list)
        self.built = True

    def apply(self, grads, trainable_variables=None):
        self.inner_optimizer.apply(grads, trainable_variables)
        self.recorder.after_apply(self.iterations.value)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        inner = self.inner_optimizer
        count = len(inner.variables)
        trainable_values, inner_values = inner.stateless_apply(
            optimizer_variables[:count], grads, trainable_variables)
        step = next(value for variable, value in zip(inner.variables, inner_values)
                    if variable is inner.iterations)
        state = self.recorder.after_stateless_apply(step, trainable_values,
                                                    optimizer_variables[count:])
        return trainable_values, [*inner_values, *state]

    @property
    def variables(self):
        return [*self.inner_optimizer.variables, *self.recorder.variables]

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
