"""The CSV and TensorBoard files of a run, as a restart needs them: appended row by row, and
cut back to what was written before the restored checkpoint (see `rwc_keras.callbacks.resume`).

Every path may be on any TensorFlow filesystem (``gs://`` included): files go through
``tf.io.gfile``. Without TensorFlow (JAX or PyTorch alone) they are local files, and the
TensorBoard events, which only TensorFlow writes here, are not there to cut back.
"""

import csv
import datetime
import io
import os

try:
    import tensorflow as tf
except ImportError:  # JAX or PyTorch alone: local files
    tf = None

# A file being rewritten is first written to this name in its folder, then renamed over the
# original. No "tfevents" in it: TensorBoard would read a left-over one as events.
_TMP_NAME = ".rewrite.tmp"


class _LocalFiles:
    """The part of ``tf.io.gfile`` used here, on the local filesystem."""

    GFile = open
    exists = staticmethod(os.path.exists)

    @staticmethod
    def makedirs(path):
        os.makedirs(path, exist_ok=True)

    @staticmethod
    def rename(source, target, overwrite):
        assert overwrite, "every caller here replaces the target"
        os.replace(source, target)


gfile = tf.io.gfile if tf is not None else _LocalFiles


def csv_text(rows):
    """``rows`` (lists of values) as CSV text."""
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    return text.getvalue()


def append_csv(path, rows):
    """Appends ``rows`` to the CSV at ``path``; the file is closed again at once, so a kill
    loses at most the rows being written."""
    with gfile.GFile(path, "a") as f:
        f.write(csv_text(rows))


def drop_csv_rows(path, keep):
    """Rewrites the CSV at ``path`` with its header and only the rows ``keep`` accepts.

    Args:
        path: a CSV file with a header line (any TensorFlow filesystem path); nothing
            happens when it does not exist.
        keep: a function of one row (a dict from column name to its text) returning bool.
            Rows cut short by a kill (fewer fields than the header) are dropped.
    """
    if not gfile.exists(path):
        return
    # Read whole: the file of a long per-step record has a few hundred MB at most.
    with gfile.GFile(path) as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    header = rows[0]
    kept = [header] + [row for row in rows[1:]
                       if len(row) == len(header) and keep(dict(zip(header, row)))]
    tmp = os.path.join(os.path.dirname(path), _TMP_NAME)
    with gfile.GFile(tmp, "w") as f:
        f.write(csv_text(kept))
    gfile.rename(tmp, path, overwrite=True)


def drop_events(folder, drop):
    """Rewrites the TensorBoard event files in ``folder`` without the events ``drop`` names.

    Args:
        folder: the folder whose ``events.out.tfevents.*`` files are rewritten (not its
            subfolders). No writer may have them open.
        drop: a function ``(tag, step) -> bool``; an event with a summary value it accepts
            is left out. Events without summary values (the file version) stay.
    """
    # Only TensorFlow writes events here, so only a run with TensorFlow has any to cut.
    for path in tf.io.gfile.glob(os.path.join(folder, "events.out.tfevents.*")):
        records = [record.numpy() for record in tf.data.TFRecordDataset(path)]
        kept = []
        for record in records:
            event = tf.compat.v1.Event.FromString(record)
            if not any(drop(value.tag, event.step) for value in event.summary.value):
                kept.append(record)
        if len(kept) == len(records):
            continue
        tmp = os.path.join(folder, _TMP_NAME)
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in kept:
                writer.write(record)
        gfile.rename(tmp, path, overwrite=True)


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


def open_csv(path, columns, keep_rows=True, written_by="this writer"):
    """Makes ``path`` a CSV headed by ``columns``, keeping the rows already there.

    A file with its header alone (left by a run killed before its first row) counts as
    empty. ``written_by`` names the writer in the error of a file with other columns.

    Raises:
        FileExistsError: the file holds rows and ``keep_rows`` is False.
        ValueError: the file holds rows under other columns.
    """
    has_rows = False
    if gfile.exists(path):
        with gfile.GFile(path) as f:
            header, has_rows = f.readline().strip(), bool(f.readline())
    if has_rows and not keep_rows:
        raise FileExistsError(f"{path} already exists; choose another log_dir or pass append=True")
    if has_rows and header != ",".join(columns):
        raise ValueError(
            f"{path} has the columns {header}, {written_by} write {','.join(columns)}: "
            "pass the metrics it was written with, or choose another log_dir")
    if not has_rows:
        with gfile.GFile(path, "w") as f:
            f.write(csv_text([columns]))
