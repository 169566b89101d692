"""Relative Weight Change (RWC) of one weight tensor between two points in training.

Two definitions are kept (see README, "Two definitions"):

* ``rwc``: mean over elements of ``|curr - prev| / |prev|``. This is what the paper's
  authors' code computes and what the paper's figures show.
* ``rwc_norm``: ``sum |curr - prev| / sum |prev|``, the ratio of L1 norms written as
  Eq. (1) of the paper.

Zero rule: elements whose ``prev`` is exactly zero are left out of the ``rwc`` mean (and
counted in ``zeros``); a tensor whose ``prev`` is all zeros gives NaN for both values.
Never inf, never an exception.

Element-wise work is done in the weights' precision (float32 at least), with as few passes
over the tensor as possible since it may run every step; sums are taken per row in that
precision and then accumulated in float64, which keeps the result trustworthy to well below
1e-6 on tensors of millions of elements.
"""

import tensorflow as tf

_NAN = float("nan")


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
    prev = tf.convert_to_tensor(prev)
    if prev.dtype not in (tf.float32, tf.float64):
        prev = tf.cast(prev, tf.float32)
    curr = tf.cast(curr, prev.dtype)
    row = prev.shape[-1] if prev.shape.rank else 1
    prev = tf.reshape(prev, [-1, row])
    curr = tf.reshape(curr, [-1, row])

    abs_prev = tf.abs(prev)
    abs_change = tf.abs(curr - prev)
    # divide_no_nan puts 0 where prev == 0; those elements are then left out of the count.
    ratio = tf.math.divide_no_nan(abs_change, abs_prev)

    def total(x):
        return tf.reduce_sum(tf.cast(tf.reduce_sum(x, axis=-1), tf.float64))

    count = tf.cast(tf.math.count_nonzero(prev), tf.float64)
    prev_sum = total(abs_prev)
    nan = tf.constant(_NAN, tf.float64)
    rwc = tf.where(count > 0, total(ratio) / tf.maximum(count, 1.0), nan)
    safe_prev_sum = tf.where(prev_sum > 0, prev_sum, 1.0)
    rwc_norm = tf.where(prev_sum > 0, total(abs_change) / safe_prev_sum, nan)
    zeros = tf.cast(tf.size(prev), tf.float64) - count
    return rwc, rwc_norm, zeros

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
