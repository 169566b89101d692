"""Layer freezing: the RWC rule, FreezeOut, their mechanics in model.fit and in the driver
(backward pass, optimizer state, BatchNormalization, MirroredStrategy, resume), the flags and
the comparison report."""

import collections
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow.python.eager import context

from rwc_keras import FreezeOut, FreezeOutSchedule, FreezeOutSGD, ResumeCallback, RWCCallback
from rwc_keras import RWCFreezing, spec
from rwc_keras.freezing import schema
from rwc_keras.benchmarks.freezing_bench import step_seconds, table
from rwc_keras.experiment.data.pipeline import Datasets
from rwc_keras.experiment.models import build_model
from rwc_keras.experiment.rundir import RunDir
from rwc_keras.experiment.train import RunConfig, Trainer, run
from rwc_keras.freezing.freezeout import freezeout_times
from rwc_keras.freezing.freezer import freeze_unit, layer_units, saved_macs, training_macs
from rwc_keras.freezing.rwc_freezing import leading_run, plateau
from rwc_keras.report.freezing import write_report

from ..helpers import driver
from ..keras_helpers import StopAt, checkpoint_epoch, event_steps

EXAMPLES, BATCH = 32, 8  # 4 steps per epoch
NAN = math.nan


def two_cpu_strategy():
    """MirroredStrategy over the two logical CPUs, reducing on one device: collective
    all-reduces keep process-wide keys, and those of a strategy made earlier in the process
    (tests/callbacks/test_callback.py) for other shapes would clash with this one's."""
    return tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())


def tiny_model(batchnorm=True, strategy=None):
    """conv1 (+ bn1), conv2, conv3, dense: four single-layer units, compiled."""
    with (strategy or tf.distribute.get_strategy()).scope():
        keras.utils.set_random_seed(0)
        inputs = keras.Input((8, 8, 2))
        x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
        if batchnorm:
            x = keras.layers.BatchNormalization(name="bn1")(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2")(x)
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv3")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(5, name="dense")(x))
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, 8, 8, 2)).astype(np.float32)
    return x, rng.integers(0, 5, size=EXAMPLES)


def values(model, names):
    """layer name -> the numpy values of its weights (all of them, statistics included)."""
    return {name: [v.numpy() for v in model.get_layer(name).weights] for name in names}


def names(model, variables):
    return [spec.layer_name(model, v) for v in variables]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


class Snapshots(keras.callbacks.Callback):
    """Every weight of the named layers at every epoch end: ``self.at[epoch]`` (1-based)."""

    def __init__(self, names):
        super().__init__()
        self.names, self.at = names, {}

    def on_epoch_end(self, epoch, logs=None):
        self.at[epoch + 1] = values(self.model, self.names)


class ScriptedRWC(keras.callbacks.Callback):
    """Stands in for RWCCallback: its measurement at the end of epoch e gives each layer the
    value ``script[layer][e - 1]``, so that the freezing points are known in advance."""

    groups = None
    measures_after_steps = False

    def __init__(self, log_dir, script):
        super().__init__()
        self.log_dir, self.script = log_dir, script
        self.measurements, self.summary_writer = [], None

    def on_epoch_begin(self, epoch, logs=None):
        if self.summary_writer is None:
            self.summary_writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.measurements = [[
            dict(epoch=epoch + 1, step=step, layer=layer, rwc_norm=series[epoch])
            for layer, series in self.script.items()]]


def executed_ops(run_once):
    """Counts of the operation types TensorFlow executed (after its graph optimisation) while
    ``run_once()`` ran."""
    # The run metadata of eager execution is TensorFlow's only record of what a
    # tf.function really ran after grappler pruned it.
    context.enable_run_metadata()
    try:
        context.export_run_metadata()  # drops graphs recorded before: only this run counts
        run_once()
        metadata = context.export_run_metadata()
    finally:
        context.disable_run_metadata()
    counts = collections.Counter()
    for graphs in metadata.function_graphs:
        graph = graphs.post_optimization_graph
        counts.update(node.op for node in graph.node)
        for function in graph.library.function:
            counts.update(node.op for node in function.node_def)
    return counts


def backprop_ops(counts):
    """How many convolution weight and input gradients and bias gradients were computed."""
    return {kind: sum(n for op, n in counts.items() if kind in op)
            for kind in ("Conv2DBackpropFilter", "Conv2DBackpropInput", "BiasAddGrad")}


# -- the rule -------------------------------------------------------------------------------


def test_smoothing_change_and_streak_follow_the_measurements():
    smoothed, streak = np.full(2, NAN), np.zeros(2, np.int64)
    history = []
    for measured in ([1.0, 2.0], [0.2, NAN], [0.2, 0.1], [0.3, 0.1]):
        smoothed, change, streak = plateau(smoothed, streak, np.array(measured),
                                           smoothing=0.5, tolerance=0.4)
        history.append((list(smoothed), list(change), list(streak)))
    # Unit 0: starts at its first value (no change to compare: NaN, not level); 0.6, 0.4
    # and 0.35 are the moving averages, changing by 0.4, 1/3 and 1/8: level from the third.
    assert [h[0][0] for h in history] == pytest.approx([1.0, 0.6, 0.4, 0.35])
    assert [h[1][0] for h in history] == pytest.approx([NAN, 0.4, 1 / 3, 0.125], nan_ok=True)
    assert [h[2][0] for h in history] == [0, 0, 1, 2]
    # Unit 1: a NaN measurement leaves its state as it was; falls of 0.475 and 0.452 are
    # not level.
    assert [h[0][1] for h in history] == pytest.approx([2.0, 2.0, 1.05, 0.575])
    assert [h[2][1] for h in history] == [0, 0, 0, 0]


