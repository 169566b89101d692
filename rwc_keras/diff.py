"""Every layer's RWC, and the optional measures, between two saved weight sets of one model.

Usage::

    python -m rwc_keras.diff A B [--csv=out.csv] [--metrics=rwc,rotation] [--initial=W0]

A (the earlier) and B are Keras weight files (``model.save_weights("x.weights.h5")``) or
saved models (``model.save("x.keras")``) of the same model. It prints one row per tracked
tensor (as `RWCCallback` tracks them: trainable, more than one dimension unless
``--include_1d``) with its group, the chosen measures of `rwc_keras.measure.metric` (default: all),
``zeros`` and ``size``; ``--csv`` also writes them.

Layer names and groups:

* ``--arch`` (with ``--dataset`` for the input shape and classes) builds that model of
  `rwc_keras.experiment.models` and reads both files into it: layers named as in ``rwc.csv`` (e.g.
  ``conv1/kernel``) and the paper's groups.
* Otherwise a ``.keras`` file among A and B brings its model, and the same names. A
  ``.keras`` file does not keep ``rwc_groups``; when the model's name is an architecture of
  `rwc_keras.spec` (as `rwc_keras.experiment.models.build_model` names it), the groups come from
  that architecture rebuilt with the saved model's input shape and classes.
* Otherwise the names are the paths inside the weights file, such as
  ``layers/conv2d/vars/0`` (Keras stores layers by class name and variables by position),
  without groups, and every stored tensor with more than one dimension is tracked (all
  with ``--include_1d``, BatchNorm's moving statistics included).

The measures comparing with the weights at train begin (``dist_init``, ``rotation``) take
them from ``--initial``, a third file of the same model, and from A when it is not given (then
``dist_init`` equals ``rwc_norm``). TensorFlow checkpoints (the training driver's
``checkpoint/`` folders) are not read: restore one into the model and ``save_weights`` it.

Bad input (a missing or unreadable file, two files whose tensors differ in names or shapes,
a file that does not fit the model) ends with one line naming the file and the first
mismatch, exit code 1. Both files' layouts are compared before TensorFlow is imported, so
those answers come at once.

Example:
  python -m rwc_keras.diff runs/a.keras runs/b.weights.h5 --csv=diff.csv
"""

import io
import os
import sys
import warnings
import zipfile

from absl import app, flags
import h5py
import pandas as pd

from rwc_keras import spec
from rwc_keras.measure.selection import is_tracked

# Where a .keras archive keeps its weights.
KERAS_WEIGHTS = "model.weights.h5"
# The group in which Keras stores a compiled model's optimizer state beside its weights.
OPTIMIZER_GROUP = "optimizer"


class DiffError(Exception):
    """A file that cannot be compared; the message names it and what is wrong."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")


# -- the files' layout, without TensorFlow ---------------------------------------------------


def _open_weights(path):
    """The HDF5 file of weights in ``path`` (a ``.weights.h5`` or ``.keras`` file)."""
    if not os.path.isfile(path):
        raise DiffError(path, "no such file")
    if path.endswith(".keras"):
        try:
            with zipfile.ZipFile(path) as archive:
                return h5py.File(io.BytesIO(archive.read(KERAS_WEIGHTS)), "r")
        except (zipfile.BadZipFile, KeyError):
            raise DiffError(path, f"not a Keras model archive (no {KERAS_WEIGHTS} "
                                  "inside a zip file)") from None
    if path.endswith(".weights.h5"):
        try:
            return h5py.File(path, "r")
        except OSError:
            raise DiffError(path, "not an HDF5 weights file") from None
    raise DiffError(path, "expected a Keras weights file (.weights.h5) or model (.keras)")


def stored_tensors(path):
    """The model's tensors stored in a weights file, as ``{path inside the file: array}``."""
    tensors = {}

    def collect(name, item):
        if isinstance(item, h5py.Dataset) and name.split("/")[0] != OPTIMIZER_GROUP:
            tensors[name] = item[()]

    with _open_weights(path) as file:
        file.visititems(collect)
    if not tensors:
        raise DiffError(path, "holds no weights")
    return tensors


def first_mismatch(a, b, names=("A", "B")):
    """The first name or shape two ``{name: array}`` dicts differ in, as text; None if none.

    Args:
        a, b: the dicts, walked in ``a``'s order, then ``b``'s.
        names: what to call them in the text.
    """
    for name, array in a.items():
        if name not in b:
            return f"{name!r} is in {names[0]} only"
        if array.shape != b[name].shape:
            return (f"{name!r} has shape {array.shape} in {names[0]}, "
                    f"{b[name].shape} in {names[1]}")
    for name in b:
        if name not in a:
            return f"{name!r} is in {names[1]} only"
    return None


def check_same_layout(paths, tensors):
    """Raises `DiffError` naming the first difference between the files' tensors.

    Args:
        paths: the files, the first one the reference.
        tensors: each file's ``{name: array}``.
    """
    for path, other in zip(paths[1:], tensors[1:]):
        mismatch = first_mismatch(tensors[0], other, (paths[0], path))
        if mismatch:
            raise DiffError(path, f"does not match {paths[0]}: {mismatch}")


# -- names and groups from a model -----------------------------------------------------------


