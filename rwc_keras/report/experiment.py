"""Reading an experiment folder and aggregating its runs' RWC curves over seeds.

An experiment folder is ``<logdir>/<arch>_<dataset>/`` with one run folder ``seed_<seed>/``
per seed, each holding ``rwc.csv`` (written by `RWCCallback`) and, from the training driver,
``history.csv`` and ``metrics.json`` (file names and columns: ``rwc_keras.spec``).

The curves are those of ``rwc`` and ``rwc_norm``, which every rwc.csv has, and of each other
measure of ``spec.METRICS`` with a column in some run's rwc.csv (``RWCCallback(metrics=...)``;
a run without the column counts as a seed without a value).

Statistics over seeds:

* std is the population std (ddof=0), so 0 for a single seed. NaN values (a tensor whose
  previous values were all zero) are left out; ``n_seeds`` counts the values used.
* A group's curve is, per seed, the mean of the group's layers (each layer weighs the same,
  whatever its size, as in the paper's per-layer figures), then its statistics over seeds.
* The x axis is the epoch, or the optimizer step when any layer was measured more than once
  in an epoch (``RWCCallback(update_freq=N)``).

Example:
    experiment = load_experiment("runs/alexnet_fashion_mnist")
    experiment.aggregated  # the table written to rwc_aggregated.csv
"""

import dataclasses
import glob
import json
import os

import pandas as pd

from rwc_keras import spec


class ExperimentError(Exception):
    """An experiment folder the report cannot read; the message names the file and the fault."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")


@dataclasses.dataclass
class Experiment:
    """One experiment folder, read and aggregated over seeds.

    Attributes:
        path: the experiment folder.
        arch, dataset: from metrics.json, else from the folder name ``<arch>_<dataset>``.
        seeds: the run folders' seeds as written in their names, e.g. ``["0", "42"]``.
        epochs: the last epoch in any run's rwc.csv.
        x: ``"epoch"`` or ``"step"``, the curves' x axis.
        metrics: the measures with curves, in the order of ``spec.METRICS``.
        layers: ``(layer, group)`` pairs in the CSV's order.
        groups: the group names in the CSV's order (no empty name).
        aggregated: the long-format table written to ``rwc_aggregated.csv``, columns
            ``spec.AGGREGATED_COLUMNS`` (``step`` only when ``x`` is ``"step"``).
        seed_groups: every seed's group curves: columns ``seed``, ``group``, ``metric``,
            ``epoch`` (and ``step``) and ``value``.
        history: all runs' history.csv rows with a ``seed`` column; None without any.
        test_top1: final test top-1 of every run with a metrics.json.
    """

    path: str
    arch: str
    dataset: str
    seeds: list
    epochs: int
    x: str
    metrics: tuple
    layers: list
    groups: list
    aggregated: pd.DataFrame
    seed_groups: pd.DataFrame
    history: pd.DataFrame | None
    test_top1: list

    @property
    def key(self):
        """``(arch, dataset)``: how other experiments' claims look this one up."""
        return self.arch, self.dataset

    @property
    def title(self):
        """E.g. ``AlexNet on Fashion-MNIST``."""
        return f"{spec.architecture(self.arch).title} on {spec.dataset(self.dataset).title}"


def _read_csv(path, columns, numeric):
    """Reads a CSV that must have ``columns`` and rows, with numbers in those of the
    ``numeric`` columns it has.

    Raises:
        ExperimentError: the file is missing, unparsable, lacks a column or has no rows.
    """
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ExperimentError(path, "missing") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise ExperimentError(path, f"cannot parse: {first_line}") from None
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ExperimentError(path, f"missing columns: {', '.join(missing)}")
    if frame.empty:
        raise ExperimentError(path, "no rows")
    for column in (c for c in numeric if c in frame.columns):
        try:
            frame[column] = pd.to_numeric(frame[column])
        except (ValueError, TypeError):
            raise ExperimentError(path, f"column {column!r} holds non-numbers") from None
    return frame


def metrics_of(rwc):
    """The measures of ``spec.METRICS`` with a column in ``rwc`` (rwc.csv rows)."""
    return tuple(metric for metric in spec.METRICS if metric in rwc.columns)


def _read_rwc(run_dir):
    path = os.path.join(run_dir, spec.RWC_CSV)
    position = ("epoch", "step")
    frame = _read_csv(path, (*position, "layer", "group", *spec.RWC_METRICS),
                      (*position, *spec.METRICS))
    if frame[[*position, "layer"]].isna().any().any():
        raise ExperimentError(path, "empty cells in column epoch, step or layer")
    # RWCCallback writes an empty group for ungrouped layers; pandas reads it as NaN.
    return frame.assign(group=frame["group"].fillna("").astype(str))


def _read_history(run_dir):
    path = os.path.join(run_dir, spec.HISTORY_CSV)
    if not os.path.exists(path):
        return None
    return _read_csv(path, ("epoch", "test_top1"), ("epoch", "test_top1"))


def _read_metrics(run_dir):
    path = os.path.join(run_dir, spec.METRICS_JSON)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            metrics = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExperimentError(path, f"cannot parse: {error}") from None
    if not isinstance(metrics, dict):
        raise ExperimentError(path, "not a JSON object")
    return metrics


