"""The schema (rwc_keras.spec) and the code that reads it agree."""

import json
import subprocess
import sys

import pytest

from rwc_keras import spec
from rwc_keras.analysis import claims
from rwc_keras.experiment import models
from rwc_keras.experiment.data import sources


def test_the_driver_flags_come_from_the_schema_without_tensorflow():
    code = ("import json, sys; from absl import flags; "
            "from rwc_keras.experiment import flags as driver_flags; "
            "driver_flags.define_flags(); "
            "print(json.dumps([flags.FLAGS[name].parser.enum_values "
            "for name in ('arch', 'dataset', 'normalize')] + ['tensorflow' in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [list(spec.ARCHITECTURES), list(spec.DATASETS),
                                         list(spec.NORMALIZATIONS), False]


@pytest.mark.slow
def test_importing_the_report_does_not_import_tensorflow():
    code = "import sys, rwc_keras.report.__main__; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("arch", spec.ARCHITECTURES)
def test_every_architecture_has_a_builder_and_complete_tables(arch):
    entry = spec.ARCHITECTURES[arch]
    assert callable(getattr(models, entry.builder))
    assert set(entry.lr) == set(entry.paper_top1) == set(spec.DATASETS)
    for panel in entry.panels:
        assert set(panel) <= set(entry.groups)


@pytest.mark.parametrize("name", spec.DATASETS)
def test_every_dataset_has_a_reader_and_statistics(name):
    entry = spec.DATASETS[name]
    assert entry.raw_format in sources._EXPECTED_FILES
    assert len(entry.mean) == len(entry.std) == entry.channels
    for normalize in spec.NORMALIZATIONS:
        mean_std = entry.normalization(normalize)
        assert mean_std is None or len(mean_std[0]) == len(mean_std[1]) == entry.channels


def test_unknown_names_are_clear_errors_not_key_errors():
    with pytest.raises(spec.SchemaError, match="'lenet'; valid: resnet18, vgg19bn, alexnet"):
        spec.architecture("lenet")
    with pytest.raises(spec.SchemaError, match="'svhn'; valid: cifar10, cifar100"):
        spec.dataset("svhn")
    with pytest.raises(spec.SchemaError, match="normalize='imagenet'; valid: authors"):
        spec.DATASETS["mnist"].normalization("imagenet")
    with pytest.raises(spec.SchemaError, match="'svhn'; valid: cifar10"):
        spec.paper_top1("alexnet", "svhn")
    with pytest.raises(spec.SchemaError, match="'lenet'; valid: resnet18"):
        claims.claims_for("lenet", "mnist")


def test_a_pair_missing_from_table1_asks_for_lr(monkeypatch):
    alexnet = spec.ARCHITECTURES["alexnet"]
    without = {k: v for k, v in alexnet.lr.items() if k != "mnist"}
    monkeypatch.setitem(spec.ARCHITECTURES, "alexnet",
                        spec.dataclasses.replace(alexnet, lr=without))
    with pytest.raises(spec.SchemaError, match="no learning rate for alexnet on 'mnist'.*--lr"):
        spec.table1_lr("alexnet", "mnist")
    assert spec.table1_lr("alexnet", "cifar100") == 0.01


def test_a_pair_missing_from_the_paper_has_no_accuracy(monkeypatch):
    alexnet = spec.ARCHITECTURES["alexnet"]
    without = {k: v for k, v in alexnet.paper_top1.items() if k != "mnist"}
    monkeypatch.setitem(spec.ARCHITECTURES, "alexnet",
                        spec.dataclasses.replace(alexnet, paper_top1=without))
    assert spec.paper_top1("alexnet", "mnist") is None
    assert spec.paper_top1("alexnet", "cifar100") == 0.53


@pytest.mark.parametrize("arch", spec.ARCHITECTURES)
@pytest.mark.parametrize("dataset", spec.DATASETS)
def test_experiment_folder_names_read_back(arch, dataset):
    assert spec.parse_experiment_folder(spec.experiment_folder(arch, dataset)) == (arch, dataset)


def test_a_folder_name_that_is_no_experiment_is_a_clear_error():
    for name in ("alexnet", "alexnet_svhn", "lenet_mnist", "alexnet_mnist_2"):
        with pytest.raises(spec.SchemaError, match=f"{name!r} is not <arch>_<dataset>"):
            spec.parse_experiment_folder(name)


def test_every_metric_has_a_formula_and_a_column():
    assert tuple(spec.METRIC_FORMULAS) == spec.METRICS
    assert set(spec.RWC_METRICS) | set(spec.INITIAL_METRICS) <= set(spec.METRICS)
    assert set(spec.RWC_METRICS) <= set(spec.RWC_COLUMNS)
    assert spec.rwc_columns(spec.METRICS)[4:-2] == spec.METRICS


def test_claims_name_known_architectures_datasets_and_groups():
    for claim in claims.CLAIMS:
        groups = spec.architecture(claim.arch).groups
        assert set(claim.datasets) <= set(spec.DATASETS)
        for term in (claim.left, claim.right):
            assert term.group in groups
            assert term.dataset is None or term.dataset in claim.datasets
        assert claim.op in ("<", "≈")


def test_claims_per_experiment_as_in_the_paper():
    # The overall claim + the experiment's own comparisons + comparisons with another
    # dataset's experiment (docs/paper_facts.md, "Claims the paper makes").
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
    assert {key: len(claims.claims_for(*key)) for key in want} == want
    assert {c.op for c in claims.CLAIMS} == {"<", "≈"}
