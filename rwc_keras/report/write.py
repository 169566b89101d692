"""Writes an experiment's report files into its folder: the aggregated CSV, figures, report.md.

File names come from ``rwc_keras.spec``: ``rwc_aggregated.csv`` (statistics over seeds per
layer, group and measure, see `rwc_keras.report.experiment`), ``<metric>_layers.png`` per
measure the runs recorded: ``rwc_layers.png``, ``rwc_norm_layers.png`` and those of
``RWCCallback(metrics=...)``'s other measures (`rwc_keras.report.figures.rwc_figure`,
``rwc_norm``'s with the layers' settling points), ``accuracy.png``, the layer clusters'
``clusters.png``, ``clusters_pca.png`` and ``clusters_k.png`` (`rwc_keras.analysis.dynamics`; none
when the layers cannot be clustered) and ``report.md``: the final test accuracy beside the
paper's, the paper's claims judged on the seed means and per seed for both RWC definitions
(`rwc_keras.report.verdicts`; never on the other measures), the layer clusters and the
settling points (`rwc_keras.report.layer_dynamics`).

Example:
    experiment = load_experiment("runs/alexnet_fashion_mnist")
    write_report(experiment, {experiment.key: experiment}, tolerance=0.1)
"""

import os

import numpy as np

from rwc_keras import spec
from rwc_keras.analysis import dynamics
from rwc_keras.report import dynamics_figures, figures, layer_dynamics, verdicts

CLAIMS_HEADER = ("claim", "window", "seed means", "verdict", "per seed")
CLUSTERS_HEADER = ("cluster", "layers", "members", "groups")
SETTLING_HEADER = ("layer", "group", "settles at ({x})", "peak (smoothed)", "peak at ({x})")
ACCURACY_HEADER = ("arch", "dataset", "seeds", "test top-1 (mean ± std over seeds)", "paper")
CLAIM_RULES = """\
Each claim compares two groups' RWC over a window of training. The *verdict* judges the seed
means: a group's value is the mean, over the window's measurements, of its seed-mean curve
(per seed the mean of the group's layers, then the mean over seeds). *Per seed* counts the
seeds on whose own curves the claim holds, of the seeds with values on both sides.
Windows: *all epochs*, and the *last half* of training (epochs > E/2 of E epochs, so at least
the last epoch; with RWC measured per step, steps > half the last measured step). `a < b`
holds when a is strictly lower. `a ≈ b` (the paper's "about equal", "close") holds
when |a − b| ≤ {tolerance} of the larger of the two.
"Later layers change more than earlier" is checked as: first conv group < last conv group.
Claims naming two datasets compare each group between two experiments of the same
architecture (each over its own window; per seed, the runs with the same seed) and need both
experiment folders on the report's command line."""


