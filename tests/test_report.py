import json
import os
import subprocess
import sys

import matplotlib.colors
import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from rwc_keras import report

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
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def layer_names(levels):
    """One layer for stem and head, two for every other group."""
    names = []
    for group in levels:
        count = 1 if group in ("stem", "head") else 2
        names += [(f"{group}_conv{i + 1}/kernel", group) for i in range(count)]
    return names


def make_run(root, arch, dataset, levels, scale=1.0, steps_per_epoch=1, seed=0):
    """Writes a synthetic run dir; returns it and the values as arrays [seed, layer, point]."""
    rng = np.random.default_rng(seed)
    layers = layer_names(levels)
    points = EPOCHS * steps_per_epoch
    level = np.array([np.repeat(levels[g], steps_per_epoch) for _, g in layers]) * scale
    values = {
        "rwc": level * rng.uniform(0.97, 1.03, size=(len(SEEDS), len(layers), points)),
        "rwc_norm": 0.5 * level * rng.uniform(0.9, 1.1, size=(len(SEEDS), len(layers), points)),
    }
    if arch == "resnet18":
        layer_index = [name for name, _ in layers].index(NAN_AT[1])
        values["rwc"][NAN_AT[0], layer_index, NAN_AT[2]] = np.nan
    run_dir = root / f"{arch}_{dataset}"
    for s, seed_value in enumerate(SEEDS):
        seed_dir = run_dir / f"seed_{seed_value}"
        seed_dir.mkdir(parents=True)
        rows = []
        for p in range(points):
            for l, (name, group) in enumerate(layers):
                rows.append(
                    dict(
                        epoch=p // steps_per_epoch + 1,
                        step=(p + 1) * 10,
                        layer=name,
                        group=group,
                        rwc=values["rwc"][s, l, p],
                        rwc_norm=values["rwc_norm"][s, l, p],
                        zeros=0,
                        size=100,
                    )
                )
        pd.DataFrame(rows).to_csv(seed_dir / "rwc.csv", index=False)
        top1 = 0.5 + 0.05 * np.arange(1, EPOCHS + 1) + 0.01 * s
        history = pd.DataFrame(
            dict(
                epoch=np.arange(1, EPOCHS + 1),
                train_loss=1.0,
                train_top1=top1,
                train_top5=0.99,
                test_loss=1.0,
                test_top1=top1,
                test_top5=0.99,
                seconds=10.0,
            )
        )
        history.to_csv(seed_dir / "history.csv", index=False)
        metrics = dict(
            arch=arch,
            dataset=dataset,
            seed=seed_value,
            epochs=EPOCHS,
            test_top1=top1[-1],
            test_top5=0.99,
            wall_seconds=60.0,
            images_per_second=100.0,
        )
        (seed_dir / "metrics.json").write_text(json.dumps(metrics))
    return str(run_dir), layers, values


def group_curves(layers, values):
    """Reference: per seed the nan-mean of each group's layers, {group: array [seed, point]}."""
    groups = dict.fromkeys(g for _, g in layers)
    return {
        g: np.nanmean(values[:, [i for i, (_, lg) in enumerate(layers) if lg == g], :], axis=1)
        for g in groups
    }


