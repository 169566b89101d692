"""The report's figures of layer dynamics (`rwc_keras.analysis.dynamics`): the layers' curves by
cluster, their 2-D PCA, the choice of K, and where each layer settles."""

from matplotlib.figure import Figure

from rwc_keras.analysis.dynamics import SMOOTHING, smooth

# Curves spanning more than this factor are drawn on a log axis.
LOG_SCALE_SPAN = 100


def _cluster_colour(cluster):
    return f"C{cluster % 10}"


def _axis_label(curves):
    return "optimizer step" if curves.index.name == "step" else "epoch"


def log_if_wide(ax, values):
    """A log y axis when the positive ``values`` span more than `LOG_SCALE_SPAN`: a few
    near-zero weights can make rwc spike by orders of magnitude."""
    positive = values[values > 0]
    if len(positive) and positive.max() > LOG_SCALE_SPAN * positive.min():
        ax.set_yscale("log")


def _cluster_legend(ax, clustering):
    for cluster in range(clustering.k):
        ax.plot([], [], color=_cluster_colour(cluster), label=f"cluster {cluster}")
    ax.legend()


def cluster_curves_figure(curves, clustering, title=""):
    """The layers' curves coloured by cluster: as measured, and as clustered (unit norm).

    Args:
        curves: the wide table given to `cluster_layers`.
        clustering: its `Clustering`.
        title: the figure's title.

    Returns:
        A matplotlib Figure with two charts.
    """
    figure = Figure(figsize=(12.0, 4.8), layout="constrained")
    measured, clustered = figure.subplots(1, 2)
    for layer, cluster in clustering.labels.items():
        colour = _cluster_colour(cluster)
        measured.plot(curves.index, curves[layer], color=colour, linewidth=1.0)
        clustered.plot(curves.index, clustering.features.loc[layer], color=colour,
                       linewidth=1.0)
    log_if_wide(measured, curves[clustering.labels.index].to_numpy().ravel())
    measured.set_title("seed-mean curves")
    clustered.set_title("as clustered: unit L2 norm")
    for ax in (measured, clustered):
        ax.set_xlabel(_axis_label(curves))
        _cluster_legend(ax, clustering)
    figure.suptitle(title or f"{clustering.k} clusters of layers")
    return figure


def pca_figure(clustering, title=""):
    """The layers on the features' first two principal components, coloured by cluster and
    labelled by name."""
    figure = Figure(figsize=(7.5, 6.0), layout="constrained")
    ax = figure.subplots()
    colours = [_cluster_colour(cluster) for cluster in clustering.labels]
    ax.scatter(clustering.pca["pc1"], clustering.pca["pc2"], c=colours, s=30)
    for layer, (x, y) in clustering.pca.iterrows():
        ax.annotate(layer, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    first, second = clustering.explained_variance
    ax.set_xlabel(f"PC 1 ({first:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({second:.0%} of variance)")
    _cluster_legend(ax, clustering)
    ax.set_title(title or "layers by curve shape, 2-D PCA")
    return figure


def k_choice_figure(clustering, title=""):
    """Silhouette score and K-means inertia (scree) for every K tried, K used marked."""
    figure = Figure(figsize=(10.0, 4.0), layout="constrained")
    silhouette, scree = figure.subplots(1, 2)
    scores = clustering.scores
    how = "best silhouette" if clustering.chosen else "given"
    for ax, column, label in ((silhouette, "silhouette", "silhouette score (higher: better)"),
                              (scree, "inertia", "inertia (within-cluster sum of squares)")):
        ax.plot(scores.index, scores[column], marker="o")
        ax.axvline(clustering.k, color="grey", linestyle="--",
                   label=f"K = {clustering.k} ({how})")
        ax.set_xlabel("K")
        ax.set_ylabel(label)
        ax.set_xticks(scores.index)
        ax.legend()
    figure.suptitle(title or "choice of K")
    return figure


def settling_figure(curves, settling, smoothing=SMOOTHING, title=""):
    """Every layer's smoothed curve with a marker where it settles.

    Args:
        curves: the wide table given to `settling_points`.
        settling: its result.
        smoothing: the smoothing it used.
        title: the figure's title.
    """
    figure = Figure(figsize=(8.0, 5.0), layout="constrained")
    ax = figure.subplots()
    smoothed = smooth(curves, smoothing)
    for index, layer in enumerate(curves.columns):
        colour = f"C{index % 10}"
        ax.plot(smoothed.index, smoothed[layer], color=colour, linewidth=1.0, label=layer)
        at = settling.loc[layer, "settled_at"]
        if settling.loc[layer, "settled"]:
            ax.plot([at], [smoothed.loc[at, layer]], marker="o", color=colour)
    log_if_wide(ax, smoothed.to_numpy().ravel())
    ax.set_xlabel(_axis_label(curves))
    ax.set_ylabel(f"smoothed (smoothing {smoothing:g})")
    if len(curves.columns) <= 24:
        ax.legend(fontsize=6, ncols=2)
    ax.set_title(title or "settling points (markers): from there the smoothed curve stays "
                          "below its threshold")
    return figure