def markdown_table(header, rows):
    """A markdown table with the ``header`` cells and ``rows`` of cells."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def claim_row(judgement):
    """The cells of one `Judgement` in the order of `CLAIMS_HEADER`."""
    claim = judgement.claim
    if judgement.verdict.startswith("needs"):
        return str(claim), judgement.window, "", judgement.verdict, "–"
    values = f"{claim.left} = {judgement.left:.4g}, {claim.right} = {judgement.right:.4g}"
    if claim.op == "≈":
        values += f", relative difference {judgement.relative_difference:.1%}"
    if judgement.seeds_judged:
        per_seed = (f"holds in {judgement.seeds_holding} of "
                    f"{figures.count(judgement.seeds_judged, 'seed')}")
    else:
        per_seed = "no data"
    return str(claim), judgement.window, values, judgement.verdict, per_seed


def claims_table(judgements):
    """The markdown claims table of a list of `Judgement` s."""
    return markdown_table(CLAIMS_HEADER, map(claim_row, judgements))


def accuracy_row(experiment):
    """(arch, dataset, seeds, final test top-1 as mean ± std over seeds, the paper's)."""
    if experiment.test_top1:
        top1 = np.asarray(experiment.test_top1) * 100
        measured = f"{top1.mean():.2f}% ± {top1.std():.2f}"
    else:
        measured = f"no {spec.METRICS_JSON}"
    paper = spec.paper_top1(experiment.arch, experiment.dataset)
    return (spec.architecture(experiment.arch).title, spec.dataset(experiment.dataset).title,
            len(experiment.test_top1), measured,
            "not in the paper" if paper is None else f"{paper:.1%}")


def _cluster_method(clusters):
    """How the layers were clustered, in a few sentences."""
    options = clusters.options
    text = (f"K-means of the layers by the shape of their seed-mean `{options.metric}` "
            "curves: each curve scaled to unit L2 norm, so that its shape, not its scale, "
            "decides its cluster.")
    if options.metric == layer_dynamics.CLUSTER_METRIC:
        text += (f" `{options.metric}` rather than `rwc`: `rwc` can jump by orders of "
                 "magnitude when a few weights pass near zero, and one jump would decide its "
                 "layer's cluster.")
    if options.authors_outliers:
        text += (" The authors' outlier rule: values further than "
                 f"{dynamics.AUTHORS_OUTLIER_SIGMA:g} std from their layer's mean replaced "
                 "by that mean.")
    if clusters.clustering is not None and clusters.clustering.dropped:
        text += f" Left out: {', '.join(clusters.clustering.dropped)}."
    return text


def _k_choice(clustering):
    """K and how it was chosen, with the silhouette score of every K tried."""
    scores = clustering.scores["silhouette"]
    listed = ", ".join(f"{k}: {score:.2f}" for k, score in scores.items())
    if clustering.chosen:
        return (f"K = {clustering.k}: the best silhouette score of K = {scores.index.min()} "
                f"to {scores.index.max()} ({listed}).")
    return f"K = {clustering.k}, as given (silhouette scores {listed})."


def clusters_section(experiment, clusters, pictures=()):
    """report.md's "Layer clusters" section.

    Args:
        experiment: the `Experiment`.
        clusters: its `rwc_keras.report.layer_dynamics.LayerClusters`.
        pictures: ``(title, file name)`` of the cluster figures, shown at its end.
    """
    lines = ["## Layer clusters", _cluster_method(clusters)]
    clustering = clusters.clustering
    if clustering is None:
        return "\n\n".join([*lines, f"No clusters: {clusters.problem}."])
    table = dynamics.cluster_table(clustering, dynamics.layer_groups(experiment.aggregated))
    agreement = ("none: no layer has a group" if np.isnan(clusters.adjusted_rand)
                 else f"{clusters.adjusted_rand:.2f}")
    lines += [
        _k_choice(clustering),
        markdown_table(CLUSTERS_HEADER, table[list(CLUSTERS_HEADER)].itertuples(index=False)),
        f"Agreement with the paper's groups: adjusted Rand index {agreement} (1: the same "
        "partition; about 0: no better than chance).",
        *(f"![{title}]({name})" for title, name in pictures),
    ]
    return "\n\n".join(lines)


def settling_section(experiment, settling, figure_name):
    """report.md's "Settling points" section: the rule, the groups' order, the table.

    Args:
        experiment: the `Experiment`.
        settling: from `rwc_keras.report.layer_dynamics.settle_experiment`.
        figure_name: the figure whose curves carry the settling markers.
    """
    ordered = settling.sort_values("settled_at", kind="stable", na_position="last")
    rows = [
        (layer, row.group or "–", f"{row.settled_at:.0f}" if row.settled else "never",
         f"{row.peak:.4g}", f"{row.peak_at:.0f}")
        for layer, row in ordered.iterrows()
    ]
    header = [cell.format(x=experiment.x) for cell in SETTLING_HEADER]
    return "\n\n".join([
        "## Settling points",
        "A layer settles at the first measurement from which its seed-mean "
        f"`{layer_dynamics.SETTLING_METRIC}` curve, smoothed (exponential moving average, "
        f"smoothing {dynamics.SMOOTHING:g}), stays below {dynamics.SETTLING_THRESHOLD:.0%} of "
        "its peak to the end; a group settles when half of its layers have. Markers on the "
        f"curves of [{figure_name}]({figure_name}).",
        layer_dynamics.settling_order(experiment, settling),
        markdown_table(header, rows),
    ])


def _summary(experiment):
    measured = "per epoch" if experiment.x == "epoch" else "per optimizer step"
    return (f"Seeds {', '.join(experiment.seeds)} ({len(experiment.seeds)}), "
            f"{figures.count(experiment.epochs, 'epoch')}, RWC measured {measured}; "
            f"measures: {', '.join(experiment.metrics)}. "
            f"Curves per layer and group: [{spec.AGGREGATED_CSV}]({spec.AGGREGATED_CSV}) "
            "(mean, std with ddof=0, min and max over seeds).")


def cluster_figures(experiment, clusters):
    """``(title, file name, Figure)`` of each cluster figure; none without clusters."""
    clustering = clusters.clustering
    if clustering is None:
        return []
    metric, layers = clusters.options.metric, len(clustering.labels)
    how = "best silhouette" if clustering.chosen else "given"
    return [
        ("layer clusters", spec.CLUSTERS_PNG, dynamics_figures.cluster_curves_figure(
            clusters.curves, clustering,
            f"{experiment.title}: {layers} layers in {clustering.k} clusters ({how}) by "
            f"the shape of their {metric} curves")),
        ("layers by curve shape, 2-D PCA", spec.CLUSTERS_PCA_PNG, dynamics_figures.pca_figure(
            clustering, f"{experiment.title}: layers by {metric} curve shape, 2-D PCA")),
        ("choice of K", spec.CLUSTERS_K_PNG, dynamics_figures.k_choice_figure(
            clustering, f"{experiment.title}: choice of K for {layers} layers ({metric})")),
    ]


def write_report(experiment, experiments, tolerance, clusters=None):
    """Writes rwc_aggregated.csv, the figures and report.md into the experiment folder.

    Args:
        experiment: the `Experiment` to report on.
        experiments: all loaded experiments by ``(arch, dataset)``, for claims naming
            another dataset.
        tolerance: relative difference up to which two values are about equal.
        clusters: its layers clustered (`rwc_keras.report.layer_dynamics.cluster_experiment`);
            None: clustered with the default options.

    Returns:
        The paths written, report.md first.
    """
    def path(name):
        return os.path.join(experiment.path, name)

    if clusters is None:
        clusters = layer_dynamics.cluster_experiment(experiment)
    settling = layer_dynamics.settle_experiment(experiment)
    experiment.aggregated.to_csv(path(spec.AGGREGATED_CSV), index=False)
    pictures = []
    for metric in experiment.metrics:
        name = spec.LAYERS_PNG.format(metric=metric)
        markers = settling if metric == layer_dynamics.SETTLING_METRIC else None
        figures.rwc_figure(experiment, metric, markers).savefig(path(name), dpi=120)
        pictures.append((f"{metric} per layer", name))
    accuracy = figures.accuracy_figure(experiment)
    if accuracy is not None:
        accuracy.savefig(path(spec.ACCURACY_PNG), dpi=120)
        pictures.append(("test accuracy", spec.ACCURACY_PNG))
    cluster_pictures = []
    for title, name, figure in cluster_figures(experiment, clusters):
        figure.savefig(path(name), dpi=120)
        cluster_pictures.append((title, name))
    claim_sections = []
    for metric in spec.RWC_METRICS:
        note = " (the paper's figures)" if metric == "rwc" else ""
        judgements = verdicts.judge_all(experiment, experiments, metric, tolerance)
        claim_sections += [f"### {metric}: {spec.METRIC_FORMULAS[metric]}{note}",
                           claims_table(judgements)]
    sections = [
        f"# RWC report: {experiment.title}",
        _summary(experiment),
        "## Test accuracy at the end of training",
        markdown_table(ACCURACY_HEADER, [accuracy_row(experiment)]),
        "## The paper's claims",
        CLAIM_RULES.format(tolerance=f"{tolerance * 100:g}%"),
        *claim_sections,
        clusters_section(experiment, clusters, cluster_pictures),
        settling_section(experiment, settling, spec.LAYERS_PNG.format(
            metric=layer_dynamics.SETTLING_METRIC)),
        "## Figures",
        *(f"![{title}]({name})" for title, name in pictures),
    ]
    with open(path(spec.REPORT_MD), "w") as f:
        f.write("\n\n".join(sections) + "\n")
    written = [*pictures, *cluster_pictures]
    return [path(spec.REPORT_MD), path(spec.AGGREGATED_CSV), *(path(n) for _, n in written)]
