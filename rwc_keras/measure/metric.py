"""Per-tensor measures of how a weight tensor changed between two points in training.

The Relative Weight Change (RWC) is kept in two definitions (see README, "What RWC is"):

* ``rwc``: mean over elements of ``|curr - prev| / |prev|``. This is what the paper's
  authors' code computes and what the paper's figures show.
* ``rwc_norm``: ``sum |curr - prev| / sum |prev|``, the ratio of L1 norms written as
  Eq. (1) of the paper.

Optional measures, computed with them in one call that shares the element-wise work
(`layer_stats`; the names and their order are ``rwc_keras.spec.METRICS``):

* ``update_ratio``: ``||curr - prev||_2 / ||prev||_2``.
* ``dist_init``: ``sum |curr - initial| / sum |initial|``, how far the tensor has moved from
  its weights at train begin (``initial``, w0) in all.
* ``rotation``: ``1 - cos(curr, initial)``, the layer-rotation measure of Carbonnelle & De
  Vleeschouwer (docs/paper_facts.md, "Facts for the next features").
* ``weight_norm``: ``||curr||_2``.

Zero rule: elements whose ``prev`` is exactly zero are left out of the ``rwc`` mean (and
counted in ``zeros``). A ratio whose denominator is zero (all-zero ``prev`` for ``rwc``,
``rwc_norm`` and ``update_ratio``; all-zero ``initial`` for ``dist_init``; all-zero
``curr`` or ``initial`` for ``rotation``) is NaN. Never inf, never an exception.

Precision: element-wise work is done in the weights' precision (float32 at least), with
each element-wise term computed once and shared between the measures, since this may run
every step; sums are taken per row in that precision and then accumulated in float64,
which keeps every measure within 1e-6 of a float64 computation on tensors of millions of
elements. ``rotation`` is taken as half the squared distance between the two tensors
scaled to unit norm, not as ``1 - cos`` literally, which loses every digit when the tensor
has barely turned; it stays within 1e-5 of float64 down to rotations of 1e-6 (an angle of
0.08 degrees), even when the tensor shrank by 10% meanwhile.

Backends: the functions use ``keras.ops``; `rwc_keras.RWCCallback` runs them inside a
``tf.function`` on TensorFlow, ``jax.jit`` on JAX and eagerly under ``torch.no_grad`` on
PyTorch. The float64 accumulation needs float64 support: on JAX, ``jax.enable_x64``
around the call (the callback does so for its measurement only; without it the
accumulation silently stays float32); PyTorch has it except on MPS.
"""

import functools

import keras
from keras import ops

from rwc_keras.spec import INITIAL_METRICS, RWC_METRICS, ZEROS, check_metrics, needs_initial

_NAN = float("nan")


def _total(x):
    # Row sums in the weights' precision, then float64 across rows (module docstring).
    return ops.sum(ops.cast(ops.sum(x, axis=-1), "float64"))