def _seed_of(run_dir):
    return os.path.basename(run_dir).removeprefix(spec.SEED_FOLDER.format(seed=""))


def _seed_order(run_dir):
    # Numeric seeds in numeric order (seed_42 before seed_123), any others after them.
    seed = _seed_of(run_dir)
    return (not seed.isdigit(), int(seed) if seed.isdigit() else seed)


def over_seeds(values, keys):
    """Statistics over seeds of the ``value`` column per ``keys``, in first-seen order.

    Args:
        values: a long table with a ``value`` column and the ``keys`` columns, one row per
            seed and key.
        keys: the columns identifying a point of a curve.

    Returns:
        The ``keys`` with ``mean``, ``std`` (ddof=0), ``min``, ``max`` and ``n_seeds`` (the
        non-NaN values used).
    """
    grouped = values.groupby(keys, sort=False)["value"]
    return pd.DataFrame({
        "mean": grouped.mean(), "std": grouped.std(ddof=0), "min": grouped.min(),
        "max": grouped.max(), "n_seeds": grouped.count(),
    }).reset_index()


def aggregate(rwc):
    """Every measure (`metrics_of`) per seed and group, and its statistics over seeds.

    Args:
        rwc: all runs' rwc.csv rows, with a ``seed`` column.

    Returns:
        ``(x, aggregated, seed_groups)``: the x axis (``"epoch"``, or ``"step"`` when some
        layer has several rows in one epoch of one seed), the long table of statistics per
        layer and group, and the per-seed group curves (see `Experiment`).
    """
    per_step = rwc.duplicated(["seed", "epoch", "layer"]).any()
    # Per step the epoch stays along (it is a function of the step) for the claims' windows.
    position = ["epoch", "step"] if per_step else ["epoch"]
    values = rwc.melt(id_vars=["seed", "layer", "group", *position],
                      value_vars=list(metrics_of(rwc)), var_name="metric")
    grouped = values[values["group"] != ""]
    per_seed = grouped.groupby(["seed", "group", "metric", *position], sort=False)["value"]
    seed_groups = per_seed.mean().reset_index()
    keys = ["name", "group", "metric", *position]
    layers = over_seeds(values.rename(columns={"layer": "name"}), keys)
    groups = over_seeds(seed_groups.assign(name=seed_groups["group"]), keys)
    aggregated = pd.concat([layers.assign(level="layer"), groups.assign(level="group")],
                           ignore_index=True)
    columns = [c for c in spec.AGGREGATED_COLUMNS if c != "step" or per_step]
    return ("step" if per_step else "epoch"), aggregated[columns], seed_groups


def _identity(path, metrics):
    """``(arch, dataset)`` from the first metrics.json, else from the folder's name."""
    if metrics:
        arch, dataset = metrics[0].get("arch"), metrics[0].get("dataset")
    else:
        try:
            arch, dataset = spec.parse_experiment_folder(os.path.basename(os.path.normpath(path)))
        except spec.SchemaError as error:
            raise ExperimentError(path, f"no metrics.json, and the {error}") from None
    try:
        spec.architecture(arch)
        spec.dataset(dataset)
    except spec.SchemaError as error:
        raise ExperimentError(path, str(error)) from None
    return arch, dataset


def load_experiment(path):
    """Reads and aggregates every run folder ``seed_*`` of the experiment folder ``path``.

    Raises:
        ExperimentError: ``path`` is not a folder, has no run folders, a file is malformed,
            or its architecture or dataset is not one of ``rwc_keras.spec``'s.
    """
    if not os.path.isdir(path):
        raise ExperimentError(path, "no such directory")
    run_dirs = glob.glob(os.path.join(path, spec.SEED_GLOB))
    run_dirs = sorted(filter(os.path.isdir, run_dirs), key=_seed_order)
    if not run_dirs:
        raise ExperimentError(path, f"no {spec.SEED_GLOB} folders")
    seeds = [_seed_of(d) for d in run_dirs]
    rwc = pd.concat([_read_rwc(d).assign(seed=seed) for d, seed in zip(run_dirs, seeds)],
                    ignore_index=True)
    histories = [history.assign(seed=seed) for d, seed in zip(run_dirs, seeds)
                 if (history := _read_history(d)) is not None]
    metrics = [m for m in map(_read_metrics, run_dirs) if m is not None]
    arch, dataset = _identity(path, metrics)
    x, aggregated, seed_groups = aggregate(rwc)
    layers = list(dict.fromkeys(zip(rwc["layer"], rwc["group"])))
    return Experiment(
        path=path, arch=arch, dataset=dataset, seeds=seeds, epochs=int(rwc["epoch"].max()),
        x=x, metrics=metrics_of(rwc), layers=layers,
        groups=[g for g in dict.fromkeys(g for _, g in layers) if g],
        aggregated=aggregated, seed_groups=seed_groups,
        history=pd.concat(histories, ignore_index=True) if histories else None,
        test_top1=[m["test_top1"] for m in metrics if "test_top1" in m],
    )
