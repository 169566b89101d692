"""RWCCallback on the backend of the test process: values against float64 numpy, the CSV's
columns, TensorBoard tags, ``include``, groups, append, and JAX's DataParallel.

When ``RWC_BACKEND_CSV_DIR`` is set (tests/test_backends.py sets it), the fit of
`test_fit_matches_float64_recomputation` also copies its rwc.csv there as
``<backend>.csv``, for the comparison across backends.
"""

import contextlib
import os
import shutil

import keras
import numpy as np
import pandas as pd
import pytest
from keras.src.callbacks.callback_list import CallbackList
from keras.src.utils.python_utils import is_default
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util.tensor_util import make_ndarray

from rwc_keras import RWCCallback, RWCFreezing, spec
from rwc_keras.measure import in_step

from ..helpers import CPU_DEVICES, reference_metrics
from ..weight_recorder import WeightRecorder

BACKEND = keras.backend.backend()
EXAMPLES, BATCH = 32, 8


def model_with_fixed_weights():
    """A conv and a dense layer whose weights come from numpy: the same on every backend."""
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, name="head"),
    ])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.3, size=w.shape).astype(np.float32)
                       for w in model.get_weights()])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def data():
    rng = np.random.default_rng(1)
    return (rng.normal(size=(EXAMPLES, 6, 6, 2)).astype(np.float32),
            rng.integers(0, 3, EXAMPLES))


def fit(log_dir, epochs=2, distribution=None, **kwargs):
    """The fixed model fitted with an RWCCallback(**kwargs); (callback, recorder)."""
    with distribution.scope() if distribution else contextlib.nullcontext():
        model = model_with_fixed_weights()
    callback = RWCCallback(log_dir=str(log_dir), verbose=0, **kwargs)
    recorder = WeightRecorder()
    x, y = data()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[recorder, callback])
    return callback, recorder


def check_against_recomputation(callback, recorder):
    """Every row of rwc.csv equals the float64 recomputation from the recorded weights."""
    frame = callback.to_dataframe()
    assert list(frame.columns) == list(spec.rwc_columns(callback.metrics))
    points = [min(recorder.by_step), *sorted(frame.step.unique())]
    assert len(frame) == len(callback.tracked_variables) * (len(points) - 1)
    for prev, step in zip(points, points[1:]):
        for row in frame[frame.step == step].itertuples():
            want = reference_metrics(recorder.by_step[prev][row.layer],
                                     recorder.by_step[step][row.layer],
                                     recorder.by_step[points[0]][row.layer])
            for metric in callback.metrics:
                assert getattr(row, metric) == pytest.approx(want[metric], rel=1e-5,
                                                              nan_ok=True), metric
            assert row.zeros == want["zeros"]
    return frame


def test_fit_matches_float64_recomputation(tmp_path):
    callback, recorder = fit(tmp_path / "run", update_freq=2, metrics=spec.METRICS)
    frame = check_against_recomputation(callback, recorder)
    assert sorted(frame.step.unique()) == [2, 4, 6, 8]
    assert set(frame.layer) == {"conv/kernel", "head/kernel"}
    if os.environ.get("RWC_BACKEND_CSV_DIR"):
        shutil.copy(os.path.join(callback.log_dir, spec.RWC_CSV),
                    os.path.join(os.environ["RWC_BACKEND_CSV_DIR"], f"{BACKEND}.csv"))


def test_per_epoch_include_groups_and_tensorboard_tags(tmp_path):
    callback, recorder = fit(tmp_path / "run", epochs=3, include="conv|head/bias",
                             include_1d=True, groups={"conv/kernel": "early"})
    frame = check_against_recomputation(callback, recorder)
    assert list(frame.epoch.unique()) == [1, 2, 3]
    assert set(frame.layer) == {"conv/kernel", "conv/bias", "head/bias"}
    assert set(frame[frame.group == "early"].layer) == {"conv/kernel"}
    events = EventAccumulator(callback.log_dir)
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert tags == {spec.layer_tag(m, g, layer) for m in spec.RWC_METRICS
                    for layer, g in [("conv/kernel", "early"), ("conv/bias", ""),
                                     ("head/bias", "")]} | {
        spec.group_mean_tag(m, "early") for m in spec.RWC_METRICS}
    kernel = frame[frame.layer == "conv/kernel"].set_index("epoch")["rwc"]
    for event in events.Tensors(spec.layer_tag("rwc", "early", "conv/kernel")):
        assert float(make_ndarray(event.tensor_proto)) == pytest.approx(kernel[event.step])


def has_batch_hook(callback):
    """What Keras checks to decide whether fit may run ahead of its callbacks."""
    return not (is_default(callback.on_train_batch_end) and is_default(callback.on_batch_end))


