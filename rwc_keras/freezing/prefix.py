"""Where a model's frozen leading prefix ends, for caching its outputs (`frozen_prefix_cut`).

A frozen prefix can be computed once per input when, in training, it is a fixed function of
its input: every layer in it is frozen or has no weights, none draws random numbers
(Dropout), and none behaves differently in training except a BatchNormalization layer that is
not trainable (Keras then runs it in inference mode: ``--freeze_bn=inference``). Its output
must also be a cut of the model: everything above depends on the input only through it (a
ResNet block's output, not a tensor that a shortcut bypasses).
"""

import inspect

import keras


def is_random(layer):
    """Whether ``layer`` draws random numbers (Keras's random layers hold a `SeedGenerator`)."""
    return any(isinstance(value, keras.random.SeedGenerator) for value in vars(layer).values())


def is_fixed_in_training(layer, frozen):
    """Whether ``layer``, in a training step, computes a fixed function of its input.

    Args:
        layer: a Keras layer.
        frozen: whether it belongs to a frozen unit.
    """
    if is_random(layer) or (layer.weights and not frozen):
        return False
    if "training" not in inspect.signature(layer.call).parameters:
        return True
    # Keras runs a non-trainable BatchNormalization layer in inference mode.
    return isinstance(layer, keras.layers.BatchNormalization) and not layer.trainable


def frozen_prefix_cut(model, units, frozen):
    """The last layer of the leading run of layers that a cache can stand for, or None.

    Args:
        model: a functional Keras model.
        units: its `rwc_keras.freezing.freezer.LayerUnit`s.
        frozen: how many leading units are frozen.

    Returns:
        ``(layer, reason)``: the layer whose output the cache would hold, and None; or None
        and a short reason why nothing can be cached.
    """
    frozen_layers = {id(layer) for unit in units[:frozen] for layer in unit.layers}
    cut, stop = None, None
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if not is_fixed_in_training(layer, id(layer) in frozen_layers):
            stop = layer
            break
        try:
            keras.Model(layer.output, model.output)
        except ValueError:  # a tensor that another path bypasses
            continue
        cut = layer
    if cut is None:
        reason = "nothing is frozen" if not frozen else (
            f"layer {stop.name!r} is not a fixed function in training (a random layer, or "
            "BatchNormalization with batch statistics: use --freeze_bn=inference)")
        return None, reason
    return cut, None
