"""The driver's ``--jit_compile``: its per-model default, the override, and a resumed run
keeping the choice it began with."""

import dataclasses

import pytest
from absl import flags

from rwc_keras import spec
from rwc_keras.experiment import flags as driver_flags
from rwc_keras.experiment.train import RunConfig


@pytest.fixture
def parse():
    """Defines the driver's flags for the test and parses the given arguments."""
    before = set(flags.FLAGS)
    driver_flags.define_flags()
    added = set(flags.FLAGS) - before

    def parse_args(*args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["rwc_keras.main", *args])

    yield parse_args
    flags.FLAGS.unparse_flags()
    for name in added:
        delattr(flags.FLAGS, name)


@pytest.fixture
def resnet18_on_xla(monkeypatch):
    """ResNet-18 as if XLA had been measured faster for it."""
    faster = dataclasses.replace(spec.ARCHITECTURES["resnet18"], xla=True)
    monkeypatch.setitem(spec.ARCHITECTURES, "resnet18", faster)


def folder_begun_with(tmp_path, line):
    (tmp_path / spec.FLAGS_CFG).write_text(f"--arch=resnet18\n{line}\n--nomixed_precision\n")
    return str(tmp_path)


def test_xla_is_off_by_default_for_every_model(parse, tmp_path):
    # BENCHMARKS.md, "--jit_compile": XLA trained every model slower on a CPU.
    for arch in spec.ARCHITECTURES:
        parse(f"--arch={arch}")
        assert driver_flags.jit_compile(arch, str(tmp_path / "new")) is False


def test_the_default_follows_the_model(parse, tmp_path, resnet18_on_xla):
    parse("--arch=resnet18")
    assert driver_flags.jit_compile("resnet18", str(tmp_path / "new")) is True
    parse("--arch=alexnet")
    assert driver_flags.jit_compile("alexnet", str(tmp_path / "new")) is False


def test_never_by_default_with_deterministic(parse, tmp_path, resnet18_on_xla):
    parse("--arch=resnet18", "--deterministic")
    assert driver_flags.jit_compile("resnet18", str(tmp_path / "new")) is False


@pytest.mark.parametrize("arch,flag,want", [("resnet18", "--nojit_compile", False),
                                            ("alexnet", "--jit_compile", True)])
def test_the_flag_overrides_the_default(parse, tmp_path, resnet18_on_xla, arch, flag, want):
    parse(f"--arch={arch}", flag)
    assert driver_flags.jit_compile(arch, str(tmp_path / "new")) is want


@pytest.mark.parametrize("line,want", [("--nojit_compile", False), ("--jit_compile", True)])
def test_a_resumed_run_keeps_the_choice_it_began_with(parse, tmp_path, resnet18_on_xla, line,
                                                      want):
    parse("--arch=resnet18")
    assert driver_flags.jit_compile("resnet18", folder_begun_with(tmp_path, line)) is want


@pytest.mark.parametrize("value,line", [(True, "--jit_compile"), (False, "--nojit_compile")])
def test_flags_cfg_records_the_resolved_choice_as_absl_writes_it(parse, value, line):
    parse("--arch=resnet18")
    config = RunConfig(arch="resnet18", dataset="cifar10", seed=0, epochs=1, batch_size=8,
                       lr=0.1, momentum=0.9, weight_decay=1e-4, jit_compile=value)
    lines = driver_flags.seed_flagfile(config).splitlines()
    assert line in lines and sum("jit_compile" in text for text in lines) == 1
