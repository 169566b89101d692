"""SGD with momentum and PyTorch's coupled weight decay: the paper's optimizer
(docs/paper_facts.md, "Training protocol")."""

import keras
from keras import ops


class TorchSGD(keras.optimizers.SGD):
    """``torch.optim.SGD``'s update in Keras: momentum, and weight decay added to the gradient.

    PyTorch's ``torch.optim.SGD(weight_decay=wd)`` does ``g <- g + wd * w`` before the
    momentum update, for every parameter. Keras's own ``SGD(weight_decay=...)`` decays the
    weights outside the momentum (decoupled), which is a different update, so the paper's
    runs need this class. The step is PyTorch's own form, ``v <- momentum * v + g;
    w <- w - lr * v`` (``v`` is the ``momentums`` slot), not Keras's
    ``m <- momentum * m - lr * g; w <- w + m``: the two are equal only up to rounding and
    only at a constant rate.

    The constants enter the graph in the variable's dtype. Keras's ``SGD`` casts its
    momentum with ``ops.cast(0.9, dtype)``, which on TensorFlow rounds 0.9 through float32
    (0.8999999762) even for float64 weights: a float64 run then drifts from PyTorch's by
    about 3e-8 relative per step, and the gap grows over steps (docs/fidelity.md).

    Args:
        learning_rate: the learning rate (a float or a schedule).
        momentum: momentum factor in [0, 1].
        weight_decay: the L2 coefficient added to the gradient (PyTorch semantics).
        **kwargs: passed on to ``keras.optimizers.SGD`` (not its ``weight_decay``);
            ``nesterov=True`` takes PyTorch's Nesterov step.

    Example:
        ```python
        model.compile(optimizer=TorchSGD(0.1, momentum=0.9, weight_decay=1e-4), ...)
        ```
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, weight_decay=0.0, name="torch_sgd",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=float(momentum), name=name, **kwargs)
        # Stored under its own name: the base class treats `weight_decay` as decoupled.
        self.coupled_weight_decay = float(weight_decay)

    def with_weight_decay(self, gradient, variable):
        """The gradient with PyTorch's coupled L2 term, ``g + wd * w`` (``g`` when wd is 0)."""
        if not self.coupled_weight_decay:
            return gradient
        decay = ops.convert_to_tensor(self.coupled_weight_decay, variable.dtype)
        return ops.add(ops.cast(gradient, variable.dtype), ops.multiply(variable, decay))

    def torch_step(self, gradient, variable, rate):
        """Applies PyTorch's SGD step to ``variable`` at ``rate`` (a tensor of its dtype)."""
        gradient = self.with_weight_decay(ops.cast(gradient, variable.dtype), variable)
        if not self.momentum:
            self.assign_sub(variable, ops.multiply(gradient, rate))
            return
        velocity = self.momentums[self._get_variable_index(variable)]
        momentum = ops.convert_to_tensor(self.momentum, variable.dtype)
        self.assign(velocity, ops.add(ops.multiply(velocity, momentum), gradient))
        if self.nesterov:
            gradient = ops.add(gradient, ops.multiply(velocity, momentum))
        else:
            gradient = velocity
        self.assign_sub(variable, ops.multiply(gradient, rate))

    def update_step(self, gradient, variable, learning_rate):
        self.torch_step(gradient, variable, ops.cast(learning_rate, variable.dtype))

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self.coupled_weight_decay
        return config
