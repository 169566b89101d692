"""The report's layer clusters and settling points on synthetic experiments whose clusters and
settling points are known by construction."""

import os
import subprocess
import sys
import types

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest

from rwc_keras import spec
from rwc_keras.analysis import dynamics
from rwc_keras.report import figures, layer_dynamics, load_experiment, write
from rwc_keras.report.layer_dynamics import ClusterOptions

from ..helpers import ROOT

SEEDS = (0, 42, 123)
EPOCHS = np.arange(1, 21)
# rwc_norm's shapes per group: the groups are the clusters. early settles first, then later
# (a rise and fall), then middle (a slow decay); head stays flat and never settles.
SHAPES = {
    "early": np.exp(-EPOCHS / 1.5),
    "middle": np.exp(-EPOCHS / 5.5),
    "later": EPOCHS ** 2 * np.exp(-EPOCHS / 1.5),
    "head": np.ones(len(EPOCHS)),
}
# rwc's shapes are the layers' parity instead: two clusters across the groups.
PARITY_SHAPES = (np.exp(-EPOCHS / 2), np.ones(len(EPOCHS)))
LAYERS_PER_GROUP = 3


def write_experiment(root, epochs=EPOCHS, spike=None):
    """An AlexNet/CIFAR-10 experiment folder: every group's layers follow its shape (rwc_norm)
    or their parity's (rwc), each at its own scale (0.01 to 10), with 3% noise per seed.

    Args:
        spike: optional ``(layer, epoch, factor)``: that rwc_norm value times the factor.

    Returns:
        The folder, and the rwc_norm values as an array [seed, layer, point].
    """
    rng = np.random.default_rng(0)
    layers = [(f"{group}_conv{i + 1}/kernel", group)
              for group in SHAPES for i in range(LAYERS_PER_GROUP)]
    points = len(epochs)
    scales = 10 ** rng.uniform(-2, 1, size=(1, len(layers), 1))
    noise = rng.uniform(0.97, 1.03, size=(2, len(SEEDS), len(layers), points))
    rwc_norm = scales * np.stack([SHAPES[g][:points] for _, g in layers]) * noise[0]
    rwc = scales * np.stack([PARITY_SHAPES[i % 2][:points] for i in range(len(layers))]) * noise[1]
    if spike is not None:
        layer, epoch, factor = spike
        rwc_norm[:, [name for name, _ in layers].index(layer), epoch - 1] *= factor
    experiment_dir = root / spec.experiment_folder("alexnet", "cifar10")
    for s, seed in enumerate(SEEDS):
        run_dir = experiment_dir / spec.SEED_FOLDER.format(seed=seed)
        run_dir.mkdir(parents=True)
        rows = [dict(epoch=epoch, step=100 * epoch, layer=name, group=group,
                     rwc=rwc[s, l, p], rwc_norm=rwc_norm[s, l, p], zeros=0, size=100)
                for p, epoch in enumerate(epochs) for l, (name, group) in enumerate(layers)]
        pd.DataFrame(rows, columns=spec.RWC_COLUMNS).to_csv(run_dir / spec.RWC_CSV, index=False)
    return str(experiment_dir), rwc_norm


def members(group):
    return [f"{group}_conv{i + 1}/kernel" for i in range(LAYERS_PER_GROUP)]


def reference_settling(curve):
    """The 1-based index of the first point from which the smoothed curve stays below the
    threshold of its peak, or None; a plain loop."""
    smoothed = []
    for value in curve:
        smoothed.append(value if not smoothed else
                        (1 - dynamics.SMOOTHING) * value + dynamics.SMOOTHING * smoothed[-1])
    limit = dynamics.SETTLING_THRESHOLD * max(smoothed)
    for index in range(len(smoothed)):
        if all(value < limit for value in smoothed[index:]):
            return index + 1
    return None


@pytest.fixture
def known(tmp_path):
    experiment_dir, rwc_norm = write_experiment(tmp_path)
    return load_experiment(experiment_dir), rwc_norm


def report_text(experiment, clusters=None):
    written = write.write_report(experiment, {experiment.key: experiment}, 0.1, clusters)
    with open(written[0]) as f:
        return f.read(), [os.path.basename(path) for path in written]


# -- clusters --------------------------------------------------------------------------------


def test_the_groups_are_found_as_clusters_with_k_chosen(known):
    experiment, _ = known
    clusters = layer_dynamics.cluster_experiment(experiment)
    clustering = clusters.clustering
    assert clusters.problem == "" and clustering.chosen and clustering.k == len(SHAPES)
    assert clusters.adjusted_rand == 1.0
    assert clustering.labels.to_dict() == {
        layer: cluster for cluster, group in enumerate(SHAPES) for layer in members(group)}
    assert layer_dynamics.cluster_summary(clusters) == (
        "layer clusters (rwc_norm): K = 4 (best silhouette), adjusted Rand index against the "
        "groups 1.00")


