"""The report on synthetic experiments whose truth is known by construction."""

import json
import os
import subprocess
import sys

import matplotlib.colors
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from rwc_keras import spec
from rwc_keras.analysis import claims
from rwc_keras.report import ExperimentError, figures, load_experiment, verdicts, write

from ..helpers import ROOT

SEEDS = (0, 42, 123)
EPOCHS = 6
# Group levels per epoch, chosen so that on resnet18/cifar10 (rwc) block1 < block2 holds over
# all epochs but not over the last half, block2 < block3 the other way round, block4 ≈ block3
# (5% apart) and block1 < block4 in both windows.
RESNET_LEVELS = {
    "stem": [0.3] * EPOCHS,
    "block1": [0.01] * EPOCHS,
    "block2": [0.06, 0.06, 0.06, 0.005, 0.005, 0.005],
    "block3": [0.02] * EPOCHS,
    "block4": [0.021] * EPOCHS,
    "head": [0.05] * EPOCHS,
}
VGG_LEVELS = {
    "early": [0.01] * EPOCHS,
    "middle": [0.03] * EPOCHS,
    "later": [0.05] * EPOCHS,
    "head": [0.2] * EPOCHS,
}
NAN_AT = (1, "block1_conv1/kernel", 1)  # (seed index, layer, epoch index) of a NaN rwc value


def layer_names(levels):
    """One layer for stem and head, two for every other group."""
    names = []
    for group in levels:
        count = 1 if group in ("stem", "head") else 2
        names += [(f"{group}_conv{i + 1}/kernel", group) for i in range(count)]
    return names


def make_experiment(root, arch, dataset, levels, scale=1.0, steps_per_epoch=1, seeds=SEEDS,
                    extra_metrics=()):
    """Writes a synthetic experiment folder.

    Args:
        levels: per group, its RWC level per epoch: a list (every seed alike) or an array
            [seed, epoch].
        extra_metrics: measures of spec.METRICS besides rwc and rwc_norm to write columns of.

    Returns:
        The folder, its ``(layer, group)`` pairs and the values per metric as arrays
        [seed, layer, point].
    """
    rng = np.random.default_rng(0)
    layers = layer_names(levels)
    points = EPOCHS * steps_per_epoch
    level = np.stack([
        np.repeat(np.broadcast_to(np.asarray(levels[g], float), (len(seeds), EPOCHS)),
                  steps_per_epoch, axis=1)
        for _, g in layers
    ], axis=1) * scale
    values = {
        "rwc": level * rng.uniform(0.97, 1.03, size=level.shape),
        "rwc_norm": 0.5 * level * rng.uniform(0.9, 1.1, size=level.shape),
    }
    for index, metric in enumerate(extra_metrics):
        values[metric] = (index + 2) * level * rng.uniform(0.8, 1.2, size=level.shape)
    recorded = (*spec.RWC_METRICS, *extra_metrics)
    if arch == "resnet18":
        layer_index = [name for name, _ in layers].index(NAN_AT[1])
        values["rwc"][NAN_AT[0], layer_index, NAN_AT[2]] = np.nan
    experiment_dir = root / spec.experiment_folder(arch, dataset)
    for s, seed in enumerate(seeds):
        run_dir = experiment_dir / spec.SEED_FOLDER.format(seed=seed)
        run_dir.mkdir(parents=True)
        rows = [
            dict(epoch=p // steps_per_epoch + 1, step=(p + 1) * 10, layer=name, group=group,
                 **{metric: values[metric][s, l, p] for metric in recorded}, zeros=0, size=100)
            for p in range(points)
            for l, (name, group) in enumerate(layers)
        ]
        pd.DataFrame(rows, columns=spec.rwc_columns(recorded)).to_csv(run_dir / spec.RWC_CSV,
                                                                       index=False)
        top1 = accuracy_curve(s)
        history = pd.DataFrame(dict(epoch=np.arange(1, EPOCHS + 1), train_loss=1.0,
                                    train_top1=top1, train_top5=0.99, test_loss=1.0,
                                    test_top1=top1, test_top5=0.99, seconds=10.0))
        history[list(spec.HISTORY_COLUMNS)].to_csv(run_dir / spec.HISTORY_CSV, index=False)
        metrics = dict(arch=arch, dataset=dataset, seed=seed, epochs=EPOCHS,
                       test_top1=top1[-1], test_top5=0.99, wall_seconds=60.0,
                       images_per_second=100.0)
        (run_dir / spec.METRICS_JSON).write_text(json.dumps(metrics))
    return str(experiment_dir), layers, values


def accuracy_curve(seed_index):
    """Test top-1 per epoch of the seed_index-th seed: spread grows with the index squared,
    so that std and min-max bands differ."""
    return 0.5 + 0.05 * np.arange(1, EPOCHS + 1) + 0.01 * seed_index ** 2


