"""The baselines beside the RWC rule: `LinearFreezing` (Composer-like) and the driver's
``--lr_schedule=cosine`` (FreezeOut's annealing without its freezing)."""

import math
import os

import pandas as pd
import pytest
import tensorflow as tf

from rwc_keras import LinearFreezing
from rwc_keras.experiment.train import RunConfig, Trainer
from rwc_keras.freezing import schema
from rwc_keras.freezing.linear import linear_frozen

from ..helpers import driver
from .test_freezing import BATCH, data, tiny_datasets, tiny_model


def test_the_linear_schedule_freezes_a_growing_share_from_its_start():
    # 8 units, 7 freezable: nothing up to half of training, then 7 x the share reached.
    assert [linear_frozen(8, t, start=0.5, level=1.0) for t in (0.25, 0.5, 0.75, 0.9, 1.0)] == [
        0, 0, 3, 5, 7]
    assert linear_frozen(8, 1.0, start=0.5, level=0.5) == 3
    with pytest.raises(ValueError, match="start must be a fraction of training"):
        LinearFreezing(start=1.0, log_dir="unused")


def test_linear_freezing_in_fit_freezes_single_leading_layers_at_epoch_ends(tmp_path):
    model = tiny_model()  # units conv1 (+ bn1), conv2, conv3, dense; 4 steps per epoch
    freezing = LinearFreezing(log_dir=str(tmp_path), verbose=0)
    model.fit(*data(), batch_size=BATCH, epochs=4, shuffle=False, verbose=0,
              callbacks=[freezing])
    rows = pd.read_csv(tmp_path / schema.FREEZING_CSV)
    # Epoch 3 of 4: half of the way from 0.5 to 1, floor(1.5) units; epoch 4: all three.
    assert rows[["epoch", "step", "group"]].values.tolist() == [
        [3, 12, "conv1"], [4, 16, "conv2"], [4, 16, "conv3"]]
    assert rows["smoothed"].isna().all()
    assert [v.path for v in model.trainable_variables] == ["dense/kernel", "dense/bias"]


def test_the_cosine_schedule_is_freezeout_s_annealing_of_the_base_rate():
    config = RunConfig(arch="alexnet", dataset="mnist", seed=0, epochs=2, batch_size=8,
                       lr=0.1, momentum=0.9, weight_decay=0.0, lr_schedule="cosine")
    trainer = Trainer(config, tf.distribute.get_strategy(), tiny_datasets(8, 3))
    total = 2 * 3
    for step in (0, 2, 3, 6):
        trainer.optimizer.iterations.assign(step)
        expected = 0.5 * 0.1 * (1 + math.cos(math.pi * step / total))
        assert float(trainer.optimizer.learning_rate) == pytest.approx(expected, abs=1e-7)


def test_bad_schedule_flags_fail_before_any_work(tmp_path):
    for args, message in [
            (["--lr_schedule=step"], "value should be one of <constant|cosine>"),
            (["--freeze=freezeout", "--lr_schedule=cosine"],
             "--freeze=freezeout anneals each layer's rate itself")]:
        result = driver("--arch=alexnet", *args, f"--logdir={tmp_path}")
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
    assert not os.listdir(tmp_path)
