"""`Freezer`: what the layer-freezing callbacks share (`RWCFreezing`, `FreezeOut`,
`LinearFreezing`).

A model's layers with trainable weights are gathered into units (`layer_units`): a layer group
(a ResNet-18 block, a paper group) or a single layer. A freezing callback freezes a leading
run of units and never the last one, which holds the output layer. Freezing a unit:

* takes its layers' variables out of ``model.trainable_variables``. The rebuilt train step
  asks for no gradient of them, and below the lowest trainable layer no gradient is needed at
  all, so TensorFlow runs no backward operation there: the forward pass alone remains (the
  driver does not even record it on its tape; ``model.fit``'s step is pruned the same way by
  TensorFlow's graph optimiser; ``tests/freezing/test_freezing.py`` checks the executed operations);
* rebuilds the train step, once per freeze: by default ``model.make_train_function(force=True)``,
  which ``model.fit`` runs next; the training driver passes its own;
* keeps every other variable's optimizer state (Keras's optimizers key it per variable);
* is printed, appended to ``freezing.csv`` and written to TensorBoard as a marker scalar
  ``freezing/<unit>`` (value 1 at the optimizer step it froze).

BatchNormalization (``batchnorm``): Keras runs a BatchNormalization layer whose ``trainable``
is False in inference mode, with its moving statistics, which changes the forward pass at the
moment of freezing. The default ``"batch"`` freezes the variables but leaves the layer
trainable, so a frozen BatchNormalization layer keeps normalising with the batch's statistics
exactly as before it froze (scale and offset fixed; its moving statistics keep following the
now fixed features, so evaluation stays right). The layers above it then see the same inputs
as the moment before, and only the learning stops: the change in the forward pass would
otherwise confound what freezing costs. ``"inference"`` sets ``layer.trainable = False``
instead, as FreezeOut's code does (frozen blocks in ``eval()`` mode): the moving statistics
then stay fixed as well, and a frozen prefix computes exactly the function it will compute at
test time.

Resuming: a freezer takes part in `rwc_keras.ResumeCallback`'s protocol. Its checkpoint state
holds the number of frozen units (and the subclass's own state), and ``on_resume`` freezes the
same units again, rebuilds the step and drops the rows and markers written after the
checkpoint. List it after the `RWCCallback` everywhere (``callbacks`` of ``fit`` and of the
`ResumeCallback`).
"""

import dataclasses
import math
import os

import keras
import tensorflow as tf

from rwc_keras import spec
from rwc_keras.freezing import schema
from rwc_keras.callbacks.files import append_csv, drop_csv_rows, drop_events, open_csv
from rwc_keras.measure.selection import group_of, is_tracked

_TAG_FAMILY = schema.freezing_tag("unit").split("/")[0]


@dataclasses.dataclass(frozen=True)
class LayerUnit:
    """Layers that freeze together, in model order.

    Attributes:
        name: the group's name, or the layer's name when it forms a unit alone.
        layers: the Keras layers.
        tracked: the layer names (as in ``rwc.csv``) of their weights with more than one
            dimension, the ones `RWCCallback` measures by default.
        macs: the forward multiply-adds per example of each of its layers with a kernel
            (`layer_macs`), in order.
    """

    name: str
    layers: tuple
    tracked: tuple
    macs: tuple


def layer_macs(layer):
    """Forward multiply-adds per example of a layer with a kernel (convolutions, Dense).

    Its output positions times the kernel's size: exact for Conv and Dense layers. 0 for a
    layer without a kernel (their elementwise work is small beside it); None when the
    layer's output shape is unknown (a subclassed model).
    """
    kernel = getattr(layer, "kernel", None)
    if kernel is None:
        return 0
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError, RuntimeError):
        return None
    return math.prod(shape[1:-1]) * math.prod(kernel.shape)


def _source_layer(layer):
    """The layer whose output ``layer`` takes, when the model's graph tells (None if not)."""
    try:
        return layer.input._keras_history[0]
    except (AttributeError, ValueError, IndexError, TypeError):
        return None


