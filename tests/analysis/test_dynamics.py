import io

import numpy as np
import pandas as pd
import pytest

from rwc_keras.analysis import dynamics
from rwc_keras.report import dynamics_figures
from rwc_keras.analysis.dynamics import (DynamicsError, adjusted_rand, cluster_layers,
                                         cluster_table, layer_curves, layer_groups,
                                         replace_outliers, settling_points)

EPOCHS = np.arange(1, 31)
# Three shapes of curve: a fast decay, a slow decay, and a rise then fall.
FAMILIES = {
    "early": np.exp(-EPOCHS / 3),
    "middle": np.exp(-EPOCHS / 15),
    "later": EPOCHS * np.exp(-EPOCHS / 8),
}


# Shapes whose values all lie within 2 std of their mean, which the authors' outlier rule
# leaves alone.
SMOOTH_FAMILIES = {
    "early": 2 - EPOCHS / 30,
    "middle": 1 + EPOCHS / 30,
    "later": 1 + 0.3 * np.sin(2 * np.pi * EPOCHS / 30),
}


def family_curves(per_family=4, noise=0.01, seed=0, families=FAMILIES):
    """Layers of each family at scales 0.01 to 10, with 1% noise: the wide table and groups."""
    rng = np.random.default_rng(seed)
    columns, groups = {}, {}
    for group, shape in families.items():
        for index in range(per_family):
            name = f"{group}{index}/kernel"
            scale = 10 ** rng.uniform(-2, 1)
            columns[name] = scale * shape * (1 + noise * rng.normal(size=shape.shape))
            groups[name] = group
    curves = pd.DataFrame(columns, index=pd.Index(EPOCHS, name="epoch"))
    return curves, pd.Series(groups)


