"""`WeightRecorder`, on every Keras backend: the weights the measurements are checked against.

Kept apart from tests/helpers.py, which imports no framework (tests/conftest.py imports it
before it configures the devices).
"""

import keras
import numpy as np
from keras.ops import convert_to_numpy as to_numpy

from rwc_keras import spec


class WeightRecorder(keras.callbacks.Callback):
    """Keeps float64 copies of the trainable variables at train begin and after every batch,
    by optimizer step and then by the CSV's layer name."""

    def __init__(self):
        super().__init__()
        self.by_step = {}

    def _capture(self):
        if hasattr(self.model, "jax_state_sync"):  # JAX's fit syncs only at epoch ends
            self.model.jax_state_sync()
        step = int(to_numpy(self.model.optimizer.iterations))
        self.by_step[step] = {spec.layer_name(self.model, v): to_numpy(v).astype(np.float64)
                              for v in self.model.trainable_variables}

    def on_train_begin(self, logs=None):
        self._capture()

    def on_train_batch_end(self, batch, logs=None):
        self._capture()
