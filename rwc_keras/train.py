"""One training run of a paper model under any `tf.distribute` strategy.

Keras 3's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` (SPEC 6), so every
strategy goes through the same small distributed loop here: ``strategy.run`` of a
``tf.GradientTape`` step, the Keras optimizer's ``apply_gradients`` (which all-reduces the
gradients), and the usual Keras callbacks (`RWCCallback`, the progress bar) driven through
``keras.callbacks.CallbackList``. The same flags give the same files on one CPU, several GPUs
or several hosts. Users' own models keep using ``model.fit(callbacks=[RWCCallback()])``.
"""

import csv
import dataclasses
import math
import os
import time

import keras
import tensorflow as tf
from absl import logging

from rwc_keras.callback import RWCCallback
from rwc_keras.layout import write_layout
from rwc_keras import spec
from rwc_keras.models import build_model
from rwc_keras.optimizer import TorchSGD
from rwc_keras.rundir import make_checkpoint

HISTORY_COLUMNS = ("epoch", "train_loss", "train_top1", "train_top5",
                   "test_loss", "test_top1", "test_top5", "seconds")


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

    @property
    def rwc_update_freq(self):
        return "epoch" if self.rwc_every == "epoch" else int(self.rwc_every)


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
        strategy: any `tf.distribute.Strategy`.
        datasets: the `rwc_keras.data.Datasets` of the run (train(epoch) and test()).
    """

    def __init__(self, config, strategy, datasets):
        self.config = config
        self.strategy = strategy
        self.datasets = datasets
        info = datasets.info
        keras.utils.set_random_seed(config.seed)
        keras.mixed_precision.set_global_policy(
            "mixed_bfloat16" if config.mixed_precision else "float32")
        try:
            with strategy.scope():
                self.model = build_model(config.arch, (32, 32, info.channels), info.num_classes)
                self.optimizer = TorchSGD(config.lr, config.momentum, config.weight_decay)
                self.optimizer.build(self.model.trainable_variables)
                self.model.compile(optimizer=self.optimizer)
        finally:
            # The policy is global state: the model keeps its own, and whatever runs next in
            # this process gets the default back.
            keras.mixed_precision.set_global_policy("float32")
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
        self.steps_per_epoch = datasets.steps_per_epoch
        self._train_step = tf.function(self._distributed_train_step)
        self._test_step = tf.function(self._distributed_test_step)
        self._gradients = tf.function(self._replica_gradients, jit_compile=config.jit_compile)

    def _distribute(self, dataset):
        options = tf.data.Options()
        # In-memory data has no files to shard by; each worker takes its part of every batch.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def _replica_gradients(self, images, labels):
        with tf.GradientTape() as tape:
            logits = self.model(images, training=True)
            per_example = self.loss_fn(labels, logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=self.config.batch_size)
        grads = tape.gradient(loss, self.model.trainable_variables)
        return grads, batch_stats(labels, logits, per_example)

    def _replica_train_step(self, images, labels):
        grads, stats = self._gradients(images, labels)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
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
        return as_logs(totals.numpy(), prefix="test_")

    def train_epoch(self, epoch, callbacks):
        """One pass over the epoch's data; returns the train logs and the seconds spent."""
        start = time.perf_counter()
        totals = tf.zeros([4])
        for step, batch in enumerate(self._distribute(self.datasets.train(epoch))):
            callbacks.on_train_batch_begin(step)
            stats = self._train_step(batch)
            totals += stats
            logs = as_logs(totals.numpy())
            if not math.isfinite(float(stats[0])):
                raise TrainingDiverged(
                    f"the training loss became {float(stats[0])} at epoch {epoch + 1}, "
                    f"step {step + 1}: lower --lr (now {self.config.lr})")
            callbacks.on_train_batch_end(step, logs)
        return logs, time.perf_counter() - start

    def fit(self, callbacks, on_epoch=None, start_epoch=0, after_train_begin=None):
        """Trains from ``start_epoch`` to ``config.epochs``, evaluating after each epoch.

        Args:
            callbacks: Keras callbacks, driven as ``model.fit`` would drive them.
            on_epoch: called with (epoch, logs, train_seconds) after each epoch's callbacks.
            start_epoch: epochs already done (a resumed run).
            after_train_begin: called once the callbacks have set up their state (the RWC
                snapshots exist), e.g. to restore a checkpoint over it.

        Returns:
            The last epoch's logs (train and ``test_`` metrics).
        """
        callback_list = keras.callbacks.CallbackList(
            callbacks, add_progbar=True, model=self.model,
            epochs=self.config.epochs, steps=self.steps_per_epoch, verbose=1,
        )
        callback_list.on_train_begin()
        if after_train_begin:
            after_train_begin()
        logs = {}
        for epoch in range(start_epoch, self.config.epochs):
            callback_list.on_epoch_begin(epoch)
            logs, seconds = self.train_epoch(epoch, callback_list)
            logs.update(self.evaluate())
            callback_list.on_epoch_end(epoch, logs)
            if on_epoch:
                on_epoch(epoch, logs, seconds)
        callback_list.on_train_end(logs)
        return logs


