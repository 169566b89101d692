"""`RWCFreezing`: freezes the leading layer groups whose weight change has levelled off.

Rule v2, at every measurement of the run's `RWCCallback`: each unit's value is the mean
``rwc_norm`` of its layers, smoothed by an exponential moving average over the measurements
(``smoothing`` 0, the default, takes each value as it is); its change is the relative change
of that smoothed value since the previous measurement, ``|s_t - s_(t-1)| / s_(t-1)``. Unit g
freezes when all of these hold:

* every unit before it is frozen (only a leading run ever freezes, never the last unit, which
  holds the output layer), and at most ``cap`` of the units are frozen with it;
* at least ``warmup`` of training has passed (a fraction of the steps, or of the epochs
  when the steps per epoch are unknown);
* its change has stayed below ``tolerance`` for ``patience`` consecutive measurements.

The rule compares each unit with its own previous window only, never with a peak: the first
epoch's transient (ResNet-18's convolutions move by about twice their initial norm in epoch 1
and by 0.03 in epoch 2) makes the change at the second measurement nearly 1, so it delays a
freeze instead of causing one. The first measurement is a baseline only.

Several units can freeze at one measurement; the train step is rebuilt once for them.

Defaults (``rwc_keras.freezing.schema.RWC_FREEZING_RULE``), for RWC measured once per epoch:
``tolerance=0.35``, ``patience=1``, ``smoothing=0``, ``warmup=0.2``, ``cap=0.75``: a group
freezes once its weight change per epoch falls by less than 35% from one epoch to the next.
They were chosen by replaying the rule on the tuning seeds' committed ``rwc.csv`` files;
docs/freezing.md gives the replay. Measured every N steps, each window is noisier and shorter:
use a larger ``patience`` and some ``smoothing`` there.
"""

import math

import numpy as np
import tensorflow as tf

from rwc_keras import spec
from rwc_keras.freezing import schema
from rwc_keras.freezing.freezer import Freezer, layer_units


def plateau(smoothed, streak, values, smoothing, tolerance):
    """One measurement of the rule: the new smoothed values, changes and streaks per unit.

    Args:
        smoothed: each unit's smoothed value so far, NaN before its first measurement.
        streak: for how many consecutive measurements each change has been below
            ``tolerance``.
        values: this measurement's value per unit; NaN leaves a unit's state unchanged.
        smoothing: the weight of the old smoothed value, in [0, 1).
        tolerance: the relative change to stay below.

    Returns:
        ``(smoothed, change, streak)`` after the measurement (new arrays); ``change`` is NaN
        where there is no previous value to compare with (or it is 0).
    """
    measured = ~np.isnan(values)
    first = np.isnan(smoothed)
    updated = np.where(first, values, smoothing * smoothed + (1 - smoothing) * values)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(updated - smoothed) / smoothed
    change = np.where(np.isfinite(change), change, np.nan)
    # NaN compares False: a first measurement, or a unit not measured, never counts as level.
    streak = np.where(measured, np.where(change < tolerance, streak + 1, 0), streak)
    return np.where(measured, updated, smoothed), change, streak


def leading_run(frozen, streak, patience, freezable):
    """How many leading units are frozen after this measurement: ``frozen`` extended by every
    next unit whose streak reached ``patience``, up to ``freezable`` units."""
    while frozen < freezable and streak[frozen] >= patience:
        frozen += 1
    return frozen