def test_the_first_epoch_s_transient_makes_no_group_level():
    """ResNet-18's per-epoch rwc_norm of stem, block1 and head (runs/freezing_v1/none, seed 0):
    epoch 1 moves about 70 times as much as epoch 2. The change at the second measurement is
    near 1, and only the later, level epochs count."""
    values = np.array([[2.4503, 2.5585, 4.0106], [0.0336, 0.0356, 0.2281],
                       [0.0223, 0.0235, 0.1151], [0.0191, 0.0214, 0.0845]])
    smoothed, streak = np.full(3, NAN), np.zeros(3, np.int64)
    streaks = []
    for measured in values:
        smoothed, change, streak = plateau(smoothed, streak, measured, smoothing=0.0,
                                           tolerance=0.35)
        streaks.append(list(streak))
    assert streaks == [[0, 0, 0], [0, 0, 0], [1, 1, 0], [2, 2, 1]]


def test_only_a_leading_run_freezes_and_never_the_last_unit():
    assert leading_run(0, np.array([2, 1, 5, 9]), patience=2, freezable=3) == 1
    assert leading_run(1, np.array([2, 2, 5, 9]), patience=2, freezable=3) == 3
    assert leading_run(0, np.array([0, 5, 5, 9]), patience=2, freezable=3) == 0


def test_the_paper_models_freeze_by_their_groups_batchnorm_with_its_layer():
    model = build_model("resnet18")
    units = layer_units(model, model.rwc_groups)
    assert [u.name for u in units] == list(spec.architecture("resnet18").groups)
    assert [layer.name for layer in units[0].layers] == ["stem_conv", "stem_bn"]
    # A shortcut's BatchNormalization goes with its convolution, in the same block.
    assert {"block2_1_shortcut_conv", "block2_1_shortcut_bn", "block2_1_bn2"} <= {
        layer.name for layer in units[2].layers}
    assert sum(len(u.tracked) for u in units) == 21
    alexnet = build_model("alexnet", (32, 32, 1))
    units = layer_units(alexnet, alexnet.rwc_groups)
    assert [(u.name, u.tracked) for u in units] == [
        ("early", ("conv1/kernel",)), ("middle", ("conv2/kernel", "conv3/kernel")),
        ("later", ("conv4/kernel", "conv5/kernel")),
        ("head", ("fc1/kernel", "fc2/kernel", "fc3/kernel"))]
    # Hand-counted: conv1 16x16 positions x 3x3x1x64, conv2 8x8 x 3x3x64x192.
    assert units[0].macs == (16 * 16 * 9 * 64,)
    assert units[1].macs[0] == 8 * 8 * 9 * 64 * 192
    macs = [m for unit in units for m in unit.macs]
    assert training_macs(units) == 3 * sum(macs) - macs[0]
    # Early and middle frozen: their weight gradients, conv2's and conv3's input gradients
    # and that of conv4, the first layer above them.
    assert saved_macs(units, 2) == sum(macs[:3]) + sum(macs[1:4])


def test_without_groups_every_layer_is_a_unit_and_groups_must_be_contiguous():
    model = tiny_model()
    units = layer_units(model)
    assert [[layer.name for layer in u.layers] for u in units] == [
        ["conv1", "bn1"], ["conv2"], ["conv3"], ["dense"]]
    groups = {"conv1/kernel": "a", "conv2/kernel": "b", "conv3/kernel": "a"}
    with pytest.raises(ValueError, match="group 'a' is not contiguous: layer 'conv3'"):
        layer_units(model, groups)


def test_bad_arguments_are_clear_errors(tmp_path):
    rwc = RWCCallback(str(tmp_path))
    for kwargs, words in [(dict(tolerance=0), "tolerance must be a positive number"),
                          (dict(cap=0), "cap must be a fraction of the units in (0, 1]"),
                          (dict(patience=0), "patience must be a positive int"),
                          (dict(smoothing=1.0), "smoothing must be in [0, 1)"),
                          (dict(warmup=1.5), "warmup must be a fraction"),
                          (dict(metric="l2"), "metric must be one of rwc, rwc_norm"),
                          (dict(batchnorm="frozen"), "batchnorm must be one of batch, inference")]:
        with pytest.raises(ValueError, match=re.escape(words)):
            RWCFreezing(rwc, **kwargs)
    with pytest.raises(ValueError, match="scale must be one of linear, squared, cubic"):
        freezeout_times(4, scale="quartic")


# -- RWCFreezing in model.fit ---------------------------------------------------------------

