"""One seed's run folder: who may write it, what it holds, and how a killed run resumes.

A run folder ``<logdir>/<arch>_<dataset>/seed_<seed>/`` is

* new: created, locked and written from scratch;
* complete (``metrics.json`` exists): left alone, re-running the command does nothing;
* interrupted: re-running the same command resumes it from the last end-of-epoch checkpoint
  (``checkpoint/``: model, optimizer, RWC snapshots), after dropping the CSV rows written
  after that checkpoint, so every (epoch, layer) ends up with exactly one row.

An exclusive ``flock`` on ``.lock`` keeps two processes from ever writing the same folder;
the kernel releases it when its process dies, even by SIGKILL.
"""

import csv
import fcntl
import glob
import json
import os
import shutil

import tensorflow as tf

FLAGFILE = "flags.cfg"
METRICS = "metrics.json"
CHECKPOINT_DIR = "checkpoint"
LATEST = "latest.json"


class RunDirError(Exception):
    """The run folder cannot be used by this command (busy, or holds another run)."""


def _atomic_write(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def truncate_csv(path, last_epoch):
    """Keeps the header and the rows whose ``epoch`` column is at most ``last_epoch``."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    epoch = rows[0].index("epoch")
    kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and int(r[epoch]) <= last_epoch]
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)


class RunDir:
    """The folder of one seed's run.

    Args:
        path: the folder.
        flagfile: the text of the flagfile that (re-)creates this run.
        writer: whether this process writes files (False on non-chief workers, which only
            read the chief's checkpoint when resuming).
    """

    def __init__(self, path, flagfile, writer=True):
        self.path = path
        self.flagfile = flagfile
        self.writer = writer
        self._lock = None

    def file(self, name):
        return os.path.join(self.path, name)

    def is_complete(self):
        return os.path.exists(self.file(METRICS))

    def claim(self):
        """Locks the folder for this process and says how the run starts.

        Returns:
            The number of epochs already done (0 for a new run), or None when the run is
            already complete.

        Raises:
            RunDirError: another process writes the folder, or it holds a run made with
                other flags.
        """
        if not self.writer:
            return None if self.is_complete() else self.checkpoint_epoch()
        os.makedirs(self.path, exist_ok=True)
        self._lock = open(self.file(".lock"), "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            raise RunDirError(f"{self.path} is being written by another process "
                              f"(pid {self._lock.read().strip() or '?'}); wait for it or "
                              "choose another --logdir") from None
        self._lock.truncate(0)
        self._lock.write(str(os.getpid()))
        self._lock.flush()
        existing = self.file(FLAGFILE)
        if os.path.exists(existing):
            with open(existing) as f:
                if f.read() != self.flagfile:
                    raise RunDirError(
                        f"{self.path} holds a run made with other flags (see its {FLAGFILE}); "
                        "choose another --logdir or re-run with those flags")
        else:
            _atomic_write(existing, self.flagfile)
        if self.is_complete():
            return None
        done = self.checkpoint_epoch()
        for name in ("rwc.csv", "history.csv"):
            truncate_csv(self.file(name), done)
        return done

    def release(self):
        if self._lock:
            self._lock.close()
            self._lock = None

    # -- checkpoints -----------------------------------------------------------------------

    def checkpoint_epoch(self):
        """Epochs completed by the last intact checkpoint (0 when there is none)."""
        try:
            with open(os.path.join(self.path, CHECKPOINT_DIR, LATEST)) as f:
                return int(json.load(f)["epoch"])
        except FileNotFoundError:
            return 0

    def save_checkpoint(self, checkpoint, epoch):
        """Writes ``checkpoint`` for ``epoch`` completed epochs; only then points to it."""
        folder = os.path.join(self.path, CHECKPOINT_DIR)
        prefix = os.path.join(folder, f"epoch_{epoch}")
        checkpoint.write(prefix)
        # latest.json is replaced atomically after the data is complete, so a kill at any
        # moment leaves it pointing at an intact checkpoint.
        _atomic_write(os.path.join(folder, LATEST), json.dumps({"epoch": epoch}))
        for old in glob.glob(os.path.join(folder, "epoch_*")):
            if not os.path.basename(old).startswith(f"epoch_{epoch}."):
                os.remove(old)

    def restore_checkpoint(self, checkpoint, epoch):
        prefix = os.path.join(self.path, CHECKPOINT_DIR, f"epoch_{epoch}")
        # Every variable of this process's checkpoint must get its value; a non-chief
        # worker's checkpoint has no RWC snapshots, hence not assert_consumed().
        checkpoint.read(prefix).assert_existing_objects_matched()

    def finish(self, metrics):
        """Writes metrics.json (the run is complete) and drops the no longer needed checkpoint."""
        _atomic_write(self.file(METRICS), json.dumps(metrics, indent=2) + "\n")
        shutil.rmtree(os.path.join(self.path, CHECKPOINT_DIR), ignore_errors=True)


def make_checkpoint(model, optimizer, snapshots):
    """A `tf.train.Checkpoint` of everything training state depends on.

    Model variables include BatchNorm statistics and the dropout layers' seed-generator
    states, and the optimizer's include its step count, so a restored run continues exactly.
    """
    return tf.train.Checkpoint(
        model=[v.value for v in model.variables],
        optimizer=[v.value for v in optimizer.variables],
        rwc=list(snapshots),
    )
