"""``python -m rwc_keras.report.freezing FOLDER``: layer freezing modes side by side.

FOLDER holds driver runs of the same experiments with different ``--freeze`` modes, e.g. one
``--logdir`` per mode::

    runs/freezing/none/alexnet_fashion_mnist/seed_0/ ...
    runs/freezing/rwc/alexnet_fashion_mnist/seed_0/ ...
    runs/freezing/freezeout/alexnet_fashion_mnist/seed_0/ ...

Every complete run folder below it (``metrics.json``) is read; its mode comes from its
``flags.cfg`` (``--freeze``, with the RWC rule's values where they are not the defaults, e.g.
``rwc (tolerance=0.25)``; ``rwc v1`` for runs of the first rule, whose flags.cfg names none of
rule v2's flags), its experiment from its parent's name. Per experiment and mode,
over seeds:

* training time: the sum of the epochs' training seconds (``history.csv``; evaluation
  excluded), and its ratio to ``none``'s; the whole run's wall time (``metrics.json``);
* final test top-1, mean and standard deviation;
* training compute saved: the multiply-adds the frozen layers' skipped backward pass saves
  over the steps they were frozen, as a share of the run's training multiply-adds (from
  ``freezing.csv``; `rwc_keras.freezing.freezer.saved_macs` says what is counted);
* time to reach ``none``'s final top-1 (seed mean) minus 0.3 points: the training seconds
  up to the first epoch whose test top-1 reaches it, averaged over the seeds that reach it;
* which groups froze when (epoch and step, per seed);
* seeds whose ``none`` run did not train (final test top-1 under `UNTRAINED_FACTOR` times
  chance) are left out of every figure above and of the goal, and listed apart: no freezing
  can be judged against a network that never learned;
* the goal, judged per freezing mode: less training time than ``none`` by at least
  `GOAL_TIME_SAVED` (30% for AlexNet, 25% for ResNet-18, 20% otherwise) with test top-1
  (seed mean) within 0.3 points of ``none``'s, and, for ``rwc``, more time saved than
  ``freezeout`` and ``linear`` at equal or better top-1.

It writes ``freezing_report.md`` (the table) and ``freezing.png`` (test top-1 against
training time, one line per mode, one panel per experiment) into FOLDER and prints the
table. It imports no TensorFlow.

Example:
  python -m rwc_keras.report.freezing runs/freezing
"""

import dataclasses
import glob
import json
import math
import os
import statistics
import sys

import pandas as pd
from absl import app
from matplotlib.figure import Figure

from rwc_keras import spec
from rwc_keras.freezing import schema
from rwc_keras.experiment.flags import FREEZE_RULE_FLAGS, read_flagfile

# How far below the unfrozen runs' final top-1 a mode counts as having reached it, and
# as keeping their accuracy.
TARGET_MARGIN = 0.003
# The training time a freezing mode should save against the unfrozen runs, per model (issue
# 22's goals), and for any other model.
GOAL_TIME_SAVED = {"alexnet": 0.30, "resnet18": 0.25}
DEFAULT_GOAL_TIME_SAVED = 0.20
# A `none` run whose final test top-1 stays under this many times chance did not train.
UNTRAINED_FACTOR = 2.0
# The freezing schedules a rule should beat: more saved at equal or better top-1.
BASELINE_MODES = ("freezeout", "linear")


class FreezingReportError(Exception):
    """FOLDER holds no complete run to compare."""


@dataclasses.dataclass
class Run:
    """One seed's run as the report needs it."""

    path: str
    mode: str
    seed: int
    history: pd.DataFrame  # history.csv, with ``elapsed``: training seconds so far
    freezes: pd.DataFrame  # freezing.csv (no rows without freezing)
    wall_seconds: float
    total_steps: int

    @property
    def final_top1(self):
        return float(self.history["test_top1"].iloc[-1])

    @property
    def train_seconds(self):
        return float(self.history["seconds"].sum())

    def saved_share(self):
        """The share of the run's training multiply-adds the frozen layers saved."""
        if self.freezes.empty:
            return 0.0
        saved, before = 0.0, 0.0
        for row in self.freezes.itertuples():
            saved += (row.saved_macs - before) * (self.total_steps - row.step)
            before = row.saved_macs
        return saved / (self.freezes["train_macs"].iloc[0] * self.total_steps)

    def time_to(self, target):
        """Training seconds to the first epoch whose test top-1 reaches ``target``, or None."""
        reached = self.history[self.history["test_top1"] >= target]
        return None if reached.empty else float(reached["elapsed"].iloc[0])

    def freeze_points(self):
        """``group@epoch N (step S)`` for each frozen group, in order."""
        return [f"{row.group}@{row.epoch} ({row.step})" for row in self.freezes.itertuples()]