SCRIPT = {  # smoothing=0: each value as it is; level: less than 0.5 relative change
    "conv1/kernel": [1, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3],  # level from epoch 3: after the warm-up, 4
    "conv2/kernel": [1, 0.9, 0.4, 0.9, 0.8, 0.8, 0.8],  # the jumps reset it: level at 5 and 6
    "conv3/kernel": [1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # long level, waits for conv2: 6
    "dense/kernel": [1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],  # the output layer: never
}


def test_freezes_at_the_rule_s_points_and_frozen_weights_stay_bit_identical(tmp_path, capsys):
    model = tiny_model()
    rwc = ScriptedRWC(str(tmp_path), SCRIPT)
    rebuilds = []

    def rebuild():
        rebuilds.append(names(model, model.trainable_variables))
        model.make_train_function(force=True)

    freezing = RWCFreezing(rwc, tolerance=0.5, patience=2, smoothing=0.0, warmup=0.45,
                           cap=1.0, rebuild=rebuild)
    snapshots = Snapshots(["conv1", "bn1", "conv2", "conv3", "dense"])
    model.fit(*data(), batch_size=BATCH, epochs=7, shuffle=False, verbose=0,
              callbacks=[rwc, freezing, snapshots])

    rows = pd.read_csv(tmp_path / schema.FREEZING_CSV)
    assert list(rows.columns) == list(schema.FREEZING_COLUMNS)
    # The warm-up (0.45 of 7 epochs) holds conv1 back to epoch 4; conv3 waits for conv2.
    assert rows[["epoch", "step", "group", "layers"]].values.tolist() == [
        [4, 16, "conv1", "conv1 bn1"], [6, 24, "conv2", "conv2"], [6, 24, "conv3", "conv3"]]
    assert rows["smoothed"].tolist() == [0.3, 0.8, 0.1]
    assert rows["change"].tolist() == [0, 0, 0]
    assert "RWCFreezing: froze conv1 (conv1, bn1) at epoch 4, step 16" in capsys.readouterr().out
    # One rebuild per freeze, each for exactly the variables still trainable.
    assert rebuilds == [["conv2/kernel", "conv2/bias", "conv3/kernel", "conv3/bias",
                         "dense/kernel", "dense/bias"], ["dense/kernel", "dense/bias"]]
    assert freezing.frozen_units == ["conv1", "conv2", "conv3"]
    at = snapshots.at
    # Bit-identical from the freeze on; trained right up to it (batch statistics: bn1's moving
    # mean and variance keep following the frozen features, its scale and offset do not).
    assert same(at[4]["conv1"], at[7]["conv1"]) and not same(at[3]["conv1"], at[4]["conv1"])
    assert same(at[4]["bn1"][:2], at[7]["bn1"][:2]) and not same(at[4]["bn1"][2:], at[7]["bn1"][2:])
    for name in ("conv2", "conv3"):
        assert same(at[6][name], at[7][name]) and not same(at[5][name], at[6][name])
    assert not same(at[6]["dense"], at[7]["dense"])
    steps = event_steps(str(tmp_path))
    assert {tag: steps[tag] for tag in steps if tag.startswith("freezing/")} == {
        "freezing/conv1": [16], "freezing/conv2": [24], "freezing/conv3": [24]}


def test_the_frozen_prefix_has_no_backward_pass_in_fit():
    model = tiny_model()
    x, y = data()

    def one_epoch():
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    assert backprop_ops(executed_ops(one_epoch)) == dict(
        Conv2DBackpropFilter=3, Conv2DBackpropInput=2, BiasAddGrad=4)
    units = layer_units(model)
    for unit in units[:2]:
        freeze_unit(unit)
    model.make_train_function(force=True)
    # conv3's and dense's gradients alone: no input gradient anywhere below conv3.
    assert backprop_ops(executed_ops(one_epoch)) == dict(
        Conv2DBackpropFilter=1, Conv2DBackpropInput=0, BiasAddGrad=2)


def test_the_other_variables_keep_their_optimizer_state():
    model = tiny_model(batchnorm=False)
    x, y = data()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    optimizer = model.optimizer
    momentum_of = {name: optimizer.momentums[optimizer._get_variable_index(v)]
                   for name, v in zip(names(model, model.trainable_variables),
                                      model.trainable_variables)}
    before = {name: m.numpy() for name, m in momentum_of.items()}
    freeze_unit(layer_units(model)[0])
    model.make_train_function(force=True)
    kernel = model.get_layer("conv2").kernel
    weights = kernel.numpy()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y[:BATCH], model(x[:BATCH], training=True))
    gradient = tape.gradient(loss, kernel).numpy()
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)
    # Keras's momentum step, continuing from the momentum of before the freeze.
    expected = 0.9 * before["conv2/kernel"] - 0.1 * gradient
    np.testing.assert_allclose(momentum_of["conv2/kernel"].numpy(), expected,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(kernel.numpy(), weights + expected, rtol=1e-5, atol=1e-7)
    for name in ("conv1/kernel", "conv1/bias"):
        assert np.array_equal(momentum_of[name].numpy(), before[name])


@pytest.mark.parametrize("batchnorm", schema.FREEZE_BATCHNORM)
def test_batchnorm_modes(batchnorm):
    model = tiny_model()
    x, y = data()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    forward = model(x, training=True).numpy()
    freeze_unit(layer_units(model)[0], batchnorm)
    model.make_train_function(force=True)
    frozen = values(model, ["conv1", "bn1"])
    bn = model.get_layer("bn1")
    # "batch": nothing changes in the forward pass at the moment of freezing.
    assert np.array_equal(model(x, training=True).numpy(), forward) == (batchnorm == "batch")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    after = values(model, ["conv1", "bn1"])
    assert same(frozen["conv1"], after["conv1"])
    assert same(frozen["bn1"][:2], after["bn1"][:2])  # scale and offset
    # Moving statistics: followed in batch mode, fixed in inference mode.
    assert same(frozen["bn1"][2:], after["bn1"][2:]) == (batchnorm == "inference")
    assert bn.trainable == (batchnorm == "batch")


def test_under_mirrored_strategy_every_replica_keeps_the_frozen_weights(tmp_path):
    model = tiny_model(strategy=two_cpu_strategy())
    rwc = RWCCallback(str(tmp_path), update_freq=2, verbose=0)
    # tolerance 10: every change counts as level, so everything but the output freezes at
    # the second measurement: step 4, the end of epoch 1.
    freezing = RWCFreezing(rwc, tolerance=10, patience=1, warmup=0.0, verbose=0)
    replicas = {}
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: replicas.update({
        epoch + 1: {v.path: [t.numpy() for t in v.value.values]
                    for v in model.weights if "moving" not in v.path}}))
    model.fit(*data(), batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
              callbacks=[rwc, freezing, record])
    assert freezing.frozen_units == ["conv1", "conv2", "conv3"]
    assert pd.read_csv(tmp_path / schema.FREEZING_CSV)["step"].tolist() == [4, 4, 4]
    assert names(model, model.trainable_variables) == ["dense/kernel", "dense/bias"]
    for path, copies in replicas[1].items():
        assert len(copies) == 2 and np.array_equal(copies[0], copies[1])
        assert same(copies, replicas[3][path]) == ("dense" not in path), path
    # RWC goes on measuring the frozen kernels: exactly 0 after the freeze.
    rows = pd.read_csv(tmp_path / spec.RWC_CSV)
    later = rows[(rows["step"] > 4) & (rows["layer"] != "dense/kernel")]
    assert len(later) == 12 and (later["rwc_norm"] == 0).all()


