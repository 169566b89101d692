"""TensorBoard custom-scalars layout for RWC runs: one chart per layer group and measure.

The plain scalars dashboard lists every ``rwc/<group>/<layer>`` tag on its own. The layout
written here makes the custom-scalars dashboard show, per measure (``rwc``, ``rwc_norm`` and
the `RWCCallback`'s other ``metrics``) and group, all of the group's layers' curves in one
chart, plus the per-group means and the accuracy curves. The tags are the ones
``rwc_keras.spec`` formats for `RWCCallback` and the training driver.

Example:
    write_layout("runs/alexnet_mnist/seed_0", spec.architecture("alexnet").groups)
"""

import glob
import os
import re

import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata
from tensorboard.plugins.custom_scalar import summary

from rwc_keras import spec

ACCURACY_CATEGORY = "Accuracy"


def category_title(metric):
    """The title of ``metric``'s category, e.g. ``rwc by group: mean of |Δw| / |w|``."""
    return f"{metric} by group: {spec.METRIC_FORMULAS[metric]}"


def _chart(title, *regexes):
    return layout_pb2.Chart(
        title=title, multiline=layout_pb2.MultilineChartContent(tag=list(regexes))
    )


def _starting_with(prefix):
    return f"^{re.escape(prefix)}.*"


def _metric_category(metric, groups):
    """Group means first, then one chart per group of its layers' tags."""
    charts = [_chart("group means", _starting_with(spec.group_mean_tag(metric, "")))]
    charts += [_chart(group, _starting_with(spec.layer_tag(metric, group, "")))
               for group in groups]
    return layout_pb2.Category(title=category_title(metric), chart=charts)


def _accuracy_category():
    """One chart per metric of the driver, the splits' curves together."""
    charts = []
    for metric in spec.EPOCH_METRICS:
        tags = "|".join(re.escape(spec.accuracy_tag(split, metric)) for split in spec.SPLITS)
        charts.append(_chart(metric, f"^({tags})$"))
    return layout_pb2.Category(title=ACCURACY_CATEGORY, chart=charts)


def build_layout(groups, metrics=spec.RWC_METRICS):
    """The layout proto for runs whose layers fall into ``groups``.

    Args:
        groups: ordered list of group names (the order of the charts).
        metrics: the measures the runs record, names of ``spec.METRICS`` (an
            `RWCCallback`'s ``metrics``).

    Returns:
        A `layout_pb2.Layout` with one category per measure, in the order of
        ``spec.METRICS``, then Accuracy (train and test curves of ``spec.EPOCH_METRICS``).
    """
    categories = [_metric_category(metric, groups) for metric in spec.check_metrics(metrics)]
    return layout_pb2.Layout(category=[*categories, _accuracy_category()])


def write_layout(log_dir, groups, metrics=spec.RWC_METRICS):
    """Writes the custom-scalars layout for ``groups`` into the event files of ``log_dir``.

    Args:
        log_dir: the TensorBoard log folder of a run (created if missing).
        groups: ordered list of group names, e.g. ``["early", "middle", "later", "head"]``.
        metrics: the measures the run records (see `build_layout`).
    """
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        serialized = summary.pb(build_layout(groups, metrics)).SerializeToString()
        tf.summary.experimental.write_raw_pb(serialized, step=0)
    writer.close()


def read_layout(log_dir):
    """Reads back the custom-scalars layout from the event files of ``log_dir``.

    Args:
        log_dir: a folder `write_layout` (or anything else writing a layout) wrote to.

    Returns:
        The last `layout_pb2.Layout` found.

    Raises:
        ValueError: no event file in ``log_dir`` holds a layout.
    """
    layout = None
    for path in sorted(glob.glob(os.path.join(log_dir, spec.EVENTS_GLOB))):
        # What tf.compat.v1.train.summary_iterator does, without its deprecation warning.
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
                    layout = layout_pb2.Layout.FromString(value.tensor.string_val[0])
    if layout is None:
        raise ValueError(f"no custom-scalars layout in the event files of {log_dir}")
    return layout
