"""SGD with momentum and PyTorch's coupled weight decay: the paper's optimizer
(docs/paper_facts.md, section 3)."""

import keras
from keras import ops


class TorchSGD(keras.optimizers.SGD):
    """SGD with momentum whose weight decay is PyTorch's L2 term, added to the gradient.

    PyTorch's ``torch.optim.SGD(weight_decay=wd)`` does ``g <- g + wd * w`` before the
    momentum update, for every parameter. Keras's own ``SGD(weight_decay=...)`` decays the
    weights outside the momentum (decoupled), which is a different update, so the paper's
    runs need this class. With a constant learning rate Keras's momentum form
    (``m <- momentum * m - lr * g; w <- w + m``) equals PyTorch's
    (``v <- momentum * v + g; w <- w - lr * v``).

    Args:
        learning_rate: the constant learning rate.
        momentum: momentum factor in [0, 1].
        weight_decay: the L2 coefficient added to the gradient (PyTorch semantics).
        **kwargs: passed on to ``keras.optimizers.SGD`` (not its ``weight_decay``).

    Example:
        ```python
        model.compile(optimizer=TorchSGD(0.1, momentum=0.9, weight_decay=1e-4), ...)
        ```
    """

    def __init__(self, learning_rate=0.01, momentum=0.9, weight_decay=0.0, name="torch_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, momentum=float(momentum), name=name, **kwargs)
        # Stored under its own name: the base class treats `weight_decay` as decoupled.
        self.coupled_weight_decay = float(weight_decay)

    def with_weight_decay(self, gradient, variable):
        """The gradient with PyTorch's coupled L2 term, ``g + wd * w`` (``g`` when wd is 0)."""
        if not self.coupled_weight_decay:
            return gradient
        decay = ops.cast(self.coupled_weight_decay, variable.dtype)
        return ops.add(ops.cast(gradient, variable.dtype), ops.multiply(variable, decay))

    def update_step(self, gradient, variable, learning_rate):
        super().update_step(self.with_weight_decay(gradient, variable), variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["weight_decay"] = self.coupled_weight_decay
        return config
