"""The training driver end to end, as a user runs it: `python -m rwc_keras.main` subprocesses."""

import json
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from rwc_keras import spec
from rwc_keras.callbacks.layout import read_layout

from ..helpers import driver
from ..keras_helpers import read_events

TRACKED = {"resnet18": 21, "vgg19bn": 17, "alexnet": 8}
REPORT_FILES = {spec.REPORT_MD, spec.AGGREGATED_CSV, spec.ACCURACY_PNG,
                *(spec.LAYERS_PNG.format(metric=metric) for metric in spec.RWC_METRICS)}


def tiny_run(mnist_dir, logdir, arch="alexnet", *extra):
    return driver(f"--arch={arch}", "--dataset=mnist", f"--data_dir={mnist_dir}", "--epochs=1",
                  "--seeds=3", "--batch_size=16", "--max_train_examples=32",
                  "--max_test_examples=16", f"--logdir={logdir}", *extra)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["alexnet", "resnet18", "vgg19bn"])
def test_each_arch_trains_and_writes_its_files(arch, mnist_dir, tmp_path):
    result = tiny_run(mnist_dir, tmp_path, arch)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / f"{arch}_mnist" / "seed_3"
    # .lock stays: deleting a lock file races with a process about to take it
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("events")) == [
        ".lock", "flags.cfg", "history.csv", "metrics.json", "rwc.csv"]
    rwc = pd.read_csv(run_dir / "rwc.csv")
    assert len(rwc) == TRACKED[arch] and (rwc["epoch"] == 1).all() and (rwc["step"] == 2).all()
    assert rwc["group"].notna().all() and rwc["rwc"].gt(0).all()
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [1]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["arch"] == arch and metrics["seed"] == 3 and metrics["epochs"] == 1
    assert 0 <= metrics["test_top1"] <= metrics["test_top5"] <= 1
    assert metrics["images_per_second"] > 0
    tags = set(read_events(str(run_dir)))
    for split in ("train", "test"):
        assert {f"{split}/loss", f"{split}/top1", f"{split}/top5"} <= tags
    assert any(tag.startswith("rwc/") for tag in tags)
    assert read_layout(str(run_dir)).category
    assert str(run_dir / "rwc.csv") in result.stdout
    # The experiment's report, after its last seed.
    experiment_dir = tmp_path / f"{arch}_mnist"
    assert {p.name for p in experiment_dir.iterdir()} == {"seed_3", *REPORT_FILES}
    assert f"report on seeds 3: {experiment_dir / 'report.md'}" in result.stdout
    assert "| claim | window | seed means | verdict | per seed |" in (
        experiment_dir / "report.md").read_text()


@pytest.mark.slow
def test_flagfile_reruns_the_same_run(mnist_dir, tmp_path):
    first = tiny_run(mnist_dir, tmp_path / "a")
    assert first.returncode == 0, first.stderr[-3000:]
    flagfile = tmp_path / "a" / "alexnet_mnist" / "seed_3" / "flags.cfg"
    text = flagfile.read_text()
    assert "--lr=0.1" in text and "--weight_decay=0.0001" in text and "--seeds=3" in text
    again = driver(f"--flagfile={flagfile}", f"--logdir={tmp_path / 'b'}", "--noreport")
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.name for p in (tmp_path / "b" / "alexnet_mnist").iterdir()] == ["seed_3"]
    assert "report on" not in again.stdout
    a = pd.read_csv(tmp_path / "a" / "alexnet_mnist" / "seed_3" / "rwc.csv")
    b = pd.read_csv(tmp_path / "b" / "alexnet_mnist" / "seed_3" / "rwc.csv")
    pd.testing.assert_frame_equal(a[["epoch", "step", "layer", "group"]],
                                  b[["epoch", "step", "layer", "group"]])
    pd.testing.assert_series_equal(a["rwc"], b["rwc"], rtol=1e-4)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(mnist_dir, tmp_path):
    result = tiny_run(mnist_dir, tmp_path, "alexnet", "--strategy=mirrored", "--cpu_devices=2")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "alexnet_mnist" / "seed_3"
    assert json.loads((run_dir / "metrics.json").read_text())["replicas"] == 2
    assert len(pd.read_csv(run_dir / "rwc.csv")) == TRACKED["alexnet"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_on_loopback_chief_alone_writes(mnist_dir, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        args = [sys.executable, "-m", "rwc_keras.main", "--arch=alexnet", "--dataset=mnist",
                f"--data_dir={mnist_dir}", "--epochs=1", "--seeds=3", "--batch_size=16",
                "--max_train_examples=32", "--max_test_examples=16",
                f"--logdir={tmp_path / f'worker{index}'}", "--strategy=multi_worker"]
        env = dict(os.environ, TF_CONFIG=tf_config)
        workers.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True))
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    chief_dir = tmp_path / "worker0" / "alexnet_mnist" / "seed_3"
    metrics = json.loads((chief_dir / "metrics.json").read_text())
    assert metrics["replicas"] == 2
    assert len(pd.read_csv(chief_dir / "rwc.csv")) == TRACKED["alexnet"]
    assert (chief_dir.parent / "report.md").exists()
    assert not (tmp_path / "worker1").exists()
    assert "report on" in outputs[0] and "report on" not in outputs[1]


