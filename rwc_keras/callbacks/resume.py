"""`ResumeCallback`: back up the training state every epoch and resume a killed run exactly.

The `keras.callbacks.BackupAndRestore` pattern, on a `tf.train.CheckpointManager`, extended
to the state of other callbacks (the RWC snapshots of `RWCCallback`, anything a later
callback keeps in variables) and to the files they write, so that a resumed run's outputs
hold every epoch exactly once.

A callback whose state must survive a restart takes part by implementing `Resumable`.

Exact resume also needs the training data of an epoch to be a function of the epoch (e.g.
``model.fit(..., shuffle=False)`` or a ``tf.data`` pipeline seeded per epoch) and
``tf.config.experimental.enable_op_determinism()``; every other random state (dropout's
seed generators, BatchNorm statistics, the optimizer's step and momentum) is in the
checkpoint.
"""

import typing

import keras
import tensorflow as tf



@typing.runtime_checkable
class Resumable(typing.Protocol):
    """What `ResumeCallback` asks of a callback whose state must survive a restart.

    ``checkpoint_state()`` is called in `ResumeCallback.on_train_begin`, so the callback must
    have built its state by then in its own ``on_train_begin``: list it BEFORE the
    `ResumeCallback` in ``callbacks``. The same order makes each epoch's checkpoint hold the
    callback's state after its own ``on_epoch_end``. ``on_resume`` drops what the callback
    wrote after the checkpoint (CSV rows, TensorBoard events; `rwc_keras.callbacks.files` has
    the functions) before it writes anything new, so files are opened at the first
    ``on_epoch_begin``, not in ``on_train_begin``.
    """

    def checkpoint_state(self):
        """A dict from a name to a `tf.Variable` (or a list of them) that the checkpoint
        saves and restores. A callback with no state yet (listed after the
        `ResumeCallback`) must raise an error saying so, never hand over an empty state."""

    def on_resume(self, epoch, step):
        """Called after a restore with the epochs completed and the optimizer step of the
        checkpoint."""

class ResumeCallback(keras.callbacks.Callback):
    """Saves the training state at every epoch end; a re-started ``fit`` continues from it.

    At ``on_train_begin`` it restores the latest checkpoint in ``backup_dir``, when there is
    one: model variables (BatchNorm statistics and dropout seed states included), optimizer
    variables (step count, momentum) and the ``checkpoint_state()`` of every callback in
    ``callbacks``, and it tells ``model.fit`` (or the training driver) to start after the
    restored epoch. Each of ``callbacks`` then gets ``on_resume(epoch, step)`` to drop its
    output written after the checkpoint. Without a checkpoint it saves one at the first
    ``on_epoch_begin``, so a run killed at any moment after that resumes. Only the latest
    checkpoint is kept; `tf.train.CheckpointManager` writes its pointer file after the data,
    so a kill at any moment leaves an intact checkpoint.

    Args:
        backup_dir: folder of the checkpoint (any TensorFlow filesystem path). Used by this
            callback alone.
        callbacks: the callbacks whose state is saved with the model and who are told of a
            restore (see the module docstring). They must come before this callback in the
            list passed to ``fit``.
        save: False restores without ever writing (the non-chief workers of a multi-worker
            run, which restore the chief's checkpoint).
        delete_checkpoint: delete ``backup_dir`` when training ends normally.
        verbose: 1 prints a line when it resumes; 0 is silent.

    Attributes:
        restored_epoch: the epochs completed by the checkpoint restored in the last
            ``on_train_begin``, or None when it started afresh.

    Example:
        ```python
        rwc = RWCCallback("runs/a")
        model.fit(x, y, epochs=50, shuffle=False,
                  callbacks=[rwc, ResumeCallback("runs/a/backup", callbacks=[rwc])])
        # killed? run the same script again: it continues after the last complete epoch
        ```
    """

    def __init__(self, backup_dir, callbacks=(), save=True, delete_checkpoint=True, verbose=1):
        super().__init__()
        if not backup_dir:
            raise ValueError(f"ResumeCallback needs a backup_dir, got {backup_dir!r}")
        for callback in callbacks:
            if not isinstance(callback, Resumable):
                raise TypeError(
                    f"{type(callback).__name__} cannot be resumed: it has no "
                    "checkpoint_state() and on_resume(epoch, step) methods")
        self.backup_dir = backup_dir
        self.callbacks = list(callbacks)
        self.save = save
        self.delete_checkpoint = delete_checkpoint
        self.verbose = verbose
        self.restored_epoch = None
        self._epoch = None
        self._manager = None
        self._saved = False

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError("ResumeCallback needs a built model: call it on a batch of data "
                             "or give it an Input before fit()")
        optimizer = self.model.optimizer
        if not optimizer.built:
            # The restore must find the optimizer's variables (momentum) to fill.
            optimizer.build(self.model.trainable_variables)
        if self._epoch is None:
            self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        checkpoint = tf.train.Checkpoint(
            model=[v.value for v in self.model.variables],
            optimizer=[v.value for v in optimizer.variables],
            epoch=self._epoch,
            callbacks=[callback.checkpoint_state() for callback in self.callbacks],
        )
        self._manager = tf.train.CheckpointManager(checkpoint, self.backup_dir, max_to_keep=1)
        self.restored_epoch = None
        self._saved = False
        latest = self._manager.latest_checkpoint
        if latest is None:
            return
        # Every variable of this process must get a value; a non-chief worker's checkpoint
        # object has no callback state, hence not assert_consumed().
        checkpoint.read(latest).assert_existing_objects_matched()
        epoch, step = int(self._epoch.numpy()), int(optimizer.iterations.numpy())
        self.restored_epoch = epoch
        # What keras.callbacks.BackupAndRestore does: fit() reads it after on_train_begin.
        self.model._initial_epoch = epoch
        for callback in self.callbacks:
            callback.on_resume(epoch, step)
        if self.verbose:
            print(f"ResumeCallback: resuming after epoch {epoch} (step {step}) from {latest}")

    def on_epoch_begin(self, epoch, logs=None):
        if self.restored_epoch is None and not self._saved:
            self._write_checkpoint(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._write_checkpoint(epoch + 1)

    def on_train_end(self, logs=None):
        # Like Keras's own: a normal end needs no backup. Not called when fit() raises.
        if self.save and self.delete_checkpoint and tf.io.gfile.exists(self.backup_dir):
            tf.io.gfile.rmtree(self.backup_dir)
        self.model._initial_epoch = None

    def _write_checkpoint(self, epochs_done):
        if not self.save:
            return
        self._epoch.assign(epochs_done)
        self._manager.save(checkpoint_number=epochs_done)
        self._saved = True
