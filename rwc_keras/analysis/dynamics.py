"""Layer dynamics from seed-mean RWC curves: clusters of layers that learn alike, and when
each layer settles. TensorFlow-free (numpy, pandas, scikit-learn); the report draws them
(`rwc_keras.report.dynamics_figures`).

Curves are a wide table, one row per measurement point (index: the epoch or optimizer step)
and one column per layer, in layer order. `layer_curves` makes it from the long table the
report writes (``rwc_aggregated.csv``: ``level, name, group, epoch[, step], metric, mean,
std, n_seeds``); `layer_groups` gives each layer's group from the same table.

Clustering (`cluster_layers`) follows the authors' notebook (docs/paper_facts.md, "Facts for the
next features"): K-means of the layers, each described by its curve scaled to unit L2 norm
(scikit-learn's ``normalize``), so that a curve's shape, not its scale, decides its cluster; 2-D
PCA of the same vectors for the scatter plot. K is chosen, when not given, as the one with the best
silhouette score over a range. The authors' rules are options: values further than 2 std
from their layer's mean replaced by that mean (``outlier_sigma=2``), and the first and last
layer (the first conv, the last dense) left out (``drop_ends=True``). `adjusted_rand`
scores how well the clusters match the paper's groups (1: the same partition, about 0: no
better than chance).

Settling (`settling_points`): each curve is smoothed with an exponential moving average
``s[t] = (1 - smoothing) * x[t] + smoothing * s[t - 1]``, ``s[0] = x[0]`` (TensorBoard's
smoothing convention; missing values are skipped), and a layer settles at the first
measurement from which its smoothed curve stays below ``threshold`` (10%) of its peak to the
end; a layer still above it at the last measurement never settles.

Example:
    ```python
    table = pd.read_csv("runs/resnet18_cifar10/rwc_aggregated.csv")
    curves = layer_curves(table, "rwc")
    clustering = cluster_layers(curves)
    ari = adjusted_rand(clustering.labels, layer_groups(table))
    settling = settling_points(layer_curves(table, "rwc_norm"))
    ```
"""

import dataclasses

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import normalize

# The K tried when K is chosen: from 2 to this, at most one less than the number of layers.
MAX_CLUSTERS = 8
# The authors' outlier rule: values this many std from their layer's mean.
AUTHORS_OUTLIER_SIGMA = 2.0
# Settling: the fraction of its peak a smoothed curve must stay below, and the smoothing.
SETTLING_THRESHOLD = 0.1
SMOOTHING = 0.6


class DynamicsError(ValueError):
    """Curves that cannot be analysed as asked; the message says why."""


# -- curves ----------------------------------------------------------------------------------


def layer_curves(aggregated, metric):
    """The seed-mean curve of every layer for one metric, as a wide table.

    Args:
        aggregated: the report's long table (``rwc_aggregated.csv``).
        metric: a value of its ``metric`` column, e.g. ``"rwc"``.

    Returns:
        A DataFrame indexed by the epoch (or the step, when the table has a ``step`` column),
        one column per layer in the table's order.

    Raises:
        DynamicsError: the table has no layer rows for ``metric``.
    """
    rows = aggregated[(aggregated["level"] == "layer") & (aggregated["metric"] == metric)]
    if rows.empty:
        found = sorted(aggregated.loc[aggregated["level"] == "layer", "metric"].unique())
        raise DynamicsError(f"no layer curves of metric {metric!r}; the table has: "
                            f"{', '.join(found) or 'none'}")
    x = "step" if "step" in rows.columns else "epoch"
    wide = rows.pivot(index=x, columns="name", values="mean").sort_index()
    wide.columns.name = None
    return wide[list(dict.fromkeys(rows["name"]))]


def layer_groups(aggregated):
    """Each layer's group (empty string when none), from the report's long table."""
    rows = aggregated[aggregated["level"] == "layer"].drop_duplicates("name")
    return pd.Series(rows["group"].fillna("").to_numpy(), index=rows["name"].to_numpy())