def model_for(paths, arch, dataset_name):
    """The model to read the files into, its groups, and where it came from.

    Returns:
        ``(model, groups, source)``: from ``arch`` when given, else from the first
        ``.keras`` file of ``paths``, else ``(None, {}, "the files' own layout")``.
    """
    # Imported here: TensorFlow loads only after the files passed their checks.
    from rwc_keras.experiment.models import build_model  # noqa: PLC0415

    if arch is not None:
        dataset = spec.dataset(dataset_name)
        model = build_model(arch, dataset.input_shape, dataset.num_classes)
        return model, model.rwc_groups, f"--arch={arch} (--dataset={dataset_name})"
    for path in paths:
        if path.endswith(".keras"):
            import keras  # noqa: PLC0415

            model = keras.saving.load_model(path, compile=False)
            groups = {}
            if model.name in spec.ARCHITECTURES:
                groups = build_model(model.name, model.input_shape[1:],
                                     model.output_shape[-1]).rwc_groups
            return model, groups, f"the model of {path}"
    return None, {}, "the files' own layout"


def read_weights(path, model, source, include_1d=False):
    """The tracked tensors of a weights file read into ``model``, ``{layer name: array}``.

    Layer names are the variables' paths without the model's name, as in ``rwc.csv``.

    Raises:
        DiffError: the file's weights do not fit the model.
    """
    try:
        with warnings.catch_warnings():
            # A file that does not fit makes Keras warn before it raises; the error says it.
            warnings.simplefilter("ignore")
            model.load_weights(path)
    except ValueError as error:
        raise DiffError(path, f"does not fit {source}: {' '.join(str(error).split())}") from None
    return {
        spec.layer_name(model, variable): variable.numpy()
        for variable in model.trainable_variables
        if is_tracked(variable.shape, include_1d)
    }


# -- the comparison --------------------------------------------------------------------------


def diff_weights(earlier, later, initial=None, metrics=spec.METRICS, groups=None):
    """The chosen measures of every tensor between two weight sets, one row per tensor.

    Args:
        earlier: ``{layer name: array}`` (A).
        later: the same names and shapes (B).
        initial: the same names and shapes, the weights at train begin for the measures of
            ``rwc_keras.spec.INITIAL_METRICS``; default ``earlier``.
        metrics: names from ``rwc_keras.spec.METRICS``.
        groups: ``{layer name: group}``; layers missing from it get an empty group.

    Returns:
        A DataFrame with columns ``layer``, ``group``, the measures in ``METRICS`` order,
        ``zeros`` and ``size``, rows in ``earlier``'s order.
    """
    from rwc_keras.measure.metric import layer_stats  # noqa: PLC0415

    metrics = spec.check_metrics(metrics)
    initial = earlier if initial is None else initial
    groups = groups or {}
    rows = []
    for layer, prev in earlier.items():
        values = layer_stats(prev, later[layer], initial[layer], metrics).numpy()
        rows.append(dict(layer=layer, group=groups.get(layer, ""),
                         **dict(zip((*metrics, spec.ZEROS), values.tolist())), size=prev.size))
    frame = pd.DataFrame(rows, columns=["layer", "group", *metrics, spec.ZEROS, "size"])
    return frame.astype({spec.ZEROS: int})


def compare_files(paths, metrics, arch=None, dataset_name="cifar10", include_1d=False):
    """Reads A, B (and the initial weights, when a third path is given) and compares them.

    Args:
        paths: ``[A, B]`` or ``[A, B, initial]``.
        metrics, arch, dataset_name, include_1d: as the flags of the same names.

    Returns:
        The `diff_weights` table.

    Raises:
        DiffError: a file is missing or unreadable, the files differ, or one does not fit
            the model.
    """
    stored = [stored_tensors(path) for path in paths]
    check_same_layout(paths, stored)
    model, groups, source = model_for(paths, arch, dataset_name)
    if model is None:
        weights = [{name: array for name, array in tensors.items()
                    if is_tracked(array.shape, include_1d)} for tensors in stored]
    else:
        weights = [read_weights(path, model, source, include_1d) for path in paths]
    return diff_weights(*weights[:2], initial=weights[2] if len(paths) > 2 else None,
                        metrics=metrics, groups=groups)


# -- the command line ------------------------------------------------------------------------

def define_flags():
    """Defines the command's flags; called only when it runs, so importing defines none."""
    flags.DEFINE_string("csv", None, "Also write the table to this CSV file.")
    flags.DEFINE_list("metrics", list(spec.METRICS),
                      f"Measures to compute, from: {','.join(spec.METRICS)}.")
    flags.DEFINE_string("initial", None, "Weights at train begin (.weights.h5 or .keras) for "
                        "dist_init and rotation; default A.")
    flags.DEFINE_enum("arch", None, list(spec.ARCHITECTURES),
                      "Read the files into this model of rwc_keras.experiment.models: layer "
                      "names and groups for .weights.h5 files.")
    flags.DEFINE_enum("dataset", "cifar10", list(spec.DATASETS),
                      "The dataset --arch was built for (input channels, classes).")
    flags.DEFINE_bool("include_1d", False,
                      "Also compare one-dimensional tensors (biases, BatchNorm).")
    flags.register_validator(
        "metrics", lambda names: bool(names) and set(names) <= set(spec.METRICS),
        message=f"--metrics must be a comma-separated subset of {','.join(spec.METRICS)}")


FLAGS = flags.FLAGS


def main(argv):
    """Compares the two files of ``argv[1:]``; one line and exit code 1 on bad input."""
    if len(argv) != 3:
        raise app.UsageError(f"give two files, A and B; got {len(argv) - 1}")
    paths = argv[1:] + ([FLAGS.initial] if FLAGS.initial else [])
    try:
        table = compare_files(paths, FLAGS.metrics, FLAGS.arch, FLAGS.dataset, FLAGS.include_1d)
    except DiffError as error:
        print(f"rwc_keras.diff: {error}", file=sys.stderr)
        sys.exit(1)
    print(table.to_string(index=False, float_format="{:.6g}".format))
    if FLAGS.csv:
        table.to_csv(FLAGS.csv, index=False)
        print(f"wrote {FLAGS.csv}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
