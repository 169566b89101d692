"""keras.distribution.DataParallel over the test process's CPU devices (tests/conftest.py).

Keras implements keras.distribution for JAX only (its TensorFlow part is an unfinished
prototype, PyTorch has none), so these tests run in the JAX process of tests/test_backends.py.
TensorFlow's data parallelism is tf.distribute's MirroredStrategy (tests/experiment/test_train.py).
"""

import contextlib

import keras
import numpy as np
import pytest
from keras.ops import convert_to_numpy as to_numpy

from rwc_keras.experiment.optimizer import TorchSGD

from ..helpers import CPU_DEVICES

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason=f"keras.distribution runs on JAX only, not on {keras.backend.backend()}")

EXAMPLES, BATCH = 32, 8


def fit(distribution=None):
    """A small model fitted two epochs from seed 0, under ``distribution`` when given."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, 6, 6, 2)).astype(np.float32)
    y = rng.integers(0, 3, EXAMPLES)
    with distribution.scope() if distribution else contextlib.nullcontext():
        model = keras.Sequential([
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, name="head"),
        ])
        model.compile(optimizer=TorchSGD(0.1, momentum=0.9, weight_decay=1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    return model


def test_data_parallel_fit_equals_one_device():
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == CPU_DEVICES
    parallel = fit(keras.distribution.DataParallel(devices=devices))
    for variable in parallel.trainable_variables:
        # replicated: one full copy on every device
        assert len(variable.value.sharding.device_set) == CPU_DEVICES
        assert variable.value.sharding.is_fully_replicated
    single = fit()
    for ours, theirs in zip(parallel.trainable_variables, single.trainable_variables):
        np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), rtol=1e-5, atol=1e-6)
