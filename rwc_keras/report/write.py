"""Writes an experiment's report files into its folder: the aggregated CSV, figures, report.md.

File names come from ``rwc_keras.spec``: ``rwc_aggregated.csv`` (statistics over seeds per
layer and group, see `rwc_keras.report.experiment`), ``rwc_layers.png`` and
``rwc_norm_layers.png`` (`rwc_keras.report.figures.rwc_figure`), ``accuracy.png`` and
``report.md``: the final test accuracy beside the paper's, and the paper's claims judged on
the seed means and per seed, for both RWC definitions (`rwc_keras.report.verdicts`).

Example:
    experiment = load_experiment("runs/alexnet_fashion_mnist")
    write_report(experiment, {experiment.key: experiment}, tolerance=0.1)
"""

import os

import numpy as np

from rwc_keras import spec
from rwc_keras.report import figures, verdicts

CLAIMS_HEADER = ("claim", "window", "seed means", "verdict", "per seed")
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


def _summary(experiment):
    measured = "per epoch" if experiment.x == "epoch" else "per optimizer step"
    return (f"Seeds {', '.join(experiment.seeds)} ({len(experiment.seeds)}), "
            f"{figures.count(experiment.epochs, 'epoch')}, RWC measured {measured}. "
            f"Curves per layer and group: [{spec.AGGREGATED_CSV}]({spec.AGGREGATED_CSV}) "
            "(mean, std with ddof=0, min and max over seeds).")


def write_report(experiment, experiments, tolerance):
    """Writes rwc_aggregated.csv, the figures and report.md into the experiment folder.

    Args:
        experiment: the `Experiment` to report on.
        experiments: all loaded experiments by ``(arch, dataset)``, for claims naming
            another dataset.
        tolerance: relative difference up to which two values are about equal.

    Returns:
        The paths written, report.md first.
    """
    def path(name):
        return os.path.join(experiment.path, name)

    experiment.aggregated.to_csv(path(spec.AGGREGATED_CSV), index=False)
    pictures = []
    for metric in spec.RWC_METRICS:
        name = spec.LAYERS_PNG.format(metric=metric)
        figures.rwc_figure(experiment, metric).savefig(path(name), dpi=120)
        pictures.append((f"{metric} per layer", name))
    accuracy = figures.accuracy_figure(experiment)
    if accuracy is not None:
        accuracy.savefig(path(spec.ACCURACY_PNG), dpi=120)
        pictures.append(("test accuracy", spec.ACCURACY_PNG))
    claim_sections = []
    for metric in spec.RWC_METRICS:
        note = " (the paper's figures)" if metric == "rwc" else ""
        judgements = verdicts.judge_all(experiment, experiments, metric, tolerance)
        claim_sections += [f"### {metric}: {spec.RWC_FORMULAS[metric]}{note}",
                           claims_table(judgements)]
    sections = [
        f"# RWC report: {experiment.title}",
        _summary(experiment),
        "## Test accuracy at the end of training",
        markdown_table(ACCURACY_HEADER, [accuracy_row(experiment)]),
        "## The paper's claims",
        CLAIM_RULES.format(tolerance=f"{tolerance * 100:g}%"),
        *claim_sections,
        "## Figures",
        *(f"![{title}]({name})" for title, name in pictures),
    ]
    with open(path(spec.REPORT_MD), "w") as f:
        f.write("\n\n".join(sections) + "\n")
    return [path(spec.REPORT_MD), path(spec.AGGREGATED_CSV), *(path(n) for _, n in pictures)]