def fit_resumable(log_dir, *extra):
    """RWC every 2 steps, RWCFreezing (tolerance 10: everything but the output freezes after
    the third measurement, step 6, read at the end of epoch 2: step 8) and a
    ResumeCallback, on a fresh model."""
    model = tiny_model()
    rwc = RWCCallback(str(log_dir), update_freq=2, verbose=0)
    freezing = RWCFreezing(rwc, tolerance=10, patience=2, warmup=0.0, verbose=0)
    resume = ResumeCallback(str(log_dir / "backup"), callbacks=[rwc, freezing], verbose=0)
    model.fit(*data(), batch_size=BATCH, epochs=4, shuffle=False, verbose=0,
              callbacks=[rwc, freezing, resume, *extra])
    return model, freezing, resume


@pytest.mark.slow
@pytest.mark.parametrize("crash_epoch", [1, 2])
def test_a_resumed_run_freezes_the_same_units_at_the_same_steps(crash_epoch, tmp_path):
    whole, _, _ = fit_resumable(tmp_path / "whole")
    with pytest.raises(RuntimeError, match="stopped"):
        fit_resumable(tmp_path / "crashed", StopAt(crash_epoch, batch=3))
    # Epoch 1 (0-based): the checkpoint of step 4 has the streak of two measurements, and the
    # resumed run must freeze at step 8 as the whole one did; epoch 2: the checkpoint of
    # step 8 has the frozen units.
    model, freezing, resume = fit_resumable(tmp_path / "crashed")
    assert resume.restored_epoch == crash_epoch
    expected = pd.read_csv(tmp_path / "whole" / schema.FREEZING_CSV)
    resumed = pd.read_csv(tmp_path / "crashed" / schema.FREEZING_CSV)
    assert resumed[["epoch", "step", "group"]].values.tolist() == [
        [2, 8, "conv1"], [2, 8, "conv2"], [2, 8, "conv3"]]
    pd.testing.assert_frame_equal(resumed, expected, rtol=1e-5)
    assert freezing.frozen_units == ["conv1", "conv2", "conv3"]
    assert names(model, model.trainable_variables) == ["dense/kernel", "dense/bias"]
    for name in ("conv1", "conv2", "conv3"):
        for a, b in zip(values(model, [name])[name], values(whole, [name])[name]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    tags = event_steps(str(tmp_path / "crashed"))
    assert tags["freezing/conv1"] == [8]


def freezing_script(log_dir):
    return [sys.executable, "-m", "tests.fit_script", str(log_dir), "2", "freeze"]


@pytest.mark.slow
def test_sigkill_of_a_fit_script_then_rerun_freezes_the_same_units_at_the_same_step(
        tmp_path, kill_delay):
    whole = subprocess.run(freezing_script(tmp_path / "whole"), capture_output=True, text=True,
                           timeout=300)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = tmp_path / "killed"
    process = subprocess.Popen(freezing_script(killed), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while (checkpoint_epoch(os.path.join(killed, "backup")) or 0) < 2:
        assert time.monotonic() < deadline and process.poll() is None, "no checkpoint"
        time.sleep(0.02)
    time.sleep(kill_delay(0.1))  # inside epoch 3, before the freeze at its end
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = subprocess.run(freezing_script(killed), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "ResumeCallback: resuming after epoch" in resumed.stdout
    assert "RWCFreezing: froze conv1 (conv1) at epoch 3, step 24" in resumed.stdout
    expected = pd.read_csv(tmp_path / "whole" / schema.FREEZING_CSV)
    assert expected[["epoch", "step", "group"]].values.tolist() == [
        [3, 24, "conv1"], [3, 24, "conv2"]]
    # The smoothed values and changes too: the changes compare with values from before the kill.
    pd.testing.assert_frame_equal(pd.read_csv(killed / schema.FREEZING_CSV), expected)
    assert event_steps(str(killed)) == event_steps(str(tmp_path / "whole"))


# -- FreezeOut ------------------------------------------------------------------------------


def test_freezeout_times_are_the_published_cubic_schedule():
    times = freezeout_times(8)
    assert times[0] == pytest.approx(0.512) and times[-1] == 1.0
    assert times[3] == pytest.approx((0.8 + 0.2 * 3 / 7) ** 3)
    assert freezeout_times(3, t_0=0.5, scale="linear") == [0.5, 0.75, 1.0]


def test_freezeout_sgd_takes_pytorch_steps_with_per_layer_cosine_rates():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
                              keras.layers.Dense(2, name="b")])
    total, lr, momentum, decay = 10, 0.1, 0.9, 0.01
    schedule = FreezeOutSchedule(model, total)
    assert schedule.times == pytest.approx([0.512, 1.0]) and schedule.freeze_steps == [6, 10]
    optimizer = FreezeOutSGD(schedule, lr, momentum, decay)
    variables = model.trainable_variables
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=v.shape).astype(np.float32) for v in variables]
    weights = [v.numpy().astype(np.float64) for v in variables]
    velocity = [np.zeros_like(w) for w in weights]
    for step in range(total):
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
        for i, t in enumerate([0.512, 0.512, 1.0, 1.0]):
            progress = step / total
            rate = 0.5 * lr / t * (1 + math.cos(math.pi * progress / t)) if progress < t else 0
            velocity[i] = momentum * velocity[i] + grads[i] + decay * weights[i]
            weights[i] = weights[i] - rate * velocity[i]
    for variable, expected in zip(variables, weights):
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_freezeout_freezes_each_layer_at_its_step_in_fit(tmp_path):
    model = tiny_model()
    schedule = FreezeOutSchedule(model, total_steps=16)  # 4 epochs of 4 steps
    # t_i = (0.8 + 0.2 i / 3) ** 3 = 0.512, 0.651, 0.813 and 1 (the output layer), x 16.
    assert schedule.freeze_steps == [9, 11, 14, 16]
    model.compile(FreezeOutSGD(schedule, 0.1, 0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    freezeout = FreezeOut(schedule, log_dir=str(tmp_path), verbose=0)
    kept = {}
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: kept.setdefault(
        int(model.optimizer.iterations.numpy()), values(model, ["conv1", "conv2", "conv3"])))
    model.fit(*data(), batch_size=BATCH, epochs=4, shuffle=False, verbose=0,
              callbacks=[freezeout, record])
    rows = pd.read_csv(tmp_path / schema.FREEZING_CSV)
    assert rows[["epoch", "step", "group"]].values.tolist() == [
        [3, 9, "conv1"], [3, 11, "conv2"], [4, 14, "conv3"]]
    assert rows["smoothed"].isna().all()
    final = values(model, ["conv1", "conv2", "conv3"])
    for name, step in (("conv1", 9), ("conv2", 11), ("conv3", 14)):
        assert same(kept[step][name][:2], final[name][:2])
        assert not same(kept[step - 1][name][:2], final[name][:2])
    assert event_steps(str(tmp_path))["freezing/conv2"] == [11]


# -- the training driver --------------------------------------------------------------------


def tiny_datasets(batch, steps):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batch * steps, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, size=batch * steps, dtype=np.int64)
    return Datasets(spec.dataset("mnist"), (images, labels), (images[:batch], labels[:batch]),
                    batch, seed=0)