def long_table(curves, groups, x="epoch"):
    """The curves in the report's rwc_aggregated.csv format, plus a group row and another
    metric that must be ignored."""
    rows = []
    for name in curves.columns:
        for position, value in curves[name].items():
            row = dict(level="layer", name=name, group=groups[name], epoch=position,
                       metric="rwc", mean=value, std=0.0, n_seeds=1)
            if x == "step":
                row.update(epoch=1 + position // 10, step=position)
            rows.append(row)
            rows.append({**row, "metric": "rwc_norm", "mean": -value})
    rows.append(dict(level="group", name="early", group="early", epoch=1, metric="rwc",
                     mean=123.0, std=0.0, n_seeds=1))
    return pd.DataFrame(rows)


# -- curves ----------------------------------------------------------------------------------


@pytest.mark.parametrize("x", ["epoch", "step"])
def test_layer_curves_reads_the_report_table(x):
    curves, groups = family_curves(per_family=2)
    table = long_table(curves, groups, x)
    got = layer_curves(table, "rwc")
    assert got.index.name == x
    assert list(got.columns) == list(curves.columns)
    np.testing.assert_array_equal(got.to_numpy(), curves.to_numpy())
    assert layer_groups(table).to_dict() == groups.to_dict()


def test_layer_curves_names_the_metrics_it_has():
    curves, groups = family_curves(per_family=1)
    with pytest.raises(DynamicsError, match="'rotation'.*has: rwc, rwc_norm"):
        layer_curves(long_table(curves, groups), "rotation")


# -- clustering ------------------------------------------------------------------------------


def test_separated_families_are_found_with_k_chosen():
    curves, groups = family_curves()
    clustering = cluster_layers(curves)
    assert clustering.chosen and clustering.k == 3
    assert clustering.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert adjusted_rand(clustering.labels, groups) == 1.0
    assert list(clustering.scores.index) == list(range(2, 9))
    assert clustering.scores["silhouette"].idxmax() == 3
    # Unit-norm features: the scales (0.01 to 10) did not decide.
    np.testing.assert_allclose(np.linalg.norm(clustering.features, axis=1), 1.0)
    assert clustering.pca.shape == (12, 2)
    assert clustering.explained_variance.sum() <= 1.0


def test_given_k_is_used_and_scores_still_cover_the_range():
    curves, groups = family_curves()
    clustering = cluster_layers(curves, k=2, max_k=4)
    assert clustering.k == 2 and not clustering.chosen
    assert set(clustering.labels) == {0, 1}
    assert list(clustering.scores.index) == [2, 3, 4]
    assert adjusted_rand(clustering.labels, groups) < 1.0


def test_without_normalisation_scale_would_decide():
    # Control for the test above: the same curves clustered raw split by scale instead.
    curves, groups = family_curves()
    raw = dynamics._kmeans(curves.to_numpy().T, 3, seed=0).labels_
    assert adjusted_rand(pd.Series(raw, index=curves.columns), groups) < 0.5


def test_the_authors_outlier_rule_replaces_spikes_by_the_layer_mean():
    curves = pd.DataFrame({"a": [1.0] * 9 + [10.0], "b": np.arange(10.0)})
    replaced = replace_outliers(curves, sigma=2.0)
    np.testing.assert_allclose(replaced["a"], [1.0] * 9 + [1.9])
    np.testing.assert_array_equal(replaced["b"], curves["b"])


def test_a_spike_misleads_clustering_unless_the_outlier_rule_is_on():
    curves, groups = family_curves(families=SMOOTH_FAMILIES)
    assert replace_outliers(curves).equals(curves)
    curves.loc[25, "middle0/kernel"] *= 20
    assert adjusted_rand(cluster_layers(curves, k=3).labels, groups) < 1.0
    assert adjusted_rand(cluster_layers(curves, k=3, outlier_sigma=2.0).labels, groups) == 1.0


def test_drop_ends_leaves_out_first_and_last_layer():
    curves, groups = family_curves()
    clustering = cluster_layers(curves, k=3, drop_ends=True)
    assert clustering.dropped == ["early0/kernel", "later3/kernel"]
    assert list(clustering.labels.index) == list(curves.columns[1:-1])
    assert adjusted_rand(clustering.labels, groups) == 1.0


def test_missing_values_count_as_the_layer_mean_and_empty_layers_are_dropped():
    curves, groups = family_curves()
    curves.loc[5, "early1/kernel"] = np.nan
    curves["empty/kernel"] = np.nan
    clustering = cluster_layers(curves, k=3)
    assert clustering.dropped == ["empty/kernel"]
    assert adjusted_rand(clustering.labels, groups) == 1.0


@pytest.mark.parametrize("columns, rows, k, message", [
    (2, 30, None, "at least 2 measurements and 3 layers; got 30 measurement"),
    (12, 1, None, "got 1 measurement"),
    (12, 30, 12, "cannot make 12 clusters of 12 layers; choose K from 2 to 11"),
    (12, 30, 1, "cannot make 1 clusters"),
])
def test_impossible_clusterings_say_why(columns, rows, k, message):
    curves, _ = family_curves()
    with pytest.raises(DynamicsError, match=message):
        cluster_layers(curves.iloc[:rows, :columns], k=k)


def test_adjusted_rand_ignores_layers_without_group():
    labels = pd.Series([0, 0, 1, 1, 1], index=list("abcde"))
    groups = {"a": "x", "b": "x", "c": "y", "d": "y", "e": ""}
    assert adjusted_rand(labels, groups) == 1.0
    assert np.isnan(adjusted_rand(labels, {}))
    # Cluster numbers do not matter, only the partition.
    assert adjusted_rand(1 - labels, groups) == 1.0


def test_cluster_table_lists_members_and_their_groups():
    curves, groups = family_curves(per_family=2)
    groups["middle1/kernel"] = "early"
    table = cluster_table(cluster_layers(curves, k=3), groups)
    assert table["cluster"].tolist() == [0, 1, 2]
    assert table["layers"].tolist() == [2, 2, 2]
    assert table.loc[1, "members"] == "middle0/kernel, middle1/kernel"
    assert table.loc[1, "groups"] == "middle x1, early x1"
    assert cluster_table(cluster_layers(curves, k=3))["groups"].eq("").all()


# -- settling --------------------------------------------------------------------------------


def test_settling_without_smoothing_is_exact():
    curves = pd.DataFrame({
        "decays": [0.2, 1.0, 0.5, 0.05, 0.02, 0.01],
        "dips_and_returns": [1.0, 0.05, 0.5, 0.05, 0.05, 0.05],
        "rises": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
    }, index=pd.Index(range(10, 70, 10), name="epoch"))
    got = settling_points(curves, smoothing=0.0)
    assert got.loc["decays", "settled_at"] == 40
    assert got.loc["dips_and_returns", "settled_at"] == 40
    assert not got.loc["rises", "settled"] and np.isnan(got.loc["rises", "settled_at"])
    assert got["peak"].tolist() == [1.0, 1.0, 0.6]
    assert got["peak_at"].tolist() == [20, 10, 60]


def test_settling_of_a_smoothed_step():
    # 1.0 up to epoch 5, then 0: the average is 0.6 ** n, n epochs after; 0.6 ** 5 < 0.1.
    curve = np.where(EPOCHS <= 5, 1.0, 0.0)
    curves = pd.DataFrame({"step": curve, "later": np.roll(curve, 10)},
                          index=pd.Index(EPOCHS, name="epoch"))
    got = settling_points(curves, threshold=0.1, smoothing=0.6)
    assert got["settled_at"].tolist() == [10, 20]
    assert dynamics.SMOOTHING == 0.6 and dynamics.SETTLING_THRESHOLD == 0.1


def test_settling_skips_missing_values():
    curve = pd.Series(np.where(EPOCHS <= 5, 1.0, 0.0), index=EPOCHS)
    with_gap = curve.copy()
    with_gap[12] = np.nan
    got = settling_points(pd.DataFrame({"a": curve, "b": with_gap}))
    assert got.loc["a", "settled_at"] == got.loc["b", "settled_at"] == 10


def test_smoothing_out_of_range_is_refused():
    with pytest.raises(DynamicsError, match=r"smoothing must be in \[0, 1\), got 1"):
        settling_points(pd.DataFrame({"a": [1.0, 2.0]}), smoothing=1)


# -- figures ---------------------------------------------------------------------------------


def rendered(figure):
    figure.savefig(io.BytesIO(), format="png")
    return figure


def test_figures_show_every_layer():
    curves, _ = family_curves()
    clustering = cluster_layers(curves)
    measured, clustered = rendered(dynamics_figures.cluster_curves_figure(curves, clustering)).axes
    colours = {line.get_color() for line in measured.lines if line.get_xdata().size}
    assert colours == {"C0", "C1", "C2"}
    assert measured.get_yscale() == "log"  # scales from 0.01 to 10
    assert len([line for line in clustered.lines if line.get_xdata().size]) == 12

    (pca,) = rendered(dynamics_figures.pca_figure(clustering)).axes
    assert sorted(text.get_text() for text in pca.texts) == sorted(curves.columns)

    silhouette, scree = rendered(dynamics_figures.k_choice_figure(clustering)).axes
    assert "K = 3 (best silhouette)" in silhouette.get_legend_handles_labels()[1]

    settling = settling_points(curves)
    (ax,) = rendered(dynamics_figures.settling_figure(curves, settling)).axes
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(markers) == settling["settled"].sum() > 0
