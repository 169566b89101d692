"""TensorBoard custom-scalars layout for RWC runs: one chart per layer group.

The plain scalars dashboard lists every ``rwc/<group>/<layer>`` tag on its own. The layout
written here makes the custom-scalars dashboard show, per group, all of its layers' curves in
one chart, plus the per-group means and the accuracy curves. Tags are the ones `RWCCallback`
and the training driver write.
"""

import glob
import os
import re

import tensorflow as tf
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata
from tensorboard.plugins.custom_scalar import summary

RWC_CATEGORY = "RWC by group"
RWC_NORM_CATEGORY = "RWC (L1 norm, Eq. 1) by group"
ACCURACY_CATEGORY = "Accuracy"


def _chart(title, *regexes):
    return layout_pb2.Chart(
        title=title, multiline=layout_pb2.MultilineChartContent(tag=list(regexes))
    )


def _rwc_category(title, key, groups):
    """Group means first, then one chart per group of its layers' ``<key>/<group>/...`` tags."""
    charts = [_chart("group means", f"^{key}_mean/.*")]
    charts += [_chart(group, f"^{key}/{re.escape(group)}/.*") for group in groups]
    return layout_pb2.Category(title=title, chart=charts)


def build_layout(groups):
    """The layout proto for runs whose layers fall into ``groups``.

    Args:
        groups: ordered list of group names (the order of the charts).

    Returns:
        A `layout_pb2.Layout` with three categories: RWC by group (``rwc`` tags), RWC (L1
        norm, Eq. 1) by group (``rwc_norm`` tags) and Accuracy (``train/`` and ``test/``
        top-1, top-5 and loss).
    """
    accuracy = layout_pb2.Category(
        title=ACCURACY_CATEGORY,
        chart=[
            _chart(metric, f"^(train|test)/{metric}$") for metric in ("top1", "top5", "loss")
        ],
    )
    return layout_pb2.Layout(
        category=[
            _rwc_category(RWC_CATEGORY, "rwc", groups),
            _rwc_category(RWC_NORM_CATEGORY, "rwc_norm", groups),
            accuracy,
        ]
    )


def write_layout(log_dir, groups):
    """Writes the custom-scalars layout for ``groups`` into the event files of ``log_dir``.

    Args:
        log_dir: the TensorBoard log folder of a run (created if missing).
        groups: ordered list of group names, e.g. ``["early", "middle", "later", "head"]``.
    """
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        serialized = summary.pb(build_layout(groups)).SerializeToString()
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
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        # What tf.compat.v1.train.summary_iterator does, without its deprecation warning.
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == metadata.PLUGIN_NAME:
                    layout = layout_pb2.Layout.FromString(value.tensor.string_val[0])
    if layout is None:
        raise ValueError(f"no custom-scalars layout in the event files of {log_dir}")
    return layout
