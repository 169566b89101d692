"""FreezeOut (Brock, Lim, Ritchie, Weston, 2017): layer-wise cosine learning rates that reach
zero on a fixed schedule, each layer frozen when its rate does (docs/paper_facts.md, "Facts for
the next features").

Three pieces, used together:

* `FreezeOutSchedule`: the model's units (single layers; a BatchNormalization layer goes with
  the layer before it) and each unit's freezing time ``t_i = scale(t_0 + (1 - t_0) * i / L)``
  as a fraction of training, for units ``i = 0 .. L``. With the published defaults (cubic
  scale, ``t_0 = 0.8``) the first unit freezes at 0.512 of training and the last, which
  holds the output layer, gets ``t_L = 1``: it is annealed over the whole run, never frozen.
* `FreezeOutSGD`: SGD whose learning rate for unit i's variables is
  ``lr_i(t) = 0.5 * lr_i * (1 + cos(pi * t / t_i))`` until ``t_i`` and 0 after, with
  ``lr_i = lr / t_i`` (``scale_lr``, the default) or ``lr``. As in PyTorch, where FreezeOut
  sets each parameter group's rate before every step, the rate multiplies the whole momentum
  buffer: ``v <- momentum * v + g + wd * w; w <- w - lr_i(t) * v`` (PyTorch's coupled weight
  decay, as `rwc_keras.experiment.optimizer.TorchSGD`). Computed in the graph from the optimizer's
  step.
* `FreezeOut`: the callback that freezes unit i after the last step before ``t_i``, i.e.
  before the first step at which ``t >= t_i`` (its rate is 0 from there on, so its weights
  would not move anyway); the mechanics are `rwc_keras.freezing.freezer.Freezer`'s.

FreezeOut replaces the constant learning rate of the paper's protocol with these per-layer
cosine schedules: a comparison with constant-rate runs compares both changes at once. Other
differences to FreezeOut's own code: plain momentum as in the paper's protocol (FreezeOut used
Nesterov's), units are single layers everywhere (its Wide ResNet froze whole residual blocks),
and frozen BatchNormalization layers keep batch statistics unless ``batchnorm="inference"``
(its code switched frozen blocks to ``eval()``, i.e. inference mode).
"""

import math

from keras import ops

from rwc_keras.freezing import schema
from rwc_keras.experiment.optimizer import TorchSGD
from rwc_keras.freezing.freezer import Freezer, layer_units

# How the linear position of a unit is turned into its freezing time (FreezeOut's how_scale).
SCALES = {"linear": lambda x: x, "squared": lambda x: x ** 2, "cubic": lambda x: x ** 3}


