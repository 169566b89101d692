"""One seed's run folder: who may write it, and whether its run is new, complete or to resume.

A run folder ``<logdir>/<arch>_<dataset>/seed_<seed>/`` is

* new: created, locked and written from scratch;
* complete (``metrics.json`` exists): left alone, re-running the command does nothing;
* interrupted: re-running the same command resumes it. The run's `ResumeCallback` restores
  the last end-of-epoch checkpoint (``checkpoint/``: model, optimizer, RWC snapshots) and
  the callbacks drop the CSV rows and TensorBoard events written after it, so every (epoch,
  layer) ends up with exactly one row.

An exclusive ``flock`` on ``.lock`` keeps two processes from ever writing the same folder;
the kernel releases it when its process dies, even by SIGKILL.
"""

import fcntl
import json
import os
import shutil

from rwc_keras import spec


class RunDirError(Exception):
    """The run folder cannot be used by this command (busy, or holds another run)."""


def _atomic_write(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunDir:
    """The folder of one seed's run.

    Args:
        path: the folder.
        flagfile: the text of the flagfile that (re-)creates this run.
        is_chief: whether this process is the one that writes the run's files (False on
            the other workers of a multi-worker run, which only read the chief's
            checkpoint when resuming).
    """

    def __init__(self, path, flagfile, is_chief=True):
        self.path = path
        self.flagfile = flagfile
        self.is_chief = is_chief
        self._lock = None

    def file(self, name):
        return os.path.join(self.path, name)

    def is_complete(self):
        return os.path.exists(self.file(spec.METRICS_JSON))

    def claim(self):
        """Locks the folder for this process (on the chief) and says whether there is work.

        Returns:
            False when the run is complete already, True when it is to be trained (from
            scratch or resumed).

        Raises:
            RunDirError: another process writes the folder, or it holds a run made with
                other flags.
        """
        if not self.is_chief:
            return not self.is_complete()
        os.makedirs(self.path, exist_ok=True)
        self._lock = open(self.file(spec.LOCK_FILE), "a+")
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
        existing = self.file(spec.FLAGS_CFG)
        if os.path.exists(existing):
            with open(existing) as f:
                if f.read() != self.flagfile:
                    raise RunDirError(
                        f"{self.path} holds a run made with other flags (see its "
                        f"{spec.FLAGS_CFG}); choose another --logdir or re-run with those flags")
        else:
            _atomic_write(existing, self.flagfile)
        return not self.is_complete()

    def release(self):
        if self._lock:
            self._lock.close()
            self._lock = None

    def finish(self, metrics):
        """Writes metrics.json (the run is complete), then drops the no longer needed
        checkpoint: in this order, a kill between the two leaves a complete run."""
        _atomic_write(self.file(spec.METRICS_JSON), json.dumps(metrics, indent=2) + "\n")
        shutil.rmtree(self.file(spec.CHECKPOINT_DIR), ignore_errors=True)
