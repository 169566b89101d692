import glob
import os

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from rwc_keras import ResumeCallback, RWCCallback, spec
from rwc_keras.callbacks.summaries import write_scalars
from rwc_keras.spec import RWC_COLUMNS as CSV_COLUMNS

from ..helpers import reference_metrics
from ..keras_helpers import data, functional, read_scalars
from ..weight_recorder import WeightRecorder


def sequential():
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(5, name="dense"),
        ]
    )


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")
        self.flat = keras.layers.Flatten()
        self.dense = keras.layers.Dense(5, name="dense")

    def call(self, x):
        return self.dense(self.flat(self.conv(x)))


def subclassed():
    model = Subclassed()
    model(np.zeros((1, 8, 8, 2), np.float32))
    return model


def train(build, tmp_path, update_freq, strategy=None, epochs=3, metrics=spec.RWC_METRICS):
    keras.utils.set_random_seed(0)
    scope = strategy.scope() if strategy else tf.name_scope("")
    with scope:
        model = build()
        model.compile(
            keras.optimizers.SGD(0.1, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    rwc = RWCCallback(log_dir=str(tmp_path / "run"), update_freq=update_freq, metrics=metrics,
                      verbose=0)
    recorder = WeightRecorder()
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[recorder, rwc])
    return model, rwc, recorder


def expected_rows(recorder, points):
    """(step, layer) -> every reference measure between consecutive measurement points,
    against the weights at the first point for those comparing with train begin."""
    want = {}
    for prev_step, step in zip(points, points[1:]):
        for layer, curr in recorder.by_step[step].items():
            if curr.ndim > 1:
                want[(step, layer)] = reference_metrics(
                    recorder.by_step[prev_step][layer], curr, recorder.by_step[points[0]][layer])
    return want


def check_against_recorder(rwc_cb, recorder, points):
    frame = pd.read_csv(os.path.join(rwc_cb.log_dir, "rwc.csv"), keep_default_na=False)
    assert list(frame.columns) == list(spec.rwc_columns(rwc_cb.metrics))
    want = expected_rows(recorder, points)
    assert len(frame) == len(want)
    for row in frame.itertuples():
        reference = want[(row.step, row.layer)]
        for metric in rwc_cb.metrics:
            assert getattr(row, metric) == pytest.approx(reference[metric], rel=1e-5), metric
        assert row.zeros == reference["zeros"]
    assert frame["group"].eq("").all()
    in_memory = rwc_cb.to_dataframe()
    assert list(in_memory.columns) == list(frame.columns)
    assert len(in_memory) == len(frame)
    np.testing.assert_array_equal(in_memory["rwc"].to_numpy(), frame["rwc"].to_numpy())
    return frame


@pytest.mark.parametrize("build", [sequential, functional, subclassed])
def test_every_epoch_matches_float64_recomputation(build, tmp_path):
    _, rwc_cb, recorder = train(build, tmp_path, "epoch")
    steps_per_epoch = 64 // 16
    points = [0, steps_per_epoch, 2 * steps_per_epoch, 3 * steps_per_epoch]
    frame = check_against_recorder(rwc_cb, recorder, points)
    assert sorted(frame["epoch"].unique()) == [1, 2, 3]
    assert frame.groupby("epoch")["step"].first().tolist() == points[1:]
    assert len(frame["layer"].unique()) == 2  # the conv and dense kernels


@pytest.mark.parametrize("build", [sequential, functional, subclassed])
def test_every_n_steps_matches_float64_recomputation(build, tmp_path):
    model, rwc_cb, recorder = train(build, tmp_path, 3)
    # Measured inside fit's step by a wrapper of the optimizer, which fit's end takes away.
    assert type(model.optimizer) is keras.optimizers.SGD
    points = list(range(0, 13, 3))
    frame = check_against_recorder(rwc_cb, recorder, points)
    # step 3 in epoch 1, 6 and 8 in epoch 2, 9 and 12 in epoch 3 (4 steps per epoch)
    assert frame.groupby("step")["epoch"].first().to_dict() == {3: 1, 6: 2, 9: 3, 12: 3}


@pytest.mark.parametrize("update_freq", ["epoch", 3])
def test_every_metric_matches_float64_recomputation(update_freq, tmp_path):
    _, rwc_cb, recorder = train(functional, tmp_path, update_freq, metrics=spec.METRICS)
    assert rwc_cb.metrics == spec.METRICS
    points = [0, 4, 8, 12] if update_freq == "epoch" else list(range(0, 13, 3))
    frame = check_against_recorder(rwc_cb, recorder, points)
    assert frame[list(spec.METRICS)].notna().all().all()


@pytest.mark.parametrize("update_freq", ["epoch", 2])
def test_under_mirrored_strategy_on_two_devices(update_freq, tmp_path):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    _, rwc_cb, recorder = train(functional, tmp_path, update_freq, strategy=strategy,
                                metrics=spec.METRICS)
    points = [0, 4, 8, 12] if update_freq == "epoch" else list(range(0, 13, 2))
    check_against_recorder(rwc_cb, recorder, points)


def test_chosen_metrics_come_after_rwc_in_schema_order(tmp_path):
    _, rwc_cb, recorder = train(sequential, tmp_path, "epoch",
                                metrics=["weight_norm", "dist_init"])
    assert rwc_cb.metrics == ("rwc", "rwc_norm", "dist_init", "weight_norm")
    check_against_recorder(rwc_cb, recorder, [0, 4, 8, 12])
    assert rwc_cb.measure().shape == (2, 5)  # the two kernels, 4 measures and zeros


def test_weights_at_train_begin_are_kept_only_for_the_metrics_using_them(tmp_path):
    model = functional()
    model.compile("sgd", "mse")
    for metrics, extra in (((), set()), (["update_ratio", "weight_norm"], set()),
                           (["rotation"], {"initials", "initial_norms"})):
        cb = RWCCallback(str(tmp_path), metrics=metrics or spec.RWC_METRICS, verbose=0)
        cb.set_model(model)
        cb.on_train_begin()
        state = cb.checkpoint_state()
        assert set(state) == {"snapshots", "last_step"} | extra, metrics
        for name in extra:
            assert len(state[name]) == len(cb.tracked_variables)


def test_selection_by_names_regex_predicate_and_1d(tmp_path):
    keras.utils.set_random_seed(0)
    model = functional()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(16)
    layers = {}
    for name, kwargs in {
        "default": {},
        "all": {"include_1d": True},
        "names": {"include": ["dense/kernel"]},
        "regex": {"include": r"^conv", "include_1d": True},
        "predicate": {"include": lambda v: v.shape[-1] == 5, "include_1d": True},
    }.items():
        cb = RWCCallback(log_dir=str(tmp_path / name), verbose=0, **kwargs)
        model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
        layers[name] = sorted(cb.to_dataframe()["layer"])
    assert layers["default"] == ["conv/kernel", "dense/kernel"]
    assert layers["all"] == sorted(
        ["conv/kernel", "conv/bias", "bn/gamma",
         "bn/beta", "dense/kernel", "dense/bias"]
    )
    assert layers["names"] == ["dense/kernel"]
    assert layers["regex"] == ["conv/bias", "conv/kernel"]
    assert layers["predicate"] == ["dense/bias", "dense/kernel"]


def test_unknown_names_and_bad_update_freq_are_clear_errors(tmp_path):
    model = functional()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="nope/kernel"):
        model.fit(*data(16), epochs=1, verbose=0,
                  callbacks=[RWCCallback(log_dir=str(tmp_path), include=["nope/kernel"])])
    for bad in (0, -3, "step", 2.5, True):
        with pytest.raises(ValueError, match="update_freq"):
            RWCCallback(update_freq=bad)
    with pytest.raises(ValueError, match="'speed'; valid: rwc, rwc_norm, update_ratio"):
        RWCCallback(metrics=["rotation", "speed"])


