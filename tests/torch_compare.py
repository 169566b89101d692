"""Project against PyTorch under the reference protocol: a per-seed table of test top-1 and
Welch's two-sample t-test of the difference, as markdown (runs/README.md, "Project against
PyTorch").

    python tests/torch_compare.py runs/reference runs/reference_pytorch resnet18 vgg19bn

reads ``<project>/<arch>_fashion_mnist/seed_<n>/metrics.json`` (`python -m rwc_keras.main`)
and ``<pytorch>/<arch>_fashion_mnist/seed_<n>/metrics.json`` (tests/torch_train.py).
"""

import glob
import json
import os
import sys

import numpy as np
from scipy import stats

DATASET = "fashion_mnist"
# The goal: no difference at this significance level.
ALPHA = 0.05


def top1_by_seed(root, arch):
    """{seed: test top-1} of every finished seed of one experiment folder."""
    values = {}
    for path in glob.glob(os.path.join(root, f"{arch}_{DATASET}", "seed_*", "metrics.json")):
        with open(path) as f:
            metrics = json.load(f)
        values[int(metrics["seed"])] = float(metrics["test_top1"])
    return values


def welch(project, pytorch):
    """(t, p) of Welch's t-test, or None with fewer than two values on a side."""
    if min(len(project), len(pytorch)) < 2:
        return None
    result = stats.ttest_ind(project, pytorch, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def mean_cell(top1):
    """"mean ± std" of a {seed: top-1} in percent (the mean alone for one seed)."""
    if not top1:
        return "not run"
    values = 100 * np.array(list(top1.values()))
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def comparison(project_root, pytorch_root, arch):
    """The markdown section of one architecture: per-seed table, means, test and verdict."""
    project, pytorch = top1_by_seed(project_root, arch), top1_by_seed(pytorch_root, arch)
    lines = [f"### {arch}", "", "| seed | project top-1 (%) | PyTorch top-1 (%) |",
             "| --- | --- | --- |"]
    for seed in sorted(set(project) | set(pytorch)):
        cells = [f"{100 * side[seed]:.2f}" if seed in side else "not run"
                 for side in (project, pytorch)]
        lines.append(f"| {seed} | {cells[0]} | {cells[1]} |")
    lines.append(f"| mean ± std | {mean_cell(project)} | {mean_cell(pytorch)} |")
    test = welch(list(project.values()), list(pytorch.values()))
    lines.append("")
    if test is None:
        lines.append("Welch's t-test: needs at least two seeds on each side.")
    else:
        t, p = test
        verdict = ("no difference at the 5% level" if p >= ALPHA
                   else "a difference at the 5% level")
        lines.append(f"Welch's t-test: t = {t:.2f}, p = {p:.3f}: {verdict}.")
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__.split("\n\n")[1].strip())
    project_root, pytorch_root, *archs = argv[1:]
    print("\n".join(comparison(project_root, pytorch_root, arch) for arch in archs))


if __name__ == "__main__":
    main(sys.argv)