def test_report_lists_the_clusters_and_their_figures(known):
    experiment, _ = known
    text, written = report_text(experiment)
    section = text[text.index("## Layer clusters"):text.index("## Settling points")]
    assert "`rwc_norm` curves" in section and "unit L2 norm" in section
    assert "K = 4: the best silhouette score of K = 2 to 8 (2: " in section
    assert "| cluster | layers | members | groups |" in section
    for cluster, group in enumerate(SHAPES):
        row = f"| {cluster} | 3 | {', '.join(members(group))} | {group} x3 |"
        assert row in section
    assert "adjusted Rand index 1.00" in section
    for name in (spec.CLUSTERS_PNG, spec.CLUSTERS_PCA_PNG, spec.CLUSTERS_K_PNG):
        assert name in written and f"]({name})" in section
        assert os.path.getsize(os.path.join(experiment.path, name)) > 10_000


def test_cluster_figures_colour_name_and_score_the_layers(known):
    experiment, _ = known
    clusters = layer_dynamics.cluster_experiment(experiment)
    (_, curves_name, curves), (_, _, pca), (_, _, k_choice) = write.cluster_figures(
        experiment, clusters)
    assert curves_name == spec.CLUSTERS_PNG
    assert "AlexNet on CIFAR-10" in curves.get_suptitle() and "rwc_norm" in curves.get_suptitle()
    measured, clustered = curves.axes
    drawn = [line for line in measured.lines if line.get_xdata().size]
    assert len(drawn) == len(clusters.clustering.labels)
    for line, cluster in zip(drawn, clusters.clustering.labels):
        assert matplotlib.colors.same_color(line.get_color(), f"C{cluster}")
    assert measured.get_yscale() == "log"  # the scales span 0.01 to 10
    (ax,) = pca.axes
    assert sorted(text.get_text() for text in ax.texts) == sorted(clusters.curves.columns)
    silhouette, _ = k_choice.axes
    assert "K = 4 (best silhouette)" in silhouette.get_legend_handles_labels()[1]


def test_clusters_by_the_chosen_metric(known):
    experiment, _ = known
    clusters = layer_dynamics.cluster_experiment(experiment, ClusterOptions(metric="rwc"))
    assert clusters.clustering.k == 2
    assert clusters.clustering.labels.tolist() == [i % 2 for i in range(12)]
    assert clusters.adjusted_rand < 0.1
    text, _ = report_text(experiment, clusters)
    assert "seed-mean `rwc` curves" in text and "rather than `rwc`" not in text


def test_the_authors_rules(tmp_path):
    spiked = ("head_conv2/kernel", 15, 10.0)
    experiment = load_experiment(write_experiment(tmp_path, spike=spiked)[0])
    # The spike makes its layer a cluster of its own, unless the outlier rule is on.
    plain = layer_dynamics.cluster_experiment(experiment)
    assert plain.clustering.k == 5 and plain.adjusted_rand < 1.0
    authors = layer_dynamics.cluster_experiment(experiment, ClusterOptions(authors_outliers=True))
    assert authors.clustering.k == 4 and authors.adjusted_rand == 1.0
    both = layer_dynamics.cluster_experiment(
        experiment, ClusterOptions(k=4, authors_outliers=True, drop_ends=True))
    assert both.clustering.dropped == ["early_conv1/kernel", "head_conv3/kernel"]
    text, _ = report_text(experiment, both)
    assert "The authors' outlier rule: values further than 2 std" in text
    assert "Left out: early_conv1/kernel, head_conv3/kernel." in text
    assert "K = 4, as given (silhouette scores 2: " in text
    assert "| 0 | 2 | early_conv2/kernel, early_conv3/kernel | early x2 |" in text


def test_one_measurement_has_no_clusters_and_no_settling(tmp_path):
    experiment = load_experiment(write_experiment(tmp_path, epochs=EPOCHS[:1])[0])
    text, written = report_text(experiment)
    assert ("No clusters: clustering needs at least 2 measurements and 3 layers; got 1 "
            "measurement(s) of 12 layer(s).") in text
    assert not set(written) & {spec.CLUSTERS_PNG, spec.CLUSTERS_PCA_PNG, spec.CLUSTERS_K_PNG}
    assert "No group settles by epoch 1." in text
    assert text.count("| never |") == 12


# -- settling --------------------------------------------------------------------------------


def test_settling_points_match_a_plain_loop(known):
    experiment, rwc_norm = known
    settling = layer_dynamics.settle_experiment(experiment)
    seed_mean = rwc_norm.mean(axis=0)
    for index, (layer, group) in enumerate(experiment.layers):
        want = reference_settling(seed_mean[index])
        assert settling.loc[layer, "group"] == group
        if want is None:
            assert not settling.loc[layer, "settled"]
        else:
            assert settling.loc[layer, "settled_at"] == want
    # As constructed: early, then later, then middle; head never.
    when = layer_dynamics.group_settling(experiment, settling)
    assert when["early"] < when["later"] < when["middle"] and when["head"] == np.inf