def test_groups_from_model_attribute_and_argument(tmp_path):
    model = functional()
    model.rwc_groups = {"conv/kernel": "early", "dense/kernel": "head"}
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(16)
    declared = RWCCallback(log_dir=str(tmp_path / "a"), verbose=0)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[declared])
    assert dict(zip(*declared.to_dataframe()[["layer", "group"]].T.values)) == {
        "conv/kernel": "early", "dense/kernel": "head"}
    override = RWCCallback(log_dir=str(tmp_path / "b"), verbose=0,
                           groups=lambda layer: layer.split("/")[0].upper())
    model.fit(x, y, epochs=1, verbose=0, callbacks=[override])
    assert sorted(override.to_dataframe()["group"]) == ["CONV", "DENSE"]


def test_tensorboard_events_hold_tags_and_steps(tmp_path):
    model = functional()
    model.rwc_groups = {"conv/kernel": "early"}
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(32)
    per_epoch = RWCCallback(log_dir=str(tmp_path / "epoch"), verbose=0)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[per_epoch])
    scalars = read_scalars(per_epoch.log_dir)
    assert set(scalars) == {
        "rwc/early/conv/kernel", "rwc_norm/early/conv/kernel",
        "rwc/dense/kernel", "rwc_norm/dense/kernel",
        "rwc_mean/early", "rwc_norm_mean/early",
    }
    assert all(sorted(steps) == [1, 2, 3] for steps in scalars.values())
    frame = per_epoch.to_dataframe()
    dense = frame[frame.layer == "dense/kernel"].set_index("epoch")["rwc"]
    for epoch, value in scalars["rwc/dense/kernel"].items():
        assert value == pytest.approx(dense[epoch], rel=1e-6)
    assert scalars["rwc_mean/early"] == scalars["rwc/early/conv/kernel"]

    per_step = RWCCallback(log_dir=str(tmp_path / "step"), update_freq=2, verbose=0)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[per_step])
    steps = sorted(read_scalars(per_step.log_dir)["rwc/dense/kernel"])
    assert steps == [8, 10]  # the optimizer had made 6 steps in the earlier fit


