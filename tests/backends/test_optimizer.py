"""TorchSGD on every Keras backend (tests/test_backends.py runs this module under JAX and
PyTorch too): the same update as PyTorch's SGD, to 1e-6."""

import keras
from keras.ops import convert_to_numpy as to_numpy
import numpy as np
import pytest

from rwc_keras.experiment.optimizer import TorchSGD


def torch_sgd_reference(w, grads, lr, momentum, wd):
    """PyTorch's SGD: g += wd * w; v = momentum * v + g (v = g at first); w -= lr * v."""
    w = w.astype(np.float64)
    v = None
    for g in grads:
        g = g + wd * w
        v = g if v is None else momentum * v + g
        w = w - lr * v
    return w


@pytest.mark.parametrize("wd", [0.0, 5e-4, 0.1])
def test_steps_equal_the_pytorch_rule(wd):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3)).astype(np.float32)
    grads = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(5)]
    variable = keras.Variable(w0)
    optimizer = TorchSGD(learning_rate=0.05, momentum=0.9, weight_decay=wd)
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
    want = torch_sgd_reference(w0, grads, 0.05, 0.9, wd)
    np.testing.assert_allclose(to_numpy(variable), want, rtol=1e-6, atol=1e-6)


def test_differs_from_keras_decoupled_weight_decay():
    w0 = np.ones((2, 2), np.float32)
    grads = [np.full((2, 2), 0.5, np.float32)] * 3
    ours, theirs = keras.Variable(w0), keras.Variable(w0)
    coupled = TorchSGD(0.1, momentum=0.9, weight_decay=0.1)
    decoupled = keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.1)
    for g in grads:
        coupled.apply_gradients([(keras.ops.convert_to_tensor(g), ours)])
        decoupled.apply_gradients([(keras.ops.convert_to_tensor(g), theirs)])
    assert not np.allclose(to_numpy(ours), to_numpy(theirs), rtol=1e-4)


def test_config_round_trip_keeps_coupled_decay():
    optimizer = TorchSGD(0.1, momentum=0.9, weight_decay=1e-4)
    clone = TorchSGD.from_config(optimizer.get_config())
    assert clone.coupled_weight_decay == 1e-4 and clone.weight_decay is None
