"""One seed's training run of a paper model under any `tf.distribute` strategy.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (docs/paper_facts.md,
"Behaviour of the stack"), so every strategy goes through the same small distributed loop here:
``strategy.run`` of a ``tf.GradientTape`` step, the Keras optimizer's ``apply_gradients``
(which all-reduces the gradients), and Keras callbacks driven through
``keras.callbacks.CallbackList`` as ``model.fit`` drives them: `RWCCallback`,
`HistoryLogger`, the progress (a bar on a terminal, else one line per epoch), a freezing
callback (``--freeze``: `RWCFreezing` or `FreezeOut`, which rebuild the train step through
`Trainer.rebuild_step`) and `ResumeCallback`, which makes a killed run resume exactly. The
same flags give the same files on one CPU, several GPUs or several hosts.
Users' own models keep using ``model.fit(callbacks=[RWCCallback()])``.
"""

import dataclasses
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from rwc_keras import spec
from rwc_keras.freezing import schema
from rwc_keras.callbacks.resume import ResumeCallback
from rwc_keras.callbacks.rwc_callback import RWCCallback
from rwc_keras.experiment.history import HistoryLogger
from rwc_keras.experiment.models import build_model
from rwc_keras.experiment.optimizer import TorchSGD
from rwc_keras.experiment.prefix_cache import PrefixCache
from rwc_keras.freezing.freezeout import FreezeOut, FreezeOutSchedule, FreezeOutSGD
from rwc_keras.freezing.linear import LinearFreezing
from rwc_keras.freezing.rwc_freezing import RWCFreezing

# Steps between two reads of the running totals (progress bar, NaN check). The loop waits
# for the device only then, so a GPU runs ahead in between; a NaN loss stops the run
# within this many steps.
SYNC_EVERY_STEPS = 20


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines one seed's run (the flags of `rwc_keras.main`)."""

    arch: str
    dataset: str
    seed: int
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    rwc_every: str = "epoch"
    jit_compile: bool = False
    mixed_precision: bool = False
    freeze: str = schema.DEFAULT_FREEZE
    freeze_bn: str = schema.DEFAULT_FREEZE_BATCHNORM
    # RWCFreezing's tolerance, patience, smoothing, warmup and cap (with freeze="rwc").
    freeze_rule: dict = dataclasses.field(default_factory=lambda: dict(schema.RWC_FREEZING_RULE))
    rwc_metrics: tuple = spec.RWC_METRICS
    lr_schedule: str = spec.DEFAULT_LR_SCHEDULE
    freeze_cache_mb: int = schema.DEFAULT_FREEZE_CACHE_MB

    @property
    def rwc_update_freq(self):
        return "epoch" if self.rwc_every == "epoch" else int(self.rwc_every)


def progress_verbosity(stream):
    """Keras's ``verbose`` for a progress report written to ``stream``: 1, a bar redrawn at
    every step, on a terminal; 2, one line per epoch, anywhere else (a log file would get
    every redraw of the bar)."""
    return 1 if stream.isatty() else 2


