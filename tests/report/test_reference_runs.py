"""The committed experiments (runs/reference, runs/previous_protocol, runs/freezing,
runs/freezing_v1) read back as committed.

Today's report code recomputes every committed experiment's statistics and claims tables and
finds them in the committed rwc_aggregated.csv and report.md; the freezing report's tables
come out of its runs as committed.
"""

import json
import pathlib

import pandas as pd
import pytest

from rwc_keras import spec
from rwc_keras.freezing import schema
from rwc_keras.report import freezing as freezing_report
from rwc_keras.report import layer_dynamics, load_experiment, verdicts, write

from ..helpers import ROOT

RUNS = pathlib.Path(ROOT) / "runs"
EXPERIMENT_DIRS = sorted(path for folder in ("reference", "previous_protocol")
                         for path in (RUNS / folder).glob("*_*") if path.is_dir())


def test_the_committed_experiments_are_there():
    names = [f"{path.parent.name}/{path.name}" for path in EXPERIMENT_DIRS]
    assert {"reference/alexnet_fashion_mnist", "reference/resnet18_fashion_mnist",
            "reference/vgg19bn_fashion_mnist", "previous_protocol/alexnet_fashion_mnist",
            "previous_protocol/resnet18_fashion_mnist"} <= set(names)


@pytest.mark.parametrize("experiment_dir", EXPERIMENT_DIRS,
                         ids=lambda path: f"{path.parent.name}/{path.name}")
def test_committed_experiment_reads_back_as_committed(experiment_dir):
    experiment = load_experiment(str(experiment_dir))
    for run_dir in experiment_dir.glob(spec.SEED_GLOB):
        metrics = json.loads((run_dir / spec.METRICS_JSON).read_text())
        assert (metrics["arch"], metrics["dataset"]) == experiment.key
        assert (run_dir / spec.FLAGS_CFG).exists()
        assert list(run_dir.glob(spec.EVENTS_GLOB))
    committed = pd.read_csv(experiment_dir / spec.AGGREGATED_CSV, keep_default_na=False,
                            na_values=[""])
    recomputed = experiment.aggregated.reset_index(drop=True)
    assert list(committed.columns) == list(recomputed.columns)
    for column in ("mean", "std", "min", "max"):
        pd.testing.assert_series_equal(recomputed[column], committed[column], rtol=1e-9,
                                       check_dtype=False)
    # The claims, judged by today's code, read as the committed report says.
    committed_report = (experiment_dir / spec.REPORT_MD).read_text()
    experiments = {experiment.key: experiment}
    for metric in spec.RWC_METRICS:
        table = write.claims_table(verdicts.judge_all(experiment, experiments, metric, 0.10))
        assert table in committed_report
    # So do the layer clusters (K-means with a fixed seed) and the settling points.
    clusters = layer_dynamics.cluster_experiment(experiment)
    assert write.clusters_section(experiment, clusters) in committed_report
    settling = layer_dynamics.settle_experiment(experiment)
    assert write.settling_section(experiment, settling, spec.LAYERS_PNG.format(
        metric=layer_dynamics.SETTLING_METRIC)) in committed_report
    pictures = [spec.LAYERS_PNG.format(metric=m) for m in spec.RWC_METRICS]
    for picture in (*pictures, spec.ACCURACY_PNG, spec.CLUSTERS_PNG, spec.CLUSTERS_PCA_PNG,
                    spec.CLUSTERS_K_PNG):
        assert (experiment_dir / picture).stat().st_size > 10_000


def _check_freezing_experiment(folder, expected, modes):
    """``folder``'s runs are ``expected`` ({experiment: (seeds, epochs)}) in at least ``modes``,
    and its report is today's report code's."""
    experiments = freezing_report.load_runs(str(folder))
    assert set(experiments) == set(expected)
    for name, (seeds, epochs) in expected.items():
        assert set(modes) <= set(experiments[name])
        for mode, runs in experiments[name].items():
            assert all(run.seed in seeds for run in runs), (name, mode)
            assert all(len(run.history) == epochs for run in runs), (name, mode)
            assert all(list(pathlib.Path(run.path).glob(spec.EVENTS_GLOB)) for run in runs)
        for mode in modes:
            assert sorted(run.seed for run in experiments[name][mode]) == seeds, (name, mode)
    committed = (folder / schema.FREEZING_REPORT_MD).read_text()
    assert committed == freezing_report.markdown(experiments)
    assert (folder / schema.FREEZING_PNG).stat().st_size > 10_000
    return experiments


def test_the_rule_v1_freezing_experiment_is_complete_and_reads_back_as_committed():
    """The first side-by-side experiment of docs/freezing.md: AlexNet seeds 0, 42, 123 for 6
    epochs and ResNet-18 seed 0 for 4 epochs on 10,000 images (the RWC rule then was rule v1)."""
    _check_freezing_experiment(
        RUNS / "freezing_v1",
        {"alexnet_fashion_mnist": ([0, 42, 123], 6), "resnet18_fashion_mnist": ([0], 4)},
        ["none", "rwc v1", "freezeout"])


def test_the_held_out_freezing_experiment_reads_back_as_committed():
    """Rule v2 on the held-out seeds (docs/freezing.md): AlexNet for 10 epochs on seeds 1, 2
    and 4 in none, rwc, freezeout and none with the cosine schedule, seed 1 also with the
    linear schedule, seed 3 (whose none run did not train) in none and rwc; ResNet-18 seed 1
    for 6 epochs on 10,000 images in none, rwc and freezeout."""
    experiments = _check_freezing_experiment(
        RUNS / "freezing",
        {"alexnet_fashion_mnist": ([1, 2, 3, 4], 10), "resnet18_fashion_mnist": ([1], 6)},
        ["none", "rwc"])
    assert [run.seed for run in experiments["resnet18_fashion_mnist"]["freezeout"]] == [1]
    alexnet = experiments["alexnet_fashion_mnist"]
    assert sorted(run.seed for run in alexnet["freezeout"]) == [1, 2, 4]
    assert [run.seed for run in alexnet["linear"]] == [1]
    assert sorted(run.seed for run in alexnet["none (lr_schedule=cosine)"]) == [1, 2, 4]
    # Seed 3 is left out of AlexNet's figures, and only it.
    modes, left_out = freezing_report.split_untrained("alexnet_fashion_mnist", alexnet)
    assert list(left_out) == [3]
    assert sorted(run.seed for run in modes["none"]) == [1, 2, 4]
