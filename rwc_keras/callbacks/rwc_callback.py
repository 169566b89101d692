"""`RWCCallback`: per-layer Relative Weight Change during `model.fit`, to CSV and TensorBoard."""

import math
import os

import keras
import pandas as pd
from keras import ops

try:
    import tensorflow as tf
except ImportError:  # JAX or PyTorch alone: rwc.csv without TensorBoard events
    tf = None

from rwc_keras import spec
from rwc_keras.callbacks.files import (append_csv, drop_csv_rows, drop_events, gfile,
                                       new_run_dir, open_csv)
from rwc_keras.callbacks.summaries import TAG_FAMILIES, write_scalars
from rwc_keras.measure.selection import group_of, select_variables
from rwc_keras.measure.snapshots import GraphSnapshots, HostSnapshots

class RWCCallback(keras.callbacks.Callback):
    """Tracks the Relative Weight Change (RWC) of every layer during training.

    At every measurement point each tracked weight tensor is compared with its value at the
    previous point (the first time: the weights at train begin). Both definitions are
    always recorded, ``rwc = mean(|curr - prev| / |prev|)`` and ``rwc_norm = sum|curr -
    prev| / sum|prev|``; ``metrics`` adds others, computed in the same pass over each tensor
    (see `rwc_keras.measure.metric`): ``update_ratio`` (``||curr - prev|| / ||prev||``),
    ``dist_init`` (``sum|curr - w0| / sum|w0|``), ``rotation`` (``1 - cos(curr, w0)``) and
    ``weight_norm`` (``||curr||``), where w0 are the weights at the first train begin. The
    work runs compiled on the weights' device against snapshots kept there (a
    ``tf.function`` on TensorFlow, ``jax.jit`` on JAX, eager under ``torch.no_grad`` on
    PyTorch); per measurement only one scalar per measure and tensor (and the zero count) go
    to the host, and between measurements the callback reads nothing from the device. Works
    unchanged for models created under `tf.distribute.MirroredStrategy` (TensorFlow) or
    `keras.distribution.DataParallel` (JAX). The CSV and the TensorBoard tags are the same
    on every backend; resuming with `ResumeCallback` is TensorFlow-only.

    Memory: one copy of every tracked tensor (the snapshot), and a second one (w0) only
    when ``metrics`` holds ``dist_init`` or ``rotation``.

    Output, in ``log_dir`` (any TensorFlow filesystem path, e.g. ``gs://...``; without
    TensorFlow, on JAX or PyTorch alone, a local path and ``rwc.csv`` only):

    * ``rwc.csv``: one row per tracked tensor per measurement, columns
      ``epoch,step,layer,group,rwc,rwc_norm,zeros,size`` with the chosen measures after
      ``rwc_norm`` (``spec.rwc_columns``; ``epoch`` 1-based, ``step`` the optimizer's
      iteration count, ``layer`` the variable path without the model's name, ``group`` empty
      when none, ``zeros`` the elements left out of the ``rwc`` mean because their previous
      value was exactly 0, ``size`` the tensor's element count). Appended after every
      measurement (every N steps on TensorFlow and JAX: at the epoch's end); rows are not
      kept in memory (`to_dataframe` reads the file).
    * TensorBoard scalars ``<metric>/<group>/<layer>`` per measure, e.g. ``rwc/<group>/<layer>``
      (no group part when empty) and, per group, the group means ``<metric>_mean/<group>``,
      through one writer per callback (`summary_writer`). Their step is the epoch for
      per-epoch measurement, the optimizer step otherwise.

    Layer groups: the model can declare them with an attribute ``rwc_groups``, a dict from
    layer name (as in the CSV) to group name; the paper's models from
    `rwc_keras.experiment.models` do. The ``groups`` argument overrides it.

    Several ``fit()`` calls with one callback continue one record: the first measurement of
    a later call compares with the last of the earlier one, and the measurement is traced
    once. Resuming a killed run: pass the callback to a `rwc_keras.ResumeCallback` listed
    after it, which saves its snapshots and on a restart drops the rows and events written
    after the checkpoint.

    Args:
        log_dir: folder to write to. Default: a new local folder ``runs/rwc-<time>``, made
            at the first epoch. An existing ``rwc.csv`` with rows there is an error unless
            ``append=True`` or a `ResumeCallback` restored this callback.
        update_freq: ``"epoch"`` (default) or an int N: measure every N optimizer steps.
            On TensorFlow and JAX inside the compiled train step (`rwc_keras.measure.in_step`:
            the model's optimizer is wrapped during ``fit``), the rows written at the epoch's
            end. On PyTorch after the step, from a batch hook, which makes ``fit`` wait for
            every step; with ``steps_per_execution=K`` the hook sees every K-th step, so the
            gaps are N rounded up to a multiple of K (docs/async.md).
        include: which trainable variables to track. None: all with more than one
            dimension (conv and dense kernels). Otherwise a list of layer names (as in the
            CSV), a regular expression searched in the layer name, or a predicate taking the
            Keras variable and returning a bool.
        include_1d: also track one-dimensional variables (biases, BatchNorm scale/offset).
        groups: a dict from layer name to group name, or a callable taking the layer name
            and returning a group name or None. Default: the model's ``rwc_groups``.
        metrics: names from ``rwc_keras.spec.METRICS`` to record; ``rwc`` and ``rwc_norm``
            are recorded whatever it says. Columns and tags follow the order of ``METRICS``.
        append: append to an existing ``rwc.csv`` in ``log_dir`` (with the same columns)
            instead of refusing.
        verbose: 1 prints where the files go once; 0 is silent.

    Attributes:
        measurements: the measurements written last, oldest first (one, or every N steps
            on TensorFlow and JAX those of the epoch), each a list of rows as dicts from the columns
            of ``rwc.csv`` to their values: what `rwc_keras.RWCFreezing` reads.
        last_measurement: the rows of the latest measurement; None before it.
        measures_after_steps: whether it measures from a batch hook (every N steps on
            PyTorch), which keeps ``fit`` from running ahead.

    Example:
        ```python
        model.fit(x, y, epochs=10, callbacks=[rwc_keras.RWCCallback()])
        # then: tensorboard --logdir runs
        # every measure, against the previous measurement and the weights at train begin:
        rwc_keras.RWCCallback(metrics=["update_ratio", "dist_init", "rotation", "weight_norm"])
        ```
    """

    def __init__(
        self,
        log_dir=None,
        update_freq="epoch",
        include=None,
        include_1d=False,
        groups=None,
        metrics=spec.RWC_METRICS,
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
        # TensorFlow and JAX measure every N steps inside the train step
        # (rwc_keras.measure.in_step); PyTorch's eager step has no compiled step to join.
        self.measures_after_steps = (update_freq != "epoch"
                                     and keras.backend.backend() == "torch")
        if self.measures_after_steps:
            # Set per instance, not defined by the class: Keras runs fit asynchronously only
            # while no callback has a batch hook.
            self.on_train_batch_end = self._measure_when_due
        self.include = include
        self.include_1d = include_1d
        self.groups = groups
        self.metrics = spec.check_metrics([*spec.RWC_METRICS, *spec.check_metrics(metrics)])
        self.append = append
        self.verbose = verbose
        # Built once per model (on_train_begin): what is measured and against what.
        self._state_model = None
        self._tracked = None
        self._meta = None
        # The weights compared with (rwc_keras.measure.snapshots), w0 too when needed.
        self._store = None
        self._last_step = None  # TensorFlow: a variable, so that a checkpoint holds it
        # Opened once per callback (the first on_epoch_begin): where it writes.
        self._csv_path = None
        self._writer = None
        self._summarise_fn = None  # traced against the writer
        self._in_step = None  # every N steps on TensorFlow and JAX: this fit's recorder
        self._resumed = False
        self._training = False
        # Host-side bookkeeping, so that no step reads the device.
        self._epoch = 0
        self._epoch_start_step = 0
        self._last_step_value = 0
        self.measurements = []
        self.last_measurement = None

    # -- selection -------------------------------------------------------------------------

    def _layer_name(self, variable):
        return spec.layer_name(self.model, variable)

    def _group_of(self, layer):
        groups = self.groups
        if groups is None:
            groups = getattr(self.model, "rwc_groups", None)
        return group_of(groups, layer) or ""

    # -- state -----------------------------------------------------------------------------

    def _build_state(self):
        self._tracked = select_variables(self.model, self.include, self.include_1d)
        self._meta = []
        for v in self._tracked:
            layer = self._layer_name(v)
            self._meta.append((layer, self._group_of(layer), int(math.prod(v.shape))))
        self._last_step_value = int(self.model.optimizer.iterations.numpy())
        with_initials = spec.needs_initial(self.metrics)
        if keras.backend.backend() == "tensorflow":
            self._store = GraphSnapshots(self._tracked, self.metrics, with_initials)
            with tf.device("/cpu:0"):
                self._last_step = tf.Variable(self._last_step_value, dtype=tf.int64,
                                              trainable=False)
        else:
            self._store = HostSnapshots(self.model, self._tracked, self.metrics, with_initials)
        self._summarise_fn = None
        self._state_model = self.model

    def checkpoint_state(self):
        """The variables a `ResumeCallback` saves for this callback: the snapshots, the
        step of the last measurement and, when a measure needs them, the weights at train
        begin and their norms (so that a resumed run compares with the same w0).

        Raises:
            ValueError: called before this callback's ``on_train_begin`` set them up, i.e.
                the `ResumeCallback` is listed before it in ``callbacks``.
        """
        if keras.backend.backend() != "tensorflow":
            raise ValueError("ResumeCallback checkpoints with tf.train.Checkpoint: TensorFlow "
                             f"backend only, not {keras.backend.backend()}")
        if not self._training:
            raise ValueError(
                "RWCCallback has not set up its snapshots yet: it does so in on_train_begin, "
                "so list it before the ResumeCallback in callbacks=[...]")
        return dict(self._store.checkpoint_state(), last_step=self._last_step)

    def on_resume(self, epoch, step):
        """After a `ResumeCallback` restored the snapshots: drops the CSV rows and
        TensorBoard events written after the checkpoint (``epoch`` epochs, ``step`` steps)."""
        if self.log_dir is None:
            raise ValueError("RWCCallback(log_dir=None) writes a new folder per run; give "
                             "it the log_dir of the run to resume")
        self._last_step_value = int(self._last_step.numpy())
        self._resumed = True
        # A file the writer holds open cannot be rewritten under it.
        if self._writer is not None:
            self._writer.close()
            self._writer, self._summarise_fn, self._csv_path = None, None, None
        drop_csv_rows(os.path.join(self.log_dir, spec.RWC_CSV),
                      lambda row: int(row["step"]) <= step)
        last_tensorboard_step = epoch if self.update_freq == "epoch" else step
        drop_events(self.log_dir, lambda tag, event_step: (
            tag.split("/")[0] in TAG_FAMILIES and event_step > last_tensorboard_step))

    # -- files -----------------------------------------------------------------------------

    def _open_outputs(self):
        if self.log_dir is None:
            self.log_dir = new_run_dir()
        gfile.makedirs(self.log_dir)
        path = os.path.join(self.log_dir, spec.RWC_CSV)
        open_csv(path, spec.rwc_columns(self.metrics), keep_rows=self.append or self._resumed,
                 written_by="these metrics")
        self._csv_path = path
        if tf is None:
            if self.verbose:
                print(f"RWCCallback: writing {path}; no TensorBoard events: TensorFlow, "
                      "which writes them, is not installed")
            return
        self._writer = tf.summary.create_file_writer(self.log_dir)
        if self.verbose:
            print(f"RWCCallback: writing {path} and TensorBoard events to {self.log_dir}")

    @property
    def summary_writer(self):
        """The callback's TensorBoard writer (None before the first epoch begins, and
        without TensorFlow).

        Other scalars of the same run may be written with it, so that the folder has one
        writer; their own restart handling is theirs.
        """
        return self._writer

    # -- measurement -----------------------------------------------------------------------

    def _summarise(self, values, tensorboard_step):
        with self._writer.as_default(step=tensorboard_step):
            write_scalars(self._meta, self.metrics, values)

    def measure(self):
        """Measures now, moves the snapshots on, and returns the values without writing.

        Returns:
            A float64 array of shape (tracked tensors, measures + 1): the ``metrics`` of
            each tensor of ``tracked_variables`` since the last measurement, then its
            ``zeros``.
        """
        return self._store.measure()

    def _record(self, epoch):
        """Measures now and writes the measurement."""
        values = self.measure()
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        if self._last_step is not None:
            self._last_step.assign(step)
        self._write(epoch, [(step, values)])

    def _write_events(self, epoch, measured):
        """Writes the TensorBoard scalars of the measurements ``[(step, values)]``."""
        if self._summarise_fn is None:
            self._summarise_fn = tf.function(self._summarise)
        for step, values in measured:
            self._summarise_fn(tf.constant(values),
                               tf.constant(epoch if self.update_freq == "epoch" else step,
                                           tf.int64))
        self._writer.flush()

    def _write(self, epoch, measured):
        """Writes the measurements ``[(step, values)]`` of one epoch, oldest first."""
        if self._writer is not None:
            self._write_events(epoch, measured)
        columns = spec.rwc_columns(self.metrics)
        self.measurements, rows = [], []
        for step, values in measured:
            measurement = [[epoch, step, layer, group, *map(float, row[:-1]), int(row[-1]),
                            size] for (layer, group, size), row in zip(self._meta, values)]
            self.measurements.append([dict(zip(columns, row)) for row in measurement])
            rows += measurement
        append_csv(self._csv_path, rows)
        self.last_measurement = self.measurements[-1]
        self._last_step_value = measured[-1][0]

    # -- Keras hooks -----------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        if self._state_model is not self.model:
            self._build_state()
        if self._in_step is not None:  # left by a fit that raised
            self._in_step.detach()
        if self.update_freq != "epoch" and not self.measures_after_steps:
            self._in_step = self._step_recorder()
            self._in_step.attach(self.model)
        self._training = True

    def _step_recorder(self):
        """What measures every N steps inside the train step, on this backend; its module
        is imported on that backend only."""
        steps_per_epoch = (self.params or {}).get("steps")
        if keras.backend.backend() == "tensorflow":
            from rwc_keras.measure.in_step_tf import GraphStepMeasurements  # noqa: PLC0415

            return GraphStepMeasurements(
                self._store.measure_in_graph, self._last_step, self.update_freq,
                (len(self._tracked), len(self.metrics) + 1), steps_per_epoch)
        from rwc_keras.measure.in_step_jax import StatelessStepMeasurements  # noqa: PLC0415

        return StatelessStepMeasurements(self._store, self._tracked, self.metrics,
                                         self._last_step_value, self.update_freq,
                                         steps_per_epoch)

    def on_epoch_begin(self, epoch, logs=None):
        # Files open here, after every on_train_begin: a restore has happened by now.
        if self._csv_path is None:
            self._open_outputs()
        self._epoch = epoch + 1
        if self.measures_after_steps:
            # Once per epoch; within it steps are counted on the host.
            self._epoch_start_step = int(self.model.optimizer.iterations.numpy())

    def _measure_when_due(self, batch, logs=None):
        """``on_train_batch_end`` of per-step measurement."""
        # ``batch`` is the last batch of the step (of the K steps with steps_per_execution).
        step = self._epoch_start_step + batch + 1
        if step - self._last_step_value >= self.update_freq:
            self._record(self._epoch)

    def on_epoch_end(self, epoch, logs=None):
        if self.update_freq == "epoch":
            self._record(epoch + 1)
        elif self._in_step is not None:
            measured = self._in_step.read()
            if measured:
                self._write(epoch + 1, measured)

    def on_train_end(self, logs=None):
        self._training = False
        if self._in_step is not None:
            self._in_step.detach()
            self._in_step = None
        if self._writer is not None:
            self._writer.flush()

    @property
    def tracked_variables(self):
        """The Keras variables measured, once training began."""
        return self._tracked

    def to_dataframe(self):
        """The rows of ``rwc.csv`` so far as a pandas DataFrame (empty before any).

        Read from the file: the callback keeps no rows in memory (a per-step record of a
        long run has millions).
        """
        if self._csv_path is None:
            return pd.DataFrame(columns=list(spec.rwc_columns(self.metrics)))
        with gfile.GFile(self._csv_path) as f:
            # Empty groups stay "" and only the value columns read "nan" as NaN.
            return pd.read_csv(f, keep_default_na=False,
                               na_values={metric: ["nan"] for metric in self.metrics})

