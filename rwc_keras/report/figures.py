"""The report's figures: per-layer curves of each measure in the paper's arrangement, and
test accuracy.

Every curve is the mean over seeds with a shaded band: plus/minus one standard deviation from
`MIN_SEEDS_FOR_STD` seeds on, the range from the lowest to the highest seed below that (a
standard deviation of one or two values says little). The figures are plain matplotlib
`Figure` objects, drawn without pyplot, so no display and no global state is involved.

Example:
    rwc_figure(load_experiment("runs/alexnet_fashion_mnist"), "rwc").savefig("rwc.png")
"""

from matplotlib.figure import Figure

from rwc_keras import spec
from rwc_keras.analysis import dynamics
from rwc_keras.report.dynamics_figures import log_if_wide
from rwc_keras.report.experiment import over_seeds

# Fewer seeds than this get a min-max band instead of plus/minus one std.
MIN_SEEDS_FOR_STD = 3


def count(n, noun):
    """``1 seed``, ``3 seeds``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def band(stats, n_seeds):
    """``(lower, upper)`` of the band around ``stats["mean"]`` for ``n_seeds`` seeds.

    Args:
        stats: columns ``mean``, ``std``, ``min`` and ``max`` (as `over_seeds` gives them).
        n_seeds: the number of seeds the statistics are over.
    """
    if n_seeds >= MIN_SEEDS_FOR_STD:
        return stats["mean"] - stats["std"], stats["mean"] + stats["std"]
    return stats["min"], stats["max"]


def band_description(n_seeds):
    """What the curves and bands show, e.g. ``mean ± 1 std over 5 seeds``."""
    if n_seeds == 1:
        return "1 seed"
    spread = "± 1 std" if n_seeds >= MIN_SEEDS_FOR_STD else "and min-max"
    return f"mean {spread} over {n_seeds} seeds"


def group_colour(experiment, group):
    """The matplotlib colour of ``group``: the same in every chart of the experiment."""
    return f"C{experiment.groups.index(group) % 10}"


def rwc_figure(experiment, metric, settling=None):
    """Every layer's seed-mean ``metric`` curve with its band, coloured by group.

    Args:
        experiment: an `Experiment`.
        metric: one of ``experiment.metrics``.
        settling: optional settling points (`rwc_keras.report.layer_dynamics.settle_experiment`)
            of this metric: a marker on each layer's curve where it settles.

    Returns:
        A matplotlib Figure with one chart per panel of the architecture
        (``rwc_keras.spec.Architecture.panels``).
    """
    panels = spec.architecture(experiment.arch).panels
    figure = Figure(figsize=(max(7.0, 5.5 * len(panels)), 5.0), layout="constrained")
    table = experiment.aggregated
    curves = table[(table["level"] == "layer") & (table["metric"] == metric)]
    n_seeds = len(experiment.seeds)
    for ax, groups in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        settled_any = False
        for group in (g for g in groups if g in experiment.groups):
            colour = group_colour(experiment, group)
            members = [layer for layer, g in experiment.layers if g == group]
            for index, layer in enumerate(members):
                curve = curves[curves["name"] == layer].sort_values(experiment.x)
                x = curve[experiment.x]
                # One legend entry per group: matplotlib skips labels starting with "_".
                label = group if index == 0 else "_" + layer
                ax.plot(x, curve["mean"], color=colour, linewidth=1.2, label=label)
                ax.fill_between(x, *band(curve, n_seeds), color=colour, alpha=0.15,
                                linewidth=0)
                if settling is not None and settling.loc[layer, "settled"]:
                    at = curve[x == settling.loc[layer, "settled_at"]]
                    ax.plot(at[experiment.x], at["mean"], color=colour, marker="o",
                            markeredgecolor="black", linestyle="none", label="_settles")
                    settled_any = True
        if settled_any:
            # One legend entry for every marker, after the groups'.
            ax.plot([], [], color="grey", marker="o", markeredgecolor="black",
                    linestyle="none", label="settles")
        ax.set_title(" vs ".join(groups))
        # A band's negative part is clipped on a log axis.
        log_if_wide(ax, curves["mean"].to_numpy())
        ax.set_xlabel("epoch" if experiment.x == "epoch" else "optimizer step")
        ax.set_ylabel(f"{metric} = {spec.METRIC_FORMULAS[metric]}")
        ax.legend()
    markers = ""
    if settling is not None:
        markers = (f"\nmarkers: where it settles (smoothed, below "
                   f"{dynamics.SETTLING_THRESHOLD:.0%} of its peak from there on)")
    figure.suptitle(f"{experiment.title}: {metric} per layer\n"
                    f"{band_description(n_seeds)}, {count(experiment.epochs, 'epoch')}"
                    f"{markers}")
    return figure


def accuracy_figure(experiment):
    """Test top-1 accuracy per epoch over seeds, with its band and the paper's final figure.

    Args:
        experiment: an `Experiment`.

    Returns:
        A matplotlib Figure, or None when no run has a history.csv.
    """
    if experiment.history is None:
        return None
    values = experiment.history.assign(value=experiment.history["test_top1"] * 100)
    stats = over_seeds(values, ["epoch"]).sort_values("epoch")
    n_seeds = experiment.history["seed"].nunique()
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = figure.subplots()
    ax.plot(stats["epoch"], stats["mean"], color="C0", label="this experiment, seed mean")
    ax.fill_between(stats["epoch"], *band(stats, n_seeds), color="C0", alpha=0.2, linewidth=0)
    paper = spec.paper_top1(experiment.arch, experiment.dataset)
    if paper is not None:
        ax.axhline(paper * 100, color="grey", linestyle="--", label=f"paper: {paper:.1%}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(f"{experiment.title}: test top-1, {band_description(n_seeds)}")
    ax.legend()
    return figure