def is_chief(strategy):
    """True on the one worker that writes files: the chief, or worker 0 without a chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def batch_stats(labels, logits, per_example_loss):
    """Sums over the batch: loss, top-1 hits, top-5 hits, examples (summed across replicas)."""
    labels = tf.cast(labels, tf.int32)
    logits = tf.cast(logits, tf.float32)
    top5 = tf.math.in_top_k(labels, logits, k=min(5, logits.shape[-1]))
    top1 = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
    return tf.stack([
        tf.reduce_sum(per_example_loss),
        tf.reduce_sum(tf.cast(top1, tf.float32)),
        tf.reduce_sum(tf.cast(top5, tf.float32)),
        tf.cast(tf.size(labels), tf.float32),
    ])


def as_logs(totals, prefix=""):
    loss, top1, top5, count = (float(x) for x in totals)
    count = max(count, 1.0)
    return {f"{prefix}loss": loss / count, f"{prefix}top1": top1 / count,
            f"{prefix}top5": top5 / count}


class Trainer:
    """Builds the model and optimizer under ``strategy`` and runs the distributed loop.

    Args:
        config: the run's `RunConfig`.
        strategy: any `tf.distribute.Strategy`; with ``config.freeze`` other than ``"none"``
            one of a single host (freezing is decided by the chief's callbacks alone).
        datasets: the `rwc_keras.experiment.data.pipeline.Datasets` of the run (train(epoch)
            and test()).
        sync_every: steps between two reads of the device in `train_epoch`.
    """

    def __init__(self, config, strategy, datasets, sync_every=SYNC_EVERY_STEPS):
        if config.freeze not in schema.FREEZE_MODES:
            raise ValueError(f"freeze must be one of {', '.join(schema.FREEZE_MODES)}, "
                             f"got {config.freeze!r}")
        if config.lr_schedule not in spec.LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(spec.LR_SCHEDULES)}, "
                             f"got {config.lr_schedule!r}")
        if config.freeze != schema.DEFAULT_FREEZE and isinstance(
                strategy, tf.distribute.MultiWorkerMirroredStrategy):
            raise ValueError("layer freezing runs on one host: the chief alone decides it")
        self.config = config
        self.sync_every = sync_every
        self.epoch_seconds = []
        self.strategy = strategy
        self.datasets = datasets
        info = datasets.info
        keras.utils.set_random_seed(config.seed)
        keras.mixed_precision.set_global_policy(
            "mixed_bfloat16" if config.mixed_precision else "float32")
        try:
            with strategy.scope():
                self.model = build_model(config.arch, info.input_shape, info.num_classes)
                # FreezeOut's optimizer needs its schedule; the RWC rule's freezes need none.
                self.freezeout_schedule = None
                if config.freeze == "freezeout":
                    self.freezeout_schedule = FreezeOutSchedule(
                        self.model, config.epochs * datasets.steps_per_epoch)
                    self.optimizer = FreezeOutSGD(self.freezeout_schedule, config.lr,
                                                  config.momentum, config.weight_decay)
                else:
                    self.optimizer = TorchSGD(self._learning_rate(datasets.steps_per_epoch),
                                              config.momentum, config.weight_decay)
                self.optimizer.build(self.model.trainable_variables)
                self.model.compile(optimizer=self.optimizer)
        finally:
            # The policy is global state: the model keeps its own, and whatever runs next in
            # this process gets the default back.
            keras.mixed_precision.set_global_policy("float32")
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        self.steps_per_epoch = datasets.steps_per_epoch
        self._test_step = tf.function(self._distributed_test_step)
        # What the train step calls: the model, or the part above a cached frozen prefix.
        self._forward = self.model
        self.cache = (PrefixCache(datasets, config.freeze_cache_mb)
                      if config.freeze != schema.DEFAULT_FREEZE and config.freeze_cache_mb
                      else None)
        self.rebuild_step()

    def _learning_rate(self, steps_per_epoch):
        """The rate of ``config.lr_schedule``: FreezeOut's cosine, ``0.5 lr (1 + cos(pi t))``
        at progress t, is Keras's `CosineDecay` over the run's steps."""
        if self.config.lr_schedule == "constant":
            return self.config.lr
        return keras.optimizers.schedules.CosineDecay(
            self.config.lr, decay_steps=self.config.epochs * steps_per_epoch)

    def rebuild_step(self):
        """Makes a new train step, traced at its first call for the model's trainable
        variables as they are then (a freezing callback calls it after a freeze)."""
        self._train_step = tf.function(self._distributed_train_step)
        self._gradients = tf.function(self._replica_gradients,
                                      jit_compile=self.config.jit_compile)

    def _distribute(self, dataset):
        options = tf.data.Options()
        # In-memory data has no files to shard by; each worker takes its part of every batch.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA)
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def _replica_gradients(self, images, labels):
        trainable = self.model.trainable_variables
        # Only the trainable variables are watched: the forward pass of frozen leading
        # layers is not even recorded, so their backward pass does not exist.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch([variable.value for variable in trainable])
            logits = self._forward(images, training=True)
            per_example = self.loss_fn(labels, logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.config.batch_size)
        grads = tape.gradient(loss, trainable)
        return grads, batch_stats(labels, logits, per_example)

    def _replica_train_step(self, images, labels):
        grads, stats = self._gradients(images, labels)
        # The model's: an RWCCallback measuring every N steps wraps it for the run.
        self.model.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return stats

    def _replica_test_step(self, images, labels):
        logits = self.model(images, training=False)
        return batch_stats(labels, logits, self.loss_fn(labels, logits))

    def _distributed_train_step(self, batch):
        stats = self.strategy.run(self._replica_train_step, args=batch)
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, stats, axis=None)

    def _distributed_test_step(self, batch):
        stats = self.strategy.run(self._replica_test_step, args=batch)
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, stats, axis=None)

    def evaluate(self):
        totals = tf.zeros([4])
        for batch in self._distribute(self.datasets.test()):
            totals += self._test_step(batch)
        return as_logs(totals.numpy(), prefix=spec.LOG_PREFIX["test"])

    def train_epoch(self, epoch, callbacks):
        """One pass over the epoch's data; returns its train logs, ``seconds`` included.

        The device is read every ``sync_every`` steps and at the end of the epoch, not per
        step: callbacks get the running logs at those steps and None in between.

        Raises:
            TrainingDiverged: a step's loss was NaN or infinite (found at the next read).
        """
        start = time.perf_counter()
        totals = tf.zeros([4])
        pending = []  # the stats of the steps since the last read, still on the device
        logs = {}
        cached = self.cache is not None and self.cache.cut is not None
        batches = self.cache.batches(epoch) if cached else self.datasets.train(epoch)
        for step, batch in enumerate(self._distribute(batches)):
            callbacks.on_train_batch_begin(step)
            stats = self._train_step(batch)
            totals += stats
            pending.append(stats)
            if len(pending) == self.sync_every:
                logs = self._read(totals, pending, epoch, step)
                pending = []
            callbacks.on_train_batch_end(step, None if pending else logs)
        if pending:
            logs = self._read(totals, pending, epoch, step)
        logs["seconds"] = time.perf_counter() - start
        return logs

    def _read(self, totals, pending, epoch, last_step):
        """The running train logs, after checking the losses of the ``pending`` steps."""
        # One transfer for both: the pending steps' losses, then the totals.
        values = tf.concat([tf.stack(pending)[:, 0], totals], axis=0).numpy()
        losses, sums = values[:len(pending)], values[len(pending):]
        diverged = np.flatnonzero(~np.isfinite(losses))
        if diverged.size:
            first = diverged[0]
            raise TrainingDiverged(
                f"the training loss became {losses[first]} at epoch {epoch + 1}, "
                f"step {last_step - len(pending) + first + 2}: lower --lr "
                f"(now {self.config.lr})")
        return as_logs(sums)

    def update_cache(self, freezer, epoch):
        """Caches the frozen prefix of ``freezer`` (a `Freezer`) when that changed, and
        makes the train step read from the cache (or from the images again)."""
        if self.cache is None or not self.cache.update(self.model, freezer.units,
                                                       freezer.frozen, epoch):
            return
        self._forward = self.model if self.cache.cut is None else self.cache.suffix
        self.rebuild_step()

    def fit(self, callbacks, freezer=None):
        """Trains to ``config.epochs``, evaluating after each epoch, driving ``callbacks``
        as ``model.fit`` would; at each epoch's start the frozen prefix of ``freezer`` (one
        of ``callbacks``, if any) is cached when it can be (`update_cache`).

        A `ResumeCallback` among them restores its checkpoint in ``on_train_begin`` and sets
        the epoch to continue from. ``epoch_seconds`` holds the training time of each epoch
        run.

        Returns:
            The last epoch's logs (train and ``test_`` metrics, ``seconds``).
        """
        callback_list = keras.callbacks.CallbackList(
            callbacks, add_progbar=True, model=self.model,
            epochs=self.config.epochs, steps=self.steps_per_epoch,
            verbose=progress_verbosity(sys.stdout),
        )
        self.epoch_seconds = []
        callback_list.on_train_begin()
        # Where model.fit starts too: set by a ResumeCallback, else None.
        start_epoch = self.model._initial_epoch or 0
        logs = {}
        for epoch in range(start_epoch, self.config.epochs):
            callback_list.on_epoch_begin(epoch)
            if freezer is not None:
                self.update_cache(freezer, epoch)
            logs = self.train_epoch(epoch, callback_list)
            logs.update(self.evaluate())
            self.epoch_seconds.append(logs["seconds"])
            self._log_epoch(epoch, logs)
            callback_list.on_epoch_end(epoch, logs)
        callback_list.on_train_end(logs)
        return logs

    def _log_epoch(self, epoch, logs):
        config = self.config
        logging.info(
            "%s %s seed %d epoch %d/%d: train loss %.4f top-1 %.4f | test loss %.4f "
            "top-1 %.4f top-5 %.4f | %.0f img/s", config.arch, config.dataset, config.seed,
            epoch + 1, config.epochs, logs["loss"], logs["top1"], logs["test_loss"],
            logs["test_top1"], logs["test_top5"],
            self.steps_per_epoch * config.batch_size / logs["seconds"])


def freezing_callbacks(config, trainer, rwc):
    """The run's freezing callback for ``config.freeze`` (none for ``"none"``), writing
    beside ``rwc`` and rebuilding ``trainer``'s step."""
    if config.freeze == "rwc":
        return [RWCFreezing(rwc, **config.freeze_rule, batchnorm=config.freeze_bn,
                            rebuild=trainer.rebuild_step)]
    if config.freeze == "freezeout":
        return [FreezeOut(trainer.freezeout_schedule, batchnorm=config.freeze_bn, rwc=rwc,
                          rebuild=trainer.rebuild_step)]
    if config.freeze == "linear":
        return [LinearFreezing(batchnorm=config.freeze_bn, rwc=rwc, rebuild=trainer.rebuild_step)]
    return []


