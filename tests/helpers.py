"""Helpers shared by the test modules: reference RWC values, MNIST-format files, the driver.

Test modules import them from here, never from one another.
"""

import gzip
import os
import struct
import subprocess
import sys

import numpy as np

# The test processes split the CPU into this many devices (tests/conftest.py).
CPU_DEVICES = 2
# The repository's root, where subprocesses of the tests run.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reference(prev, curr):
    """RWC computed the plain way in float64: ``(rwc, rwc_norm, zeros)`` of two weight arrays.

    Elements whose previous value is 0 are left out of ``rwc`` and counted in ``zeros``; an
    all-zero ``prev`` gives NaN for both values (docs/paper_facts.md, "The metric").
    """
    values = reference_metrics(prev, curr)
    return values["rwc"], values["rwc_norm"], values["zeros"]


def reference_metrics(prev, curr, initial=None):
    """Every measure of rwc_keras.measure.metric recomputed in float64 numpy, by name; the ones
    comparing with ``initial`` only when it is given."""
    prev, curr = np.asarray(prev, np.float64), np.asarray(curr, np.float64)
    nonzero = prev != 0
    change = np.abs(curr - prev)

    def ratio(numerator, denominator):
        return numerator / denominator if denominator > 0 else np.nan

    values = dict(
        rwc=(change[nonzero] / np.abs(prev[nonzero])).mean() if nonzero.any() else np.nan,
        rwc_norm=ratio(change.sum(), np.abs(prev).sum()),
        update_ratio=ratio(np.linalg.norm(curr - prev), np.linalg.norm(prev)),
        weight_norm=np.linalg.norm(curr),
        zeros=int((~nonzero).sum()),
    )
    if initial is not None:
        initial = np.asarray(initial, np.float64)
        norms = np.linalg.norm(curr) * np.linalg.norm(initial)
        values.update(
            dist_init=ratio(np.abs(curr - initial).sum(), np.abs(initial).sum()),
            rotation=1 - np.sum(curr * initial) / norms if norms > 0 else np.nan,
        )
    return values


def write_idx(path, array, gz=False):
    """Writes a uint8 array as IDX: magic (0, 0, 0x08, ndim), big-endian dims, then the data."""
    array = np.asarray(array, np.uint8)
    content = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(content + array.tobytes())


def write_mnist_like(folder, num_train, num_test, gz=False, seed=0):
    """The four MNIST files of random 28x28 images in ``folder``.

    Returns:
        ``[(x_train, y_train), (x_test, y_test)]`` as
        `rwc_keras.experiment.data.sources.load_arrays` gives them: uint8 (N, 28, 28, 1) images
        and int64 labels.
    """
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = []
    for prefix, count in (("train", num_train), ("t10k", num_test)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte{suffix}"), images, gz)
        write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{suffix}"), labels, gz)
        arrays.append((images[..., None], labels.astype(np.int64)))
    return arrays


def driver(*args, env=None, timeout=600):
    """Runs ``python -m rwc_keras.main *args`` as a user would; returns the CompletedProcess."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "rwc_keras.main", *args], capture_output=True,
                          text=True, env=full_env, timeout=timeout)