def group_curves(layers, values):
    """Reference: per seed the nan-mean of each group's layers, {group: array [seed, point]}."""
    groups = dict.fromkeys(g for _, g in layers)
    return {
        g: np.nanmean(values[:, [i for i, (_, lg) in enumerate(layers) if lg == g], :], axis=1)
        for g in groups
    }


def first_point(window, steps_per_epoch=1):
    return 0 if window == "all epochs" else (EPOCHS // 2) * steps_per_epoch


def window_mean(curve, window, steps_per_epoch=1):
    """Reference: the window's mean of the seed-mean curve of ``curve`` [seed, point]."""
    return curve.mean(axis=0)[first_point(window, steps_per_epoch):].mean()


def seed_window_means(curve, window):
    """Reference: every seed's own window mean of ``curve`` [seed, point]."""
    return curve[:, first_point(window):].mean(axis=1)


@pytest.fixture
def resnet(tmp_path):
    experiment_dir, layers, values = make_experiment(tmp_path, "resnet18", "cifar10",
                                                     RESNET_LEVELS)
    return load_experiment(experiment_dir), layers, values


def rows_of(experiment, metric, level, name):
    table = experiment.aggregated
    rows = table[(table.level == level) & (table.metric == metric) & (table.name == name)]
    return rows.sort_values(experiment.x)


def judged(experiment, experiments, metric="rwc", tolerance=0.1):
    """{(claim text, window name): Judgement} of every claim about ``experiment``."""
    return {
        (str(j.claim), j.window.split(" (")[0]): j
        for j in verdicts.judge_all(experiment, experiments, metric, tolerance)
    }


# -- reading and aggregating -------------------------------------------------------------------


def test_load_experiment_reads_identity_and_order(resnet):
    experiment, layers, _ = resnet
    assert (experiment.arch, experiment.dataset, experiment.epochs, experiment.x) == (
        "resnet18", "cifar10", EPOCHS, "epoch")
    assert experiment.seeds == ["0", "42", "123"]
    assert experiment.layers == layers
    assert experiment.groups == ["stem", "block1", "block2", "block3", "block4", "head"]
    assert experiment.title == "ResNet-18 on CIFAR-10"


def test_layer_statistics_over_seeds(resnet):
    experiment, layers, values = resnet
    for metric in spec.RWC_METRICS:
        for l, (name, group) in enumerate(layers):
            rows = rows_of(experiment, metric, "layer", name)
            assert list(rows.epoch) == list(range(1, EPOCHS + 1))
            assert set(rows.group) == {group}
            by_seed = values[metric][:, l]
            np.testing.assert_allclose(rows["mean"], np.nanmean(by_seed, axis=0))
            np.testing.assert_allclose(rows["std"], np.nanstd(by_seed, axis=0))
            np.testing.assert_allclose(rows["min"], np.nanmin(by_seed, axis=0))
            np.testing.assert_allclose(rows["max"], np.nanmax(by_seed, axis=0))
            np.testing.assert_array_equal(rows["n_seeds"], np.sum(~np.isnan(by_seed), axis=0))
    # The NaN is left out: that point has two seeds.
    nan_rows = rows_of(experiment, "rwc", "layer", NAN_AT[1])
    assert nan_rows["n_seeds"].tolist()[NAN_AT[2]] == len(SEEDS) - 1


def test_group_curves_are_seed_statistics_of_layer_means(resnet):
    experiment, layers, values = resnet
    for metric in spec.RWC_METRICS:
        for group, curve in group_curves(layers, values[metric]).items():
            rows = rows_of(experiment, metric, "group", group)
            np.testing.assert_allclose(rows["mean"], curve.mean(axis=0))
            np.testing.assert_allclose(rows["std"], curve.std(axis=0))
            np.testing.assert_allclose(rows["min"], curve.min(axis=0))
            assert set(rows["n_seeds"]) == {len(SEEDS)}
            seed_rows = experiment.seed_groups
            seed_rows = seed_rows[(seed_rows.metric == metric) & (seed_rows.group == group)]
            got = seed_rows.pivot(index="seed", columns="epoch", values="value")
            np.testing.assert_allclose(got.loc[[str(s) for s in SEEDS]], curve)


def test_aggregated_csv_written_in_long_format(resnet):
    experiment, _, _ = resnet
    write.write_report(experiment, {experiment.key: experiment}, 0.1)
    written = pd.read_csv(os.path.join(experiment.path, spec.AGGREGATED_CSV))
    assert list(written.columns) == [c for c in spec.AGGREGATED_COLUMNS if c != "step"]
    assert len(written) == 2 * EPOCHS * (len(experiment.layers) + len(experiment.groups))


def test_per_step_measurements_use_the_step_axis(tmp_path):
    experiment_dir, layers, values = make_experiment(tmp_path, "vgg19bn", "mnist", VGG_LEVELS,
                                                     steps_per_epoch=3)
    experiment = load_experiment(experiment_dir)
    assert experiment.x == "step" and experiment.epochs == EPOCHS
    assert list(experiment.aggregated.columns) == list(spec.AGGREGATED_COLUMNS)
    rows = rows_of(experiment, "rwc", "layer", layers[0][0])
    assert list(rows.step) == [10 * (p + 1) for p in range(3 * EPOCHS)]
    assert list(rows.epoch) == [p // 3 + 1 for p in range(3 * EPOCHS)]
    np.testing.assert_allclose(rows["mean"], values["rwc"][:, 0].mean(axis=0))
    curves = group_curves(layers, values["rwc"])
    got = verdicts.group_means(experiment, "rwc", "last half")
    assert got["later"] == pytest.approx(window_mean(curves["later"], "last half", 3))
    # Per step the last half is counted in steps, so a one-epoch experiment has one too.
    assert verdicts.window_label(experiment, "all epochs") == "all epochs (steps 10-180)"
    assert verdicts.window_label(experiment, "last half") == "last half (steps 100-180)"
    figure = figures.rwc_figure(experiment, "rwc")
    assert figure.axes[0].get_xlabel() == "optimizer step"


def test_extra_metrics_are_aggregated_like_rwc(tmp_path):
    experiment_dir, layers, values = make_experiment(
        tmp_path, "vgg19bn", "cifar10", VGG_LEVELS, extra_metrics=("rotation", "weight_norm"))
    # A run recorded without rotation: a seed without its values.
    csv = os.path.join(experiment_dir, "seed_42", spec.RWC_CSV)
    pd.read_csv(csv).drop(columns="rotation").to_csv(csv, index=False)
    experiment = load_experiment(experiment_dir)
    assert experiment.metrics == ("rwc", "rwc_norm", "rotation", "weight_norm")
    for metric, seeds in (("weight_norm", [0, 1, 2]), ("rotation", [0, 2])):
        for l, (name, _) in enumerate(layers):
            rows = rows_of(experiment, metric, "layer", name)
            np.testing.assert_allclose(rows["mean"], values[metric][seeds, l].mean(axis=0))
            assert rows["n_seeds"].tolist() == [len(seeds)] * EPOCHS
        for group, curve in group_curves(layers, values[metric][seeds]).items():
            rows = rows_of(experiment, metric, "group", group)
            np.testing.assert_allclose(rows["mean"], curve.mean(axis=0))
            np.testing.assert_allclose(rows["std"], curve.std(axis=0), atol=1e-12)


def test_rwc_csv_without_extra_metrics_reads_as_before(resnet):
    experiment, _, _ = resnet
    assert experiment.metrics == spec.RWC_METRICS
    assert set(experiment.aggregated["metric"]) == set(spec.RWC_METRICS)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("epoch,step,layer,group,rwc\n1,1,a,early,0.1\n", "missing columns: rwc_norm"),
        ("epoch,step,layer,group,rwc,rwc_norm\n1,1,a,early,x,0.1\n", "'rwc' holds non-numbers"),
        ("epoch,step,layer,group,rwc,rwc_norm,rotation\n1,1,a,early,0.1,0.1,x\n",
         "'rotation' holds non-numbers"),
        ("epoch,step,layer,group,rwc,rwc_norm\n", "no rows"),
        ("", "cannot parse"),
        ('epoch,step,layer,group,rwc,rwc_norm\n1,1,"a,early,0.1,0.1\n', "cannot parse"),
        ("epoch,step,layer,group,rwc,rwc_norm\n,1,a,early,0.1,0.1\n", "empty cells"),
    ],
)
def test_malformed_rwc_csv(tmp_path, content, problem):
    (tmp_path / "seed_0").mkdir()
    (tmp_path / "seed_0" / "rwc.csv").write_text(content)
    with pytest.raises(ExperimentError, match=problem) as error:
        load_experiment(str(tmp_path))
    assert str(tmp_path / "seed_0" / "rwc.csv") in str(error.value)