def run(config, strategy, datasets, run_dir):
    """Trains one seed into ``run_dir`` (a claimed `RunDir`), resuming where it stopped.

    Returns:
        The metrics dict, also written to ``metrics.json`` by the chief.
    """
    trainer = Trainer(config, strategy, datasets)
    # Only the chief measures RWC (it needs no collectives) and writes files; every worker
    # restores the checkpoint.
    callbacks, freezers = [], []
    if run_dir.is_chief:
        rwc = RWCCallback(run_dir.path, update_freq=config.rwc_update_freq,
                          metrics=config.rwc_metrics)
        history = HistoryLogger(run_dir.path, spec.architecture(config.arch).groups, rwc)
        freezers = freezing_callbacks(config, trainer, rwc)
        callbacks = [rwc, history] + freezers
    # Kept at the end: RunDir.finish deletes it after metrics.json, so that a kill between
    # the two cannot restart a finished run from scratch.
    resume = ResumeCallback(run_dir.file(spec.CHECKPOINT_DIR), callbacks,
                            save=run_dir.is_chief, delete_checkpoint=False)
    start = time.perf_counter()
    logs = trainer.fit(callbacks + [resume], freezer=freezers[0] if freezers else None)
    images = trainer.steps_per_epoch * config.batch_size * len(trainer.epoch_seconds)
    metrics = dict(
        arch=config.arch, dataset=config.dataset, seed=config.seed, epochs=config.epochs,
        steps_per_epoch=trainer.steps_per_epoch, freeze=config.freeze,
        test_top1=logs.get("test_top1"), test_top5=logs.get("test_top5"),
        test_loss=logs.get("test_loss"), wall_seconds=time.perf_counter() - start,
        # 0 when the restored checkpoint was the last epoch's: nothing was left to train.
        images_per_second=images / sum(trainer.epoch_seconds) if images else 0.0,
        replicas=strategy.num_replicas_in_sync, resumed_after_epoch=resume.restored_epoch or 0,
    )
    if run_dir.is_chief:
        run_dir.finish(metrics)
    return metrics
