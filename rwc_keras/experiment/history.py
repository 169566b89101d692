"""`HistoryLogger`: the training driver's per-epoch metrics, to history.csv and TensorBoard."""

import os

import keras
import tensorflow as tf
from tensorboard.plugins.custom_scalar import summary as custom_scalar_summary

from rwc_keras import spec
from rwc_keras.callbacks.files import append_csv, drop_csv_rows, drop_events, open_csv
from rwc_keras.callbacks.layout import build_layout

# The logs keys of history.csv's columns after ``epoch``, in their order.
_LOG_KEYS = tuple(spec.LOG_PREFIX[split] + metric for split in spec.SPLITS
                  for metric in spec.EPOCH_METRICS) + ("seconds",)


class HistoryLogger(keras.callbacks.Callback):
    """Writes each epoch's train and test metrics to ``history.csv`` and TensorBoard.

    Columns and tags come from `rwc_keras.spec` (``HISTORY_COLUMNS``, ``accuracy_tag``);
    the logs of an epoch carry ``loss``, ``top1``, ``top5``, their ``test_`` versions and
    ``seconds``, the training time of the epoch. On the first start of a folder it also
    writes the TensorBoard custom-scalars layout of the architecture's groups and the RWC
    callback's measures. Everything goes through the `RWCCallback`'s writer, so that the
    folder has one writer: list the RWC callback first. Resumable: pass it to the
    `ResumeCallback` too.

    Args:
        folder: the seed's folder, the RWC callback's ``log_dir``.
        groups: the architecture's layer groups, for the layout.
        rwc: the run's `RWCCallback`.
    """

    def __init__(self, folder, groups, rwc):
        super().__init__()
        self.folder = folder
        self.groups = groups
        self.rwc = rwc
        self._path = os.path.join(folder, spec.HISTORY_CSV)

    def checkpoint_state(self):
        """Nothing beyond its files: the epoch is in the `ResumeCallback`'s checkpoint."""
        return {}

    def on_resume(self, epoch, step):
        """Drops the rows and TensorBoard scalars of the epochs after ``epoch``."""
        drop_csv_rows(self._path, lambda row: int(row["epoch"]) <= epoch)
        drop_events(self.folder, lambda tag, event_step: (
            tag.split("/")[0] in spec.SPLITS and event_step > epoch))

    def on_epoch_begin(self, epoch, logs=None):
        if self.rwc.summary_writer is None:
            raise ValueError("HistoryLogger writes with the RWCCallback's TensorBoard writer, "
                             "which it opens at on_epoch_begin: list the RWCCallback first")
        if tf.io.gfile.exists(self._path):
            return
        # The layout first: a kill between the two leaves a second copy of it (harmless),
        # not a folder without one.
        layout = custom_scalar_summary.pb(
            build_layout(self.groups, self.rwc.metrics)).SerializeToString()
        with self.rwc.summary_writer.as_default():
            tf.summary.experimental.write_raw_pb(layout, step=0)
        self.rwc.summary_writer.flush()
        open_csv(self._path, spec.HISTORY_COLUMNS)

    def on_epoch_end(self, epoch, logs=None):
        append_csv(self._path, [[epoch + 1] + [logs[key] for key in _LOG_KEYS]])
        writer = self.rwc.summary_writer
        with writer.as_default(step=epoch + 1):
            for split, prefix in spec.LOG_PREFIX.items():
                for metric in spec.EPOCH_METRICS:
                    tf.summary.scalar(spec.accuracy_tag(split, metric), logs[prefix + metric])
        writer.flush()