def test_unknown_architecture_or_dataset_is_a_clear_error(tmp_path):
    experiment_dir = make_experiment(tmp_path, "alexnet", "mnist", VGG_LEVELS)[0]
    metrics_path = os.path.join(experiment_dir, "seed_0", spec.METRICS_JSON)
    metrics = json.loads(open(metrics_path).read())
    with open(metrics_path, "w") as f:
        json.dump(dict(metrics, dataset="svhn"), f)
    with pytest.raises(ExperimentError, match="unknown dataset 'svhn'; valid: cifar10"):
        load_experiment(experiment_dir)
    # Without metrics.json the folder's name must say which experiment it is.
    unnamed = tmp_path / "my_experiment"
    os.rename(experiment_dir, unnamed)
    for seed in SEEDS:
        os.remove(unnamed / f"seed_{seed}" / spec.METRICS_JSON)
    with pytest.raises(ExperimentError, match="'my_experiment' is not <arch>_<dataset>"):
        load_experiment(str(unnamed))


# -- the claims ----------------------------------------------------------------------------------


def test_group_means_per_window(resnet):
    experiment, layers, values = resnet
    for metric in spec.RWC_METRICS:
        curves = group_curves(layers, values[metric])
        for window in claims.WINDOWS:
            got = verdicts.group_means(experiment, metric, window)
            for group, curve in curves.items():
                assert got[group] == pytest.approx(window_mean(curve, window))


