"""The driver's cache of a frozen prefix's outputs: where it cuts, that training on it equals
running the prefix, its budget, and that a resumed run makes the same decisions."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from rwc_keras import spec
from rwc_keras.experiment.models import build_model
from rwc_keras.experiment.prefix_cache import PrefixCache
from rwc_keras.experiment.train import Trainer
from rwc_keras.freezing import schema
from rwc_keras.freezing.freezer import freeze_unit, layer_units
from rwc_keras.freezing.prefix import frozen_prefix_cut

from .test_freezing import driver_run as freezing_driver_run
from .test_freezing import tiny_datasets


def frozen_model(arch, count, batchnorm):
    model = build_model(arch, (32, 32, 1))
    units = layer_units(model, model.rwc_groups)
    for unit in units[:count]:
        freeze_unit(unit, batchnorm)
    return model, units


def test_the_cut_is_the_last_fixed_output_that_everything_above_passes_through():
    # AlexNet's convolutions frozen: dropout1, random, stops the prefix after the flatten.
    model, units = frozen_model("alexnet", 3, "batch")
    assert frozen_prefix_cut(model, units, 3)[0].name == "flatten"
    # ResNet-18's stem and block1 in inference mode: block1's output, not a tensor inside
    # the block that the shortcut bypasses.
    model, units = frozen_model("resnet18", 2, "inference")
    assert frozen_prefix_cut(model, units, 2)[0].name == "block1_2_out"
    # In batch mode stem_bn normalises with the batch: only stem_conv's output is fixed.
    model, units = frozen_model("resnet18", 2, "batch")
    assert frozen_prefix_cut(model, units, 2)[0].name == "stem_conv"
    assert frozen_prefix_cut(model, units, 0) == (None, "nothing is frozen")


def test_training_on_the_cache_sees_what_the_prefix_computes():
    datasets = tiny_datasets(16, 4)
    model, units = frozen_model("resnet18", 2, "inference")
    cache = PrefixCache(datasets, budget_mb=64, verbose=0)
    assert cache.update(model, units, 2, epoch=2)
    assert cache.decisions == [
        "prefix cache at epoch 3: cached block1_2_out's output (32, 32, 64) x 64 examples x "
        "2 flips = 32 MiB (budget 64 MiB)"]
    prefix = tf.keras.Model(model.input, cache.cut.output)
    for (images, labels), (rows, cached_labels) in zip(datasets.train(2), cache.batches(2)):
        np.testing.assert_array_equal(labels, cached_labels)
        np.testing.assert_array_equal(rows, prefix(images, training=True))
    # Too large for the budget: one line, and no cache.
    small = PrefixCache(datasets, budget_mb=0.5, verbose=0)
    assert not small.update(model, units, 2, epoch=2) and small.cut is None
    assert small.decisions[0].endswith("(budget 0.5 MiB); training goes on uncached")


def driver_run(folder, budget_mb):
    """The driver's run() of AlexNet with --freeze=linear, 4 epochs of 4 steps: conv1 to
    conv3 frozen after epoch 3 and cached for epoch 4; returns its metrics."""
    return freezing_driver_run(folder, freeze="linear", epochs=4, freeze_cache_mb=budget_mb)


@pytest.mark.slow
def test_a_cached_run_equals_an_uncached_one_and_resumes_with_the_same_decisions(
        tmp_path, monkeypatch, capsys):
    uncached = driver_run(tmp_path / "uncached", budget_mb=0)
    cached = driver_run(tmp_path / "cached", budget_mb=64)
    decision = ("prefix cache at epoch 4: cached relu3's output (4, 4, 384) x 64 examples x "
                "2 flips = 3 MiB (budget 64 MiB)")
    assert decision in capsys.readouterr().out
    for key in ("test_loss", "test_top1"):
        assert cached[key] == pytest.approx(uncached[key], rel=1e-6), key
    calls, evaluate = [], Trainer.evaluate

    def crashing(self):  # in epoch 4, after its training, before its checkpoint
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("stopped")
        return evaluate(self)

    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="stopped"):
        patch.setattr(Trainer, "evaluate", crashing)
        driver_run(tmp_path / "crashed", budget_mb=64)
    capsys.readouterr()
    resumed = driver_run(tmp_path / "crashed", budget_mb=64)
    assert resumed["resumed_after_epoch"] == 3
    assert decision in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "crashed" / schema.FREEZING_CSV),
                                  pd.read_csv(tmp_path / "cached" / schema.FREEZING_CSV))
    assert resumed["test_loss"] == pytest.approx(cached["test_loss"], rel=1e-6)
    assert json.loads((tmp_path / "cached" / spec.METRICS_JSON).read_text())["freeze"] == "linear"