def window_mean(curve, window, steps_per_epoch=1):
    first = 0 if window == "all epochs" else (EPOCHS // 2) * steps_per_epoch
    return curve.mean(axis=0)[first:].mean()


@pytest.fixture
def resnet(tmp_path):
    run_dir, layers, values = make_run(tmp_path, "resnet18", "cifar10", RESNET_LEVELS)
    return report.load_run(run_dir), layers, values


def rows_of(run, metric, level, name):
    table = run.aggregated
    rows = table[(table.level == level) & (table.metric == metric) & (table.name == name)]
    return rows.sort_values(run.x)


def test_load_run_reads_identity_and_order(resnet):
    run, layers, _ = resnet
    assert (run.arch, run.dataset, run.epochs, run.x) == ("resnet18", "cifar10", EPOCHS, "epoch")
    assert run.seeds == ["0", "42", "123"]
    assert run.layers == layers
    assert run.groups == ["stem", "block1", "block2", "block3", "block4", "head"]


def test_layer_mean_and_std_over_seeds(resnet):
    run, layers, values = resnet
    for metric in report.METRICS:
        for l, (name, group) in enumerate(layers):
            rows = rows_of(run, metric, "layer", name)
            assert list(rows.epoch) == list(range(1, EPOCHS + 1))
            assert set(rows.group) == {group}
            np.testing.assert_allclose(rows["mean"], np.nanmean(values[metric][:, l], axis=0))
            np.testing.assert_allclose(rows["std"], np.nanstd(values[metric][:, l], axis=0))
            want_n = np.sum(~np.isnan(values[metric][:, l]), axis=0)
            np.testing.assert_array_equal(rows["n_seeds"], want_n)
    # The NaN is left out: that point has two seeds.
    nan_rows = rows_of(run, "rwc", "layer", NAN_AT[1])
    assert nan_rows["n_seeds"].tolist()[NAN_AT[2]] == len(SEEDS) - 1


def test_group_curves_are_seed_means_of_layer_means(resnet):
    run, layers, values = resnet
    for metric in report.METRICS:
        for group, curve in group_curves(layers, values[metric]).items():
            rows = rows_of(run, metric, "group", group)
            np.testing.assert_allclose(rows["mean"], curve.mean(axis=0))
            np.testing.assert_allclose(rows["std"], curve.std(axis=0))
            assert set(rows["n_seeds"]) == {len(SEEDS)}


def test_aggregated_csv_written_in_long_format(resnet):
    run, _, _ = resnet
    report.write_report(run, {("resnet18", "cifar10"): run}, 0.1)
    written = pd.read_csv(os.path.join(run.path, report.AGGREGATED_CSV))
    assert list(written.columns) == [
        "level", "name", "group", "epoch", "metric", "mean", "std", "n_seeds"
    ]
    assert len(written) == 2 * EPOCHS * (len(run.layers) + len(run.groups))


def test_group_means_per_window(resnet):
    run, layers, values = resnet
    for metric in report.METRICS:
        curves = group_curves(layers, values[metric])
        for window in report.WINDOWS:
            got = report.group_means(run, metric, window)
            for group, curve in curves.items():
                assert got[group] == pytest.approx(window_mean(curve, window))


def verdicts(run, runs, metric="rwc"):
    return {
        (claim, window.split(" (")[0]): (numbers, verdict)
        for claim, window, numbers, verdict in report.claim_rows(run, runs, metric, 0.1)
    }


def test_resnet_cifar10_verdicts_by_design(resnet):
    run, _, _ = resnet
    got = verdicts(run, {("resnet18", "cifar10"): run})
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
    assert {key: verdict for key, (_, verdict) in got.items()} == want


@pytest.mark.parametrize("metric", report.METRICS)
def test_verdicts_and_numbers_match_independent_means(resnet, metric):
    run, layers, values = resnet
    curves = group_curves(layers, values[metric])
    rows = report.claim_rows(run, {("resnet18", "cifar10"): run}, metric, 0.1)
    assert len(rows) == 8
    for claim_text, window, numbers, verdict in rows:
        left, op, right = claim_text.split(" (")[0].split()
        window = window.split(" (")[0]
        a, b = (window_mean(curves[g], window) for g in (left, right))
        assert numbers.startswith(f"{left} = {a:.4g}, {right} = {b:.4g}")
        holds = a < b if op == "<" else abs(a - b) <= 0.1 * max(a, b)
        assert verdict == ("holds" if holds else "does not hold")
        if op == "≈":
            assert f"relative difference {abs(a - b) / max(a, b):.1%}" in numbers


def test_window_labels_name_the_epochs(resnet):
    run, _, _ = resnet
    rows = report.claim_rows(run, {("resnet18", "cifar10"): run}, "rwc", 0.1)
    windows = {window for _, window, _, _ in rows}
    assert windows == {"all epochs (1-6)", "last half (4-6)"}


def test_close_tolerance_decides_about_equal(resnet):
    run, _, _ = resnet
    runs = {("resnet18", "cifar10"): run}
    close = [r for r in report.claim_rows(run, runs, "rwc", 0.01) if "≈" in r[0]]
    assert {verdict for *_, verdict in close} == {"does not hold"}


def test_claims_across_datasets_need_both_run_dirs(tmp_path):
    mnist = report.load_run(make_run(tmp_path, "resnet18", "mnist", RESNET_LEVELS, 0.5)[0])
    fmnist = report.load_run(make_run(tmp_path, "resnet18", "fashion_mnist", RESNET_LEVELS)[0])

    def across(run, runs):
        return {k: v for k, v in verdicts(run, runs).items() if "MNIST" in k[0]}

    alone = across(mnist, {("resnet18", "mnist"): mnist})
    assert len(alone) == 8  # four blocks, two windows
    assert {v for _, v in alone.values()} == {"needs run dir resnet18_fashion_mnist"}
    runs = {("resnet18", "mnist"): mnist, ("resnet18", "fashion_mnist"): fmnist}
    for run in (mnist, fmnist):
        both = across(run, runs)
        assert len(both) == 8
        assert {v for _, v in both.values()} == {"holds"}
        key = ("block3 on MNIST < block3 on Fashion-MNIST (RWC lower on MNIST than on FMNIST)",
               "all epochs")
        low, high = (report.group_means(r, "rwc", "all epochs")["block3"] for r in (mnist, fmnist))
        assert both[key][0] == f"block3 on MNIST = {low:.4g}, block3 on Fashion-MNIST = {high:.4g}"


def test_vgg_cifar100_claims(tmp_path):
    # CIFAR-10 lower than CIFAR-100 for early and middle, higher for later.
    cifar10_levels = dict(VGG_LEVELS, later=[0.12] * EPOCHS)  # x 0.5: 0.06 > 0.05
    cifar10 = report.load_run(make_run(tmp_path, "vgg19bn", "cifar10", cifar10_levels, 0.5)[0])
    cifar100 = report.load_run(make_run(tmp_path, "vgg19bn", "cifar100", VGG_LEVELS)[0])
    runs = {("vgg19bn", "cifar10"): cifar10, ("vgg19bn", "cifar100"): cifar100}
    got = {k: v for k, (_, v) in verdicts(cifar100, runs).items() if k[1] == "all epochs"}
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
    run = report.load_run(make_run(tmp_path, "alexnet", "cifar10", levels)[0])
    got = verdicts(run, {("alexnet", "cifar10"): run})
    assert got[("early < middle (early < middle and later < middle)", "all epochs")][1] == "no data"
    assert got[("early < later (overall: later layers change more than earlier)",
                "all epochs")][1] == "holds"


def test_claims_per_run_as_in_spec():
    # Overall claim + the run's own comparisons + comparisons with another dataset's run.
    want = {
        ("resnet18", "cifar10"): 1 + 3,
        ("resnet18", "cifar100"): 1 + 3,
        ("resnet18", "mnist"): 1 + 3 + 4,
        ("resnet18", "fashion_mnist"): 1 + 3 + 4,
        ("vgg19bn", "cifar10"): 1 + 2 + 3,
        ("vgg19bn", "cifar100"): 1 + 3 + 3,
        ("vgg19bn", "mnist"): 1 + 2 + 3,
        ("vgg19bn", "fashion_mnist"): 1 + 2 + 3,
        ("alexnet", "cifar10"): 1 + 2,
        ("alexnet", "cifar100"): 1 + 2,
        ("alexnet", "mnist"): 1 + 2,
        ("alexnet", "fashion_mnist"): 1 + 2,
    }
    got = {key: 0 for key in want}
    for claim in report.CLAIMS:
        for dataset in claim.datasets:
            got[(claim.arch, dataset)] += 1
    assert got == want
    assert {c.op for c in report.CLAIMS} == {"<", "≈"}


def test_per_step_measurements_use_the_step_axis(tmp_path):
    run_dir, layers, values = make_run(tmp_path, "vgg19bn", "mnist", VGG_LEVELS, steps_per_epoch=3)
    run = report.load_run(run_dir)
    assert run.x == "step" and run.epochs == EPOCHS
    rows = rows_of(run, "rwc", "layer", layers[0][0])
    assert list(rows.step) == [10 * (p + 1) for p in range(3 * EPOCHS)]
    assert list(rows.epoch) == [p // 3 + 1 for p in range(3 * EPOCHS)]
    np.testing.assert_allclose(rows["mean"], values["rwc"][:, 0].mean(axis=0))
    curves = group_curves(layers, values["rwc"])
    got = report.group_means(run, "rwc", "last half")
    assert got["later"] == pytest.approx(window_mean(curves["later"], "last half", 3))
    # Per step the last half is counted in steps, so a one-epoch run has one too.
    assert report.window_label(run, "all epochs") == "all epochs (steps 10-180)"
    assert report.window_label(run, "last half") == "last half (steps 100-180)"
    figure = report.rwc_figure(run, "rwc")
    assert figure.axes[0].get_xlabel() == "optimizer step"


def colours_by_label(ax):
    return [(line.get_label(), matplotlib.colors.to_rgba(line.get_color())) for line in ax.lines]


@pytest.mark.parametrize("metric", report.METRICS)
def test_resnet_figure(resnet, metric):
    run, layers, values = resnet
    figure = report.rwc_figure(run, metric)
    title = figure.get_suptitle()
    for text in ("ResNet-18 on CIFAR-10", metric, "3 seeds", "6 epochs", "std"):
        assert text in title
    assert len(figure.axes) == 3
    panels = (("block1", "block2"), ("block2", "block3"), ("block3", "block4"))
    for ax, groups in zip(figure.axes, panels):
        assert ax.get_title() == " vs ".join(groups)
        assert ax.get_xlabel() == "epoch"
        assert "RWC" in ax.get_ylabel()
        members = [(i, name, g) for i, (name, g) in enumerate(layers) if g in groups]
        assert len(ax.lines) == len(members) == 4
        assert len(ax.collections) == 4  # one std band per layer
        assert [t.get_text() for t in ax.get_legend().get_texts()] == list(groups)
        for line, band, (i, name, group) in zip(ax.lines, ax.collections, members):
            colour = matplotlib.colors.to_rgba(f"C{run.groups.index(group)}")
            assert matplotlib.colors.to_rgba(line.get_color()) == colour
            assert matplotlib.colors.to_rgba(band.get_facecolor()[0])[:3] == colour[:3]
            mean = np.nanmean(values[metric][:, i], axis=0)
            std = np.nanstd(values[metric][:, i], axis=0)
            np.testing.assert_allclose(line.get_ydata(), mean)
            np.testing.assert_allclose(line.get_xdata(), np.arange(1, EPOCHS + 1))
            band_y = band.get_paths()[0].vertices[:, 1]
            assert band_y.max() == pytest.approx((mean + std).max())
            assert band_y.min() == pytest.approx((mean - std).min())
    # A group has one colour in every chart.
    block2 = {c for ax in figure.axes[:2] for label, c in colours_by_label(ax) if label == "block2"}
    assert len(block2) == 1


def test_vgg_figure_has_one_chart_of_three_groups(tmp_path):
    run = report.load_run(make_run(tmp_path, "vgg19bn", "cifar10", VGG_LEVELS)[0])
    figure = report.rwc_figure(run, "rwc")
    assert len(figure.axes) == 1
    ax = figure.axes[0]
    assert len(ax.lines) == 6 and len(ax.collections) == 6
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["early", "middle", "later"]
    assert len({line.get_color() for line in ax.lines}) == 3
    assert "VGG-19-BN on CIFAR-10" in figure.get_suptitle()


def test_rwc_spanning_decades_is_drawn_on_a_log_axis(tmp_path):
    levels = dict(VGG_LEVELS)
    linear = report.load_run(make_run(tmp_path / "a", "vgg19bn", "cifar10", levels)[0])
    assert report.rwc_figure(linear, "rwc").axes[0].get_yscale() == "linear"
    levels["later"] = [1000 * v for v in levels["early"]]  # a few near-zero weights do this
    spiky = report.load_run(make_run(tmp_path / "b", "vgg19bn", "cifar10", levels)[0])
    assert report.rwc_figure(spiky, "rwc").axes[0].get_yscale() == "log"


def test_accuracy_figure(resnet):
    run, _, _ = resnet
    ax = report.accuracy_figure(run).axes[0]
    top1 = np.array([0.5 + 0.05 * np.arange(1, EPOCHS + 1) + 0.01 * s for s in range(3)]) * 100
    mean_line, paper_line = ax.lines
    np.testing.assert_allclose(mean_line.get_ydata(), top1.mean(axis=0))
    np.testing.assert_allclose(paper_line.get_ydata(), [91.0, 91.0])
    band_y = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band_y.max() == pytest.approx((top1.mean(axis=0) + top1.std(axis=0)).max())
    assert "3 seeds" in ax.get_title() and ax.get_xlabel() == "epoch"
    assert [t.get_text() for t in ax.get_legend().get_texts()][1] == "paper: 91.0%"


def test_report_files(resnet):
    run, _, _ = resnet
    table = report.write_report(run, {("resnet18", "cifar10"): run}, 0.1)
    for name in ("rwc_layers.png", "rwc_norm_layers.png", "accuracy.png"):
        pixels = matplotlib.image.imread(os.path.join(run.path, name))
        assert pixels.shape[0] > 300 and pixels.shape[1] > 500
        colours = np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)
        assert len(colours) > 50, name
    text = open(os.path.join(run.path, "report.md")).read()
    assert "# RWC report: ResNet-18 on CIFAR-10" in text
    assert table in text
    assert table.splitlines()[0] == "| claim | window | numbers | verdict |"
    assert len(table.splitlines()) == 2 + 8
    assert "| block2 < block3 (block1 < block2 < block3; block4 about equal to block3) | " \
           "last half (4-6) |" in text
    assert "### rwc_norm" in text and text.count("| claim | window | numbers | verdict |") == 2
    assert "10%" in text  # the tolerance is stated
    for name in ("rwc_layers.png", "rwc_norm_layers.png", "accuracy.png"):
        assert f"]({name})" in text
    top1 = np.array([0.8 + 0.01 * s for s in range(3)]) * 100
    assert f"| ResNet-18 | CIFAR-10 | 3 | {top1.mean():.2f}% ± {top1.std():.2f} | 91.0% |" in text


def test_accuracy_row_without_metrics(tmp_path):
    run_dir, _, _ = make_run(tmp_path, "alexnet", "mnist", VGG_LEVELS)
    for seed in SEEDS:
        os.remove(os.path.join(run_dir, f"seed_{seed}", "metrics.json"))
    run = report.load_run(run_dir)
    assert (run.arch, run.dataset) == ("alexnet", "mnist")  # from the folder name
    assert report.accuracy_row(run) == ("AlexNet", "MNIST", 0, "no metrics.json", "98.5%")


@pytest.mark.parametrize(
    "content, problem",
    [
        ("epoch,step,layer,group,rwc\n1,1,a,early,0.1\n", "missing columns: rwc_norm"),
        ("epoch,step,layer,group,rwc,rwc_norm\n1,1,a,early,x,0.1\n", "'rwc' holds non-numbers"),
        ("epoch,step,layer,group,rwc,rwc_norm\n", "no rows"),
        ("", "cannot parse"),
        ('epoch,step,layer,group,rwc,rwc_norm\n1,1,"a,early,0.1,0.1\n', "cannot parse"),
        ("epoch,step,layer,group,rwc,rwc_norm\n,1,a,early,0.1,0.1\n", "empty cells"),
    ],
)
def test_malformed_rwc_csv(tmp_path, content, problem):
    (tmp_path / "seed_0").mkdir()
    (tmp_path / "seed_0" / "rwc.csv").write_text(content)
    with pytest.raises(report.ReportError, match=problem) as error:
        report.load_run(str(tmp_path))
    assert str(tmp_path / "seed_0" / "rwc.csv") in str(error.value)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "rwc_keras.report", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_writes_reports_and_prints_claims(tmp_path):
    mnist = make_run(tmp_path, "resnet18", "mnist", RESNET_LEVELS, 0.5)[0]
    fmnist = make_run(tmp_path, "resnet18", "fashion_mnist", RESNET_LEVELS)[0]
    result = run_cli(mnist, fmnist)
    assert result.returncode == 0, result.stderr
    assert f"{mnist}: ResNet-18 on MNIST, 3 seeds, 6 epochs" in result.stdout
    assert f"{fmnist}: ResNet-18 on Fashion-MNIST, 3 seeds, 6 epochs" in result.stdout
    assert result.stdout.count("| claim | window | numbers | verdict |") == 2
    assert "needs run dir" not in result.stdout
    for run_dir in (mnist, fmnist):
        for name in ("report.md", "rwc_aggregated.csv", "rwc_layers.png", "accuracy.png"):
            assert os.path.exists(os.path.join(run_dir, name))


def test_cli_errors_are_one_line_and_exit_1(tmp_path):
    good = make_run(tmp_path, "alexnet", "cifar10", VGG_LEVELS)[0]
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
    # One line per bad dir and nothing else: the report does not load TensorFlow.
    assert result.stderr.splitlines() == [
        f"rwc_keras.report: {bad['missing_dir']}: no such directory",
        f"rwc_keras.report: {bad['no_seeds']}: no seed_* folders",
        f"rwc_keras.report: {csv['no_csv']}: missing",
        f"rwc_keras.report: {csv['bad_columns']}: missing columns: step, group, rwc, rwc_norm",
        f"rwc_keras.report: {csv['bad_values']}: column 'rwc_norm' holds non-numbers",
    ]
    # Nothing was written for the bad dirs.
    assert not bad["missing_dir"].exists()
    assert list(bad["no_seeds"].iterdir()) == []
    for name in ("no_csv", "bad_columns", "bad_values"):
        assert [p.name for p in bad[name].iterdir()] == ["seed_0"]
    # The readable run dir is still reported on.
    assert os.path.exists(os.path.join(good, "report.md"))
    assert f"{good}: AlexNet on CIFAR-10" in result.stdout