@pytest.mark.slow
def test_the_driver_s_rebuilt_step_asks_no_gradient_of_the_frozen_prefix():
    config = RunConfig(arch="alexnet", dataset="mnist", seed=0, epochs=1, batch_size=8,
                       lr=0.01, momentum=0.9, weight_decay=0.0)
    trainer = Trainer(config, tf.distribute.get_strategy(), tiny_datasets(8, 2))
    callbacks = keras.callbacks.CallbackList([], model=trainer.model)
    assert backprop_ops(executed_ops(lambda: trainer.train_epoch(0, callbacks))) == dict(
        Conv2DBackpropFilter=5, Conv2DBackpropInput=4, BiasAddGrad=8)
    images, labels = next(iter(trainer.datasets.train(0)))

    def convolution_gradients_built():
        graph = trainer._gradients.get_concrete_function(images, labels).graph
        return len([op for op in graph.get_operations() if "Conv2DBackprop" in op.type])

    # 5 weight and 5 input gradients traced (conv1's, of the images, is pruned before it runs).
    assert convolution_gradients_built() == 10
    units = layer_units(trainer.model, trainer.model.rwc_groups)
    for unit in units[:3]:  # every convolution
        freeze_unit(unit)
    trainer.rebuild_step()
    grads, _ = trainer._gradients(images, labels)
    assert len(grads) == 6 == len(trainer.model.trainable_variables)  # fc1..fc3
    # Not even built: the tape watches the trainable variables only.
    assert convolution_gradients_built() == 0
    assert backprop_ops(executed_ops(lambda: trainer.train_epoch(1, callbacks))) == dict(
        Conv2DBackpropFilter=0, Conv2DBackpropInput=0, BiasAddGrad=3)


def driver_run(folder, freeze="freezeout", epochs=3, **config_values):
    """The driver's run() of AlexNet with ``--freeze=freeze``, ``epochs`` epochs of 4 steps,
    in this process; returns its metrics."""
    config = RunConfig(arch="alexnet", dataset="mnist", seed=0, epochs=epochs, batch_size=16,
                       lr=0.01, momentum=0.9, weight_decay=0.0, freeze=freeze, **config_values)
    run_dir = RunDir(str(folder), f"--freeze={freeze}\n")
    run_dir.claim()
    try:
        return run(config, tf.distribute.get_strategy(), tiny_datasets(16, 4), run_dir)
    finally:
        run_dir.release()


