"""Kills, resumes, determinism, divergence, bad input and concurrent runs of the driver."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from rwc_keras import spec

from ..helpers import driver, write_mnist_like
from ..keras_helpers import checkpoint_epoch, event_steps

TRACKED_ALEXNET = 8


def run_args(mnist_dir, logdir, *extra):
    # 16 steps per epoch; RWC every 3 steps, so measurements straddle epoch ends and the
    # snapshot at a kill is not simply the end-of-epoch weights.
    return [sys.executable, "-m", "rwc_keras.main", "--arch=alexnet", "--dataset=mnist",
            f"--data_dir={mnist_dir}", "--epochs=4", "--seeds=7", "--batch_size=16",
            "--max_test_examples=32", "--rwc_every=3", "--deterministic",
            f"--logdir={logdir}", *extra]


def run_dir(logdir):
    return os.path.join(logdir, "alexnet_mnist", "seed_7")


def complete_run(args):
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def uninterrupted_dir(mnist_dir, tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("uninterrupted"))
    complete_run(run_args(mnist_dir, logdir))
    return run_dir(logdir)


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_dir):
    return pd.read_csv(os.path.join(uninterrupted_dir, "rwc.csv"))


def one_line_error(result):
    """The driver's one error line (TensorFlow's own start-up log lines aside)."""
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines()
             if line.startswith("rwc_keras.main: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def wait_for(predicate, timeout=300):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_same_seed_deterministic_runs_are_identical(uninterrupted, mnist_dir, tmp_path):
    complete_run(run_args(mnist_dir, str(tmp_path)))
    again = pd.read_csv(os.path.join(run_dir(str(tmp_path)), "rwc.csv"))
    pd.testing.assert_frame_equal(uninterrupted, again, check_exact=True)


def measured_rows(folder):
    try:
        return len(pd.read_csv(os.path.join(folder, "rwc.csv")))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("kill_after_epochs", [0, 1, 2])
def test_sigkill_mid_epoch_then_rerun_resumes_exactly(kill_after_epochs, uninterrupted,
                                                      uninterrupted_dir, mnist_dir, tmp_path,
                                                      kill_delay):
    logdir = str(tmp_path)
    args = run_args(mnist_dir, logdir)
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_after_epochs:
        checkpoints = os.path.join(run_dir(logdir), spec.CHECKPOINT_DIR)
        wait_for(lambda: (checkpoint_epoch(checkpoints) or 0) >= kill_after_epochs)
    else:  # inside epoch 1, rows already written: only the train-begin checkpoint exists
        wait_for(lambda: measured_rows(run_dir(logdir)) > 0)
    time.sleep(kill_delay(0.4))  # somewhere inside the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not os.path.exists(os.path.join(run_dir(logdir), "metrics.json")), \
        "the run finished before it could be killed"

    result = complete_run(args)
    assert "resuming after epoch" in result.stdout
    resumed = pd.read_csv(os.path.join(run_dir(logdir), "rwc.csv"))
    assert not resumed.duplicated(["step", "layer"]).any()
    assert len(resumed) == len(uninterrupted)
    pd.testing.assert_frame_equal(resumed[["epoch", "step", "layer", "group"]],
                                  uninterrupted[["epoch", "step", "layer", "group"]])
    # Measured: identical to the last bit under --deterministic; 1e-6 is the promise.
    pd.testing.assert_series_equal(resumed["rwc"], uninterrupted["rwc"], rtol=1e-6, atol=0)
    pd.testing.assert_series_equal(resumed["rwc_norm"], uninterrupted["rwc_norm"], rtol=1e-6,
                                   atol=0)
    history = pd.read_csv(os.path.join(run_dir(logdir), "history.csv"))
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    # TensorBoard: every tag once per step, as in the uninterrupted run.
    assert event_steps(run_dir(logdir)) == event_steps(uninterrupted_dir)
    metrics = json.loads(open(os.path.join(run_dir(logdir), "metrics.json")).read())
    assert metrics["resumed_after_epoch"] >= kill_after_epochs
    assert not os.path.exists(os.path.join(run_dir(logdir), "checkpoint"))


@pytest.mark.slow
def test_rerunning_a_complete_run_does_nothing(uninterrupted, mnist_dir, tmp_path):
    args = run_args(mnist_dir, str(tmp_path))
    complete_run(args)
    csv_path = os.path.join(run_dir(str(tmp_path)), "rwc.csv")
    before = open(csv_path).read()
    result = complete_run(args)
    assert "complete already" in result.stdout
    assert open(csv_path).read() == before


@pytest.mark.slow
def test_other_flags_into_an_existing_run_are_refused(mnist_dir, tmp_path):
    complete_run(run_args(mnist_dir, str(tmp_path)))
    csv_path = os.path.join(run_dir(str(tmp_path)), "rwc.csv")
    before = open(csv_path).read()
    result = subprocess.run(run_args(mnist_dir, str(tmp_path), "--lr=0.5"), capture_output=True,
                            text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "other flags" in result.stderr
    assert open(csv_path).read() == before


@pytest.mark.slow
def test_two_runs_at_once_never_share_files(mnist_dir, tmp_path):
    logdir = str(tmp_path)
    args = run_args(mnist_dir, logdir)
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = os.path.join(run_dir(logdir), ".lock")
    wait_for(lambda: os.path.exists(lock) and open(lock).read().strip() == str(first.pid))
    second = subprocess.run(args, capture_output=True, text=True)
    assert first.wait(timeout=600) == 0
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert "being written by another process" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    frame = pd.read_csv(os.path.join(run_dir(logdir), "rwc.csv"))
    assert not frame.duplicated(["step", "layer"]).any()
    assert len(frame) == TRACKED_ALEXNET * (4 * 16 // 3)


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_message_and_valid_files(mnist_dir, tmp_path):
    result = subprocess.run(run_args(mnist_dir, str(tmp_path), "--lr=1e12"),
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = one_line_error(result)
    assert "training loss became" in line and "--lr" in line
    folder = run_dir(str(tmp_path))
    rwc = pd.read_csv(os.path.join(folder, "rwc.csv"))
    assert list(rwc.columns[:6]) == ["epoch", "step", "layer", "group", "rwc", "rwc_norm"]
    pd.read_csv(os.path.join(folder, "history.csv"))
    assert not os.path.exists(os.path.join(folder, "metrics.json"))


@pytest.mark.slow
def test_unwritable_logdir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    line = one_line_error(driver("--arch=alexnet", f"--logdir={blocker}/runs"))
    assert f"--logdir={blocker}/runs" in line and "cannot be created" in line


@pytest.mark.slow
@pytest.mark.parametrize("state", ["missing", "empty"])
def test_missing_or_empty_data_dir(state, tmp_path):
    data_dir = tmp_path / "data"
    if state == "empty":
        data_dir.mkdir()
    line = one_line_error(driver("--arch=alexnet", "--dataset=fashion_mnist",
                                 f"--data_dir={data_dir}", f"--logdir={tmp_path}/runs"))
    assert str(data_dir) in line and ("does not exist" if state == "missing" else "is empty") in line
    assert not (tmp_path / "runs" / "alexnet_fashion_mnist").exists()


@pytest.mark.slow
def test_truncated_idx_file(tmp_path):
    write_mnist_like(tmp_path, num_train=20, num_test=10)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-50])
    line = one_line_error(driver("--arch=alexnet", "--dataset=mnist", f"--data_dir={tmp_path}",
                                 f"--logdir={tmp_path}/runs", "--batch_size=4"))
    assert str(path) in line and "size mismatch" in line


@pytest.mark.slow
@pytest.mark.parametrize("tf_config", ["{not json", '{"cluster": {}}',
                                       '{"cluster": {"worker": ["127.0.0.1:1"]}, '
                                       '"task": {"type": "worker", "index": 3}}'])
def test_malformed_tf_config(tf_config, tmp_path):
    line = one_line_error(driver("--arch=alexnet", "--strategy=multi_worker",
                                 f"--logdir={tmp_path}/runs", env={"TF_CONFIG": tf_config}))
    assert "TF_CONFIG" in line and "expected JSON like" in line
