"""Test set-up: two logical CPU devices, so MirroredStrategy runs over two replicas here."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from .helpers import write_mnist_like  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A folder of small MNIST-format IDX files (256 train, 32 test images) for driver runs."""
    folder = tmp_path_factory.mktemp("mnist")
    write_mnist_like(folder, num_train=256, num_test=32)
    return str(folder)
