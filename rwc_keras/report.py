"""Seed-averaged RWC curves, figures and the paper's claims, for finished training runs.

Usage::

    python -m rwc_keras.report RUN_DIR [RUN_DIR ...]

A run dir is ``<logdir>/<arch>_<dataset>/`` with one ``seed_<seed>/`` folder per seed, each
holding ``rwc.csv`` (written by `RWCCallback`), ``history.csv`` and ``metrics.json`` (written
by the training driver). Into every run dir the report writes:

* ``rwc_aggregated.csv``: mean and std over seeds of ``rwc`` and ``rwc_norm``, per layer and per
  group, at every measurement. Long format, columns ``level`` (layer or group), ``name``,
  ``group``, ``epoch`` (and ``step`` for per-step measurements), ``metric``, ``mean``, ``std``,
  ``n_seeds``.
* ``rwc_layers.png`` and ``rwc_norm_layers.png``: every layer's seed-mean curve with a +-1 std
  band, coloured by group, in the paper's arrangement (ResNet-18: blocks 1-2, 2-3 and 3-4;
  VGG-19-BN and AlexNet: early, middle and later in one chart).
* ``accuracy.png``: test top-1 accuracy per epoch, mean +- std over seeds.
* ``report.md``: final test accuracy beside the paper's, and the paper's claims (SPEC 4)
  checked on this run, for both RWC definitions.

Statistics, as written and plotted:

* std is the population std over seeds (ddof=0), so 0 for a single seed. NaN values (a tensor
  whose previous values were all zero) are left out; ``n_seeds`` counts the values used.
* A group's curve is, per seed, the mean of the group's layers (each layer weighs the same,
  whatever its size, as in the paper's per-layer figures), then mean and std over seeds.
* The x axis is the epoch, or the optimizer step when any layer was measured more than once in
  an epoch (``RWCCallback(update_freq=N)``).

Several run dirs of one architecture on one command line also check the claims that compare
datasets (VGG-19-BN CIFAR-100 vs CIFAR-10, MNIST vs Fashion-MNIST).
"""

import dataclasses
import glob
import json
import os
import sys

from absl import app
from absl import flags
from matplotlib.figure import Figure
import numpy as np
import pandas as pd

# RWCCallback's file; not imported from rwc_keras.callback, which would load TensorFlow.
RWC_CSV = "rwc.csv"
AGGREGATED_CSV = "rwc_aggregated.csv"
REPORT_MD = "report.md"
ACCURACY_PNG = "accuracy.png"
METRICS = ("rwc", "rwc_norm")
METRIC_LABELS = {
    "rwc": "RWC: mean of |Δw| / |w|",
    "rwc_norm": "RWC: Σ|Δw| / Σ|w| (Eq. 1)",
}
ARCH_NAMES = {"resnet18": "ResNet-18", "vgg19bn": "VGG-19-BN", "alexnet": "AlexNet"}
DATASET_NAMES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
}
# Final test top-1 accuracy the paper reports (SPEC 3).
PAPER_TOP1 = {
    ("resnet18", "cifar10"): 0.91,
    ("resnet18", "cifar100"): 0.64,
    ("resnet18", "mnist"): 0.99,
    ("resnet18", "fashion_mnist"): 0.92,
    ("vgg19bn", "cifar10"): 0.905,
    ("vgg19bn", "cifar100"): 0.636,
    ("vgg19bn", "mnist"): 0.985,
    ("vgg19bn", "fashion_mnist"): 0.916,
    ("alexnet", "cifar10"): 0.81,
    ("alexnet", "cifar100"): 0.53,
    ("alexnet", "mnist"): 0.985,
    ("alexnet", "fashion_mnist"): 0.895,
}
# Curves spanning more than this factor are drawn on a log axis.
LOG_SCALE_SPAN = 100
# The groups each chart of the paper's figures shows. Other architectures: all groups at once.
PANELS = {
    "resnet18": (("block1", "block2"), ("block2", "block3"), ("block3", "block4")),
    "vgg19bn": (("early", "middle", "later"),),
    "alexnet": (("early", "middle", "later"),),
}


