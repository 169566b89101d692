"""Judging the paper's claims (``rwc_keras.analysis.claims``) on experiments, on the seed mean and
per seed.

A group's value in a window is the mean, over the window's measurements, of its curve: of the
seed-mean curve for the verdict on the means, of each seed's own curve for the count of seeds.
Windows (``rwc_keras.analysis.claims.WINDOWS``): *all epochs*, and the *last half* of training
(epochs > E/2 of E epochs, so at least the last epoch; with RWC measured per optimizer step,
steps > half the last measured step, so that a one-epoch experiment has a last half too).
``a < b`` holds when a is strictly lower; ``a ≈ b`` when ``|a - b|`` is at most the tolerance
times the larger of the two.

A claim naming two datasets compares each group between two experiments of the architecture,
each over its own window; per seed, it pairs the runs with the same seed.

Example:
    experiment = load_experiment("runs/alexnet_fashion_mnist")
    for judgement in judge_all(experiment, {experiment.key: experiment}, "rwc", 0.1):
        print(judgement.claim, judgement.window, judgement.verdict, judgement.seeds_holding)
"""

import dataclasses

import numpy as np
import pandas as pd

from rwc_keras import spec
from rwc_keras.analysis import claims


@dataclasses.dataclass(frozen=True)
class Judgement:
    """One claim judged on one metric over one window.

    Attributes:
        claim: the `rwc_keras.analysis.claims.Claim`.
        window: the window's label with the epochs or steps it covers, e.g.
            ``last half (6-10)``.
        left, right: the two sides' values on the seed-mean curves (NaN when missing).
        verdict: on those values: ``"holds"``, ``"does not hold"``, ``"no data"`` (a group
            missing or all NaN) or ``"needs experiment <arch>_<dataset>"``.
        seeds_holding: the seeds on whose own curves the claim holds.
        seeds_judged: the seeds with a value on both sides.
    """

    claim: claims.Claim
    window: str
    left: float
    right: float
    verdict: str
    seeds_holding: int
    seeds_judged: int

    @property
    def relative_difference(self):
        """``|left - right|`` over the larger of the two."""
        return float(relative_difference(self.left, self.right))


def relative_difference(left, right):
    """``|left - right| / max(|left|, |right|)``, elementwise (0 when both are 0)."""
    left, right = np.asarray(left, float), np.asarray(right, float)
    larger = np.maximum(np.maximum(abs(left), abs(right)), np.finfo(float).tiny)
    return abs(left - right) / larger


def holds(op, left, right, tolerance):
    """Whether ``left op right``, elementwise; ``op`` is ``"<"``, or ``"≈"``: within tolerance."""
    if op == "<":
        return np.asarray(left, float) < np.asarray(right, float)
    return relative_difference(left, right) <= tolerance


def window_rows(experiment, rows, window):
    """The rows of ``rows`` (from ``aggregated`` or ``seed_groups``) inside ``window``."""
    if window == "all epochs":
        return rows
    if experiment.x == "step":
        return rows[rows["step"] > experiment.aggregated["step"].max() / 2]
    return rows[rows["epoch"] > experiment.epochs // 2]


def window_label(experiment, window):
    """The window's name with the epochs (or steps) it covers, e.g. ``last half (6-10)``."""
    kept = window_rows(experiment, experiment.aggregated, window)
    if experiment.x == "step":
        return f"{window} (steps {kept['step'].min():.0f}-{kept['step'].max():.0f})"
    return f"{window} ({kept['epoch'].min()}-{experiment.epochs})"


def group_means(experiment, metric, window):
    """Each group's seed-mean curve averaged over the window: a dict from group to value."""
    table = experiment.aggregated
    rows = table[(table["level"] == "group") & (table["metric"] == metric)]
    return window_rows(experiment, rows, window).groupby("name")["mean"].mean().to_dict()


def seed_group_means(experiment, metric, window):
    """Each seed's group curves averaged over the window: a frame of seeds by groups."""
    curves = experiment.seed_groups
    rows = window_rows(experiment, curves[curves["metric"] == metric], window)
    return rows.groupby(["seed", "group"])["value"].mean().unstack("group")


def judge(claim, experiment, experiments, metric, window, tolerance):
    """Judges one claim on ``experiment`` over one window.

    Args:
        claim: a `rwc_keras.analysis.claims.Claim` about the experiment's architecture.
        experiment: the `Experiment` the report is for.
        experiments: all loaded experiments by ``(arch, dataset)``, for claims naming
            another dataset.
        metric: one of ``rwc_keras.spec.RWC_METRICS``.
        window: one of ``rwc_keras.analysis.claims.WINDOWS``.
        tolerance: relative difference up to which two values are about equal.

    Returns:
        A `Judgement`.
    """
    label = window_label(experiment, window)
    means, per_seed = [], []
    for term in (claim.left, claim.right):
        dataset = term.dataset or experiment.dataset
        side = experiments.get((experiment.arch, dataset))
        if side is None:
            needs = f"needs experiment {spec.experiment_folder(experiment.arch, dataset)}"
            return Judgement(claim, label, np.nan, np.nan, needs, 0, 0)
        means.append(group_means(side, metric, window).get(term.group, np.nan))
        by_seed = seed_group_means(side, metric, window)
        per_seed.append(by_seed.get(term.group, pd.Series(dtype=float)))
    left, right = means
    if np.isnan(left) or np.isnan(right):
        verdict = "no data"
    else:
        verdict = "holds" if holds(claim.op, left, right, tolerance) else "does not hold"
    paired = pd.concat(per_seed, axis=1, join="inner").dropna()
    seeds_holding = int(holds(claim.op, paired.iloc[:, 0], paired.iloc[:, 1], tolerance).sum())
    return Judgement(claim, label, left, right, verdict, seeds_holding, len(paired))


def judge_all(experiment, experiments, metric, tolerance):
    """Every claim about ``experiment`` judged over every window, in the claims' order."""
    return [
        judge(claim, experiment, experiments, metric, window, tolerance)
        for claim in claims.claims_for(experiment.arch, experiment.dataset)
        for window in claims.WINDOWS
    ]
