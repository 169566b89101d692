"""`RWCCallback`: per-layer Relative Weight Change during `model.fit`, to CSV and TensorBoard."""

import csv
import datetime
import math
import os
import re

import keras
import pandas as pd
import tensorflow as tf

from rwc_keras.metric import rwc_stats

CSV_NAME = "rwc.csv"
CSV_COLUMNS = ("epoch", "step", "layer", "group", "rwc", "rwc_norm", "zeros", "size")


def new_run_dir(parent="runs", prefix="rwc"):
    """Creates and returns a fresh, never reused folder ``<parent>/<prefix>-<time>[-k]``.

    ``os.makedirs(exist_ok=False)`` is atomic, so two runs started in the same second
    (or two processes) each get their own folder.
    """
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(parent, f"{prefix}-{stamp}")
    candidate, k = base, 1
    while True:
        try:
            os.makedirs(candidate, exist_ok=False)
            return candidate
        except FileExistsError:
            k += 1
            candidate = f"{base}-{k}"


class RWCCallback(keras.callbacks.Callback):
    """Tracks the Relative Weight Change (RWC) of every layer during training.

    At every measurement point each tracked weight tensor is compared with its value at the
    previous point (the first time: the weights at train begin). Both definitions are
    recorded, ``rwc = mean(|curr - prev| / |prev|)`` and ``rwc_norm = sum|curr - prev| /
    sum|prev|`` (see `rwc_keras.metric`). The work runs in the TensorFlow graph against
    snapshot variables kept on the weights' device; per measurement only four scalars per
    tensor go to the host. Works unchanged for models created under
    `tf.distribute.MirroredStrategy`.

    Output, in ``log_dir``:

    * ``rwc.csv``: one row per tracked tensor per measurement, columns
      ``epoch,step,layer,group,rwc,rwc_norm,zeros,size`` (``epoch`` 1-based, ``step`` the
      optimizer's iteration count, ``layer`` the variable path without the model's name,
      ``group`` empty when none, ``zeros`` the elements left out of the ``rwc`` mean because
      their previous value was exactly 0, ``size`` the tensor's element count). Flushed after
      every measurement.
    * TensorBoard scalars ``rwc/<group>/<layer>`` and ``rwc_norm/<group>/<layer>`` (no group
      part when empty) and, per group, ``rwc_mean/<group>`` and ``rwc_norm_mean/<group>``.
      Their step is the epoch for per-epoch measurement, the optimizer step otherwise.

    Layer groups: the model can declare them with an attribute ``rwc_groups``, a dict from
    layer name (as in the CSV) to group name; the paper's models from `rwc_keras.models` do.
    The ``groups`` argument overrides it.

    Args:
        log_dir: folder to write to. Default: a new folder ``runs/rwc-<time>`` per run. An
            existing ``rwc.csv`` there is an error unless ``append=True``.
        update_freq: ``"epoch"`` (default) or an int N: measure every N optimizer steps.
        include: which trainable variables to track. None: all with more than one
            dimension (conv and dense kernels). Otherwise a list of layer names (as in the
            CSV), a regular expression searched in the layer name, or a predicate taking the
            Keras variable and returning a bool.
        include_1d: also track one-dimensional variables (biases, BatchNorm scale/offset).
        groups: a dict from layer name to group name, or a callable taking the layer name
            and returning a group name or None. Default: the model's ``rwc_groups``.
        append: append to an existing ``rwc.csv`` in ``log_dir`` instead of refusing.
        verbose: 1 prints where the files go once at train begin; 0 is silent.

    Example:
        ```python
        model.fit(x, y, epochs=10, callbacks=[rwc_keras.RWCCallback()])
        # then: tensorboard --logdir runs
        ```
    """

    def __init__(
        self,
        log_dir=None,
        update_freq="epoch",
        include=None,
        include_1d=False,
        groups=None,
        append=False,
        verbose=1,
    ):
        super().__init__()
        if update_freq != "epoch" and (
            isinstance(update_freq, bool) or not isinstance(update_freq, int) or update_freq < 1
        ):
            raise ValueError(
                f"update_freq must be 'epoch' or a positive int, got {update_freq!r}"
            )
        self.log_dir = log_dir
        self.update_freq = update_freq
        self.include = include
        self.include_1d = include_1d
        self.groups = groups
        self.append = append
        self.verbose = verbose
        self._rows = []
        self._csv_file = None
        self._writer = None
        self._epoch = 0
        self._last_step = None
        self._tracked = None
        self._snapshots = None

    # -- selection -------------------------------------------------------------------------

    def _layer_name(self, variable):
        return variable.path.removeprefix(self.model.name + "/")

    def _select(self):
        candidates = [
            v
            for v in self.model.trainable_variables
            if self.include_1d or len(v.shape) > 1
        ]
        include = self.include
        if include is None:
            selected = candidates
        elif isinstance(include, str):
            pattern = re.compile(include)
            selected = [v for v in candidates if pattern.search(self._layer_name(v))]
        elif callable(include):
            selected = [v for v in candidates if include(v)]
        else:
            wanted = set(include)
            selected = [v for v in candidates if self._layer_name(v) in wanted]
            missing = wanted - {self._layer_name(v) for v in selected}
            if missing:
                raise ValueError(
                    f"RWCCallback include names not found among trackable variables: "
                    f"{sorted(missing)}; available: "
                    f"{[self._layer_name(v) for v in candidates]}"
                )
        if not selected:
            raise ValueError(
                f"RWCCallback tracks no variable (include={include!r}, "
                f"include_1d={self.include_1d}); model variables: "
                f"{[self._layer_name(v) for v in self.model.trainable_variables]}"
            )
        return selected

    def _group_of(self, layer):
        groups = self.groups
        if groups is None:
            groups = getattr(self.model, "rwc_groups", None) or {}
        group = groups(layer) if callable(groups) else groups.get(layer)
        return group or ""

    # -- files -----------------------------------------------------------------------------

    def _open_outputs(self):
        if self.log_dir is None:
            self.log_dir = new_run_dir()
        os.makedirs(self.log_dir, exist_ok=True)
        csv_path = os.path.join(self.log_dir, CSV_NAME)
        exists = os.path.exists(csv_path) and os.path.getsize(csv_path) > 0
        # A second fit() with the same callback continues its own run.
        if exists and not (self.append or self._rows):
            raise FileExistsError(
                f"{csv_path} already exists; choose another log_dir or pass append=True"
            )
        self._csv_file = open(csv_path, "a" if exists else "w", newline="")
        self._csv = csv.writer(self._csv_file)
        if not exists:
            self._csv.writerow(CSV_COLUMNS)
            self._csv_file.flush()
        self._writer = tf.summary.create_file_writer(self.log_dir)
        if self.verbose:
            print(f"RWCCallback: writing {csv_path} and TensorBoard events to {self.log_dir}")

    def _close_outputs(self):
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- measurement -----------------------------------------------------------------------

    def _make_snapshots(self):
        # A plain variable beside the primary copy of each weight: under MirroredStrategy
        # the measurement reads the primary replica only, so no cross-device traffic.
        snapshots = []
        for v in self._tracked:
            with tf.device(v.value.device):
                snapshots.append(tf.Variable(tf.identity(v.value), trainable=False))
        return snapshots

    def _measure_and_advance(self):
        """In-graph: RWC of every tracked tensor against its snapshot, then snapshot <- now."""
        results = []
        for variable, snapshot in zip(self._tracked, self._snapshots):
            current = variable.value.read_value()
            results.append(tf.stack(rwc_stats(snapshot.read_value(), current)))
            snapshot.assign(current)
        return tf.stack(results)

    def _measure_and_summarise(self, tb_step):
        """In-graph: the measurement plus every TensorBoard scalar, in one call."""
        values = self._measure_and_advance()
        with self._writer.as_default(step=tb_step):
            members = {}
            for index, (layer, group, _) in enumerate(self._meta):
                prefix = f"{group}/" if group else ""
                tf.summary.scalar(f"rwc/{prefix}{layer}", values[index, 0])
                tf.summary.scalar(f"rwc_norm/{prefix}{layer}", values[index, 1])
                if group:
                    members.setdefault(group, []).append(index)
            for group, indices in members.items():
                for column, key in enumerate(("rwc", "rwc_norm")):
                    group_values = tf.gather(values[:, column], indices)
                    finite = tf.boolean_mask(group_values, ~tf.math.is_nan(group_values))
                    # The mean of no finite value is NaN, as in the CSV's all-zero rule.
                    tf.summary.scalar(f"{key}_mean/{group}", tf.reduce_mean(finite))
        return values

    def measure(self):
        """Measures now, moves the snapshots on, and returns the values without writing.

        Returns:
            A float64 array of shape (tracked tensors, 3): ``rwc``, ``rwc_norm`` and
            ``zeros`` of each tensor of ``tracked_variables`` since the last measurement.
        """
        return self._measure_fn().numpy()

    def _record(self, epoch, step):
        tb_step = epoch if self.update_freq == "epoch" else step
        values = self._summarise_fn(tf.constant(tb_step, tf.int64)).numpy()
        self._writer.flush()
        rows = [
            dict(epoch=epoch, step=step, layer=layer, group=group, rwc=float(rwc),
                 rwc_norm=float(rwc_norm), zeros=int(zeros), size=size)
            for (layer, group, size), (rwc, rwc_norm, zeros) in zip(self._meta, values)
        ]
        self._rows.extend(rows)
        self._csv.writerows([[row[c] for c in CSV_COLUMNS] for row in rows])
        self._csv_file.flush()
        self._last_step = step

    def _optimizer_step(self):
        return int(self.model.optimizer.iterations.numpy())

    # -- Keras hooks -----------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._tracked = self._select()
        self._meta = []
        for v in self._tracked:
            layer = self._layer_name(v)
            self._meta.append((layer, self._group_of(layer), int(math.prod(v.shape))))
        self._snapshots = self._make_snapshots()
        self._measure_fn = tf.function(self._measure_and_advance)
        self._open_outputs()
        self._summarise_fn = tf.function(self._measure_and_summarise)
        self._last_step = self._optimizer_step()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch":
            return
        step = self._optimizer_step()
        if step % self.update_freq == 0 and step != self._last_step:
            self._record(self._epoch, step)

    def on_epoch_end(self, epoch, logs=None):
        if self.update_freq == "epoch":
            self._record(epoch + 1, self._optimizer_step())

    def on_train_end(self, logs=None):
        self._close_outputs()

    @property
    def tracked_variables(self):
        """The Keras variables measured, once training began."""
        return self._tracked

    @property
    def snapshots(self):
        """The snapshot variables (weights at the last measurement), once training began.

        Put them in a checkpoint with the model to resume a run exactly: restored after
        ``on_train_begin``, the first measurement compares with the restored snapshot.
        """
        return self._snapshots

    def to_dataframe(self):
        """The rows measured so far as a pandas DataFrame with the CSV's columns."""
        return pd.DataFrame(self._rows, columns=list(CSV_COLUMNS))