class ReportError(Exception):
    """A run dir the report cannot read; the message names the file and what is wrong."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")


# -- the paper's claims (SPEC 4) -------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Term:
    """One side of a claim: a group's mean RWC, on the run's own dataset or a named one."""

    group: str
    dataset: str | None = None

    def __str__(self):
        if self.dataset is None:
            return self.group
        return f"{self.group} on {DATASET_NAMES.get(self.dataset, self.dataset)}"


@dataclasses.dataclass(frozen=True)
class Claim:
    """One comparison of group means the paper states, ``left op right``.

    Attributes:
        source: the paper's statement the comparison comes from.
        arch: the architecture it is about.
        datasets: the runs whose report lists it.
        left, right: the `Term` s compared.
        op: ``"<"``: left's mean strictly lower; ``"≈"``: means within the tolerance.
    """

    source: str
    arch: str
    datasets: tuple
    left: Term
    op: str
    right: Term

    def __str__(self):
        return f"{self.left} {self.op} {self.right} ({self.source})"


def _within(arch, datasets, source, *comparisons):
    """Claims comparing groups of one run: ``comparisons`` are (group, op, group) triples."""
    return [
        Claim(source, arch, datasets, Term(left), op, Term(right))
        for left, op, right in comparisons
    ]


def _across(arch, lower, higher, groups, source):
    """Claims that each of ``groups`` has a lower mean on dataset ``lower`` than on ``higher``."""
    return [
        Claim(source, arch, (lower, higher), Term(group, lower), "<", Term(group, higher))
        for group in groups
    ]


ALL_DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist")
DIGITS = ("mnist", "fashion_mnist")
OVERALL = "overall: later layers change more than earlier"
ACROSS_DIGITS = "RWC lower on MNIST than on FMNIST"
CLAIMS = [
    # "Later layers" made concrete: the last conv group against the first.
    *_within("resnet18", ALL_DATASETS, OVERALL, ("block1", "<", "block4")),
    *_within("vgg19bn", ALL_DATASETS, OVERALL, ("early", "<", "later")),
    *_within("alexnet", ALL_DATASETS, OVERALL, ("early", "<", "later")),
    *_within(
        "resnet18",
        ("cifar10",),
        "block1 < block2 < block3; block4 about equal to block3",
        ("block1", "<", "block2"),
        ("block2", "<", "block3"),
        ("block4", "≈", "block3"),
    ),
    *_within(
        "resnet18",
        ("cifar100",),
        "block1 < block2 < block3 < block4",
        ("block1", "<", "block2"),
        ("block2", "<", "block3"),
        ("block3", "<", "block4"),
    ),
    *_within(
        "resnet18",
        DIGITS,
        "block1 and block2 < block3; block4 < block3",
        ("block1", "<", "block3"),
        ("block2", "<", "block3"),
        ("block4", "<", "block3"),
    ),
    *_within(
        "vgg19bn",
        ("cifar10",),
        "early < middle; later < middle",
        ("early", "<", "middle"),
        ("later", "<", "middle"),
    ),
    *_within(
        "vgg19bn",
        ("cifar100",),
        "early < middle and early < later; middle and later close",
        ("early", "<", "middle"),
        ("early", "<", "later"),
        ("middle", "≈", "later"),
    ),
    *_within(
        "vgg19bn",
        DIGITS,
        "early < middle; later lowest of all: later < early",
        ("early", "<", "middle"),
        ("later", "<", "early"),
    ),
    *_within(
        "alexnet",
        ("cifar10",),
        "early < middle and later < middle",
        ("early", "<", "middle"),
        ("later", "<", "middle"),
    ),
    *_within(
        "alexnet",
        ("cifar100", "mnist", "fashion_mnist"),
        "early < middle < later",
        ("early", "<", "middle"),
        ("middle", "<", "later"),
    ),
    *_across(
        "vgg19bn",
        "cifar10",
        "cifar100",
        ("early", "middle", "later"),
        "all groups higher on CIFAR-100 than on CIFAR-10",
    ),
    *_across("resnet18", "mnist", "fashion_mnist", ("block1", "block2", "block3", "block4"),
             ACROSS_DIGITS),
    *_across("vgg19bn", "mnist", "fashion_mnist", ("early", "middle", "later"), ACROSS_DIGITS),
]
WINDOWS = ("all epochs", "last half")
CLAIM_RULES = """\
Each claim compares group means. A group's mean is the mean, over the window's measurements,
of its seed-mean curve (per seed the mean of the group's layers, then the mean over seeds).
Windows: *all epochs*, and the *last half* of training (epochs > E/2 of E epochs, so at least
the last epoch; with RWC measured per step, steps > half the last measured step). `a < b`
holds when a's mean is strictly lower. `a ≈ b` (the paper's "about equal", "close") holds
when |a − b| ≤ {tolerance} of the larger of the two means.
"Later layers change more than earlier" is checked as: first conv group < last conv group.
Claims naming two datasets compare each group between two run dirs of the same architecture
(each over its own window) and need both run dirs on the command line."""


# -- reading and aggregating -----------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One run dir, read and aggregated over seeds.

    Attributes:
        path: the run dir.
        arch, dataset: from metrics.json, else from the folder name ``<arch>_<dataset>``.
        seeds: the seed folders' suffixes, e.g. ``["0", "42"]``.
        epochs: the last epoch in any seed's rwc.csv.
        x: ``"epoch"`` or ``"step"``, the curves' x axis.
        layers: ``(layer, group)`` pairs in the CSV's order.
        groups: the group names in the CSV's order (no empty name).
        aggregated: the long-format table written to ``rwc_aggregated.csv``.
        history: all seeds' history.csv rows with a ``seed`` column; None without any.
        test_top1: final test top-1 of every seed with a metrics.json.
    """

    path: str
    arch: str
    dataset: str
    seeds: list
    epochs: int
    x: str
    layers: list
    groups: list
    aggregated: pd.DataFrame
    history: pd.DataFrame | None
    test_top1: list


