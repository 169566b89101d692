"""Which weights RWC tracks, and the layer group each belongs to (TensorFlow-free)."""

import re

from rwc_keras import spec


def is_tracked(shape, include_1d=False):
    """Whether a weight of this shape is tracked: kernels (more than one dimension) always,
    one-dimensional weights (biases, BatchNormalization's) only with ``include_1d``."""
    return include_1d or len(shape) > 1


def select_variables(model, include=None, include_1d=False):
    """The trainable variables of ``model`` that RWC tracks, in model order.

    Args:
        model: a built Keras model.
        include: None (every tracked weight), a regex searched in the layer name, a callable
            taking the variable, or a collection of layer names (each must exist).
        include_1d: also track one-dimensional weights.

    Raises:
        ValueError: a named layer does not exist, or nothing is selected.
    """
    def name(variable):
        return spec.layer_name(model, variable)

    candidates = [v for v in model.trainable_variables if is_tracked(v.shape, include_1d)]
    if include is None:
        selected = candidates
    elif isinstance(include, str):
        pattern = re.compile(include)
        selected = [v for v in candidates if pattern.search(name(v))]
    elif callable(include):
        selected = [v for v in candidates if include(v)]
    else:
        wanted = set(include)
        selected = [v for v in candidates if name(v) in wanted]
        missing = wanted - {name(v) for v in selected}
        if missing:
            raise ValueError(
                f"RWCCallback include names not found among trackable variables: "
                f"{sorted(missing)}; available: {[name(v) for v in candidates]}")
    if not selected:
        raise ValueError(
            f"RWCCallback tracks no variable (include={include!r}, include_1d={include_1d}); "
            f"model variables: {[name(v) for v in model.trainable_variables]}")
    return selected


def group_of(groups, layer):
    """The group of ``layer`` (a name as in the CSV) under ``groups``: a dict from layer name
    to group, a callable taking the name, or None (no groups); None when it has none."""
    if groups is None:
        return None
    return groups(layer) if callable(groups) else groups.get(layer)
