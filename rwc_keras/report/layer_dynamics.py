"""An experiment's layer clusters and settling points, for the report
(`rwc_keras.analysis.dynamics`).

Clusters: K-means of the layers, each described by the shape of its seed-mean curve of one
metric (scaled to unit L2 norm, so that its scale does not decide its cluster), with K the
best silhouette score unless given. The metric is ``rwc_norm`` by default: a ratio of L1
norms, it moves smoothly, while ``rwc``, a mean of per-weight ratios, can jump by orders of
magnitude when a few weights pass near zero, and such a jump then decides the shape of its
layer's curve and so its cluster. ``rwc`` (what the paper plots) is an option, as are the
authors' rules (docs/paper_facts.md, "Facts for the next features"): values further than 2 std
from their layer's mean replaced by that mean, and the first and last layer left out. The adjusted
Rand index says how well the clusters match the paper's groups.

Settling points: on every layer's seed-mean ``rwc_norm`` curve, smoothed, the first
measurement from which it stays below 10% of its peak
(`rwc_keras.analysis.dynamics.settling_points`). A group settles when half of its layers have: at
the lower median of its layers' settling points, a layer that never settles counting as later than
any measurement.

report.md's sections on them are written by `rwc_keras.report.write`.

Example:
    experiment = load_experiment("runs/alexnet_fashion_mnist")
    print(cluster_summary(cluster_experiment(experiment, ClusterOptions(k=3))))
    print(settling_order(experiment, settle_experiment(experiment)))
"""

import dataclasses

import numpy as np
import pandas as pd

from rwc_keras.analysis import dynamics

CLUSTER_METRIC = "rwc_norm"
SETTLING_METRIC = "rwc_norm"


@dataclasses.dataclass(frozen=True)
class ClusterOptions:
    """How to cluster an experiment's layers.

    Attributes:
        k: the number of clusters; None: the best silhouette score.
        metric: the curves clustered, one of ``rwc_keras.spec.RWC_METRICS``.
        authors_outliers: replace values further than 2 std from their layer's mean by it.
        drop_ends: leave out the first and the last layer.
    """

    k: int | None = None
    metric: str = CLUSTER_METRIC
    authors_outliers: bool = False
    drop_ends: bool = False


@dataclasses.dataclass
class LayerClusters:
    """An experiment's layers clustered, or why they could not be.

    Attributes:
        options: the `ClusterOptions` used.
        curves: the seed-mean curves, one column per layer.
        clustering: the `rwc_keras.analysis.dynamics.Clustering`; None when there is none.
        problem: why there is no clustering (e.g. too few measurements); empty otherwise.
        adjusted_rand: the clusters' adjusted Rand index against the groups (NaN: none).
    """

    options: ClusterOptions
    curves: pd.DataFrame
    clustering: dynamics.Clustering | None
    problem: str
    adjusted_rand: float


def cluster_experiment(experiment, options=ClusterOptions()):
    """Clusters the experiment's layers as ``options`` say (module docstring).

    Returns:
        A `LayerClusters`; its ``problem`` says why there are no clusters, e.g. a single
        measurement or a ``k`` larger than the layers allow.
    """
    curves = dynamics.layer_curves(experiment.aggregated, options.metric)
    sigma = dynamics.AUTHORS_OUTLIER_SIGMA if options.authors_outliers else None
    try:
        clustering = dynamics.cluster_layers(curves, k=options.k, outlier_sigma=sigma,
                                             drop_ends=options.drop_ends)
    except dynamics.DynamicsError as error:
        return LayerClusters(options, curves, None, str(error), np.nan)
    groups = dynamics.layer_groups(experiment.aggregated)
    return LayerClusters(options, curves, clustering, "",
                         dynamics.adjusted_rand(clustering.labels, groups))


def cluster_summary(clusters):
    """One line: K, how it was chosen, the metric and the adjusted Rand index (or the problem)."""
    metric = clusters.options.metric
    if clusters.clustering is None:
        return f"layer clusters ({metric}): none: {clusters.problem}"
    clustering = clusters.clustering
    how = "best silhouette" if clustering.chosen else "given"
    return (f"layer clusters ({metric}): K = {clustering.k} ({how}), adjusted Rand index "
            f"against the groups {clusters.adjusted_rand:.2f}")


def settle_experiment(experiment):
    """Every layer's settling point on its seed-mean ``rwc_norm`` curve.

    Returns:
        `rwc_keras.analysis.dynamics.settling_points`' table (index: layer; ``peak``, ``peak_at``,
        ``settled_at``, ``settled``) with each layer's ``group``, in the layers' order.
    """
    curves = dynamics.layer_curves(experiment.aggregated, SETTLING_METRIC)
    settling = dynamics.settling_points(curves)
    return settling.assign(group=dynamics.layer_groups(experiment.aggregated))


def group_settling(experiment, settling):
    """When each group settles: the lower median of its layers' settling points.

    Returns:
        A Series, group -> the measurement (inf: never), in the experiment's group order.
    """
    when = settling["settled_at"].fillna(np.inf)
    by_group = when.groupby(settling["group"]).quantile(0.5, interpolation="lower")
    return by_group.reindex(experiment.groups).dropna()


def _listed(names):
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def settling_order(experiment, settling):
    """One sentence: the order in which the groups settle, and those that never do."""
    by_group = group_settling(experiment, settling).sort_values(kind="stable")
    x = experiment.x
    settled = by_group[np.isfinite(by_group)]
    stages = [f"{_listed(groups.index)} ({x} {at:.0f})"
              for at, groups in settled.groupby(settled, sort=True)]
    never = by_group.index[~np.isfinite(by_group)].tolist()
    last = f"{x} {experiment.aggregated[x].max():.0f}"
    if not stages:
        return f"No group settles by {last}."
    sentence = "Groups settle (half of their layers) in the order " + ", then ".join(stages)
    if never:
        sentence += f"; not by {last}: {_listed(never)}"
    return sentence + "."
