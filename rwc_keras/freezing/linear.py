"""`LinearFreezing`: a linear freezing schedule like Composer's LayerFreezing, for comparison.

From ``start`` of training on, the share of the freezable units (every unit but the last,
which holds the output layer) that is frozen grows linearly, reaching ``level`` at the end:
after epoch e of E, with progress ``t = e / E``, the first
``floor(level * (t - start) / (1 - start) * (units - 1))`` units are frozen. Units are single
layers (a BatchNormalization layer with the layer before it), as in Composer and FreezeOut.
As in Composer the schedule is applied at epoch ends, and the learning rate is untouched.
"""

import math

from rwc_keras.freezing import schema
from rwc_keras.freezing.freezer import Freezer, layer_units


def linear_frozen(num_units, progress, start, level):
    """How many leading units the schedule has frozen at ``progress`` (a fraction of training).

    Args:
        num_units: the model's units, the last holding the output layer.
        progress: the fraction of training done, in [0, 1].
        start: the fraction from which units freeze, in [0, 1).
        level: the share of the freezable units frozen at the end, in (0, 1].
    """
    share = level * min(1.0, max(0.0, (progress - start) / (1 - start)))
    # The small slack keeps a share that lands on a unit exactly from rounding below it.
    return math.floor(share * (num_units - 1) + 1e-9)


class LinearFreezing(Freezer):
    """Freezes single leading layers on a linear schedule (see the module docstring).

    No batch hook: it acts at epoch ends. Resumable like `RWCFreezing` (the schedule depends
    on the epoch alone): pass it to the `ResumeCallback`.

    Args:
        start: the fraction of training from which layers freeze, in [0, 1).
        level: the share of the freezable layers frozen at the end of training, in (0, 1].
        batchnorm: ``"batch"`` (default) or ``"inference"``; see `rwc_keras.freezing.freezer`.
        log_dir: where ``freezing.csv`` goes; default the folder of ``rwc``.
        rwc: the run's `RWCCallback`, if any: its TensorBoard writer is used.
        rebuild: rebuilds the train step after a freeze; default
            ``model.make_train_function(force=True)``, what ``model.fit`` needs.
        verbose: 1 prints a line per frozen layer; 0 is silent.

    Example:
        ```python
        model.fit(x, y, epochs=10, callbacks=[LinearFreezing(log_dir="runs/a")])
        ```
    """

    def __init__(self, start=schema.LINEAR_FREEZING["start"], level=schema.LINEAR_FREEZING["level"],
                 batchnorm=schema.DEFAULT_FREEZE_BATCHNORM, log_dir=None, rwc=None, rebuild=None,
                 verbose=1):
        super().__init__(log_dir=log_dir, rwc=rwc, batchnorm=batchnorm, rebuild=rebuild,
                         verbose=verbose)
        if not (isinstance(start, (int, float)) and 0 <= start < 1):
            raise ValueError(f"start must be a fraction of training in [0, 1), got {start!r}")
        if not (isinstance(level, (int, float)) and 0 < level <= 1):
            raise ValueError(f"level must be a share of the layers in (0, 1], got {level!r}")
        self.start = start
        self.level = level

    def _make_units(self):
        return layer_units(self.model)

    def on_epoch_end(self, epoch, logs=None):
        due = linear_frozen(len(self.units), (epoch + 1) / self.params["epochs"], self.start,
                            self.level)
        self._freeze_to(due, epoch + 1, int(self.model.optimizer.iterations.numpy()))