def test_every_metric_has_its_tag_family_and_group_means(tmp_path):
    model = functional()
    model.rwc_groups = {"conv/kernel": "early"}
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = RWCCallback(str(tmp_path), metrics=spec.METRICS, verbose=0)
    model.fit(*data(32), batch_size=16, epochs=2, verbose=0, callbacks=[cb])
    scalars = read_scalars(cb.log_dir)
    assert set(scalars) == {tag for metric in spec.METRICS for tag in (
        f"{metric}/early/conv/kernel", f"{metric}/dense/kernel", f"{metric}_mean/early")}
    frame = cb.to_dataframe().set_index(["layer", "epoch"])
    for metric in spec.METRICS:
        for epoch, value in scalars[f"{metric}/dense/kernel"].items():
            assert value == pytest.approx(frame.loc[("dense/kernel", epoch), metric], rel=1e-6)
        assert scalars[f"{metric}_mean/early"] == scalars[f"{metric}/early/conv/kernel"]


class CrashAtStep(keras.callbacks.Callback):
    """Raises before the optimizer's step ``step`` (0-based), as a crash would."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise RuntimeError("crashed")


def test_a_resumed_run_compares_with_the_same_weights_at_train_begin(tmp_path):
    def fit(log_dir, seed, *extra):
        # The model's own initial weights depend on the seed; a resumed run's must not matter.
        keras.utils.set_random_seed(seed)
        model = functional()
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        rwc = RWCCallback(str(log_dir), update_freq=3, metrics=spec.METRICS, verbose=0)
        resume = ResumeCallback(str(log_dir / "backup"), callbacks=[rwc], verbose=0)
        model.fit(*data(32), batch_size=8, epochs=4, shuffle=False, verbose=0,
                  callbacks=[rwc, resume, *extra])

    fit(tmp_path / "whole", 0)
    # 4 steps per epoch: the checkpoint after epoch 2 holds step 8; measured at 9, crashed.
    with pytest.raises(RuntimeError, match="crashed"):
        fit(tmp_path / "crashed", 0, CrashAtStep(10))
    fit(tmp_path / "crashed", 1)
    resumed = pd.read_csv(tmp_path / "crashed" / "rwc.csv")
    whole = pd.read_csv(tmp_path / "whole" / "rwc.csv")
    pd.testing.assert_frame_equal(resumed[["epoch", "step", "layer"]],
                                  whole[["epoch", "step", "layer"]])
    for metric in spec.METRICS:
        pd.testing.assert_series_equal(resumed[metric], whole[metric], rtol=1e-6, atol=0)


def test_a_fit_that_raised_leaves_its_measurement_out_of_the_next_step(tmp_path):
    model = functional()
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = RWCCallback(str(tmp_path), update_freq=2, verbose=0)
    with pytest.raises(RuntimeError, match="crashed"):
        model.fit(*data(32), batch_size=8, epochs=2, verbose=0, callbacks=[cb, CrashAtStep(5)])
    model.fit(*data(32), batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    assert type(model.optimizer) is keras.optimizers.SGD
    # Steps 1-5, then 6-9: a stale wrapper would have moved the snapshots at 6 and 8 unseen.
    assert sorted(set(cb.to_dataframe()["step"])) == [2, 4, 6, 8]


def test_default_log_dirs_are_separate_and_never_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    model = functional()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(16)
    first, second = RWCCallback(), RWCCallback()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[first])
    first_csv = open(os.path.join(first.log_dir, "rwc.csv")).read()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[second])
    assert first.log_dir != second.log_dir
    assert os.path.dirname(first.log_dir) == "runs"
    assert open(os.path.join(first.log_dir, "rwc.csv")).read() == first_csv
    assert len(pd.read_csv(os.path.join(second.log_dir, "rwc.csv"))) == 4
    printed = capsys.readouterr().out
    assert printed.count("RWCCallback: writing") == 2 and second.log_dir in printed


def test_existing_csv_is_not_overwritten_unless_append(tmp_path):
    model = functional()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(16)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RWCCallback(str(tmp_path), verbose=0)])
    before = (tmp_path / "rwc.csv").read_text()
    with pytest.raises(FileExistsError, match="append=True"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[RWCCallback(str(tmp_path), verbose=0)])
    assert (tmp_path / "rwc.csv").read_text() == before
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[RWCCallback(str(tmp_path), append=True, verbose=0)])
    frame = pd.read_csv(tmp_path / "rwc.csv")
    assert len(frame) == 4 and list(frame.columns) == list(CSV_COLUMNS)
    # Other columns would leave the file unreadable.
    with pytest.raises(ValueError, match="has the columns epoch,step,layer,group,rwc,rwc_norm,"
                                         "zeros,size, these metrics write .*,rotation,zeros"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[
            RWCCallback(str(tmp_path), append=True, metrics=["rotation"], verbose=0)])
    assert len(pd.read_csv(tmp_path / "rwc.csv")) == 4


def test_all_zero_kernel_gives_nan_rows_not_a_crash(tmp_path):
    model = sequential()
    model.layers[-1].kernel.assign(np.zeros(model.layers[-1].kernel.shape))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = RWCCallback(str(tmp_path), verbose=0)
    model.fit(*data(16), epochs=2, verbose=0, callbacks=[cb])
    frame = cb.to_dataframe().set_index(["epoch", "layer"])
    assert np.isnan(frame.loc[(1, "dense/kernel"), "rwc"])
    assert np.isnan(frame.loc[(1, "dense/kernel"), "rwc_norm"])
    assert np.isfinite(frame.loc[(2, "dense/kernel"), "rwc"])


def test_second_fit_with_the_same_callback_continues_its_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = functional()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(16)
    cb = RWCCallback(verbose=0)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[cb])
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    frame = pd.read_csv(os.path.join(cb.log_dir, "rwc.csv"))
    assert len(frame) == 6 and frame["step"].tolist() == [1, 1, 2, 2, 3, 3]
    assert len(glob.glob("runs/*")) == 1


def test_steps_per_execution_measures_every_n_steps_inside_the_step(tmp_path):
    keras.utils.set_random_seed(0)
    model = functional()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=4)
    cb = RWCCallback(str(tmp_path), update_freq=10, verbose=0)
    model.fit(*data(64), batch_size=4, epochs=3, verbose=0, callbacks=[cb])
    # 16 steps per epoch, 4 per execution: the measurement is in each step, so it sees
    # steps 10, 20, ... and not only the 4th, 8th, ...
    assert sorted(cb.to_dataframe()["step"].unique()) == [10, 20, 30, 40]


def test_measurement_is_traced_once_across_fits(tmp_path):
    model = functional()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = RWCCallback(str(tmp_path), update_freq=2, verbose=0)
    for _ in range(3):
        model.fit(*data(32), batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    assert len(cb.to_dataframe()) == 2 * 6
    assert cb._summarise_fn.experimental_get_tracing_count() == 1


def test_log_dir_on_another_tensorflow_filesystem():
    # ram:// is TensorFlow's in-memory filesystem, as gs:// is Google Cloud Storage's.
    log_dir = "ram://rwc_test/run"
    model = functional()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cb = RWCCallback(log_dir, verbose=0)
    model.fit(*data(16), epochs=2, verbose=0, callbacks=[cb])
    with tf.io.gfile.GFile(f"{log_dir}/rwc.csv") as f:
        assert len(pd.read_csv(f)) == 4
    assert len(cb.to_dataframe()) == 4
    assert tf.io.gfile.glob(f"{log_dir}/events.out.tfevents.*")


def test_group_means_skip_nan_and_stay_nan_for_an_all_nan_group(tmp_path):
    # Four tensors in two groups of two: "a" holds a NaN (an all-zero prev) beside 0.5,
    # "b" two NaNs; group-less "c" writes no mean.
    meta = [("l1", "a", 1), ("l2", "a", 1), ("l3", "b", 1), ("l4", "b", 1), ("l5", "", 1)]
    nan = float("nan")
    values = tf.constant([[0.5, 2.0, 0], [nan, 4.0, 1], [nan, nan, 1], [nan, nan, 1],
                          [9.0, 9.0, 0]], tf.float64)
    with tf.summary.create_file_writer(str(tmp_path)).as_default(step=1):
        write_scalars(meta, spec.RWC_METRICS, values)
    scalars = read_scalars(str(tmp_path))
    means = {tag: steps[1] for tag, steps in scalars.items() if "_mean/" in tag}
    assert set(means) == {spec.group_mean_tag(m, g) for m in spec.RWC_METRICS for g in "ab"}
    assert means[spec.group_mean_tag("rwc", "a")] == 0.5  # the NaN left out
    assert means[spec.group_mean_tag("rwc_norm", "a")] == 3.0  # the mean of 2 and 4
    assert np.isnan(means[spec.group_mean_tag("rwc", "b")])
    assert np.isnan(means[spec.group_mean_tag("rwc_norm", "b")])