def test_resnet_cifar10_verdicts_by_design(resnet):
    experiment, _, _ = resnet
    got = judged(experiment, {experiment.key: experiment})
    source = "block1 < block2 < block3; block4 about equal to block3"
    overall = "block1 < block4 (overall: later layers change more than earlier)"
    want = {
        (overall, "all epochs"): "holds",
        (overall, "last half"): "holds",
        (f"block1 < block2 ({source})", "all epochs"): "holds",
        (f"block1 < block2 ({source})", "last half"): "does not hold",
        (f"block2 < block3 ({source})", "all epochs"): "does not hold",
        (f"block2 < block3 ({source})", "last half"): "holds",
        (f"block4 ≈ block3 ({source})", "all epochs"): "holds",
        (f"block4 ≈ block3 ({source})", "last half"): "holds",
    }
    assert {key: j.verdict for key, j in got.items()} == want


@pytest.mark.parametrize("metric", spec.RWC_METRICS)
def test_judgements_match_independent_means_and_seed_counts(resnet, metric):
    experiment, layers, values = resnet
    curves = group_curves(layers, values[metric])
    judgements = verdicts.judge_all(experiment, {experiment.key: experiment}, metric, 0.1)
    assert len(judgements) == 8
    for judgement in judgements:
        claim, window = judgement.claim, judgement.window.split(" (")[0]
        a, b = (window_mean(curves[t.group], window) for t in (claim.left, claim.right))
        assert (judgement.left, judgement.right) == (pytest.approx(a), pytest.approx(b))
        holds = a < b if claim.op == "<" else abs(a - b) <= 0.1 * max(a, b)
        assert judgement.verdict == ("holds" if holds else "does not hold")
        a_seeds, b_seeds = (seed_window_means(curves[t.group], window)
                            for t in (claim.left, claim.right))
        if claim.op == "<":
            seeds_holding = np.sum(a_seeds < b_seeds)
        else:
            seeds_holding = np.sum(abs(a_seeds - b_seeds) <= 0.1 * np.maximum(a_seeds, b_seeds))
        assert (judgement.seeds_holding, judgement.seeds_judged) == (seeds_holding, len(SEEDS))
        cells = write.claim_row(judgement)
        assert cells[2].startswith(f"{claim.left} = {a:.4g}, {claim.right} = {b:.4g}")
        if claim.op == "≈":
            assert cells[2].endswith(f", relative difference {abs(a - b) / max(a, b):.1%}")
        assert cells[3:] == (judgement.verdict, f"holds in {seeds_holding} of 3 seeds")


FIVE_SEEDS = (0, 42, 123, 1000, 1234)


@pytest.mark.parametrize("k", range(len(FIVE_SEEDS) + 1))
def test_a_claim_holding_in_k_of_5_seeds_says_so(tmp_path, k):
    # AlexNet on CIFAR-100: early < middle < later. middle is above early in the first k seeds
    # only (in both windows); later is above middle in every seed.
    middle = np.array([[0.02 if s < k else 0.005] * EPOCHS for s in range(len(FIVE_SEEDS))])
    levels = dict(VGG_LEVELS, middle=middle)
    experiment = load_experiment(
        make_experiment(tmp_path, "alexnet", "cifar100", levels, seeds=FIVE_SEEDS)[0])
    got = judged(experiment, {experiment.key: experiment})
    mean_middle = (0.02 * k + 0.005 * (5 - k)) / 5
    for window in claims.WINDOWS:
        early_middle = got[("early < middle (early < middle < later)", window)]
        assert (early_middle.seeds_holding, early_middle.seeds_judged) == (k, 5)
        assert early_middle.verdict == ("holds" if 0.01 < mean_middle else "does not hold")
        assert write.claim_row(early_middle)[4] == f"holds in {k} of 5 seeds"
        middle_later = got[("middle < later (early < middle < later)", window)]
        assert (middle_later.seeds_holding, middle_later.seeds_judged) == (5, 5)
    text = "\n".join(
        write.claims_table(verdicts.judge_all(experiment, {experiment.key: experiment}, metric,
                                              0.1))
        for metric in spec.RWC_METRICS)
    rows = [line for line in text.splitlines()
            if line.startswith("| early < middle (early < middle < later) |")]
    assert len(rows) == 4  # both windows, both metrics
    assert all(row.endswith(f"| holds in {k} of 5 seeds |") for row in rows)