class RunFiles:
    """What the chief writes per epoch besides the RWC CSV: history.csv and TensorBoard metrics.

    Args:
        run_dir: the seed's folder.
        arch: the architecture, whose groups the TensorBoard layout charts.
    """

    def __init__(self, run_dir, arch):
        path = os.path.join(run_dir, "history.csv")
        # An existing file was left by an interrupted run and holds only the epochs of its
        # last checkpoint (RunDir.claim truncated it): continue it.
        first_start = not os.path.exists(path) or os.path.getsize(path) == 0
        self._history = open(path, "w" if first_start else "a", newline="")
        self._history_csv = csv.writer(self._history)
        self._writer = tf.summary.create_file_writer(run_dir)
        if first_start:
            self._history_csv.writerow(HISTORY_COLUMNS)
            self._history.flush()
            write_layout(run_dir, spec.architecture(arch).groups)

    def write_epoch(self, epoch, logs, seconds):
        self._history_csv.writerow(
            [epoch + 1] + [logs[k] for k in ("loss", "top1", "top5",
                                             "test_loss", "test_top1", "test_top5")] + [seconds])
        self._history.flush()
        with self._writer.as_default(step=epoch + 1):
            for split, prefix in (("train", ""), ("test", "test_")):
                for metric in ("loss", "top1", "top5"):
                    tf.summary.scalar(f"{split}/{metric}", logs[prefix + metric])
        self._writer.flush()

    def close(self):
        self._history.close()
        self._writer.close()


def run(config, strategy, datasets, run_dir):
    """Trains one seed into ``run_dir`` (a claimed `RunDir`), resuming where it stopped.

    Returns:
        The metrics dict, also written to ``metrics.json`` by the chief.
    """
    start_epoch = run_dir.checkpoint_epoch()
    trainer = Trainer(config, strategy, datasets)
    # Only the chief measures RWC: it needs no collectives, and only the chief writes files.
    rwc = (RWCCallback(run_dir.path, update_freq=config.rwc_update_freq, append=True)
           if run_dir.writer else None)
    files = RunFiles(run_dir.path, config.arch) if run_dir.writer else None
    checkpoint = None

    def after_train_begin():
        nonlocal checkpoint
        snapshots = rwc.snapshots if rwc else []
        checkpoint = make_checkpoint(trainer.model, trainer.optimizer, snapshots)
        if start_epoch:
            run_dir.restore_checkpoint(checkpoint, start_epoch)
            logging.info("resumed %s after epoch %d", run_dir.path, start_epoch)

    train_seconds = []

    def on_epoch(epoch, logs, seconds):
        train_seconds.append(seconds)
        logging.info(
            "%s %s seed %d epoch %d/%d: train loss %.4f top-1 %.4f | test loss %.4f "
            "top-1 %.4f top-5 %.4f | %.0f img/s", config.arch, config.dataset, config.seed,
            epoch + 1, config.epochs, logs["loss"], logs["top1"], logs["test_loss"],
            logs["test_top1"], logs["test_top5"],
            trainer.steps_per_epoch * config.batch_size / seconds)
        if files:
            files.write_epoch(epoch, logs, seconds)
            run_dir.save_checkpoint(checkpoint, epoch + 1)

    start = time.perf_counter()
    try:
        logs = trainer.fit([rwc] if rwc else [], on_epoch, start_epoch, after_train_begin)
    finally:
        if files:
            files.close()
    images = trainer.steps_per_epoch * config.batch_size * max(len(train_seconds), 1)
    metrics = dict(
        arch=config.arch, dataset=config.dataset, seed=config.seed, epochs=config.epochs,
        test_top1=logs.get("test_top1"), test_top5=logs.get("test_top5"),
        test_loss=logs.get("test_loss"), wall_seconds=time.perf_counter() - start,
        images_per_second=images / max(sum(train_seconds), 1e-9),
        replicas=strategy.num_replicas_in_sync, resumed_after_epoch=start_epoch,
    )
    if run_dir.writer:
        run_dir.finish(metrics)
    return metrics
