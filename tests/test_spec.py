"""The schema (rwc_keras.spec) and the code that reads it agree."""

import subprocess
import sys

import pytest

from rwc_keras import data, models, spec


def test_importing_the_schema_and_the_flags_does_not_import_tensorflow():
    code = ("import sys, rwc_keras.spec, rwc_keras.main; "
            "sys.exit('tensorflow' in sys.modules)")
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
    assert entry.raw_format in data._EXPECTED_FILES
    assert len(entry.mean) == len(entry.std) == entry.channels
    for normalize in spec.NORMALIZATIONS:
        mean_std = entry.normalization(normalize)
        assert mean_std is None or len(mean_std[0]) == len(mean_std[1]) == entry.channels


def test_main_flag_choices_come_from_the_schema():
    from rwc_keras import main

    assert main.FLAGS["arch"].parser.enum_values == list(spec.ARCHITECTURES)
    assert main.FLAGS["dataset"].parser.enum_values == list(spec.DATASETS)
    assert main.FLAGS["normalize"].parser.enum_values == list(spec.NORMALIZATIONS)


def test_unknown_names_are_clear_errors_not_key_errors():
    with pytest.raises(spec.SchemaError, match="'lenet'; valid: resnet18, vgg19bn, alexnet"):
        spec.architecture("lenet")
    with pytest.raises(spec.SchemaError, match="'svhn'; valid: cifar10, cifar100"):
        spec.dataset("svhn")
    with pytest.raises(spec.SchemaError, match="normalize='imagenet'; valid: authors"):
        spec.DATASETS["mnist"].normalization("imagenet")


def test_a_pair_missing_from_table1_asks_for_lr(monkeypatch):
    alexnet = spec.ARCHITECTURES["alexnet"]
    without = {k: v for k, v in alexnet.lr.items() if k != "mnist"}
    monkeypatch.setitem(spec.ARCHITECTURES, "alexnet",
                        spec.dataclasses.replace(alexnet, lr=without))
    with pytest.raises(spec.SchemaError, match="no learning rate for alexnet on 'mnist'.*--lr"):
        spec.table1_lr("alexnet", "mnist")
    assert spec.table1_lr("alexnet", "cifar100") == 0.01