def _total_of_squares(x):
    """``sum(x ** 2)`` as `_total` takes it, the row sums fused where the backend can."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415 (only on this backend)
        from tensorflow.python.ops import control_flow_util  # noqa: PLC0415

        # EuclideanNorm reads x once and writes no temporary, where squaring then summing
        # writes the squares out: half the cost of this measure. XLA has no kernel for it
        # (and fuses the two ops itself), hence the check for a jit-compiled function.
        if not control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()):
            row_norms = ops.cast(tf.math.reduce_euclidean_norm(x, axis=-1), "float64")
            return ops.sum(ops.square(row_norms))
    return _total(ops.square(x))


def _ratio(numerator, denominator):
    """``numerator / denominator`` for float64 scalars, NaN where the denominator is 0."""
    nonzero = denominator > 0
    safe = ops.where(nonzero, denominator, 1.0)
    return ops.where(nonzero, numerator / safe, _NAN)


def _as_rows(x, like=None):
    """``x`` as a 2-D tensor of rows of its last axis, in the precision it is measured in:
    its own (or ``like``'s) when float32 or float64, float32 otherwise."""
    x = ops.convert_to_tensor(x)
    dtype = keras.backend.standardize_dtype((x if like is None else like).dtype)
    if dtype not in ("float32", "float64"):
        dtype = "float32"
    row = x.shape[-1] if len(x.shape) else 1
    return ops.reshape(ops.cast(x, dtype), (-1, row))


def _norms_of_rows(initial):
    return ops.stack([_total(ops.abs(initial)), ops.sqrt(_total_of_squares(initial))])


def initial_norms(initial):
    """``[sum |initial|, ||initial||]`` (float64): what `layer_stats` needs of the weights at
    train begin besides the tensor itself.

    They never change, so a caller measuring often computes them once and passes them to
    `layer_stats`, which saves about a third of the cost of ``dist_init`` and ``rotation``.
    """
    return _norms_of_rows(_as_rows(initial))


class _Terms:
    """The sums one tensor's measures are made of, each computed at most once.

    Tensors are viewed as rows of their last axis, so that every sum is a per-row sum in
    the weights' precision followed by a float64 total.
    """

    def __init__(self, prev, curr, initial, known_initial_norms):
        self.prev = _as_rows(prev)
        self.dtype = self.prev.dtype
        self.curr = _as_rows(curr, like=self.prev)
        self.initial = None if initial is None else _as_rows(initial, like=self.prev)
        self.known_initial_norms = known_initial_norms

    @functools.cached_property
    def change(self):
        return self.curr - self.prev

    @functools.cached_property
    def abs_prev(self):
        return ops.abs(self.prev)

    @functools.cached_property
    def abs_change(self):
        return ops.abs(self.change)

    @functools.cached_property
    def ratio_sums(self):
        """``[sum of |change| / |prev| where prev != 0, the number of such elements]``."""
        # Plain division puts inf or NaN where prev == 0, so a finite sum proves that prev
        # has no zero: only a tensor with zeros (or NaN weights) pays for counting them and
        # for dividing again without them. A NaN weight is not a zero: it counts as nonzero,
        # so a diverged tensor gives NaN values and an exact (integer) zero count.
        ratio_sum = _total(self.abs_change / self.abs_prev)
        size = ops.cast(ops.size(self.prev), "float64")
        return ops.cond(
            ops.isfinite(ratio_sum),
            lambda: ops.stack([ratio_sum, size]),
            lambda: ops.stack([_total(ops.divide_no_nan(self.abs_change, self.abs_prev)),
                               _total(ops.cast(ops.not_equal(self.prev, 0), self.dtype))]))

    @functools.cached_property
    def to_initial(self):
        return self.curr - self.initial

    @functools.cached_property
    def curr_norm(self):
        return ops.sqrt(_total_of_squares(self.curr))

    @functools.cached_property
    def initial_norms(self):
        if self.known_initial_norms is not None:
            return ops.cast(self.known_initial_norms, "float64")
        return _norms_of_rows(self.initial)

    def rwc(self):
        return _ratio(self.ratio_sums[0], self.ratio_sums[1])

    def rwc_norm(self):
        return _ratio(_total(self.abs_change), _total(self.abs_prev))

    def update_ratio(self):
        return _ratio(ops.sqrt(_total_of_squares(self.change)),
                      ops.sqrt(_total_of_squares(self.prev)))

    def dist_init(self):
        return _ratio(_total(ops.abs(self.to_initial)), self.initial_norms[0])

    def rotation(self):
        # 1 - cos = ||curr / ||curr|| - w0 / ||w0||||^2 / 2, a sum of small squares, so it
        # keeps its digits when the tensor has barely turned (1 - cos taken literally loses
        # them all). Scaled by ||curr||, the difference of unit vectors is
        # (curr - w0) + (1 - ||curr|| / ||w0||) w0: errors in the two norms only move it
        # along w0, which adds their square to the sum.
        initial_norm = self.initial_norms[1]
        shrink = _ratio(initial_norm - self.curr_norm, initial_norm)
        turn = self.to_initial + ops.cast(shrink, self.dtype) * self.initial
        return _ratio(_total_of_squares(turn), 2.0 * ops.square(self.curr_norm))

    def weight_norm(self):
        return self.curr_norm

    def zeros(self):
        return ops.cast(ops.size(self.prev), "float64") - self.ratio_sums[1]


def layer_stats(prev, curr, initial=None, metrics=RWC_METRICS, initial_norms=None):
    """The chosen measures of one weight tensor, then its zero count, sharing their work.

    Graph-friendly: call it inside a ``tf.function``; nothing leaves the device.

    Args:
        prev: the weights at the previous measurement point.
        curr: the weights now, same shape as ``prev``.
        initial: the weights at train begin, same shape; needed only by the measures of
            ``rwc_keras.spec.INITIAL_METRICS``.
        metrics: names from ``rwc_keras.spec.METRICS``, in the order wanted.
        initial_norms: optional, ``initial_norms(initial)`` computed beforehand.

    Returns:
        A float64 vector of ``len(metrics) + 1`` values: each of ``metrics`` in the order
        given, then ``zeros``, the number of elements of ``prev`` that are exactly zero
        (left out of the ``rwc`` mean).

    Raises:
        ValueError: an unknown name in ``metrics``, or ``initial`` missing when one of
            ``metrics`` needs it.

    Example:
        >>> [float(x) for x in layer_stats([1.0, 2.0], [1.5, 2.0],
        ...                                metrics=("rwc", "weight_norm"))]
        [0.25, 2.5, 0.0]
    """
    check_metrics(metrics)
    if initial is None and needs_initial(metrics):
        raise ValueError(f"metrics {', '.join(m for m in metrics if m in INITIAL_METRICS)} "
                         "compare with the weights at train begin; pass initial")
    terms = _Terms(prev, curr, initial, initial_norms)
    return ops.stack([getattr(terms, name)() for name in (*metrics, ZEROS)])


def rwc_stats(prev, curr):
    """Both RWC values and the zero count for one tensor, as float64 scalar tensors.

    Graph-friendly: call it inside a ``tf.function``; nothing leaves the device.

    Args:
        prev: the weights at the earlier measurement point.
        curr: the weights now, same shape as ``prev``.

    Returns:
        ``(rwc, rwc_norm, zeros)``: the two definitions and the number of elements of
        ``prev`` that are exactly zero (left out of the ``rwc`` mean).
    """
    values = layer_stats(prev, curr, metrics=RWC_METRICS)
    return values[0], values[1], values[2]


def rwc(prev, curr):
    """Mean element-wise relative change ``mean(|curr - prev| / |prev|)`` (float64 scalar).

    Elements with ``prev == 0`` are left out; all-zero ``prev`` gives NaN.

    Example:
        >>> float(rwc([1.0, 2.0], [1.5, 2.0]))
        0.25
    """
    return rwc_stats(prev, curr)[0]


def rwc_norm(prev, curr):
    """Relative change of the L1 norm ``sum|curr - prev| / sum|prev|`` (float64 scalar).

    All-zero ``prev`` gives NaN.

    Example:
        >>> float(rwc_norm([1.0, 2.0], [1.5, 2.0]))
        0.16666666666666666
    """
    return rwc_stats(prev, curr)[1]
