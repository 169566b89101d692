"""A user's own ``model.fit`` script with `RWCCallback` and `ResumeCallback`, as the README
shows it, and with `RWCFreezing` when asked: tests/callbacks/test_resume.py and tests/freezing/test_freezing.py
run it, kill it with SIGKILL and run it again.

With ``freeze``: RWC every 2 steps; tolerance 10 (every change counts as level) and warm-up 0.5, so
conv1 and conv2 freeze at the first measurement from step 24 on, the end of epoch 3 (8 steps
per epoch).

Usage: python -m tests.fit_script LOG_DIR UPDATE_FREQ [freeze]  (UPDATE_FREQ: epoch or a number)
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
    """Stretches every step (an epoch takes 0.4 s), so that the tests can kill the process
    inside an epoch."""

    def on_train_batch_end(self, batch, logs=None):
        time.sleep(0.05)


def main(log_dir, update_freq, freeze):
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 2)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv2"),
        keras.layers.Dropout(0.3),  # a random state the checkpoint must restore
        keras.layers.Flatten(),
        keras.layers.Dense(5, name="dense"),
    ])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 5, size=EXAMPLES)
    rwc = RWCCallback(log_dir, update_freq=update_freq, verbose=0)
    callbacks = [rwc]
    if freeze:
        callbacks.append(RWCFreezing(rwc, tolerance=10, patience=2, warmup=0.5))
    resume = ResumeCallback(os.path.join(log_dir, "backup"), callbacks=callbacks)
    # shuffle=False: an epoch's batches must not depend on how many epochs ran before.
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[*callbacks, resume, Slow()])


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[3:] not in ([], ["freeze"]):
        sys.exit(__doc__.rsplit("Usage: ", 1)[1])
    main(sys.argv[1], "epoch" if sys.argv[2] == "epoch" else int(sys.argv[2]),
         freeze=sys.argv[3:] == ["freeze"])