# -- clustering ------------------------------------------------------------------------------


@dataclasses.dataclass
class Clustering:
    """K-means of layers by the shape of their curves.

    Attributes:
        k: the number of clusters.
        labels: a Series, layer -> cluster number; cluster 0 holds the first layer, cluster
            1 the first layer not in cluster 0, and so on.
        features: the vectors clustered, one row per layer: its curve after the outlier rule
            and the missing-value filling, scaled to unit L2 norm.
        pca: a DataFrame, layer -> ``pc1``, ``pc2``, the features' 2-D PCA coordinates.
        explained_variance: the fraction of the features' variance on ``pc1`` and ``pc2``.
        scores: a DataFrame indexed by every K tried, columns ``silhouette`` (higher is
            better) and ``inertia`` (K-means' within-cluster sum of squares, the scree).
        chosen: True when ``k`` was chosen by the best silhouette, False when given.
        dropped: the layers left out (``drop_ends``, or no value at all).
    """

    k: int
    labels: pd.Series
    features: pd.DataFrame
    pca: pd.DataFrame
    explained_variance: np.ndarray
    scores: pd.DataFrame
    chosen: bool
    dropped: list


def replace_outliers(curves, sigma=AUTHORS_OUTLIER_SIGMA):
    """The authors' rule: values further than ``sigma`` std from their layer's mean (over
    the measurements, population std) replaced by that mean."""
    mean, std = curves.mean(), curves.std(ddof=0)
    return curves.mask((curves - mean).abs() > sigma * std, mean, axis=1)


def _kmeans(features, k, seed):
    return KMeans(n_clusters=k, n_init=10, random_state=seed).fit(features)


def cluster_layers(curves, k=None, max_k=MAX_CLUSTERS, outlier_sigma=None, drop_ends=False,
                   seed=0):
    """K-means of the layers by the shape of their curves (module docstring).

    Args:
        curves: a wide table from `layer_curves` (rows: measurements, columns: layers).
        k: the number of clusters; None chooses the best silhouette over 2..``max_k``.
        max_k: the largest K tried; at most one less than the number of layers is tried.
        outlier_sigma: None, or apply `replace_outliers` with this many std (the authors: 2).
        drop_ends: leave out the first and last layer, as the authors did.
        seed: K-means' random state, for repeatable clusters.

    Returns:
        A `Clustering`.

    Raises:
        DynamicsError: fewer than 2 measurements or 3 layers to cluster, or ``k`` outside
            2..(layers - 1).
    """
    dropped = [curves.columns[0], curves.columns[-1]] if drop_ends else []
    curves = curves.drop(columns=dropped)
    if outlier_sigma is not None:
        curves = replace_outliers(curves, outlier_sigma)
    empty = curves.columns[curves.isna().all()].tolist()
    # A missing value (a NaN measurement) counts as its layer's mean, as an outlier does.
    curves = curves.drop(columns=empty).fillna(curves.mean())
    layers = curves.columns
    if len(curves) < 2 or len(layers) < 3:
        raise DynamicsError(f"clustering needs at least 2 measurements and 3 layers; got "
                            f"{len(curves)} measurement(s) of {len(layers)} layer(s)")
    top = min(max_k, len(layers) - 1)
    if k is not None and not 2 <= k <= len(layers) - 1:
        raise DynamicsError(f"cannot make {k} clusters of {len(layers)} layers; "
                            f"choose K from 2 to {len(layers) - 1}")
    features = pd.DataFrame(normalize(curves.to_numpy().T), index=layers)
    fits = {n: _kmeans(features, n, seed) for n in range(2, max(top, k or 2) + 1)}
    scores = pd.DataFrame(
        {"silhouette": [_silhouette(features, fit.labels_) for fit in fits.values()],
         "inertia": [fit.inertia_ for fit in fits.values()]},
        index=pd.Index(list(fits), name="k"),
    )
    chosen = k is None
    if chosen:
        k = int(scores["silhouette"].idxmax())
    labels = pd.Series(_in_layer_order(fits[k].labels_), index=layers)
    components = PCA(n_components=2).fit(features)
    pca = pd.DataFrame(components.transform(features), index=layers, columns=["pc1", "pc2"])
    return Clustering(k, labels, features, pca, components.explained_variance_ratio_,
                      scores, chosen, dropped + empty)