@pytest.mark.slow
@pytest.mark.parametrize("crash_in_epoch", [2, 3])
def test_the_driver_resumes_freezeout_at_the_same_points(crash_in_epoch, tmp_path, monkeypatch):
    driver_run(tmp_path / "whole")
    expected = pd.read_csv(tmp_path / "whole" / schema.FREEZING_CSV)
    # 12 steps: t_i x 12 rounded up, the head (t = 1) never.
    assert list(zip(expected["step"], expected["group"])) == [
        (7, "conv1"), (7, "conv2"), (8, "conv3"), (9, "conv4"), (10, "conv5"), (11, "fc1"),
        (12, "fc2")]
    calls, evaluate = [], Trainer.evaluate

    def crashing(self):  # after the epoch's training, before its checkpoint
        calls.append(1)
        if len(calls) == crash_in_epoch:
            raise RuntimeError("stopped")
        return evaluate(self)

    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="stopped"):
        patch.setattr(Trainer, "evaluate", crashing)
        driver_run(tmp_path / "crashed")
    metrics = driver_run(tmp_path / "crashed")
    assert metrics["resumed_after_epoch"] == crash_in_epoch - 1
    assert metrics["freeze"] == "freezeout" and metrics["steps_per_epoch"] == 4
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "crashed" / schema.FREEZING_CSV),
                                  expected)
    assert event_steps(str(tmp_path / "crashed"))["freezing/conv3"] == [8]


@pytest.mark.slow
def test_the_driver_freezes_by_rwc_under_mirrored_strategy(tmp_path):
    # tolerance 10: every change is level, so that the groups freeze at the second measurement.
    config = RunConfig(arch="alexnet", dataset="mnist", seed=0, epochs=2, batch_size=16,
                       lr=0.01, momentum=0.9, weight_decay=0.0, rwc_every="2", freeze="rwc",
                       freeze_rule=dict(tolerance=10, patience=1, warmup=0.0))
    run_dir = RunDir(str(tmp_path), "--freeze=rwc\n")
    run_dir.claim()
    try:
        metrics = run(config, two_cpu_strategy(), tiny_datasets(16, 4), run_dir)
    finally:
        run_dir.release()
    assert metrics["replicas"] == 2 and metrics["freeze"] == "rwc"
    rows = pd.read_csv(tmp_path / schema.FREEZING_CSV)
    assert rows[["epoch", "step", "group"]].values.tolist() == [
        [1, 4, "early"], [1, 4, "middle"], [1, 4, "later"]]
    # What froze stops changing: its RWC is exactly 0 from the next measurement on.
    rwc = pd.read_csv(tmp_path / spec.RWC_CSV)
    after = rwc[rwc["step"] > 4]
    assert sorted(set(after["step"])) == [6, 8]
    assert (after["rwc_norm"][after["group"] != "head"] == 0).all()
    assert (after["rwc_norm"][after["group"] == "head"] > 0).all()