def test_measurement_and_freezing_keep_fit_asynchronous(tmp_path):
    rwc = RWCCallback(log_dir=str(tmp_path), verbose=0)
    callbacks = [rwc, RWCFreezing(rwc, verbose=0)]
    assert not any(has_batch_hook(callback) for callback in callbacks)
    # TensorFlow's Keras never dispatches callbacks asynchronously (backend.IS_THREAD_SAFE
    # is False there): the check above is what stays true there.
    assert CallbackList(callbacks)._async_train == (BACKEND != "tensorflow")
    # Every N steps: inside the train step on TensorFlow and JAX, from a batch hook on
    # PyTorch.
    per_step = RWCCallback(log_dir=str(tmp_path), update_freq=2, verbose=0)
    hooked = BACKEND == "torch"
    assert has_batch_hook(per_step) == has_batch_hook(RWCFreezing(per_step)) == hooked
    assert CallbackList([per_step, RWCFreezing(per_step)])._async_train == (BACKEND == "jax")
    model = model_with_fixed_weights()
    model.fit(*data(), batch_size=BATCH, epochs=2, verbose=0, callbacks=[rwc])
    assert rwc.to_dataframe().epoch.tolist() == [1, 1, 2, 2]


def test_every_n_steps_continues_across_fits(tmp_path):
    model = model_with_fixed_weights()
    callback = RWCCallback(log_dir=str(tmp_path), update_freq=3, metrics=spec.METRICS,
                           verbose=0)
    recorder = WeightRecorder()
    x, y = data()
    for epochs in (1, 2):  # 4 steps per epoch
        model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                  callbacks=[recorder, callback])
    # Step 6 is compared with step 3, measured in the first fit.
    frame = check_against_recomputation(callback, recorder)
    assert sorted(frame.step.unique()) == [3, 6, 9, 12]


@pytest.mark.skipif(BACKEND == "torch",
                    reason="PyTorch measures from a batch hook, which holds no buffer")
def test_more_measurements_than_the_buffer_holds_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(in_step, "DEFAULT_CAPACITY", 2)
    x, y = data()

    def batches():  # no length: fit does not know the steps per epoch
        for start in range(0, EXAMPLES, BATCH):
            yield x[start:start + BATCH], y[start:start + BATCH]

    callback = RWCCallback(log_dir=str(tmp_path), update_freq=1, verbose=0)
    with pytest.raises(Exception, match="holds 2 measurements per epoch"):
        model_with_fixed_weights().fit(batches(), epochs=1, verbose=0, callbacks=[callback])


def test_append_continues_an_existing_csv(tmp_path):
    fit(tmp_path, epochs=1)
    with pytest.raises(FileExistsError, match="append=True"):
        fit(tmp_path, epochs=1)
    callback, _ = fit(tmp_path, epochs=1, append=True)
    frame = pd.read_csv(os.path.join(callback.log_dir, spec.RWC_CSV))
    assert len(frame) == 2 * len(callback.tracked_variables)


@pytest.mark.skipif(BACKEND != "jax",
                    reason=f"keras.distribution runs on JAX only, not on {BACKEND}")
def test_under_data_parallel_on_two_devices(tmp_path):
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == CPU_DEVICES
    callback, recorder = fit(tmp_path / "run", update_freq=2, metrics=spec.METRICS,
                             distribution=keras.distribution.DataParallel(devices=devices))
    for variable in callback.tracked_variables:
        assert len(variable.value.sharding.device_set) == CPU_DEVICES
    check_against_recomputation(callback, recorder)


def test_zero_weights_are_left_out_and_an_all_zero_kernel_gives_nan(tmp_path):
    model = model_with_fixed_weights()
    kernel, bias, head, head_bias = model.get_weights()
    kernel.flat[:5] = 0  # some zeros: left out of rwc, counted in zeros
    model.set_weights([kernel, bias, np.zeros_like(head), head_bias])
    callback = RWCCallback(log_dir=str(tmp_path), verbose=0)
    recorder = WeightRecorder()
    x, y = data()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[recorder, callback])
    frame = check_against_recomputation(callback, recorder).set_index("layer")
    assert frame.loc["conv/kernel", "zeros"] == 5
    assert np.isnan(frame.loc["head/kernel", "rwc"])
    assert frame.loc["head/kernel", "zeros"] == frame.loc["head/kernel", "size"]


@pytest.mark.skipif(BACKEND == "tensorflow", reason="ResumeCallback runs on TensorFlow")
def test_resume_state_is_refused_off_tensorflow(tmp_path):
    callback, _ = fit(tmp_path, epochs=1)
    with pytest.raises(ValueError, match=f"TensorFlow backend only, not {BACKEND}"):
        callback.checkpoint_state()
