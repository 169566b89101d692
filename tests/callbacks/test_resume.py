"""ResumeCallback: exact resume of a user's own model.fit (SIGKILL included), its rules."""

import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from rwc_keras import ResumeCallback, RWCCallback

from ..keras_helpers import StopAt, checkpoint_epoch, data, event_steps, functional


def script(log_dir, update_freq):
    return [sys.executable, "-m", "tests.fit_script", str(log_dir), str(update_freq)]


def run_to_end(args):
    result = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """update_freq -> the log_dir of a run of the script that nothing interrupted."""
    folders = {}
    for update_freq in ("epoch", "3"):
        folders[update_freq] = tmp_path_factory.mktemp(f"uninterrupted_{update_freq}")
        run_to_end(script(folders[update_freq], update_freq))
    return folders


def assert_same_record(resumed_dir, uninterrupted_dir):
    resumed = pd.read_csv(resumed_dir / "rwc.csv")
    expected = pd.read_csv(uninterrupted_dir / "rwc.csv")
    assert not resumed.duplicated(["step", "layer"]).any()
    pd.testing.assert_frame_equal(resumed[["epoch", "step", "layer"]],
                                  expected[["epoch", "step", "layer"]])
    for column in ("rwc", "rwc_norm"):
        pd.testing.assert_series_equal(resumed[column], expected[column], rtol=1e-6, atol=0)
    assert event_steps(str(resumed_dir)) == event_steps(str(uninterrupted_dir))


@pytest.mark.slow
@pytest.mark.parametrize("update_freq,kill_after_epochs", [("epoch", 2), ("3", 1)])
def test_sigkill_of_a_model_fit_script_then_rerun_resumes_exactly(
        update_freq, kill_after_epochs, uninterrupted, tmp_path, kill_delay):
    args = script(tmp_path, update_freq)
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while (checkpoint_epoch(os.path.join(tmp_path, "backup")) or 0) < kill_after_epochs:
        assert time.monotonic() < deadline and process.poll() is None, "no checkpoint"
        time.sleep(0.02)
    time.sleep(kill_delay(0.3))  # somewhere inside the next epoch (0.4 s long)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert tf.io.gfile.exists(str(tmp_path / "backup")), "the run ended before the kill"

    result = run_to_end(args)
    assert "ResumeCallback: resuming after epoch" in result.stdout
    assert_same_record(tmp_path, uninterrupted[update_freq])
    assert not (tmp_path / "backup").exists()


def fit(model, log_dir, *extra, epochs=4):
    rwc = RWCCallback(str(log_dir), update_freq=3, verbose=0)
    resume = ResumeCallback(str(log_dir / "backup"), callbacks=[rwc], verbose=0)
    model.fit(*data(32), batch_size=8, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[rwc, resume, *extra])
    return resume


def new_model():
    keras.utils.set_random_seed(0)
    model = functional()
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_a_new_fit_after_a_crash_continues_in_the_same_process(tmp_path):
    fit(new_model(), tmp_path / "whole")
    model = new_model()
    # 4 steps per epoch: measured at step 9, after the checkpoint of step 8, then crashed.
    with pytest.raises(RuntimeError, match="stopped"):
        fit(model, tmp_path / "crashed", StopAt(2, batch=2))
    # Step 9's measurement was still in the step's buffer, to be written at the epoch's end.
    assert pd.read_csv(tmp_path / "crashed" / "rwc.csv")["step"].max() == 6
    # A fresh model, as in a new process: everything comes from the checkpoint.
    resume = fit(new_model(), tmp_path / "crashed")
    assert resume.restored_epoch == 2
    assert_same_record(tmp_path / "crashed", tmp_path / "whole")
    assert not (tmp_path / "crashed" / "backup").exists()


def test_listed_before_the_callbacks_it_saves_is_a_clear_error(tmp_path):
    model = new_model()
    rwc = RWCCallback(str(tmp_path), verbose=0)
    resume = ResumeCallback(str(tmp_path / "backup"), callbacks=[rwc])
    with pytest.raises(ValueError, match="list it before the ResumeCallback"):
        model.fit(*data(16), epochs=1, verbose=0, callbacks=[resume, rwc])
    assert not (tmp_path / "backup").exists()


def test_callbacks_without_state_methods_are_refused(tmp_path):
    with pytest.raises(TypeError, match="EarlyStopping cannot be resumed"):
        ResumeCallback(str(tmp_path), callbacks=[keras.callbacks.EarlyStopping()])
    with pytest.raises(ValueError, match="backup_dir"):
        ResumeCallback("")


def test_restores_model_optimizer_and_epoch(tmp_path):
    model = new_model()
    with pytest.raises(RuntimeError, match="stopped"):
        model.fit(*data(32), batch_size=8, epochs=3, verbose=0,
                  callbacks=[ResumeCallback(str(tmp_path)), StopAt(2)])
    saved = [v.numpy() for v in model.variables]
    other = new_model()
    other.optimizer.build(other.trainable_variables)
    seen = []
    history = other.fit(*data(32), batch_size=8, epochs=3, verbose=0, callbacks=[
        ResumeCallback(str(tmp_path)),
        keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(
            (epoch, int(other.optimizer.iterations.numpy()),
             [np.array_equal(a, v.numpy()) for a, v in zip(saved, other.variables)])))])
    assert len(history.history["loss"]) == 1
    assert seen == [(2, 8, [True] * len(saved))]
    assert other._initial_epoch is None  # a later fit() starts at its own initial_epoch