def test_close_tolerance_decides_about_equal(resnet):
    experiment, _, _ = resnet
    close = [j for j in judged(experiment, {experiment.key: experiment}, tolerance=0.01).values()
             if j.claim.op == "≈"]
    assert len(close) == 2
    assert {j.verdict for j in close} == {"does not hold"}
    assert {j.seeds_holding for j in close} == {0}


def test_claims_across_datasets_need_both_experiments(tmp_path):
    mnist = load_experiment(make_experiment(tmp_path, "resnet18", "mnist", RESNET_LEVELS, 0.5)[0])
    fmnist = load_experiment(make_experiment(tmp_path, "resnet18", "fashion_mnist",
                                             RESNET_LEVELS)[0])

    def across(experiment, experiments):
        return {k: j for k, j in judged(experiment, experiments).items() if "MNIST" in k[0]}

    alone = across(mnist, {mnist.key: mnist})
    assert len(alone) == 8  # four blocks, two windows
    assert {j.verdict for j in alone.values()} == {"needs experiment resnet18_fashion_mnist"}
    assert {write.claim_row(j)[4] for j in alone.values()} == {"–"}
    experiments = {mnist.key: mnist, fmnist.key: fmnist}
    for experiment in (mnist, fmnist):
        both = across(experiment, experiments)
        assert len(both) == 8
        assert {j.verdict for j in both.values()} == {"holds"}
        assert {(j.seeds_holding, j.seeds_judged) for j in both.values()} == {(3, 3)}
        key = ("block3 on MNIST < block3 on Fashion-MNIST (RWC lower on MNIST than on FMNIST)",
               "all epochs")
        low, high = (verdicts.group_means(e, "rwc", "all epochs")["block3"]
                     for e in (mnist, fmnist))
        assert write.claim_row(both[key])[2] == (
            f"block3 on MNIST = {low:.4g}, block3 on Fashion-MNIST = {high:.4g}")


def test_claims_across_datasets_pair_runs_by_seed(tmp_path):
    # MNIST's block3 is far above Fashion-MNIST's in seed 42 only; seed 123 has no partner.
    block3 = np.array([[0.01] * EPOCHS, [0.1] * EPOCHS, [0.01] * EPOCHS])
    mnist_dir = make_experiment(tmp_path, "resnet18", "mnist", dict(RESNET_LEVELS, block3=block3))
    fmnist_dir = make_experiment(tmp_path, "resnet18", "fashion_mnist", RESNET_LEVELS,
                                 seeds=(0, 42, 7))
    mnist, fmnist = load_experiment(mnist_dir[0]), load_experiment(fmnist_dir[0])
    got = judged(mnist, {mnist.key: mnist, fmnist.key: fmnist})
    block3_claim = ("block3 on MNIST < block3 on Fashion-MNIST (RWC lower on MNIST than on "
                    "FMNIST)", "all epochs")
    assert (got[block3_claim].seeds_holding, got[block3_claim].seeds_judged) == (1, 2)
    assert write.claim_row(got[block3_claim])[4] == "holds in 1 of 2 seeds"


def test_vgg_cifar100_claims(tmp_path):
    # CIFAR-10 lower than CIFAR-100 for early and middle, higher for later.
    cifar10_levels = dict(VGG_LEVELS, later=[0.12] * EPOCHS)  # x 0.5: 0.06 > 0.05
    cifar10 = load_experiment(make_experiment(tmp_path, "vgg19bn", "cifar10", cifar10_levels,
                                              0.5)[0])
    cifar100 = load_experiment(make_experiment(tmp_path, "vgg19bn", "cifar100", VGG_LEVELS)[0])
    experiments = {cifar10.key: cifar10, cifar100.key: cifar100}
    got = {k: j.verdict for k, j in judged(cifar100, experiments).items()
           if k[1] == "all epochs"}
    higher = "(all groups higher on CIFAR-100 than on CIFAR-10)"
    assert got == {
        ("early < later (overall: later layers change more than earlier)", "all epochs"): "holds",
        ("early < middle (early < middle and early < later; middle and later close)",
         "all epochs"): "holds",
        ("early < later (early < middle and early < later; middle and later close)",
         "all epochs"): "holds",
        # 0.03 against 0.05: 40% apart.
        ("middle ≈ later (early < middle and early < later; middle and later close)",
         "all epochs"): "does not hold",
        (f"early on CIFAR-10 < early on CIFAR-100 {higher}", "all epochs"): "holds",
        (f"middle on CIFAR-10 < middle on CIFAR-100 {higher}", "all epochs"): "holds",
        (f"later on CIFAR-10 < later on CIFAR-100 {higher}", "all epochs"): "does not hold",
    }