@pytest.mark.parametrize("flag,words", [
    ("--arch=lenet", ["lenet", "resnet18"]),
    ("--dataset=imagenet", ["imagenet", "cifar10"]),
    ("--strategy=tpu", ["tpu", "multi_worker"]),
    ("--lr=-0.1", ["lr", "-0.1"]),
    ("--lr=0", ["lr", "positive"]),
    ("--momentum=1.5", ["momentum", "1.5"]),
    ("--weight_decay=-1", ["weight_decay", "-1"]),
    ("--epochs=0", ["epochs", "0"]),
    ("--batch_size=-4", ["batch_size", "-4"]),
    ("--seeds=1,x", ["seeds", "integers"]),
    ("--rwc_every=0", ["rwc_every", "epoch"]),
    ("--rwc_every=sometimes", ["rwc_every", "epoch"]),
    ("--jit_compile --deterministic", ["--jit_compile", "--deterministic"]),
    ("--rwc_metrics=rwc,spin", ["rwc_metrics", "spin", "rotation"]),
])
def test_bad_flag_fails_fast_with_one_message(flag, words, tmp_path):
    args = ["--arch=alexnet", f"--logdir={tmp_path / 'runs'}", *flag.split()]
    start = time.monotonic()
    result = driver(*args)
    assert time.monotonic() - start < 30
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    message = [line for line in result.stderr.splitlines() if "rror" in line]
    assert len(message) == 1, result.stderr
    for word in words:
        assert word in message[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_batch_not_divisible_by_replicas_fails_before_training(mnist_dir, tmp_path):
    result = tiny_run(mnist_dir, tmp_path, "alexnet", "--strategy=mirrored", "--cpu_devices=2",
                      "--batch_size=15")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--batch_size=15" in result.stderr and "2 replicas" in result.stderr
    assert not (tmp_path / "alexnet_mnist").exists()


@pytest.mark.slow
def test_dataset_without_source_fails_in_seconds(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    start = time.monotonic()
    result = driver("--arch=alexnet", "--dataset=cifar10", f"--data_dir={empty}",
                    f"--logdir={tmp_path / 'runs'}", "--seeds=0")
    assert time.monotonic() - start < 60  # TensorFlow's import included; no network wait
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cifar10" in result.stderr and str(empty) in result.stderr


@pytest.mark.slow
def test_existing_run_is_never_overwritten(mnist_dir, tmp_path):
    assert tiny_run(mnist_dir, tmp_path).returncode == 0
    csv_path = tmp_path / "alexnet_mnist" / "seed_3" / "rwc.csv"
    before = csv_path.read_text()
    again = tiny_run(mnist_dir, tmp_path)
    assert again.returncode == 0 and "complete already" in again.stdout
    assert csv_path.read_text() == before


@pytest.mark.slow
def test_driver_and_benchmark_import_together():
    # Their flags are defined only when each runs as a program, so both modules import.
    code = "import rwc_keras.main, rwc_keras.benchmarks.bench, rwc_keras.report.__main__"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_a_bug_shows_its_traceback(mnist_dir, tmp_path):
    # Only the driver's own error types become one line. A ValueError from a model builder
    # stands for a bug: its traceback must show.
    code = ("import sys; from absl import app; from rwc_keras import main\n"
            "from rwc_keras.experiment import flags, models\n"
            "def broken(*args, **kwargs): raise ValueError('a bug')\n"
            "models.alexnet = broken; flags.define_flags()\n"
            f"sys.argv = ['main', '--arch=alexnet', '--dataset=mnist', '--data_dir={mnist_dir}', "
            f"'--logdir={tmp_path}', '--seeds=3', '--batch_size=16']\n"
            "app.run(main.main)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ValueError: a bug" in result.stderr


@pytest.mark.slow
def test_a_report_failure_says_the_runs_are_complete(mnist_dir, tmp_path):
    # Another seed's unreadable rwc.csv in the experiment folder stops the report, not the run.
    broken = tmp_path / "alexnet_mnist" / "seed_9"
    broken.mkdir(parents=True)
    (broken / "rwc.csv").write_text("epoch,layer\n1,a\n")
    result = tiny_run(mnist_dir, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (tmp_path / "alexnet_mnist" / "seed_3" / "metrics.json").exists()
    line = [line for line in result.stderr.splitlines() if line.startswith("rwc_keras.main:")]
    assert line == [f"rwc_keras.main: error: the runs are complete, but the report failed: "
                    f"{broken / 'rwc.csv'}: missing columns: step, group, rwc, rwc_norm "
                    "(retry with python -m rwc_keras.report)"]


@pytest.mark.slow
def test_rwc_metrics_reach_the_csv_the_events_and_the_report(mnist_dir, tmp_path):
    result = tiny_run(mnist_dir, tmp_path, "alexnet", "--rwc_metrics=rotation,update_ratio")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "alexnet_mnist" / "seed_3"
    rwc = pd.read_csv(run_dir / spec.RWC_CSV)
    assert list(rwc.columns) == list(spec.rwc_columns(
        ("rwc", "rwc_norm", "update_ratio", "rotation")))
    assert rwc["rotation"].gt(0).all() and rwc["update_ratio"].gt(0).all()
    assert any(tag.startswith("rotation/") for tag in set(read_events(str(run_dir))))
    assert "--rwc_metrics=rotation,update_ratio" in (run_dir / spec.FLAGS_CFG).read_text()
    assert (tmp_path / "alexnet_mnist" / spec.LAYERS_PNG.format(metric="rotation")).exists()
