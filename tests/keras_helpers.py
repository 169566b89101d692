"""Helpers shared by the TensorFlow-backed test modules: small models and data, reading
TensorBoard events and checkpoints, a crash at a chosen batch.

Kept apart from tests/helpers.py, which imports no framework (tests/conftest.py imports it
before it configures the devices).
"""

import glob
import os

import keras
import numpy as np
import tensorflow as tf

from rwc_keras import spec


def functional():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="dense")(x))


def data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 5, size=(n,))
    return x, y


def read_events(folder):
    """tag -> ``[(step, tensor proto), ...]`` of the TensorBoard events in the folder's event
    files, in file order: the one reader of the tests."""
    events = {}
    for path in sorted(glob.glob(os.path.join(folder, spec.EVENTS_GLOB))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                events.setdefault(value.tag, []).append((event.step, value.tensor))
    return events


def event_steps(folder):
    """tag -> the steps of its TensorBoard events in the folder, in file order."""
    return {tag: [step for step, _ in events] for tag, events in read_events(folder).items()}


def read_scalars(folder):
    """tag -> {step: value} of the folder's numeric TensorBoard scalars."""
    return {tag: {step: float(tf.make_ndarray(tensor)) for step, tensor in events}
            for tag, events in read_events(folder).items()
            if events[0][1].dtype != tf.string.as_datatype_enum}


def checkpoint_epoch(checkpoint_dir):
    """Epochs done by the latest ResumeCallback checkpoint in a folder; None before the first."""
    path = tf.train.latest_checkpoint(checkpoint_dir)
    try:
        return None if path is None else int(tf.train.load_variable(
            path, "epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    except tf.errors.NotFoundError:  # replaced by the next epoch's while we looked
        return None


class StopAt(keras.callbacks.Callback):
    """Raises before one batch of one epoch (0-based), as a crash would."""

    def __init__(self, epoch, batch=0):
        super().__init__()
        self.epoch, self.batch = epoch, batch
        self._current_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self._current_epoch, batch) == (self.epoch, self.batch):
            raise RuntimeError("stopped")
