"""The driver's training loop (rwc_keras.experiment.train.Trainer): when it waits for the device,
and how a diverging loss stops it."""

import dataclasses
import io
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from rwc_keras import spec
from rwc_keras.benchmarks.host_reads import HostReads
from rwc_keras.experiment.data.pipeline import Datasets
from rwc_keras.experiment.train import RunConfig, Trainer, TrainingDiverged, progress_verbosity

STEPS, BATCH = 10, 8


def trainer(sync_every, lr=0.01):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(STEPS * BATCH, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, size=STEPS * BATCH, dtype=np.int64)
    datasets = Datasets(spec.dataset("mnist"), (images, labels), (images[:BATCH], labels[:BATCH]),
                        BATCH, seed=0)
    config = RunConfig(arch="alexnet", dataset="mnist", seed=0, epochs=1, batch_size=BATCH,
                       lr=lr, momentum=0.9, weight_decay=0.0)
    model_trainer = Trainer(config, tf.distribute.get_strategy(), datasets, sync_every=sync_every)
    return model_trainer, keras.callbacks.CallbackList([], model=model_trainer.model)


def loop_reads(model_trainer, callbacks, epoch):
    """Host reads of one epoch of the loop beyond those of building its input pipeline
    (host constants read while tracing it), and the epoch's logs."""
    with HostReads() as pipeline:
        for _ in model_trainer.datasets.train(epoch):
            pass
    with HostReads() as loop:
        logs = model_trainer.train_epoch(epoch, callbacks)
    return loop.count - pipeline.count, logs


@pytest.mark.slow
def test_the_loop_reads_the_device_once_per_k_steps_and_at_epoch_end():
    every_step, callbacks = trainer(sync_every=1)
    every_step.train_epoch(0, callbacks)  # traces
    reads, per_step_logs = loop_reads(every_step, callbacks, 1)
    assert reads == STEPS
    every_four, callbacks = trainer(sync_every=4)
    every_four.train_epoch(0, callbacks)
    reads, logs = loop_reads(every_four, callbacks, 1)
    assert reads == math.ceil(STEPS / 4)
    # The same seed and data: the same epoch, however often it was read.
    for key in ("loss", "top1", "top5"):
        assert logs[key] == pytest.approx(per_step_logs[key], rel=1e-5)


def test_a_diverging_loss_stops_within_k_steps_naming_the_step():
    messages = {}
    for sync_every in (1, 4):
        diverging, callbacks = trainer(sync_every, lr=1e12)
        with pytest.raises(TrainingDiverged) as error:
            diverging.train_epoch(0, callbacks)
        messages[sync_every] = str(error.value)
    assert "the training loss became nan at epoch 1, step" in messages[1]
    assert "lower --lr (now 1000000000000.0)" in messages[1]
    # Reading every 4 steps names the same step as reading every step.
    assert messages[4] == messages[1]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_is_a_bar_on_a_terminal_and_a_line_per_epoch_elsewhere(capsys):
    assert progress_verbosity(Terminal()) == 1
    assert progress_verbosity(io.StringIO()) == 2
    model_trainer, _ = trainer(sync_every=4)
    model_trainer.config = dataclasses.replace(model_trainer.config, epochs=2)
    model_trainer.fit([])
    # pytest's captured stdout is not a terminal: no redrawn bar, two lines per epoch.
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("Epoch ")] == ["Epoch 1/2", "Epoch 2/2"]
    summaries = [line for line in lines if line.startswith(f"{STEPS}/{STEPS} ")]
    assert len(summaries) == 2 and all("loss:" in line for line in summaries)
    assert not any("\b" in line or "\r" in line for line in lines)