def layer_units(model, groups=None):
    """The model's layers with trainable weights, gathered into units in model order.

    A layer with a weight of more than one dimension (a kernel) belongs to the group of its
    first such weight, or forms a unit of its own. A layer with one-dimensional weights only
    (BatchNormalization) joins the unit of the layer whose output it takes, or else of the
    layer before it in model order (the first unit when nothing comes before it).

    Args:
        model: a built Keras model.
        groups: None for single layers; a dict from layer name as in ``rwc.csv`` (e.g.
            ``"conv1/kernel"``) to group name, or a callable taking that name and returning a
            group or None (a layer without group forms a unit of its own).

    Returns:
        A list of `LayerUnit`; the last one holds the model's output layer.

    Raises:
        ValueError: a group's layers are not one contiguous run in model order (it could not
            freeze as a leading run), or the model has no trainable kernel.
    """
    units, pending, unit_of = [], [], {}
    for layer in model.layers:
        weights = layer.trainable_weights
        kernels = [v for v in weights if is_tracked(v.shape)]
        if not weights:
            continue
        if not kernels:
            source = unit_of.get(id(_source_layer(layer)))
            if source is None and units:
                source = units[-1]
            (source["layers"] if source else pending).append(layer)
            continue
        name = group_of(groups, spec.layer_name(model, kernels[0])) or layer.name
        if not units or units[-1]["name"] != name:
            if any(unit["name"] == name for unit in units):
                raise ValueError(
                    f"group {name!r} is not contiguous: layer {layer.name!r} comes after group "
                    f"{units[-1]['name']!r}; a freezing unit must be one run of layers in "
                    f"model order ({[unit['name'] for unit in units]} so far)")
            units.append(dict(name=name, layers=pending))
            pending = []
        units[-1]["layers"].append(layer)
        unit_of[id(layer)] = units[-1]
    if not units:
        raise ValueError(f"model {model.name!r} has no trainable layer with a kernel to freeze")
    return [
        LayerUnit(
            name=unit["name"], layers=tuple(unit["layers"]),
            tracked=tuple(spec.layer_name(model, v) for layer in unit["layers"]
                          for v in layer.trainable_weights if is_tracked(v.shape)),
            macs=tuple(layer_macs(layer) for layer in unit["layers"]
                       if getattr(layer, "kernel", None) is not None))
        for unit in units
    ]


def training_macs(units):
    """Multiply-adds per example of one training step without freezing: forward, weight
    gradients, and input gradients of every kernel layer but the first (NaN if unknown:
    a subclassed model, or kernels only inside nested models)."""
    macs = [m for unit in units for m in unit.macs]
    if not macs or None in macs:
        return math.nan
    return 3 * sum(macs) - macs[0]


def saved_macs(units, frozen):
    """Multiply-adds per example that a step skips when the first ``frozen`` units are frozen.

    The weight gradients of their layers, the input gradients of their layers but the model's
    first (it never has one), and the input gradient of the first layer above them, which
    nothing below needs any more. Exact for a chain of layers (AlexNet, VGG); in ResNet-18
    a shortcut convolution taking the same input also skips its input gradient, which is left
    out. NaN when a layer's size is unknown.
    """
    below = [m for unit in units[:frozen] for m in unit.macs]
    above = [m for unit in units[frozen:] for m in unit.macs]
    if not frozen:
        return 0
    if not below or None in below or None in above[:1]:
        return math.nan
    return 2 * sum(below) - below[0] + (above[0] if above else 0)


def freeze_unit(unit, batchnorm=schema.DEFAULT_FREEZE_BATCHNORM):
    """Takes the variables of ``unit``'s layers out of the trainable ones.

    Args:
        unit: a `LayerUnit`.
        batchnorm: ``"batch"``: the variables are frozen and the layers stay trainable (a
            BatchNormalization layer keeps training-mode statistics); ``"inference"``: the
            layers are set ``trainable = False`` (BatchNormalization then runs in inference
            mode).
    """
    for layer in unit.layers:
        if batchnorm == "inference":
            layer.trainable = False
        else:
            for variable in layer.trainable_weights:
                variable.trainable = False