def freezeout_times(num_units, t_0=0.8, scale="cubic"):
    """FreezeOut's freezing time of each unit, as a fraction of training.

    Args:
        num_units: the number of units, the last holding the output layer (at least 2).
        t_0: the first unit's position before scaling, in (0, 1].
        scale: ``"linear"``, ``"squared"`` or ``"cubic"`` (the default).

    Returns:
        A list of ``scale(t_0 + (1 - t_0) * i / (num_units - 1))``; the last is 1.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if not 0 < t_0 <= 1:
        raise ValueError(f"t_0 must be in (0, 1], got {t_0!r}")
    if num_units < 2:
        raise ValueError(f"FreezeOut needs at least 2 units (one to freeze and the output "
                         f"layer's), got {num_units}")
    last = num_units - 1
    return [SCALES[scale](t_0 + (1 - t_0) * i / last) for i in range(num_units)]


class FreezeOutSchedule:
    """The units of a model and when each freezes, over ``total_steps`` optimizer steps.

    Args:
        model: a built Keras model.
        total_steps: the optimizer steps of the whole training (epochs x steps per epoch).
        t_0: FreezeOut's ``t_0`` (default 0.8, before scaling).
        scale: ``"linear"``, ``"squared"`` or ``"cubic"`` (default).
        scale_lr: start each unit's learning rate at ``lr / t_i`` (default) rather than
            ``lr``, so that every unit travels about as far as without annealing.

    Attributes:
        units: the `rwc_keras.freezing.freezer.LayerUnit`s, single layers in model order.
        times: each unit's freezing time, as a fraction of training.
        freeze_steps: the first step at which each unit is frozen, ``ceil(t_i * total_steps)``.
    """

    def __init__(self, model, total_steps, t_0=0.8, scale="cubic", scale_lr=True):
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        self.model = model
        self.total_steps = total_steps
        self.scale_lr = scale_lr
        self.units = layer_units(model)
        self.times = freezeout_times(len(self.units), t_0, scale)
        self.freeze_steps = [math.ceil(t * total_steps) for t in self.times]
        self._time_of = {id(variable): t for unit, t in zip(self.units, self.times)
                         for layer in unit.layers for variable in layer.trainable_weights}

    def time_of(self, variable):
        """The freezing time of the unit holding ``variable`` (1 for one of no unit)."""
        return self._time_of.get(id(variable), 1.0)


class FreezeOutSGD(TorchSGD):
    """SGD with FreezeOut's per-layer cosine learning rates (see the module docstring).

    Args:
        schedule: the model's `FreezeOutSchedule`.
        learning_rate: the base rate ``lr``.
        momentum: momentum factor in [0, 1).
        weight_decay: PyTorch's coupled L2 coefficient.
        **kwargs: passed on to ``keras.optimizers.SGD``.

    Example:
        ```python
        schedule = FreezeOutSchedule(model, total_steps=epochs * steps_per_epoch)
        model.compile(optimizer=FreezeOutSGD(schedule, 0.1, momentum=0.9), loss=...)
        model.fit(x, y, epochs=epochs, callbacks=[FreezeOut(schedule, log_dir="runs/a")])
        ```
    """

    def __init__(self, schedule, learning_rate=0.01, momentum=0.9, weight_decay=0.0,
                 name="freezeout_sgd", **kwargs):
        super().__init__(learning_rate, momentum, weight_decay, name=name, **kwargs)
        self.schedule = schedule
        self._freeze_times = None

    def build(self, variables):
        super().build(variables)
        self._freeze_times = [self.schedule.time_of(variable) for variable in variables]

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        t_i = self._freeze_times[self._get_variable_index(variable)]
        progress = ops.divide(ops.cast(self.iterations, dtype), self.schedule.total_steps)
        start = 1.0 / t_i if self.schedule.scale_lr else 1.0
        factor = ops.where(ops.less(progress, t_i),
                           0.5 * start * (1.0 + ops.cos(math.pi / t_i * progress)), 0.0)
        rate = ops.multiply(ops.cast(learning_rate, dtype), ops.cast(factor, dtype))
        self.torch_step(gradient, variable, rate)


class FreezeOut(Freezer):
    """Freezes each unit of a `FreezeOutSchedule` at its time (FreezeOut's freezing half).

    Train with the `FreezeOutSGD` of the same schedule, which anneals each unit's learning
    rate to zero by then. After each step it freezes the units whose ``freeze_steps`` have
    come (several at once rebuild the step once). Resumable like `RWCFreezing`: pass it to
    the `ResumeCallback` (after the `RWCCallback`, when there is one).

    Cost: that check is a batch hook, so ``fit`` does not run ahead of its callbacks: on JAX
    and PyTorch every step's logs are read to the host before the next step is dispatched
    (on TensorFlow Keras 3 does so with any callbacks). The check itself is a sum over the
    units, microseconds. On a fast GPU the wait costs a share of each step (docs/async.md);
    freezing only at epoch ends would avoid it but move every freeze off FreezeOut's step.

    Args:
        schedule: the model's `FreezeOutSchedule`.
        batchnorm: ``"batch"`` (default) or ``"inference"``; see `rwc_keras.freezing.freezer`.
        log_dir: where ``freezing.csv`` goes; default the folder of ``rwc``.
        rwc: the run's `RWCCallback`, if any: its TensorBoard writer is used.
        rebuild: rebuilds the train step after a freeze; default
            ``model.make_train_function(force=True)``, what ``model.fit`` needs.
        verbose: 1 prints a line per frozen unit; 0 is silent.

    Example: see `FreezeOutSGD`.
    """

    def __init__(self, schedule, batchnorm=schema.DEFAULT_FREEZE_BATCHNORM, log_dir=None, rwc=None,
                 rebuild=None, verbose=1):
        super().__init__(log_dir=log_dir, rwc=rwc, batchnorm=batchnorm, rebuild=rebuild,
                         verbose=verbose)
        self.schedule = schedule
        self._epoch = 0
        self._epoch_start_step = 0

    def _make_units(self):
        if self.schedule.model is not self.model:
            raise ValueError("FreezeOut's schedule was made for another model than the one "
                             "being trained")
        return self.schedule.units

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._epoch = epoch
        # Read once per epoch; within it steps are counted on the host.
        self._epoch_start_step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        # Frozen after the last step before its time, so a checkpoint at the end of this
        # epoch already holds the freeze.
        step = self._epoch_start_step + batch + 1
        due = sum(1 for first in self.schedule.freeze_steps[:-1] if first <= step)
        self._freeze_to(due, self._epoch + 1, step)