def mode_label(flagfile):
    """The run's ``--freeze`` mode, with the rule's values that are not the defaults."""
    values = read_flagfile(flagfile)
    mode = values.get("freeze", schema.DEFAULT_FREEZE)
    if mode == "rwc" and not set(FREEZE_RULE_FLAGS) & set(values):
        # Rule v1 listed its flags (--freeze_threshold, ...) only off its own defaults, and
        # none of rule v2's names.
        mode = "rwc v1"
        changed = [f"{flag[len('freeze_'):]}={value}" for flag, value in values.items()
                   if flag.startswith("freeze_") and flag != "freeze_bn"]
    else:
        changed = [f"{name}={values[flag]}" for flag, name in FREEZE_RULE_FLAGS.items()
                   if flag in values and float(values[flag]) != schema.RWC_FREEZING_RULE[name]]
    if values.get("lr_schedule", spec.DEFAULT_LR_SCHEDULE) != spec.DEFAULT_LR_SCHEDULE:
        changed.append(f"lr_schedule={values['lr_schedule']}")
    return f"{mode} ({', '.join(changed)})" if changed else mode


def _mode_order(label):
    return schema.FREEZE_MODES.index(label.split(" ")[0]), label


def load_run(path):
    """The `Run` in the seed folder ``path`` (complete: with ``metrics.json``)."""
    with open(os.path.join(path, spec.FLAGS_CFG)) as f:
        mode = mode_label(f.read())
    with open(os.path.join(path, spec.METRICS_JSON)) as f:
        metrics = json.load(f)
    history = pd.read_csv(os.path.join(path, spec.HISTORY_CSV))
    history["elapsed"] = history["seconds"].cumsum()
    freezing_csv = os.path.join(path, schema.FREEZING_CSV)
    freezes = (pd.read_csv(freezing_csv) if os.path.exists(freezing_csv)
               else pd.DataFrame(columns=list(schema.FREEZING_COLUMNS)))
    # Runs made before steps_per_epoch was recorded froze nothing: they need no total.
    total_steps = metrics.get("steps_per_epoch", 0) * metrics["epochs"]
    return Run(path=path, mode=mode, seed=metrics["seed"], history=history, freezes=freezes,
               wall_seconds=metrics["wall_seconds"], total_steps=total_steps)


def load_runs(folder):
    """Every complete run below ``folder``, as ``{experiment: {mode: [Run, ...]}}`` with
    ``experiment`` the folder name ``<arch>_<dataset>``.

    Raises:
        FreezingReportError: there is none.
    """
    experiments = {}
    pattern = os.path.join(folder, "**", spec.SEED_GLOB, spec.METRICS_JSON)
    for metrics in sorted(glob.glob(pattern, recursive=True)):
        path = os.path.dirname(metrics)
        experiment = os.path.basename(os.path.dirname(path))
        run = load_run(path)
        experiments.setdefault(experiment, {}).setdefault(run.mode, []).append(run)
    if not experiments:
        raise FreezingReportError(f"{folder} holds no complete run (no "
                                  f"{spec.SEED_GLOB}/{spec.METRICS_JSON} below it)")
    return experiments


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def split_untrained(experiment, modes):
    """``(modes without the untrained seeds, {seed: [Run, ...] of every mode})``, where a seed
    is untrained when its ``none`` run ends under `UNTRAINED_FACTOR` times chance top-1."""
    _, dataset_name = spec.parse_experiment_folder(experiment)
    floor = UNTRAINED_FACTOR / spec.dataset(dataset_name).num_classes
    untrained = {r.seed for r in modes.get("none", []) if r.final_top1 < floor}
    kept = {mode: [r for r in runs if r.seed not in untrained] for mode, runs in modes.items()}
    left_out = {seed: [r for mode in sorted(modes, key=_mode_order) for r in modes[mode]
                       if r.seed == seed] for seed in sorted(untrained)}
    return {mode: runs for mode, runs in kept.items() if runs}, left_out


