"""A user's own ``model.fit`` script with `RWCCallback`, `RWCFreezing` and `ResumeCallback`:
tests/test_freezing.py runs it, kills it with SIGKILL and runs it again.

RWC every 2 steps; threshold 2 (always below the peak) and warm-up 0.5: conv1 and conv2
freeze at the first measurement from step 24 on, the end of epoch 3 (8 steps per epoch).

Usage: python -m tests.freezing_fit_script LOG_DIR
"""

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from rwc_keras import ResumeCallback, RWCCallback, RWCFreezing

EPOCHS = 6
EXAMPLES, BATCH = 64, 8


class Slow(keras.callbacks.Callback):
    """Stretches every step, so that the test can kill the process inside an epoch."""

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.03)


def main(log_dir):
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 2)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv2"),
        keras.layers.Flatten(),
        keras.layers.Dense(5, name="dense"),
    ])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 5, size=EXAMPLES)
    rwc = RWCCallback(log_dir, update_freq=2, verbose=0)
    freezing = RWCFreezing(rwc, threshold=2, patience=2, warmup=0.5)
    resume = ResumeCallback(os.path.join(log_dir, "backup"), callbacks=[rwc, freezing])
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[rwc, freezing, resume, Slow()])


if __name__ == "__main__":
    main(sys.argv[1])
