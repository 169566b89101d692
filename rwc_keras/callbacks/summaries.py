"""The TensorBoard scalars of one RWC measurement: one per layer and measure, and the mean of
each layer group (`RWCCallback`)."""

from rwc_keras import spec

# The first part of every TensorBoard tag the callback writes: the families it owns in a
# folder shared with other scalars (see `RWCCallback.on_resume`).
TAG_FAMILIES = frozenset(
    tag.split("/")[0]
    for metric in spec.METRICS
    for tag in (spec.layer_tag(metric, "", "layer"), spec.group_mean_tag(metric, "group"))
)


def write_scalars(meta, metrics, values):
    """Writes every scalar of one measurement with the default summary writer and step: in
    a graph on TensorFlow, eagerly from the host's values on the other backends.

    Args:
        meta: ``(layer, group, size)`` of each tracked tensor, in the rows' order.
        metrics: the measures, in the columns' order.
        values: a (tensors, measures + 1) tensor; the last column (zeros) is not written.
    """
    # Imported here: `TAG_FAMILIES` serves callbacks that run without TensorFlow.
    import tensorflow as tf  # noqa: PLC0415

    members = {}
    for index, (layer, group, _) in enumerate(meta):
        for column, metric in enumerate(metrics):
            tf.summary.scalar(spec.layer_tag(metric, group, layer), values[index, column])
        if group:
            members.setdefault(group, []).append(index)
    for group, indices in members.items():
        for column, metric in enumerate(metrics):
            group_values = tf.gather(values[:, column], indices)
            finite = tf.boolean_mask(group_values, ~tf.math.is_nan(group_values))
            # The mean of no finite value is NaN, as in the CSV's all-zero rule.
            tf.summary.scalar(spec.group_mean_tag(metric, group), tf.reduce_mean(finite))