def summarise(modes):
    """The table's rows for one experiment: ``{mode: dict of figures}`` in FREEZE_MODES order."""
    baseline = modes.get("none")
    target = statistics.fmean(r.final_top1 for r in baseline) - TARGET_MARGIN if baseline else None
    base_seconds = statistics.fmean(r.train_seconds for r in baseline) if baseline else None
    rows = {}
    for mode in sorted(modes, key=_mode_order):
        runs = sorted(modes[mode], key=lambda r: r.seed)
        seconds = _mean_std([r.train_seconds for r in runs])
        times = [r.time_to(target) for r in runs] if target is not None else []
        rows[mode] = dict(
            seeds=[r.seed for r in runs],
            train_seconds=seconds,
            ratio=seconds[0] / base_seconds if base_seconds else math.nan,
            wall_seconds=_mean_std([r.wall_seconds for r in runs]),
            top1=_mean_std([r.final_top1 for r in runs]),
            saved=_mean_std([r.saved_share() for r in runs]),
            time_to_target=_mean_std(times),
            reached=sum(t is not None for t in times),
            freezes={r.seed: r.freeze_points() for r in runs},
        )
    return target, rows


def verdicts(rows, arch):
    """One line per freezing mode of an ``arch`` experiment: does it meet the goal (module
    docstring)? ``none`` with another learning-rate schedule freezes nothing and gets none."""
    if "none" not in rows:
        return []
    base_top1 = rows["none"]["top1"][0]
    goal = GOAL_TIME_SAVED.get(arch, DEFAULT_GOAL_TIME_SAVED)
    lines = []
    for mode, row in rows.items():
        if mode.startswith("none"):
            continue
        saved = 1 - row["ratio"]
        top1_change = row["top1"][0] - base_top1
        fast = saved >= goal
        accurate = top1_change >= -TARGET_MARGIN
        line = (f"- {mode}: {saved * 100:.1f}% less training time (goal "
                f"{goal * 100:.0f}%: {_met(fast)}), test top-1 "
                f"{top1_change * 100:+.2f} points (goal within -{TARGET_MARGIN * 100:.1f}: "
                f"{_met(accurate)})")
        if mode.startswith("rwc"):
            for other_mode in BASELINE_MODES:
                other = rows.get(other_mode)
                if other is not None:
                    beats = row["ratio"] < other["ratio"] and row["top1"][0] >= other["top1"][0]
                    line += (f"; more saved than {other_mode} at equal or better top-1: "
                             f"{_met(beats)}")
        lines.append(line + ".")
    return lines


def _met(holds):
    return "met" if holds else "not met"


