"""`python -m rwc_keras.diff` on real weight files saved before and after training steps."""

import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from rwc_keras import diff, spec
from rwc_keras.diff import DiffError, compare_files
from rwc_keras.experiment.models import build_model

from .helpers import ROOT, reference_metrics



def tiny(channels=1):
    inputs = keras.Input((8, 8, channels))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten(name="flatten")(keras.layers.ReLU(name="relu")(x))
    return keras.Model(inputs, keras.layers.Dense(3, name="dense")(x), name="tiny")


def weights_by_layer(model):
    return {v.path.removeprefix(model.name + "/"): v.numpy() for v in model.trainable_variables}


def train_steps(model, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    shape = (8 * steps, *model.input_shape[1:])
    model.compile(keras.optimizers.SGD(0.1),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(rng.normal(size=shape).astype("float32"),
              rng.integers(0, model.output_shape[-1], size=shape[0]),
              batch_size=8, epochs=1, verbose=0)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny model saved as .weights.h5 and .keras at start (a), after 3 steps (b) and after
    3 more (c), with its weights in memory."""
    folder = tmp_path_factory.mktemp("diff")
    keras.utils.set_random_seed(0)
    model = tiny()
    files, weights = {}, {}
    for name in "abc":
        if name != "a":
            train_steps(model, seed=ord(name))
        files[name] = {kind: str(folder / f"{name}.{kind}") for kind in ("weights.h5", "keras")}
        model.save_weights(files[name]["weights.h5"])
        model.save(files[name]["keras"])
        weights[name] = weights_by_layer(model)
    return files, weights


def check_against_float64(table, prev, curr, initial):
    assert table["layer"].tolist() == [n for n in prev if prev[n].ndim > 1]
    for row in table.itertuples():
        want = reference_metrics(prev[row.layer], curr[row.layer], initial[row.layer])
        for name in spec.METRICS:
            assert getattr(row, name) == pytest.approx(want[name], rel=1e-5), name
        assert row.zeros == want["zeros"] and row.size == prev[row.layer].size


@pytest.mark.parametrize("kinds", [("keras", "keras"), ("weights.h5", "keras"),
                                   ("keras", "weights.h5")])
def test_a_keras_file_names_layers_as_the_csv(saved, kinds):
    files, weights = saved
    table = compare_files([files["b"][kinds[0]], files["c"][kinds[1]]], spec.METRICS)
    assert table["layer"].tolist() == ["conv/kernel", "dense/kernel"]
    assert table["group"].eq("").all()
    check_against_float64(table, weights["b"], weights["c"], weights["b"])
    # Compared with A itself, dist_init is rwc_norm.
    np.testing.assert_allclose(table["dist_init"], table["rwc_norm"])


def test_initial_weights_from_a_third_file(saved):
    files, weights = saved
    paths = [files["b"]["keras"], files["c"]["weights.h5"], files["a"]["weights.h5"]]
    table = compare_files(paths, spec.METRICS)
    check_against_float64(table, weights["b"], weights["c"], weights["a"])
    assert (table["dist_init"] > table["rwc_norm"]).all()


def test_weights_files_alone_use_the_stored_layout(saved):
    files, weights = saved
    paths = [files["a"]["weights.h5"], files["b"]["weights.h5"]]
    table = compare_files(paths, ("rwc", "rotation"))
    # Keras stores layers by class name and variables by position.
    assert table["layer"].tolist() == ["layers/conv2d/vars/0", "layers/dense/vars/0"]
    named = compare_files([files["a"]["keras"], files["b"]["weights.h5"]], ("rwc", "rotation"))
    np.testing.assert_array_equal(table[["rwc", "rotation"]], named[["rwc", "rotation"]])
    assert list(table.columns) == ["layer", "group", "rwc", "rotation", "zeros", "size"]
    with_1d = compare_files(paths, ("rwc",), include_1d=True)
    # Conv kernel and bias, BatchNorm's four vectors, dense kernel and bias.
    assert len(with_1d) == 8


@pytest.mark.slow
def test_groups_of_an_rwc_keras_model_saved_as_keras(tmp_path):
    keras.utils.set_random_seed(1)
    model = build_model("alexnet", (32, 32, 1), 10)
    model.save(tmp_path / "a.keras")
    train_steps(model, steps=1)
    model.save_weights(tmp_path / "b.weights.h5")
    a, b = str(tmp_path / "a.keras"), str(tmp_path / "b.weights.h5")
    table = compare_files([a, b], ("rwc",))
    assert dict(zip(table["layer"], table["group"])) == model.rwc_groups
    assert (table["rwc"] > 0).all()
    by_arch = compare_files([b, b], ("rwc",), arch="alexnet", dataset_name="fashion_mnist")
    assert dict(zip(by_arch["layer"], by_arch["group"])) == model.rwc_groups
    assert (by_arch["rwc"] == 0).all()
    with pytest.raises(DiffError, match=r"b.weights.h5: does not fit --arch=alexnet "
                                        r"\(--dataset=cifar10\): .*shape"):
        compare_files([b, b], ("rwc",), arch="alexnet", dataset_name="cifar10")


def test_files_of_different_models_name_the_first_mismatch(saved, tmp_path):
    files, _ = saved
    other = str(tmp_path / "other.weights.h5")
    tiny(channels=2).save_weights(other)
    a = files["a"]["weights.h5"]
    with pytest.raises(DiffError) as error:
        compare_files([a, other], ("rwc",))
    assert str(error.value) == (f"{other}: does not match {a}: 'layers/conv2d/vars/0' has "
                                "shape (3, 3, 1, 4) in " f"{a}, (3, 3, 2, 4) in {other}")
    assert diff.first_mismatch({"x": np.zeros(2)}, {"x": np.zeros(2), "y": np.zeros(1)}) == \
        "'y' is in B only"
    assert diff.first_mismatch({"x": np.zeros(2), "y": np.zeros(1)}, {"y": np.zeros(1)}) == \
        "'x' is in A only"


@pytest.mark.parametrize("name, content, problem", [
    ("missing.weights.h5", None, "no such file"),
    ("junk.weights.h5", b"junk", "not an HDF5 weights file"),
    ("junk.keras", b"junk", "not a Keras model archive (no model.weights.h5 inside a zip file)"),
    ("weights.npz", b"junk", "expected a Keras weights file (.weights.h5) or model (.keras)"),
])
def test_unreadable_files_are_named(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DiffError) as error:
        diff.stored_tensors(str(path))
    assert str(error.value) == f"{path}: {problem}"


# -- the command line --------------------------------------------------------------------------


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "rwc_keras.diff", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_cli_prints_and_writes_csv(saved, tmp_path):
    files, weights = saved
    out = tmp_path / "diff.csv"
    result = run_cli(files["a"]["keras"], files["b"]["keras"], f"--csv={out}",
                     "--metrics=rotation,rwc")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == ["layer", "group", "rwc", "rotation", "zeros", "size"]
    assert table["layer"].tolist() == ["conv/kernel", "dense/kernel"]
    for row in table.itertuples():
        want = reference_metrics(weights["a"][row.layer], weights["b"][row.layer],
                                 weights["a"][row.layer])
        assert row.rwc == pytest.approx(want["rwc"], rel=1e-5)
        assert row.layer in result.stdout
    assert f"wrote {out}" in result.stdout


@pytest.mark.parametrize("case", ["missing", "mismatch", "one_file", "bad_metric"])
def test_cli_bad_input_is_one_line(saved, tmp_path, case):
    files, _ = saved
    a = files["a"]["weights.h5"]
    other = str(tmp_path / "other.weights.h5")
    tiny(channels=2).save_weights(other)
    args, expected = {
        "missing": ([a, "nowhere.keras"], "rwc_keras.diff: nowhere.keras: no such file"),
        "mismatch": ([a, other], f"rwc_keras.diff: {other}: does not match {a}: "
                                 "'layers/conv2d/vars/0' has shape"),
        "one_file": ([a], "give two files, A and B; got 1"),
        "bad_metric": ([a, a, "--metrics=rwc,speed"], "--metrics must be a comma-separated "
                                                      "subset of rwc,rwc_norm"),
    }[case]
    result = run_cli(*args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    if case in ("missing", "mismatch"):
        # Found before TensorFlow is imported: nothing else on stderr.
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