def test_report_orders_layers_by_settling_and_states_the_groups_order(known):
    experiment, rwc_norm = known
    text, _ = report_text(experiment)
    section = text[text.index("## Settling points"):text.index("## Figures")]
    at = {group: reference_settling(rwc_norm.mean(axis=0)[index * 3])
          for index, group in enumerate(SHAPES)}
    assert (f"Groups settle (half of their layers) in the order early (epoch {at['early']}), "
            f"then later (epoch {at['later']}), then middle (epoch {at['middle']}); not by "
            "epoch 20: head.") in section
    assert "| layer | group | settles at (epoch) | peak (smoothed) | peak at (epoch) |" in section
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ")][2:]
    assert [row[0].lstrip("| ") for row in rows] == [
        layer for group in ("early", "later", "middle", "head") for layer in members(group)]
    assert [row[2] for row in rows] == [
        str(at[g]) if at[g] else "never" for g in ("early", "later", "middle", "head")
        for _ in range(3)]
    assert "Markers on the curves of [rwc_norm_layers.png](rwc_norm_layers.png)" in section


def test_a_group_settles_when_half_of_its_layers_have():
    settling = pd.DataFrame({
        "settled_at": [5.0, np.nan, 3.0, np.nan, np.nan, 7.0],
        "group": ["two", "two", "three", "three", "three", "one"],
    }, index=list("abcdef"))
    experiment = types.SimpleNamespace(groups=["one", "two", "three", "none"])
    when = layer_dynamics.group_settling(experiment, settling)
    assert when.to_dict() == {"one": 7.0, "two": 5.0, "three": np.inf}


def test_settling_markers_on_the_rwc_norm_figure(known):
    experiment, _ = known
    settling = layer_dynamics.settle_experiment(experiment)
    (ax,) = figures.rwc_figure(experiment, "rwc_norm", settling).axes
    markers = [line for line in ax.lines if line.get_marker() == "o" and line.get_xdata().size]
    # The panel shows early, middle and later, whose layers all settle; head is not drawn.
    drawn = [layer for layer, group in experiment.layers if group != "head"]
    assert len(markers) == len(drawn)
    table = experiment.aggregated
    for marker, layer in zip(markers, drawn):
        (x,), (y,) = marker.get_xdata(), marker.get_ydata()
        assert x == settling.loc[layer, "settled_at"]
        rows = table[(table.level == "layer") & (table.metric == "rwc_norm") &
                     (table.name == layer) & (table.epoch == x)]
        assert y == rows["mean"].item()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "early", "middle", "later", "settles"]
    plain = figures.rwc_figure(experiment, "rwc_norm").axes[0]
    assert not [line for line in plain.lines if line.get_marker() == "o"]


# -- the command line ------------------------------------------------------------------------


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rwc_keras.report", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_cluster_options(tmp_path):
    experiment_dir, _ = write_experiment(tmp_path)
    result = run_cli("--cluster=4", "--authors_outliers", "--drop_ends",
                     "--cluster_metric=rwc_norm", experiment_dir)
    assert result.returncode == 0, result.stderr
    assert "layer clusters (rwc_norm): K = 4 (given), adjusted Rand index" in result.stdout
    assert "Groups settle (half of their layers) in the order early" in result.stdout
    with open(os.path.join(experiment_dir, spec.REPORT_MD)) as f:
        assert "Left out: early_conv1/kernel, head_conv3/kernel." in f.read()


@pytest.mark.parametrize("flag, message", [
    ("--cluster=1", "flag --cluster=1: "),
    ("--cluster=three", "flag --cluster=three: "),
    ("--cluster_metric=rotation", "flag --cluster_metric=rotation: value should be one of"),
])
@pytest.mark.slow
def test_cli_rejects_bad_cluster_flags_before_any_work(tmp_path, flag, message):
    experiment_dir, _ = write_experiment(tmp_path, epochs=EPOCHS[:2])
    result = run_cli(flag, experiment_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert not os.path.exists(os.path.join(experiment_dir, spec.REPORT_MD))


@pytest.mark.slow
def test_cli_k_an_experiment_cannot_have_is_one_line_and_exit_1(tmp_path):
    many = write_experiment(tmp_path / "many")[0]
    one = write_experiment(tmp_path / "one", epochs=EPOCHS[:1])[0]
    result = run_cli("--cluster=12", many, one)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"rwc_keras.report: {many}: --cluster=12: cannot make 12 clusters of 12 layers; "
        "choose K from 2 to 11",
        f"rwc_keras.report: {one}: --cluster=12: clustering needs at least 2 measurements and "
        "3 layers; got 1 measurement(s) of 12 layer(s)",
    ]
    # Both reports are still written, saying why they have no clusters.
    for experiment_dir in (many, one):
        with open(os.path.join(experiment_dir, spec.REPORT_MD)) as f:
            assert "No clusters: " in f.read()