def _pm(mean_std, scale=1.0, digits=1):
    mean, std = mean_std
    if math.isnan(mean):
        return "n/a"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def markdown(experiments):
    """The report's text: one table and the freeze points per experiment."""
    lines = ["# Layer freezing: modes side by side", ""]
    for experiment, all_modes in sorted(experiments.items()):
        modes, left_out = split_untrained(experiment, all_modes)
        target, rows = summarise(modes)
        lines += [f"## {experiment}", ""]
        if target is None:
            lines += ["No `--freeze=none` runs: no ratios and no target accuracy.", ""]
        else:
            lines += [f"Target top-1: the unfrozen runs' final test top-1 minus "
                      f"{TARGET_MARGIN * 100:.1f} points = {target * 100:.2f}%.", ""]
        lines += ["| mode | seeds | training s | ratio to none | run wall s | test top-1 % | "
                  "training MACs saved % | s to target |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for mode, row in rows.items():
            reached = f"{_pm(row['time_to_target'], digits=0)} ({row['reached']}/" \
                      f"{len(row['seeds'])} seeds)" if target is not None else "n/a"
            lines.append(
                f"| {mode} | {', '.join(map(str, row['seeds']))} | "
                f"{_pm(row['train_seconds'], digits=0)} | {row['ratio']:.3f} | "
                f"{_pm(row['wall_seconds'], digits=0)} | {_pm(row['top1'], 100, 2)} | "
                f"{_pm(row['saved'], 100, 1)} | {reached} |")
        goals = verdicts(rows, spec.parse_experiment_folder(experiment)[0])
        if goals:
            lines += ["", "Goal (seed means):", "", *goals]
        lines += ["", "Groups frozen (group@epoch (optimizer step)):", ""]
        for mode, row in rows.items():
            for seed, points in row["freezes"].items():
                lines.append(f"- {mode}, seed {seed}: {', '.join(points) or 'none'}")
        for seed, runs in left_out.items():
            none_top1 = next(r.final_top1 for r in runs if r.mode == "none")
            lines += ["", f"Left out: seed {seed}, whose `none` run ended at "
                      f"{none_top1 * 100:.2f}% test top-1, under {UNTRAINED_FACTOR:g} times "
                      "chance: it did not train, so no freezing is judged on it. Its runs:", ""]
            lines += [f"- {r.mode}: {r.final_top1 * 100:.2f}%, {r.train_seconds:.0f} training s, "
                      f"froze {', '.join(r.freeze_points()) or 'nothing'}" for r in runs]
        lines.append("")
    lines += [
        "Training seconds are the epochs' training passes (history.csv), evaluation excluded; "
        "run wall s is the whole run (metrics.json). FreezeOut also replaces the paper's "
        "constant learning rate with per-layer cosine annealing to zero, so its accuracy "
        "reflects that schedule as well as the freezing.", "",
        "The `rwc` rule's defaults: "
        + ", ".join(f"{name} {value}" for name, value in schema.RWC_FREEZING_RULE.items())
        + " (`rwc_keras.freezing.schema.RWC_FREEZING_RULE`); a mode named with values, e.g. "
        "`rwc (tolerance=0.25)`, ran with those instead. `rwc v1` is the first rule "
        "(smoothed RWC below a threshold times its peak; defaults threshold 0.5, patience 1, "
        "smoothing 0.25, warmup 0.1). docs/freezing.md says how the defaults were chosen and "
        "on which runs.", ""]
    return "\n".join(lines)


def figure(experiments):
    """Test top-1 (seed mean) against training seconds, one line per mode, per experiment."""
    fig = Figure(figsize=(6 * len(experiments), 4.5), layout="constrained")
    axes = fig.subplots(1, len(experiments), squeeze=False)[0]
    for ax, (experiment, all_modes) in zip(axes, sorted(experiments.items())):
        modes, _ = split_untrained(experiment, all_modes)
        target, _ = summarise(modes)
        for mode in sorted(modes, key=_mode_order):
            mean = pd.concat([r.history for r in modes[mode]]).groupby("epoch")[
                ["elapsed", "test_top1"]].mean()
            ax.plot(mean["elapsed"], mean["test_top1"] * 100, marker="o",
                    label=f"{mode} (n={len(modes[mode])})")
        if target is not None:
            ax.axhline(target * 100, color="grey", linestyle="--", linewidth=1,
                       label=f"none's final - {TARGET_MARGIN * 100:.1f}")
        ax.set(title=experiment, xlabel="training seconds", ylabel="test top-1 (%)")
        ax.legend()
    return fig


def write_report(folder):
    """Writes ``freezing_report.md`` and ``freezing.png`` into ``folder``.

    Returns:
        ``(markdown text, path of the .md, path of the .png)``.

    Raises:
        FreezingReportError: ``folder`` holds no complete run.
    """
    experiments = load_runs(folder)
    text = markdown(experiments)
    md_path = os.path.join(folder, schema.FREEZING_REPORT_MD)
    with open(md_path, "w") as f:
        f.write(text)
    png_path = os.path.join(folder, schema.FREEZING_PNG)
    figure(experiments).savefig(png_path, dpi=120)
    return text, md_path, png_path


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("give one FOLDER")
    try:
        text, md_path, png_path = write_report(argv[1])
    except FreezingReportError as error:
        sys.exit(f"rwc_keras.report.freezing: {error}")
    print(text)
    print(f"written: {md_path}, {png_path}")


if __name__ == "__main__":
    app.run(main)
