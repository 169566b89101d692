"""The reference runs committed under runs/reference stay readable by the report code."""

import json
import pathlib

import pandas as pd
import pytest

from rwc_keras import report

REFERENCE = pathlib.Path(__file__).resolve().parents[1] / "runs" / "reference"
RUN_DIRS = sorted(path for path in REFERENCE.glob("*_*") if path.is_dir())


def test_the_reference_runs_are_there():
    assert [path.name for path in RUN_DIRS] == ["alexnet_fashion_mnist", "resnet18_fashion_mnist"]


@pytest.mark.parametrize("run_dir", RUN_DIRS, ids=lambda path: path.name)
def test_reference_run_reads_back_as_committed(run_dir):
    run = report.load_run(str(run_dir))
    for seed_dir in run_dir.glob("seed_*"):
        metrics = json.loads((seed_dir / "metrics.json").read_text())
        assert (metrics["arch"], metrics["dataset"]) == (run.arch, run.dataset)
        assert (seed_dir / "flags.cfg").exists()
        assert list(seed_dir.glob("events.out.tfevents.*"))
    committed = pd.read_csv(run_dir / "rwc_aggregated.csv", keep_default_na=False,
                            na_values=[""])
    recomputed = run.aggregated.reset_index(drop=True)
    assert list(committed.columns) == list(recomputed.columns)
    for column in ("mean", "std"):
        pd.testing.assert_series_equal(recomputed[column], committed[column], rtol=1e-9,
                                       check_dtype=False)
    # The claims, re-evaluated by today's code, read as the committed report says.
    committed_report = (run_dir / "report.md").read_text()
    runs = {(run.arch, run.dataset): run}
    for metric in report.METRICS:
        table = report.markdown_table(report.CLAIMS_HEADER,
                                      report.claim_rows(run, runs, metric, 0.10))
        assert table in committed_report
    for figure in ("rwc_layers.png", "rwc_norm_layers.png", "accuracy.png"):
        assert (run_dir / figure).stat().st_size > 10_000