def test_missing_group_gives_no_data(tmp_path):
    levels = {k: v for k, v in VGG_LEVELS.items() if k != "middle"}
    experiment = load_experiment(make_experiment(tmp_path, "alexnet", "cifar10", levels)[0])
    got = judged(experiment, {experiment.key: experiment})
    missing = got[("early < middle (early < middle and later < middle)", "all epochs")]
    assert (missing.verdict, missing.seeds_judged) == ("no data", 0)
    assert write.claim_row(missing)[4] == "no data"
    assert got[("early < later (overall: later layers change more than earlier)",
                "all epochs")].verdict == "holds"


# -- the figures ---------------------------------------------------------------------------------


def colours_by_label(ax):
    return [(line.get_label(), matplotlib.colors.to_rgba(line.get_color())) for line in ax.lines]


def band_edges(collection):
    """(x, lower, upper) of a fill_between band, read back from its polygon."""
    vertices = collection.get_paths()[0].vertices
    xs = np.unique(vertices[:, 0])
    lower = [vertices[vertices[:, 0] == x, 1].min() for x in xs]
    upper = [vertices[vertices[:, 0] == x, 1].max() for x in xs]
    return xs, np.array(lower), np.array(upper)


@pytest.mark.parametrize("metric", spec.RWC_METRICS)
def test_resnet_figure(resnet, metric):
    experiment, layers, values = resnet
    figure = figures.rwc_figure(experiment, metric)
    title = figure.get_suptitle()
    for text in ("ResNet-18 on CIFAR-10", metric, "mean ± 1 std over 3 seeds", "6 epochs"):
        assert text in title
    assert len(figure.axes) == 3
    for ax, groups in zip(figure.axes, spec.architecture("resnet18").panels):
        assert ax.get_title() == " vs ".join(groups)
        assert ax.get_xlabel() == "epoch"
        assert ax.get_ylabel() == f"{metric} = {spec.METRIC_FORMULAS[metric]}"
        members = [(i, name, g) for i, (name, g) in enumerate(layers) if g in groups]
        assert len(ax.lines) == len(members) == 4
        assert len(ax.collections) == 4  # one band per layer
        assert [t.get_text() for t in ax.get_legend().get_texts()] == list(groups)
        for line, band, (i, name, group) in zip(ax.lines, ax.collections, members):
            colour = matplotlib.colors.to_rgba(f"C{experiment.groups.index(group)}")
            assert matplotlib.colors.to_rgba(line.get_color()) == colour
            assert matplotlib.colors.to_rgba(band.get_facecolor()[0])[:3] == colour[:3]
            np.testing.assert_allclose(line.get_ydata(), np.nanmean(values[metric][:, i], axis=0))
            np.testing.assert_allclose(line.get_xdata(), np.arange(1, EPOCHS + 1))
    # A group has one colour in every chart.
    block2 = {c for ax in figure.axes[:2] for label, c in colours_by_label(ax) if label == "block2"}
    assert len(block2) == 1


@pytest.mark.parametrize("n_seeds", [1, 2, 3, 5])
def test_bands_are_std_from_three_seeds_and_min_max_below(tmp_path, n_seeds):
    seeds = FIVE_SEEDS[:n_seeds]
    experiment_dir, layers, values = make_experiment(tmp_path, "vgg19bn", "cifar10", VGG_LEVELS,
                                                     seeds=seeds)
    experiment = load_experiment(experiment_dir)

    def want_band(by_seed):
        if n_seeds >= 3:
            mean, std = by_seed.mean(axis=0), by_seed.std(axis=0)
            return mean - std, mean + std
        return by_seed.min(axis=0), by_seed.max(axis=0)

    want_text = {1: "1 seed", 2: "mean and min-max over 2 seeds",
                 3: "mean ± 1 std over 3 seeds", 5: "mean ± 1 std over 5 seeds"}[n_seeds]
    figure = figures.rwc_figure(experiment, "rwc")
    assert want_text in figure.get_suptitle()
    ax = figure.axes[0]
    members = [i for i, (_, g) in enumerate(layers) if g in ("early", "middle", "later")]
    assert len(ax.collections) == len(members) == 6
    for band, i in zip(ax.collections, members):
        xs, lower, upper = band_edges(band)
        np.testing.assert_array_equal(xs, np.arange(1, EPOCHS + 1))
        want_lower, want_upper = want_band(values["rwc"][:, i])
        np.testing.assert_allclose(lower, want_lower)
        np.testing.assert_allclose(upper, want_upper)
    accuracy = figures.accuracy_figure(experiment).axes[0]
    assert want_text in accuracy.get_title()
    xs, lower, upper = band_edges(accuracy.collections[0])
    top1 = np.array([accuracy_curve(s) for s in range(n_seeds)]) * 100
    want_lower, want_upper = want_band(top1)
    np.testing.assert_allclose(lower, want_lower)
    np.testing.assert_allclose(upper, want_upper)


