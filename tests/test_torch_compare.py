"""tests/torch_compare.py: the project-against-PyTorch table and Welch's t-test."""

import json
import math
import os

from . import torch_compare
from .helpers import ROOT


def write_runs(root, arch, top1_by_seed):
    for seed, top1 in top1_by_seed.items():
        folder = os.path.join(root, f"{arch}_fashion_mnist", f"seed_{seed}")
        os.makedirs(folder)
        with open(os.path.join(folder, "metrics.json"), "w") as f:
            json.dump({"seed": seed, "test_top1": top1}, f)


def test_table_and_welch_statistic(tmp_path):
    project, pytorch = {0: 0.70, 42: 0.72, 123: 0.74}, {0: 0.78, 42: 0.76, 1: 0.80}
    write_runs(tmp_path / "p", "resnet18", project)
    write_runs(tmp_path / "t", "resnet18", pytorch)
    text = torch_compare.comparison(tmp_path / "p", tmp_path / "t", "resnet18")
    assert "| 0 | 70.00 | 78.00 |" in text
    assert "| 1 | not run | 80.00 |" in text and "| 123 | 74.00 | not run |" in text
    assert "| mean ± std | 72.00 ± 2.00 | 78.00 ± 2.00 |" in text
    # Welch: t = (m1 - m2) / sqrt(s1^2 / n1 + s2^2 / n2), here -0.06 / sqrt(2 * 0.0004 / 3).
    t = -0.06 / math.sqrt(2 * 0.02 ** 2 / 3)
    assert f"t = {t:.2f}" in text
    assert "a difference at the 5% level" in text


def test_one_seed_a_side_gives_no_test(tmp_path):
    write_runs(tmp_path / "p", "vgg19bn", {0: 0.5})
    write_runs(tmp_path / "t", "vgg19bn", {0: 0.6})
    text = torch_compare.comparison(tmp_path / "p", tmp_path / "t", "vgg19bn")
    assert "needs at least two seeds on each side" in text
    assert "| mean ± std | 50.00 | 60.00 |" in text


def test_runs_readme_shows_the_committed_comparison():
    """runs/README.md's "Project against PyTorch" tables are those of the committed runs."""
    runs = os.path.join(ROOT, "runs")
    with open(os.path.join(runs, "README.md")) as f:
        readme = f.read()
    committed = readme.split("<!-- torch_compare -->\n")[1].split("<!-- /torch_compare -->")[0]
    project, pytorch = (os.path.join(runs, folder)
                        for folder in ("reference", "reference_pytorch"))
    expected = "\n".join(torch_compare.comparison(project, pytorch, arch)
                         for arch in ("resnet18", "vgg19bn"))
    assert committed.strip() == expected.strip()