def _silhouette(features, labels):
    # K-means can leave fewer distinct clusters than asked on degenerate data.
    return silhouette_score(features, labels) if len(set(labels)) > 1 else np.nan


def _in_layer_order(labels):
    """Cluster numbers renamed in the order their first layer appears."""
    order = {label: index for index, label in enumerate(dict.fromkeys(labels))}
    return np.array([order[label] for label in labels])


def adjusted_rand(labels, groups):
    """Adjusted Rand index of the clusters against the groups, over layers with a group.

    Args:
        labels: a Series, layer -> cluster (`Clustering.labels`).
        groups: a Series or dict, layer -> group (`layer_groups`); empty means none.

    Returns:
        The index (1: the same partition; about 0: chance), or NaN when no clustered layer
        has a group.
    """
    groups = pd.Series(groups).reindex(labels.index).fillna("")
    grouped = groups != ""
    if not grouped.any():
        return np.nan
    return float(adjusted_rand_score(groups[grouped], labels[grouped]))


def cluster_table(clustering, groups=None):
    """One row per cluster: its number, size, layers, and the groups they belong to.

    Args:
        clustering: a `Clustering`.
        groups: optional Series or dict, layer -> group.

    Returns:
        A DataFrame with columns ``cluster``, ``layers`` (count), ``members`` (comma-
        separated names) and ``groups`` (e.g. ``"block1 x3, block2 x1"``; empty without
        ``groups``).
    """
    groups = pd.Series({} if groups is None else groups, dtype=object)
    rows = []
    for cluster, members in clustering.labels.groupby(clustering.labels, sort=True):
        names = members.index.tolist()
        counts = groups.reindex(names).fillna("").replace("", "(none)").value_counts(sort=False)
        rows.append(dict(
            cluster=cluster, layers=len(names), members=", ".join(names),
            groups="" if groups.empty else ", ".join(f"{g} x{n}" for g, n in counts.items()),
        ))
    return pd.DataFrame(rows, columns=["cluster", "layers", "members", "groups"])


# -- settling --------------------------------------------------------------------------------


def smooth(curves, smoothing=SMOOTHING):
    """Every curve's exponential moving average (module docstring); NaN values skipped."""
    if not 0 <= smoothing < 1:
        raise DynamicsError(f"smoothing must be in [0, 1), got {smoothing!r}")
    return curves.ewm(alpha=1 - smoothing, adjust=False, ignore_na=True).mean()


def settling_points(curves, threshold=SETTLING_THRESHOLD, smoothing=SMOOTHING):
    """When each layer settles: its smoothed curve stays below ``threshold`` of its peak.

    Args:
        curves: a wide table from `layer_curves`, e.g. of ``rwc_norm``.
        threshold: the fraction of the peak (of the smoothed curve).
        smoothing: the moving average's weight of the past, in [0, 1); 0: no smoothing.

    Returns:
        A DataFrame indexed by layer, columns ``peak`` and ``peak_at`` (the smoothed curve's
        highest value and where), ``settled_at`` (the first measurement from which the
        smoothed curve stays below ``threshold * peak``; NaN: never) and ``settled``
        (bool).
    """
    smoothed = smooth(curves, smoothing)
    peak = smoothed.max()
    below = smoothed.lt(threshold * peak, axis=1)
    # True from the first measurement after which the curve never rises above again.
    stays_below = below.iloc[::-1].cummin().iloc[::-1]
    settled = stays_below.any()
    return pd.DataFrame({
        "peak": peak,
        "peak_at": smoothed.idxmax(),
        "settled_at": stays_below.idxmax().where(settled),
        "settled": settled,
    })