def test_vgg_figure_has_one_chart_of_three_groups(tmp_path):
    experiment = load_experiment(make_experiment(tmp_path, "vgg19bn", "cifar10", VGG_LEVELS)[0])
    figure = figures.rwc_figure(experiment, "rwc")
    assert len(figure.axes) == 1
    ax = figure.axes[0]
    assert len(ax.lines) == 6 and len(ax.collections) == 6
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["early", "middle", "later"]
    assert len({line.get_color() for line in ax.lines}) == 3
    assert "VGG-19-BN on CIFAR-10" in figure.get_suptitle()


def test_rwc_spanning_decades_is_drawn_on_a_log_axis(tmp_path):
    levels = dict(VGG_LEVELS)
    linear = load_experiment(make_experiment(tmp_path / "a", "vgg19bn", "cifar10", levels)[0])
    assert figures.rwc_figure(linear, "rwc").axes[0].get_yscale() == "linear"
    levels["later"] = [1000 * v for v in levels["early"]]  # a few near-zero weights do this
    spiky = load_experiment(make_experiment(tmp_path / "b", "vgg19bn", "cifar10", levels)[0])
    assert figures.rwc_figure(spiky, "rwc").axes[0].get_yscale() == "log"


def test_accuracy_figure(resnet):
    experiment, _, _ = resnet
    ax = figures.accuracy_figure(experiment).axes[0]
    top1 = np.array([accuracy_curve(s) for s in range(3)]) * 100
    mean_line, paper_line = ax.lines
    np.testing.assert_allclose(mean_line.get_ydata(), top1.mean(axis=0))
    np.testing.assert_allclose(paper_line.get_ydata(), [91.0, 91.0])
    assert "3 seeds" in ax.get_title() and ax.get_xlabel() == "epoch"
    assert [t.get_text() for t in ax.get_legend().get_texts()][1] == "paper: 91.0%"


# -- the files and the command line --------------------------------------------------------------


@pytest.mark.slow
def test_report_files(resnet):
    experiment, _, _ = resnet
    written = write.write_report(experiment, {experiment.key: experiment}, 0.1)
    pictures = ("rwc_layers.png", "rwc_norm_layers.png", "accuracy.png", "clusters.png",
                "clusters_pca.png", "clusters_k.png")
    assert [os.path.basename(p) for p in written] == ["report.md", "rwc_aggregated.csv",
                                                      *pictures]
    for name in pictures:
        pixels = matplotlib.image.imread(os.path.join(experiment.path, name))
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500
        colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
        assert len(colours) > 50, name
    text = open(os.path.join(experiment.path, "report.md")).read()
    assert text.startswith("# RWC report: ResNet-18 on CIFAR-10\n")
    header = "| claim | window | seed means | verdict | per seed |"
    assert text.count(header) == 2
    for metric in spec.RWC_METRICS:
        judgements = verdicts.judge_all(experiment, {experiment.key: experiment}, metric, 0.1)
        table = write.claims_table(judgements)
        assert table.splitlines()[0] == header and len(table.splitlines()) == 2 + 8
        assert f"### {metric}: {spec.METRIC_FORMULAS[metric]}" in text
        assert table in text
    assert "| block2 < block3 (block1 < block2 < block3; block4 about equal to block3) | " \
           "last half (4-6) |" in text
    assert "10%" in text  # the tolerance is stated
    for name in pictures:
        assert f"]({name})" in text
    assert "\n## Layer clusters\n" in text and "\n## Settling points\n" in text
    top1 = np.array([accuracy_curve(s)[-1] for s in range(3)]) * 100
    assert f"| ResNet-18 | CIFAR-10 | 3 | {top1.mean():.2f}% ± {top1.std():.2f} | 91.0% |" in text