class RWCFreezing(Freezer):
    """Freezes the leading layer groups whose Relative Weight Change has levelled off.

    Reads the measurements of the run's `RWCCallback` (list this callback after it); the rule
    is in the module docstring. Groups come from ``groups``, else the `RWCCallback`'s
    ``groups``, else the model's ``rwc_groups`` (the paper's models have them: ResNet-18's
    stem and blocks, AlexNet's and VGG-19-BN's early/middle/later/head); a model without
    groups freezes single layers. BatchNormalization layers freeze with the layer before
    them. A unit none of whose layers is measured never freezes (nor does anything after it).
    It has no batch hook, so ``fit`` stays asynchronous, except beside an `RWCCallback`
    measuring every N steps on JAX or PyTorch, where it reads each measurement after its
    step. On TensorFlow such measurements are read at the epoch's end, and the units the
    rule calls for freeze then (``freezing.csv`` gives that step).

    Works in ``model.fit`` (also under `tf.distribute.MirroredStrategy`) and in the training
    driver (``--freeze=rwc``). Resumable: pass it to the `ResumeCallback` after the
    `RWCCallback`; the checkpoint holds the frozen units and the smoothing state, so a
    resumed run freezes the same units at the same steps.

    Output, in the `RWCCallback`'s folder (or ``log_dir``): ``freezing.csv``, one row per
    frozen unit (``epoch,step,group,layers,smoothed,change,saved_macs,train_macs``), and a
    TensorBoard marker ``freezing/<group>``; see `rwc_keras.freezing.freezer`.

    Args:
        rwc: the run's `RWCCallback`.
        tolerance: the relative change between measurements a unit's smoothed value must
            stay below ...
        patience: ... for this many consecutive measurements.
        smoothing: weight of the previous smoothed value in the moving average, in [0, 1);
            0 uses each measurement as it is.
        warmup: the fraction of training before which nothing freezes, in [0, 1).
        cap: the largest fraction of the units that may be frozen, in (0, 1]; the last unit
            never freezes whatever it says.
        metric: the RWC definition the rule reads: ``"rwc_norm"`` (Eq. 1 of the paper, the
            default: it moves smoothly) or ``"rwc"``.
        groups: a dict from layer name (as in ``rwc.csv``) to group, or a callable of the
            layer name; see `rwc_keras.freezing.freezer.layer_units`.
        batchnorm: ``"batch"`` (default: frozen BatchNormalization layers keep normalising
            with the batch's statistics, so the forward pass does not change when they
            freeze) or ``"inference"`` (Keras's ``trainable = False``: moving statistics).
        log_dir: where ``freezing.csv`` goes; default the `RWCCallback`'s folder.
        rebuild: rebuilds the train step after a freeze; default
            ``model.make_train_function(force=True)``, what ``model.fit`` needs.
        verbose: 1 prints a line per frozen unit; 0 is silent.

    Example:
        ```python
        rwc = rwc_keras.RWCCallback("runs/a")
        model.fit(x, y, epochs=30, callbacks=[rwc, rwc_keras.RWCFreezing(rwc)])
        ```
    """

    def __init__(self, rwc, tolerance=schema.RWC_FREEZING_RULE["tolerance"],
                 patience=schema.RWC_FREEZING_RULE["patience"],
                 smoothing=schema.RWC_FREEZING_RULE["smoothing"],
                 warmup=schema.RWC_FREEZING_RULE["warmup"], cap=schema.RWC_FREEZING_RULE["cap"],
                 metric="rwc_norm", groups=None, batchnorm=schema.DEFAULT_FREEZE_BATCHNORM,
                 log_dir=None, rebuild=None, verbose=1):
        super().__init__(log_dir=log_dir, rwc=rwc, batchnorm=batchnorm, rebuild=rebuild,
                         verbose=verbose)
        if not (isinstance(tolerance, (int, float)) and tolerance > 0):
            raise ValueError(f"tolerance must be a positive number, got {tolerance!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive int, got {patience!r}")
        if not (isinstance(smoothing, (int, float)) and 0 <= smoothing < 1):
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
        if not (isinstance(warmup, (int, float)) and 0 <= warmup < 1):
            raise ValueError(f"warmup must be a fraction of training in [0, 1), got {warmup!r}")
        if not (isinstance(cap, (int, float)) and 0 < cap <= 1):
            raise ValueError(f"cap must be a fraction of the units in (0, 1], got {cap!r}")
        if metric not in spec.RWC_METRICS:
            raise ValueError(f"metric must be one of {', '.join(spec.RWC_METRICS)}, "
                             f"got {metric!r}")
        self.tolerance = tolerance
        self.patience = patience
        self.smoothing = smoothing
        self.warmup = warmup
        self.cap = cap
        self.metric = metric
        self.groups = groups
        self._smoothed = self._streak = None
        self._seen = None  # the last measurements taken into account
        if rwc.measures_after_steps:
            # A batch hook only where the host measures between epoch ends (see RWCCallback).
            self.on_train_batch_end = self._take_measurements_after_step

    def _make_units(self):
        groups = self.groups
        if groups is None:
            groups = self.rwc.groups
        if groups is None:
            groups = getattr(self.model, "rwc_groups", None)
        return layer_units(self.model, groups)

    def _build_state(self):
        count = len(self.units)
        with tf.device("/cpu:0"):
            self._smoothed = tf.Variable(np.full(count, np.nan), trainable=False)
            self._streak = tf.Variable(np.zeros(count, np.int64), trainable=False)

    def _state_variables(self):
        return {"smoothed": self._smoothed, "streak": self._streak}

    def _unit_values(self, rows):
        """Per unit, the mean of the metric over its measured layers (NaN: none measured)."""
        by_layer = {row["layer"]: row[self.metric] for row in rows}
        values = np.full(len(self.units), np.nan)
        for index, unit in enumerate(self.units):
            finite = [by_layer[name] for name in unit.tracked
                      if name in by_layer and not math.isnan(by_layer[name])]
            if finite:
                values[index] = sum(finite) / len(finite)
        return values

    def _progress(self, epoch, step):
        params = self.params or {}
        steps, epochs = params.get("steps"), params.get("epochs")
        if not epochs:
            raise ValueError("RWCFreezing needs the number of epochs in its params, which "
                             "model.fit and keras.callbacks.CallbackList(epochs=...) set")
        if steps:
            return step / (epochs * steps)
        return epoch / epochs

    def _take_measurements(self):
        """The rule over the measurements the `RWCCallback` read last, oldest first; the
        units it calls for freeze once, after them."""
        measurements = self.rwc.measurements
        if not measurements or measurements is self._seen:
            return
        self._seen = measurements
        smoothed, streak = self._smoothed.numpy(), self._streak.numpy()
        change = np.full(len(self.units), np.nan)
        count = self.frozen
        freezable = min(len(self.units) - 1, math.floor(self.cap * len(self.units)))
        for rows in measurements:
            smoothed, change, streak = plateau(smoothed, streak, self._unit_values(rows),
                                               self.smoothing, self.tolerance)
            if self._progress(rows[0]["epoch"], rows[0]["step"]) >= self.warmup:
                count = leading_run(count, streak, self.patience, freezable)
        self._smoothed.assign(smoothed)
        self._streak.assign(streak)
        # From the step after the last measurement read: every N steps inside fit's step,
        # measurements are read at the epoch's end.
        self._freeze_to(count, measurements[-1][0]["epoch"],
                        int(self.model.optimizer.iterations.numpy()), list(zip(smoothed, change)))

    def _take_measurements_after_step(self, batch, logs=None):
        """``on_train_batch_end`` when the `RWCCallback` measures on the host every N steps."""
        self._take_measurements()

    def on_epoch_end(self, epoch, logs=None):
        self._take_measurements()
