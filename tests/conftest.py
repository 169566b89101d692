"""Test set-up for the Keras backend named by ``KERAS_BACKEND`` (TensorFlow when unset).

The suite runs under TensorFlow; tests/test_backends.py runs tests/backends/ again under JAX
and PyTorch, one process each. Either way the CPU shows as `CPU_DEVICES` devices:
TensorFlow's logical devices for MirroredStrategy, JAX's host devices for
keras.distribution.DataParallel.
"""

import os
import random

from .helpers import CPU_DEVICES, write_mnist_like

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if BACKEND == "jax":
    # XLA reads it once, when JAX starts: before any test module imports keras.
    os.environ["XLA_FLAGS"] = " ".join(
        [os.environ.get("XLA_FLAGS", ""), f"--xla_force_host_platform_device_count={CPU_DEVICES}"]
    ).strip()

import pytest  # noqa: E402

if BACKEND == "tensorflow":
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration() for _ in range(CPU_DEVICES)],
    )


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    """A folder of small MNIST-format IDX files (256 train, 32 test images) for driver runs."""
    folder = tmp_path_factory.mktemp("mnist")
    write_mnist_like(folder, num_train=256, num_test=32)
    return str(folder)


@pytest.fixture
def kill_delay(request):
    """``kill_delay(high)``: seconds in [0, high) to wait before killing a run, drawn from a
    generator whose seed a failing test prints; ``RWC_KILL_SEED=<seed>`` draws them again."""
    seed = int(os.environ.get("RWC_KILL_SEED") or random.SystemRandom().randrange(2**32))
    request.node.user_properties.append(("RWC_KILL_SEED", seed))
    generator = random.Random(seed)
    return lambda high: generator.uniform(0.0, high)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    if report.failed:
        for name, value in item.user_properties:
            report.sections.append((name, f"rerun with {name}={value} to repeat it"))