def _read_csv(path, columns, numeric):
    """Reads a CSV that must have ``columns`` and rows, with numbers in the ``numeric`` ones.

    Raises:
        ReportError: the file is missing, unparsable, lacks a column or has no rows.
    """
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ReportError(path, "missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise ReportError(path, f"cannot parse: {first_line}") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ReportError(path, f"missing columns: {', '.join(missing)}")
    if frame.empty:
        raise ReportError(path, "no rows")
    for column in numeric:
        try:
            frame[column] = pd.to_numeric(frame[column])
        except (ValueError, TypeError):
            raise ReportError(path, f"column {column!r} holds non-numbers") from None
    return frame


def _read_rwc(seed_dir):
    path = os.path.join(seed_dir, RWC_CSV)
    numeric = ("epoch", "step", *METRICS)
    frame = _read_csv(path, ("epoch", "step", "layer", "group", *METRICS), numeric)
    if frame[["epoch", "step", "layer"]].isna().any().any():
        raise ReportError(path, "empty cells in column epoch, step or layer")
    # RWCCallback writes an empty group for ungrouped layers; pandas reads it as NaN.
    return frame.assign(group=frame["group"].fillna("").astype(str))


def _read_history(seed_dir):
    path = os.path.join(seed_dir, "history.csv")
    if not os.path.exists(path):
        return None
    return _read_csv(path, ("epoch", "test_top1"), ("epoch", "test_top1"))


def _read_metrics(seed_dir):
    path = os.path.join(seed_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            metrics = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReportError(path, f"cannot parse: {error}") from None
    if not isinstance(metrics, dict):
        raise ReportError(path, "not a JSON object")
    return metrics


def _seed_order(seed_dir):
    # Numeric seeds in numeric order (seed_42 before seed_123), any others after them.
    label = os.path.basename(seed_dir).removeprefix("seed_")
    return (not label.isdigit(), int(label) if label.isdigit() else label)


def _over_seeds(values, keys):
    """Mean, population std and count of the ``value`` column per ``keys``, in first-seen order."""
    grouped = values.groupby(keys, sort=False)["value"]
    return pd.DataFrame(
        {"mean": grouped.mean(), "std": grouped.std(ddof=0), "n_seeds": grouped.count()}
    ).reset_index()


def aggregate(rwc):
    """Mean and std over seeds of both RWC definitions, per layer and per group.

    Args:
        rwc: all seeds' rwc.csv rows, with a ``seed`` column.

    Returns:
        ``(x, table)``: the x axis (``"epoch"``, or ``"step"`` when some layer has several
        rows in one epoch of one seed) and the long-format table described in the module
        docstring.
    """
    per_step = rwc.duplicated(["seed", "epoch", "layer"]).any()
    # Per step the epoch stays along (it is a function of the step) for the claims' windows.
    position = ["epoch", "step"] if per_step else ["epoch"]
    values = rwc.melt(
        id_vars=["seed", "layer", "group", *position],
        value_vars=list(METRICS),
        var_name="metric",
    ).rename(columns={"layer": "name"})
    keys = ["name", "group", "metric", *position]
    layers = _over_seeds(values, keys)
    grouped = values[values["group"] != ""]
    per_seed = grouped.groupby(["seed", "group", "metric", *position], sort=False)["value"]
    group_curves = per_seed.mean().reset_index().assign(name=lambda f: f["group"])
    groups = _over_seeds(group_curves, keys)
    table = pd.concat(
        [layers.assign(level="layer"), groups.assign(level="group")], ignore_index=True
    )
    columns = ["level", "name", "group", *position, "metric", "mean", "std", "n_seeds"]
    return ("step" if per_step else "epoch"), table[columns]


def load_run(path):
    """Reads and aggregates every ``seed_*`` folder of the run dir ``path``.

    Raises:
        ReportError: ``path`` is not a folder, has no seed folders, or a file is malformed.
    """
    if not os.path.isdir(path):
        raise ReportError(path, "no such directory")
    seed_dirs = glob.glob(os.path.join(path, "seed_*"))
    seed_dirs = sorted(filter(os.path.isdir, seed_dirs), key=_seed_order)
    if not seed_dirs:
        raise ReportError(path, "no seed_* folders")
    seeds = [os.path.basename(d).removeprefix("seed_") for d in seed_dirs]
    rwc = pd.concat(
        [_read_rwc(d).assign(seed=seed) for d, seed in zip(seed_dirs, seeds)], ignore_index=True
    )
    histories = [
        history.assign(seed=seed)
        for d, seed in zip(seed_dirs, seeds)
        if (history := _read_history(d)) is not None
    ]
    metrics = [m for m in map(_read_metrics, seed_dirs) if m is not None]
    folder_arch, _, folder_dataset = os.path.basename(os.path.normpath(path)).partition("_")
    first = metrics[0] if metrics else {}
    x, aggregated = aggregate(rwc)
    layers = list(dict.fromkeys(zip(rwc["layer"], rwc["group"])))
    return Run(
        path=path,
        arch=first.get("arch", folder_arch),
        dataset=first.get("dataset", folder_dataset),
        seeds=seeds,
        epochs=int(rwc["epoch"].max()),
        x=x,
        layers=layers,
        groups=[g for g in dict.fromkeys(group for _, group in layers) if g],
        aggregated=aggregated,
        history=pd.concat(histories, ignore_index=True) if histories else None,
        test_top1=[m["test_top1"] for m in metrics if "test_top1" in m],
    )


# -- claims ----------------------------------------------------------------------------------


def window_rows(run, rows, window):
    """The rows of ``rows`` (a slice of ``run.aggregated``) inside ``window``.

    "all epochs" keeps every row. "last half" keeps the epochs > E/2 of E epochs, or, when
    RWC was measured per step, the steps > half the last measured step, so that a one-epoch
    run has a last half too.
    """
    if window == "all epochs":
        return rows
    if run.x == "step":
        return rows[rows["step"] > run.aggregated["step"].max() / 2]
    return rows[rows["epoch"] > run.epochs // 2]


def window_label(run, window):
    """The window's name with the epochs (or steps) it covers, e.g. ``last half (6-10)``."""
    kept = window_rows(run, run.aggregated, window)
    if run.x == "step":
        return f"{window} (steps {kept['step'].min():.0f}-{kept['step'].max():.0f})"
    return f"{window} ({kept['epoch'].min()}-{run.epochs})"


def group_means(run, metric, window):
    """Each group's seed-mean curve averaged over the window's measurements.

    Args:
        run: a `Run`.
        metric: ``"rwc"`` or ``"rwc_norm"``.
        window: ``"all epochs"`` or ``"last half"`` (see `window_rows`).

    Returns:
        A dict from group name to mean.
    """
    table = run.aggregated
    rows = table[(table["level"] == "group") & (table["metric"] == metric)]
    return window_rows(run, rows, window).groupby("name")["mean"].mean().to_dict()


def check_claim(claim, run, runs, metric, window, tolerance):
    """Evaluates one claim on ``run``.

    Args:
        claim: a `Claim`.
        run: the `Run` the report is for.
        runs: all loaded runs by ``(arch, dataset)``, for claims naming another dataset.
        metric: ``"rwc"`` or ``"rwc_norm"``.
        window: one of `WINDOWS`.
        tolerance: relative difference up to which two means count as about equal.

    Returns:
        ``(numbers, verdict)``: the means compared as text, and ``"holds"``, ``"does not
        hold"``, ``"needs run dir <arch>_<dataset>"`` or ``"no data"`` (a group missing or
        all NaN).
    """
    means = []
    for term in (claim.left, claim.right):
        dataset = term.dataset or run.dataset
        other = runs.get((run.arch, dataset))
        if other is None:
            return "", f"needs run dir {run.arch}_{dataset}"
        means.append(group_means(other, metric, window).get(term.group, np.nan))
    left, right = means
    numbers = f"{claim.left} = {left:.4g}, {claim.right} = {right:.4g}"
    if np.isnan(left) or np.isnan(right):
        return numbers, "no data"
    if claim.op == "<":
        holds = left < right
    else:
        difference = abs(left - right) / max(abs(left), abs(right), np.finfo(float).tiny)
        numbers += f", relative difference {difference:.1%}"
        holds = difference <= tolerance
    return numbers, "holds" if holds else "does not hold"


def claim_rows(run, runs, metric, tolerance):
    """The claims table of ``run`` for ``metric``: rows of (claim, window, numbers, verdict)."""
    rows = []
    for claim in CLAIMS:
        if claim.arch != run.arch or run.dataset not in claim.datasets:
            continue
        for window in WINDOWS:
            numbers, verdict = check_claim(claim, run, runs, metric, window, tolerance)
            rows.append((str(claim), window_label(run, window), numbers, verdict))
    return rows


# -- figures ---------------------------------------------------------------------------------


def _title(run):
    arch = ARCH_NAMES.get(run.arch, run.arch)
    return f"{arch} on {DATASET_NAMES.get(run.dataset, run.dataset)}"


def _count(n, noun):
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def group_colour(run, group):
    """The matplotlib colour of ``group``: the same in every chart of the run."""
    return f"C{run.groups.index(group) % 10}"


def rwc_figure(run, metric):
    """Every layer's seed-mean ``metric`` curve with a +-1 std band, coloured by group.

    Args:
        run: a `Run`.
        metric: ``"rwc"`` or ``"rwc_norm"``.

    Returns:
        A matplotlib Figure with one chart per entry of `PANELS` for the run's arch.
    """
    panels = PANELS.get(run.arch, (tuple(run.groups),))
    figure = Figure(figsize=(max(7.0, 5.5 * len(panels)), 5.0), layout="constrained")
    table = run.aggregated
    curves = table[(table["level"] == "layer") & (table["metric"] == metric)]
    for ax, groups in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for group in (g for g in groups if g in run.groups):
            colour = group_colour(run, group)
            members = [layer for layer, g in run.layers if g == group]
            for index, layer in enumerate(members):
                curve = curves[curves["name"] == layer].sort_values(run.x)
                x, mean, std = curve[run.x], curve["mean"], curve["std"]
                # One legend entry per group: matplotlib skips labels starting with "_".
                label = group if index == 0 else "_" + layer
                ax.plot(x, mean, color=colour, linewidth=1.2, label=label)
                ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
        ax.set_title(" vs ".join(groups))
        positive = curves.loc[curves["mean"] > 0, "mean"]
        # A few near-zero weights can make rwc spike by orders of magnitude: a log axis
        # keeps the other curves readable (the band's negative part is then clipped).
        if len(positive) and positive.max() > LOG_SCALE_SPAN * positive.min():
            ax.set_yscale("log")
        ax.set_xlabel("epoch" if run.x == "epoch" else "optimizer step")
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.legend()
    figure.suptitle(
        f"{_title(run)}: {metric} per layer\n"
        f"mean ± 1 std over {_count(len(run.seeds), 'seed')}, {_count(run.epochs, 'epoch')}"
    )
    return figure


def accuracy_figure(run):
    """Test top-1 accuracy per epoch, mean +-1 std over seeds, with the paper's final figure.

    Args:
        run: a `Run`.

    Returns:
        A matplotlib Figure, or None when no seed has a history.csv.
    """
    if run.history is None:
        return None
    by_epoch = run.history.groupby("epoch")["test_top1"]
    mean, std = by_epoch.mean() * 100, by_epoch.std(ddof=0) * 100
    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = figure.subplots()
    ax.plot(mean.index, mean, color="C0", label="this run, mean over seeds")
    ax.fill_between(mean.index, mean - std, mean + std, color="C0", alpha=0.2, linewidth=0)
    paper = PAPER_TOP1.get((run.arch, run.dataset))
    if paper is not None:
        ax.axhline(paper * 100, color="grey", linestyle="--", label=f"paper: {paper:.1%}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(
        f"{_title(run)}: test top-1, mean ± 1 std over {run.history['seed'].nunique()} seeds"
    )
    ax.legend()
    return figure


# -- report ----------------------------------------------------------------------------------


def markdown_table(header, rows):
    """A markdown table with the ``header`` cells and ``rows`` of cells."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def accuracy_row(run):
    """(arch, dataset, seeds, this run's final test top-1 as mean ± std, the paper's)."""
    if run.test_top1:
        top1 = np.asarray(run.test_top1) * 100
        measured = f"{top1.mean():.2f}% ± {top1.std():.2f}"
    else:
        measured = "no metrics.json"
    paper = PAPER_TOP1.get((run.arch, run.dataset))
    return (
        ARCH_NAMES.get(run.arch, run.arch),
        DATASET_NAMES.get(run.dataset, run.dataset),
        len(run.test_top1),
        measured,
        "unknown" if paper is None else f"{paper:.1%}",
    )


CLAIMS_HEADER = ("claim", "window", "numbers", "verdict")
ACCURACY_HEADER = ("arch", "dataset", "seeds", "test top-1 (mean ± std over seeds)", "paper")


def write_report(run, runs, tolerance):
    """Writes rwc_aggregated.csv, the figures and report.md into the run dir.

    Args:
        run: the `Run` to report on.
        runs: all loaded runs by ``(arch, dataset)``, for claims naming another dataset.
        tolerance: relative difference up to which two means count as about equal.

    Returns:
        The markdown claims table for ``rwc``.
    """
    run.aggregated.to_csv(os.path.join(run.path, AGGREGATED_CSV), index=False)
    figures = []
    for metric in METRICS:
        name = f"{metric}_layers.png"
        rwc_figure(run, metric).savefig(os.path.join(run.path, name), dpi=120)
        figures.append((f"{metric} per layer", name))
    accuracy = accuracy_figure(run)
    if accuracy is not None:
        accuracy.savefig(os.path.join(run.path, ACCURACY_PNG), dpi=120)
        figures.append(("test accuracy", ACCURACY_PNG))
    tables = {
        metric: markdown_table(CLAIMS_HEADER, claim_rows(run, runs, metric, tolerance))
        for metric in METRICS
    }
    measurement = "per epoch" if run.x == "epoch" else "per optimizer step"
    sections = [
        f"# RWC report: {_title(run)}",
        f"Seeds {', '.join(run.seeds)} ({len(run.seeds)}), {_count(run.epochs, 'epoch')}, "
        f"RWC measured {measurement}. Curves per layer and group: "
        f"[{AGGREGATED_CSV}]({AGGREGATED_CSV}) (std over seeds with ddof=0).",
        "## Test accuracy at the end of training",
        markdown_table(ACCURACY_HEADER, [accuracy_row(run)]),
        "## The paper's claims",
        CLAIM_RULES.format(tolerance=f"{tolerance * 100:g}%"),
        f"### rwc ({METRIC_LABELS['rwc']}, the paper's figures)",
        tables["rwc"],
        f"### rwc_norm ({METRIC_LABELS['rwc_norm']})",
        tables["rwc_norm"],
        "## Figures",
        *(f"![{title}]({name})" for title, name in figures),
    ]
    with open(os.path.join(run.path, REPORT_MD), "w") as f:
        f.write("\n\n".join(sections) + "\n")
    return tables["rwc"]


_CLOSE_TOLERANCE = flags.DEFINE_float(
    "close_tolerance",
    0.10,
    "Relative difference (of the larger mean) up to which two group means count as "
    "'about equal' / 'close' in the paper's claims.",
)


def main(argv):
    """Reports on every run dir in ``argv[1:]``; exit code 1 if any could not be read."""
    if len(argv) < 2:
        raise app.UsageError("give at least one RUN_DIR")
    runs, failed = [], False
    for path in argv[1:]:
        try:
            runs.append(load_run(path))
        except ReportError as error:
            print(f"rwc_keras.report: {error}", file=sys.stderr)
            failed = True
    by_key = {(run.arch, run.dataset): run for run in runs}
    for run in runs:
        table = write_report(run, by_key, _CLOSE_TOLERANCE.value)
        print(
            f"{run.path}: {_title(run)}, {_count(len(run.seeds), 'seed')}, "
            f"{_count(run.epochs, 'epoch')} -> "
            f"{os.path.join(run.path, REPORT_MD)}\n{table}"
        )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