def test_report_draws_every_metric_and_judges_only_rwc(tmp_path):
    experiment_dir = make_experiment(tmp_path, "vgg19bn", "cifar10", VGG_LEVELS,
                                     extra_metrics=("update_ratio", "dist_init"))[0]
    experiment = load_experiment(experiment_dir)
    written = [os.path.basename(p) for p in
               write.write_report(experiment, {experiment.key: experiment}, 0.1)]
    drawn = [spec.LAYERS_PNG.format(metric=m) for m in experiment.metrics]
    assert drawn == ["rwc_layers.png", "rwc_norm_layers.png", "update_ratio_layers.png",
                     "dist_init_layers.png"]
    assert written[2:6] == drawn
    text = open(os.path.join(experiment_dir, "report.md")).read()
    assert "measures: rwc, rwc_norm, update_ratio, dist_init." in text
    assert text.count("| claim | window | seed means | verdict | per seed |") == 2
    assert "### update_ratio" not in text and "](dist_init_layers.png)" in text
    figure = figures.rwc_figure(experiment, "dist_init")
    assert figure.axes[0].get_ylabel() == "dist_init = Σ|w − w0| / Σ|w0|"
    aggregated = pd.read_csv(os.path.join(experiment_dir, spec.AGGREGATED_CSV))
    assert list(aggregated["metric"].unique()) == list(experiment.metrics)


def test_accuracy_row_without_metrics(tmp_path):
    experiment_dir, _, _ = make_experiment(tmp_path, "alexnet", "mnist", VGG_LEVELS)
    for seed in SEEDS:
        os.remove(os.path.join(experiment_dir, f"seed_{seed}", "metrics.json"))
    experiment = load_experiment(experiment_dir)
    assert (experiment.arch, experiment.dataset) == ("alexnet", "mnist")  # from the folder name
    assert write.accuracy_row(experiment) == ("AlexNet", "MNIST", 0, "no metrics.json", "98.5%")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rwc_keras.report", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_writes_reports_and_prints_claims(tmp_path):
    mnist = make_experiment(tmp_path, "resnet18", "mnist", RESNET_LEVELS, 0.5)[0]
    fmnist = make_experiment(tmp_path, "resnet18", "fashion_mnist", RESNET_LEVELS)[0]
    result = run_cli(mnist, fmnist)
    assert result.returncode == 0, result.stderr
    assert f"{mnist}: ResNet-18 on MNIST, 3 seeds, 6 epochs -> {mnist}/report.md" in result.stdout
    assert f"{fmnist}: ResNet-18 on Fashion-MNIST, 3 seeds, 6 epochs" in result.stdout
    assert result.stdout.count("| claim | window | seed means | verdict | per seed |") == 2
    assert "needs experiment" not in result.stdout
    for experiment_dir in (mnist, fmnist):
        for name in ("report.md", "rwc_aggregated.csv", "rwc_layers.png", "accuracy.png"):
            assert os.path.exists(os.path.join(experiment_dir, name))


@pytest.mark.slow
def test_cli_errors_are_one_line_and_exit_1(tmp_path):
    good = make_experiment(tmp_path, "alexnet", "cifar10", VGG_LEVELS)[0]
    names = ("missing_dir", "no_seeds", "no_csv", "bad_columns", "bad_values")
    bad = {name: tmp_path / name for name in names}
    bad["no_seeds"].mkdir()
    for name in ("no_csv", "bad_columns", "bad_values"):
        (bad[name] / "seed_0").mkdir(parents=True)
    (bad["bad_columns"] / "seed_0" / "rwc.csv").write_text("epoch,layer\n1,a\n")
    (bad["bad_values"] / "seed_0" / "rwc.csv").write_text(
        "epoch,step,layer,group,rwc,rwc_norm\n1,1,a,early,0.1,oops\n"
    )
    result = run_cli(*map(str, bad.values()), good)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    csv = {name: bad[name] / "seed_0" / "rwc.csv" for name in bad}
    # One line per bad folder and nothing else: the report does not load TensorFlow.
    assert result.stderr.splitlines() == [
        f"rwc_keras.report: {bad['missing_dir']}: no such directory",
        f"rwc_keras.report: {bad['no_seeds']}: no seed_* folders",
        f"rwc_keras.report: {csv['no_csv']}: missing",
        f"rwc_keras.report: {csv['bad_columns']}: missing columns: step, group, rwc, rwc_norm",
        f"rwc_keras.report: {csv['bad_values']}: column 'rwc_norm' holds non-numbers",
    ]
    # Nothing was written for the bad folders.
    assert not bad["missing_dir"].exists()
    assert list(bad["no_seeds"].iterdir()) == []
    for name in ("no_csv", "bad_columns", "bad_values"):
        assert [p.name for p in bad[name].iterdir()] == ["seed_0"]
    # The readable experiment is still reported on.
    assert os.path.exists(os.path.join(good, "report.md"))
    assert f"{good}: AlexNet on CIFAR-10" in result.stdout


@pytest.mark.slow
def test_cli_rejects_a_negative_tolerance(tmp_path):
    good = make_experiment(tmp_path, "alexnet", "cifar10", VGG_LEVELS)[0]
    result = run_cli("--close_tolerance=-0.1", good)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "close_tolerance" in result.stderr
    assert not os.path.exists(os.path.join(good, "report.md"))