@pytest.mark.slow
def test_driver_command_with_freezeout_under_mirrored_strategy(mnist_dir, tmp_path):
    result = driver("--arch=alexnet", "--dataset=mnist", f"--data_dir={mnist_dir}",
                    "--epochs=2", "--seeds=0", "--batch_size=32", "--max_train_examples=128",
                    "--max_test_examples=32", "--strategy=mirrored", "--cpu_devices=2",
                    "--freeze=freezeout", "--noreport", f"--logdir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "alexnet_mnist" / "seed_0"
    assert "--freeze=freezeout" in (run_dir / spec.FLAGS_CFG).read_text()
    assert "FreezeOut: froze conv1 (conv1) at epoch 2, step 5" in result.stdout
    metrics = json.loads((run_dir / spec.METRICS_JSON).read_text())
    assert metrics["replicas"] == 2 and metrics["freeze"] == "freezeout"
    # 8 steps: t_i x 8 rounded up, for conv1 .. fc2.
    rows = pd.read_csv(run_dir / schema.FREEZING_CSV)
    assert list(zip(rows["step"], rows["group"])) == [
        (5, "conv1"), (5, "conv2"), (6, "conv3"), (6, "conv4"), (7, "conv5"), (7, "fc1"),
        (8, "fc2")]


@pytest.mark.slow
def test_driver_command_passes_the_rule_s_flags_on(mnist_dir, tmp_path):
    result = driver("--arch=alexnet", "--dataset=mnist", f"--data_dir={mnist_dir}",
                    "--epochs=2", "--seeds=0", "--batch_size=32", "--max_train_examples=128",
                    "--max_test_examples=32", "--rwc_every=2", "--freeze=rwc",
                    "--freeze_tolerance=10", "--freeze_warmup=0",
                    "--noreport", f"--logdir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "alexnet_mnist" / "seed_0"
    flagfile = (run_dir / spec.FLAGS_CFG).read_text()
    # Every rule flag, defaults too: flags.cfg says which rule made the run.
    assert ("--freeze_tolerance=10.0\n--freeze_patience=1\n--freeze_smoothing=0.0\n"
            "--freeze_warmup=0.0\n--freeze_cap=0.75\n") in flagfile
    # Every change level (tolerance 10), patience 1: the groups freeze at the second
    # measurement.
    rows = pd.read_csv(run_dir / schema.FREEZING_CSV)
    assert rows[["step", "group"]].values.tolist() == [[4, "early"], [4, "middle"],
                                                      [4, "later"]]


def test_freeze_flags_are_checked_before_any_work(tmp_path):
    result = driver("--arch=alexnet", "--freeze=all", f"--logdir={tmp_path}")
    assert result.returncode == 1
    assert "value should be one of <none|rwc|freezeout|linear>" in result.stderr
    result = driver("--arch=alexnet", "--freeze=rwc", "--strategy=multi_worker",
                    f"--logdir={tmp_path}")
    assert result.returncode == 1
    assert "--freeze runs on one host: it cannot be combined with --strategy=multi_worker" in (
        result.stderr)
    for args, message in [
            (["--freeze=rwc", "--freeze_tolerance=0"], "--freeze_tolerance must be a positive"),
            (["--freeze=rwc", "--freeze_cap=0"], "--freeze_cap must be a positive"),
            (["--freeze=rwc", "--freeze_smoothing=1"], "--freeze_smoothing must be below 1"),
            (["--freeze=rwc", "--freeze_patience=0"],
             "--freeze_patience=0: 0 is not a positive integer"),
            (["--freeze_tolerance=0.3"], "set the rule of --freeze=rwc: give --freeze=rwc")]:
        result = driver("--arch=alexnet", *args, f"--logdir={tmp_path}")
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
    assert not os.listdir(tmp_path)


# -- the comparison report ------------------------------------------------------------------


def write_run(folder, mode, seed, top1, seconds, freezes=(), rule_flags=""):
    """A complete driver run folder of alexnet_mnist, 4 epochs of 10 steps."""
    path = folder / (mode + rule_flags) / "alexnet_mnist" / f"seed_{seed}"
    path.mkdir(parents=True)
    flags = "--arch=alexnet\n" + (f"--freeze={mode}\n" if mode != "none" else "") + rule_flags
    if mode == "rwc" and not rule_flags:  # rule v2 lists its flags, defaults too
        flags += "--freeze_tolerance=0.35\n--freeze_cap=0.75\n"
    (path / spec.FLAGS_CFG).write_text(flags)
    (path / spec.METRICS_JSON).write_text(json.dumps(dict(
        seed=seed, epochs=4, steps_per_epoch=10, wall_seconds=sum(seconds) + 5)))
    history = pd.DataFrame({column: 0.0 for column in spec.HISTORY_COLUMNS}, index=range(4))
    history["epoch"], history["test_top1"], history["seconds"] = range(1, 5), top1, seconds
    history.to_csv(path / spec.HISTORY_CSV, index=False)
    if freezes:
        pd.DataFrame(freezes, columns=schema.FREEZING_COLUMNS).to_csv(
            path / schema.FREEZING_CSV, index=False)


def test_the_report_compares_the_modes(tmp_path):
    for seed, final in ((0, 0.90), (1, 0.92)):
        write_run(tmp_path, "none", seed, [0.5, 0.8, 0.88, final], [10, 10, 10, 10])
    # Freezes at step 20 (of 40): early saves 10 of 100 MACs, then with middle 40.
    freezes = [[2, 20, "early", "conv1", 0.2, 1.0, 10, 100],
               [3, 30, "middle", "conv2 conv3", 0.3, 1.0, 40, 100]]
    write_run(tmp_path, "rwc", 0, [0.5, 0.85, 0.9, 0.9], [10, 10, 8, 6], freezes)
    write_run(tmp_path, "rwc", 1, [0.5, 0.8, 0.85, 0.88], [10, 10, 8, 6], freezes)
    text, md_path, png_path = write_report(str(tmp_path))
    assert os.path.getsize(png_path) > 0 and open(md_path).read() == text
    # Target: mean(0.90, 0.92) - 0.003 = 0.907: none seed 1 reaches it at epoch 4 (40 s),
    # seed 0 not; rwc never. Saved: (10 x 20 + 30 x 10) / (100 x 40) = 12.5%.
    assert "Target top-1: the unfrozen runs' final test top-1 minus 0.3 points = 90.70%" in text
    assert "| none | 0, 1 | 40 ± 0 | 1.000 | 45 ± 0 | 91.00 ± 1.41 | 0.0 ± 0.0 | " \
           "40 ± 0 (1/2 seeds) |" in text
    assert "| rwc | 0, 1 | 34 ± 0 | 0.850 | 39 ± 0 | 89.00 ± 1.41 | 12.5 ± 0.0 | " \
           "n/a (0/2 seeds) |" in text
    assert "- rwc, seed 0: early@2 (20), middle@3 (30)" in text
    # 34 s against 40: 15% saved; top-1 89.00 against 91.00.
    assert ("- rwc: 15.0% less training time (goal 30%: not met), test top-1 -2.00 points "
            "(goal within -0.3: not met).") in text
    assert "FreezeOut also replaces the paper's constant learning rate" in text
    assert ("The `rwc` rule's defaults: tolerance 0.35, patience 1, smoothing 0.0, warmup 0.2, "
            "cap 0.75" in text)


def test_the_report_judges_the_goal_against_none_freezeout_and_linear(tmp_path):
    write_run(tmp_path, "none", 0, [0.5, 0.8, 0.88, 0.900], [10, 10, 10, 10])
    write_run(tmp_path, "none", 0, [0.5, 0.8, 0.88, 0.905], [10, 10, 10, 10],
              rule_flags="--lr_schedule=cosine\n")
    write_run(tmp_path, "rwc", 0, [0.5, 0.8, 0.88, 0.898], [10, 10, 4, 2])
    write_run(tmp_path, "freezeout", 0, [0.5, 0.8, 0.88, 0.890], [10, 10, 9, 7])
    write_run(tmp_path, "linear", 0, [0.5, 0.8, 0.88, 0.899], [10, 10, 8, 6])
    write_run(tmp_path, "rwc", 0, [0.5, 0.8, 0.88, 0.899], [10, 10, 10, 7],
              rule_flags="--freeze_tolerance=0.25\n--freeze_patience=2\n")
    write_run(tmp_path, "rwc", 0, [0.5, 0.8, 0.88, 0.899], [10, 10, 10, 10],
              rule_flags="--freeze_threshold=0.6\n")
    text, _, _ = write_report(str(tmp_path))
    # Runs with other rule values are a mode of their own, after the default rule's; runs of
    # rule v1 (whose flags.cfg names none of rule v2's flags) one labelled so.
    assert (text.index("| rwc | 0 |") < text.index("| rwc (tolerance=0.25, patience=2) | 0 |")
            < text.index("| rwc v1 (threshold=0.6) | 0 |"))
    # AlexNet's goal is 30% less time; none with the cosine schedule freezes nothing.
    assert ("- rwc (tolerance=0.25, patience=2): 7.5% less training time (goal 30%: not met), "
            "test top-1 -0.10 points (goal within -0.3: met); more saved than freezeout at "
            "equal or better top-1: not met; more saved than linear at equal or better top-1: "
            "not met.") in text
    assert ("- rwc: 35.0% less training time (goal 30%: met), test top-1 -0.20 points "
            "(goal within -0.3: met); more saved than freezeout at equal or better top-1: "
            "met; more saved than linear at equal or better top-1: not met.") in text
    assert ("- freezeout: 10.0% less training time (goal 30%: not met), test top-1 -1.00 "
            "points (goal within -0.3: not met).") in text
    assert "| none (lr_schedule=cosine) | 0 |" in text
    assert "- none (lr_schedule=cosine):" not in text


def test_the_report_leaves_out_seeds_whose_unfrozen_run_did_not_train(tmp_path):
    # Seed 3's none run stays at 15% (MNIST: under twice chance, 20%); seed 0's learns.
    write_run(tmp_path, "none", 0, [0.5, 0.8, 0.88, 0.90], [10, 10, 10, 10])
    write_run(tmp_path, "none", 3, [0.1, 0.1, 0.1, 0.15], [10, 10, 10, 10])
    write_run(tmp_path, "rwc", 0, [0.5, 0.8, 0.88, 0.89], [10, 10, 8, 6])
    write_run(tmp_path, "rwc", 3, [0.1, 0.1, 0.1, 0.1], [10, 4, 4, 4],
              [[1, 10, "early", "conv1", 0.01, 0.0, 10, 100]])
    text, _, _ = write_report(str(tmp_path))
    assert "| none | 0 | 40 ± 0 | 1.000 |" in text and "| rwc | 0 | 34 ± 0 | 0.850 |" in text
    assert ("- rwc: 15.0% less training time (goal 30%: not met), test top-1 -1.00 points"
            in text)
    assert ("Left out: seed 3, whose `none` run ended at 15.00% test top-1, under 2 times "
            "chance: it did not train, so no freezing is judged on it. Its runs:\n\n"
            "- none: 15.00%, 40 training s, froze nothing\n"
            "- rwc: 10.00%, 22 training s, froze early@1 (10)") in text


@pytest.mark.slow
def test_the_report_imports_no_tensorflow(tmp_path):
    code = ("import sys, rwc_keras.report.freezing; "
            "sys.exit('tensorflow' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    result = subprocess.run([sys.executable, "-m", "rwc_keras.report.freezing", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"rwc_keras.report.freezing: {tmp_path} holds no complete "
                                     "run (no seed_*/metrics.json below it)")


@pytest.mark.slow
def test_the_bench_times_every_prefix_of_groups():
    units, wall, cpu = step_seconds("alexnet", batch_size=8, steps=1, repeats=2,
                                    batchnorm="batch")
    for times in (wall, cpu):
        assert sorted(times) == [0, 1, 2, 3] and all(len(v) == 2 for v in times.values())
    lines = table("alexnet", units, wall, cpu).splitlines()
    assert lines[4].startswith("| none |") and lines[4].endswith("| 1.000 | 0.0% |")
    # Multiply-adds per example, by hand from the AlexNet of docs/paper_facts.md at 32x32
    # (the first conv's input channels change the share by 0.03 points, so either count):
    # convs 1-5 at 16x16, 8x8 and 4x4 outputs, then the three dense layers.
    convs = [16 * 16 * 64 * 9 * 3, 8 * 8 * 192 * 9 * 64, 4 * 4 * 384 * 9 * 192,
             4 * 4 * 256 * 9 * 384, 4 * 4 * 256 * 9 * 256]
    dense = [1024 * 4096, 4096 * 1024, 1024 * 10]
    # Frozen convs: their weight and input gradients (not conv1's input) and the first dense
    # layer's input gradient, of a step's forward, weight and input gradients.
    share = (2 * sum(convs) - convs[0] + dense[0]) / (3 * sum(convs + dense) - convs[0])
    assert lines[-1].startswith("| early, middle, later |")
    assert lines[-1].endswith(f"| {share:.1%} |")



def test_last_measurement_is_keyed_by_the_callbacks_own_columns(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(optimizer="sgd", loss="mse")
    rwc = RWCCallback(str(tmp_path), metrics=("update_ratio", "weight_norm"), verbose=0)
    model.fit(np.ones((8, 3)), np.zeros((8, 2)), epochs=1, verbose=0, callbacks=[rwc])
    (row,) = rwc.last_measurement
    written = rwc.to_dataframe().iloc[-1]
    for column in ("rwc", "rwc_norm", "update_ratio", "weight_norm", "zeros", "size"):
        assert row[column] == pytest.approx(written[column]), column
