"""The package's shape holds: small modules and functions, commands that define their flags
only when they run, and a library that never imports the benchmarks."""

import ast
import pathlib
import subprocess
import sys

import pytest

import rwc_keras
from tests.helpers import ROOT

ROOT = pathlib.Path(ROOT)
PACKAGE = ROOT / "rwc_keras"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def modules():
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    long = {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES}
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def imported_modules(path):
    """Every module ``path`` imports, at its top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_the_library_never_imports_the_benchmarks():
    importers = {str(path.relative_to(ROOT)) for path in modules()
                 if "benchmarks" not in path.parts
                 for name in imported_modules(path) if name.startswith("rwc_keras.benchmarks")}
    assert not importers


# Run in a fresh process: the test process has TensorFlow's and the tests' own flags.
COMMANDS_SCRIPT = """
import importlib, pkgutil, sys
from absl import flags
import rwc_keras

names = [m.name for m in pkgutil.walk_packages(rwc_keras.__path__, "rwc_keras.")]
for name in names:
    importlib.import_module(name)
at_import = {name for name in flags.FLAGS if flags.FLAGS.find_module_defining_flag(name)
             and flags.FLAGS.find_module_defining_flag(name).startswith("rwc_keras")}
if at_import:
    sys.exit(f"flags defined at import: {sorted(at_import)}")
for name in names:
    define = getattr(sys.modules[name], "define_flags", None)
    if define is None:
        continue
    before = set(flags.FLAGS)
    define()
    added = set(flags.FLAGS) - before
    print(name, len(added))
    # Each command runs alone: its flags go before the next command defines its own.
    for flag in added:
        delattr(flags.FLAGS, flag)
"""


def test_every_command_defines_its_flags_beside_every_module():
    result = subprocess.run([sys.executable, "-c", COMMANDS_SCRIPT], capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]
    defined = dict(line.split() for line in result.stdout.splitlines())
    commands = {"rwc_keras.experiment.flags", "rwc_keras.diff", "rwc_keras.report.__main__",
                "rwc_keras.benchmarks.bench", "rwc_keras.benchmarks.backend_bench",
                "rwc_keras.benchmarks.measurement_bench", "rwc_keras.benchmarks.freezing_bench"}
    assert commands <= set(defined), result.stdout
    assert all(int(count) > 0 for count in defined.values()), defined


@pytest.mark.parametrize("name", ["RWCCallback", "ResumeCallback", "rwc", "rwc_norm",
                                  "rwc_stats", "RWCFreezing", "FreezeOut", "FreezeOutSchedule",
                                  "FreezeOutSGD", "build_model", "TorchSGD"])
def test_the_public_api(name):
    assert name in rwc_keras.__all__
    assert callable(getattr(rwc_keras, name))



def test_the_test_tree_mirrors_the_package():
    # tests/backends holds the backend-neutral tests, which run once per Keras backend.
    folders = {path.name for path in (ROOT / "tests").iterdir()
               if (path / "__init__.py").exists()} - {"backends"}
    assert folders == {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