class Freezer(keras.callbacks.Callback):
    """Base class of the freezing callbacks: freezes leading units, rebuilds the step, logs.

    A subclass builds its units in ``_make_units()``, may add variables to the checkpoint
    with ``_state_variables()`` (created in ``_build_state()``), and calls `_freeze_to` when
    more units are to be frozen.

    Args:
        log_dir: folder of ``freezing.csv`` (any TensorFlow filesystem path). Default: the
            ``log_dir`` of ``rwc``.
        rwc: the run's `RWCCallback`: its TensorBoard writer is used, so that the folder has
            one writer. Without it the freezer opens its own writer in ``log_dir``.
        batchnorm: ``"batch"`` (default) or ``"inference"``; see the module docstring.
        rebuild: called with no argument after the trainable set changed, to rebuild the
            train step. Default: ``model.make_train_function(force=True)`` (``model.fit``).
        verbose: 1 prints a line per frozen unit; 0 is silent.
    """

    def __init__(self, log_dir=None, rwc=None, batchnorm=schema.DEFAULT_FREEZE_BATCHNORM,
                 rebuild=None, verbose=1):
        super().__init__()
        if batchnorm not in schema.FREEZE_BATCHNORM:
            raise ValueError(f"batchnorm must be one of {', '.join(schema.FREEZE_BATCHNORM)}, "
                             f"got {batchnorm!r}")
        if log_dir is None and rwc is None:
            raise ValueError(f"{type(self).__name__} needs a log_dir or the run's RWCCallback "
                             "(rwc=...) to write freezing.csv")
        self.log_dir = log_dir
        self.rwc = rwc
        self.batchnorm = batchnorm
        self.rebuild = rebuild
        self.verbose = verbose
        self.units = None  # the model's `LayerUnit`s, from the first on_train_begin
        self.frozen = 0  # how many leading units are frozen (a host copy of _frozen)
        self._units_model = None
        self._frozen = None
        self._csv_path = None
        self._own_writer = None
        self._training = False

    # -- what a subclass provides -------------------------------------------------------

    def _make_units(self):
        raise NotImplementedError

    def _build_state(self):
        """Creates the subclass's checkpointed variables for ``self.units``."""

    def _state_variables(self):
        return {}

    # -- state -----------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        if self._units_model is not self.model:
            self.units = self._make_units()
            self._units_model = self.model
            self.frozen = 0
            with tf.device("/cpu:0"):
                self._frozen = tf.Variable(0, dtype=tf.int64, trainable=False)
            self._build_state()
        self._training = True

    def on_train_end(self, logs=None):
        self._training = False
        if self._own_writer is not None:
            self._own_writer.flush()

    def checkpoint_state(self):
        """The variables a `ResumeCallback` saves for this callback: the number of frozen
        units and the subclass's state.

        Raises:
            ValueError: called before ``on_train_begin`` set them up (the `ResumeCallback`
                is listed before this callback).
        """
        if not self._training:
            raise ValueError(f"{type(self).__name__} has not set up its state yet: it does so "
                             "in on_train_begin, so list it before the ResumeCallback in "
                             "callbacks=[...]")
        return {"frozen": self._frozen, **self._state_variables()}

    def on_resume(self, epoch, step):
        """After a `ResumeCallback` restored the state: freezes the units frozen at the
        checkpoint again, and drops the rows and markers written after it (``step``)."""
        self.frozen = int(self._frozen.numpy())
        for unit in self.units[:self.frozen]:
            freeze_unit(unit, self.batchnorm)
        if self.frozen:
            self._rebuild()
        if self._own_writer is not None:
            # A file the writer holds open cannot be rewritten under it.
            self._own_writer.close()
            self._own_writer, self._csv_path = None, None
        folder = self._folder()
        drop_csv_rows(os.path.join(folder, schema.FREEZING_CSV),
                      lambda row: int(row["step"]) <= step)
        drop_events(folder, lambda tag, event_step: (
            tag.split("/")[0] == _TAG_FAMILY and event_step > step))

    # -- files -----------------------------------------------------------------------------

    def _folder(self):
        folder = self.log_dir if self.log_dir is not None else self.rwc.log_dir
        if folder is None:
            raise ValueError(f"{type(self).__name__} has no folder: its RWCCallback has no "
                             "log_dir yet; list the RWCCallback first or give log_dir")
        return folder

    def on_epoch_begin(self, epoch, logs=None):
        # Opened here, after every on_train_begin: a restore has happened by now.
        if self._csv_path is not None:
            return
        folder = self._folder()
        tf.io.gfile.makedirs(folder)
        self._csv_path = os.path.join(folder, schema.FREEZING_CSV)
        open_csv(self._csv_path, schema.FREEZING_COLUMNS)
        if self.rwc is None:
            self._own_writer = tf.summary.create_file_writer(folder)

    def _writer(self):
        return self._own_writer if self.rwc is None else self.rwc.summary_writer

    # -- freezing --------------------------------------------------------------------------

    def _rebuild(self):
        if self.rebuild is None:
            self.model.make_train_function(force=True)
        else:
            self.rebuild()

    def _freeze_to(self, count, epoch, step, rule_values=None):
        """Freezes units ``frozen .. count - 1``, rebuilds the step once and logs each.

        Args:
            count: the number of leading units frozen afterwards (at most all but the last).
            epoch: the 1-based epoch the freeze belongs to.
            step: the optimizer step from which the units are frozen.
            rule_values: per unit index, ``(smoothed, change)`` of the rule that froze it, or
                None (FreezeOut's schedule has none).
        """
        count = min(count, len(self.units) - 1)
        if count <= self.frozen:
            return
        newly = range(self.frozen, count)
        for index in newly:
            freeze_unit(self.units[index], self.batchnorm)
        self._rebuild()
        self.frozen = count
        self._frozen.assign(count)
        train = training_macs(self.units)
        rows = []
        writer = self._writer()
        for index in newly:
            unit = self.units[index]
            smoothed, change = rule_values[index] if rule_values else ("", "")
            rows.append([epoch, step, unit.name, " ".join(layer.name for layer in unit.layers),
                         smoothed, change, saved_macs(self.units, index + 1), train])
            with writer.as_default(step=step):
                tf.summary.scalar(schema.freezing_tag(unit.name), 1.0)
            if self.verbose:
                reason = f": smoothed {smoothed:.4g}, change {change:.3g}" if rule_values else ""
                print(f"{type(self).__name__}: froze {unit.name} "
                      f"({', '.join(layer.name for layer in unit.layers)}) at epoch {epoch}, "
                      f"step {step}{reason}")
        writer.flush()
        append_csv(self._csv_path, rows)

    @property
    def frozen_units(self):
        """The names of the units frozen so far, in order."""
        return [unit.name for unit in (self.units or [])[:self.frozen]]
