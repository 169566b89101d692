import glob
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from rwc_keras import RWCCallback, spec
from rwc_keras.callbacks.layout import build_layout, category_title, read_layout, write_layout

GROUPS = ["early", "middle", "later", "head"]


@pytest.fixture
def layout(tmp_path):
    write_layout(str(tmp_path), GROUPS)
    return read_layout(str(tmp_path))


def charts(layout, category_title):
    (category,) = [c for c in layout.category if c.title == category_title]
    return {chart.title: list(chart.multiline.tag) for chart in category.chart}


def matching_charts(layout, tag):
    """(category, chart) of every chart with a regex that matches ``tag``."""
    return [
        (category.title, chart.title)
        for category in layout.category
        for chart in category.chart
        if any(re.search(regex, tag) for regex in chart.multiline.tag)
    ]


RWC = "rwc by group: mean of |Δw| / |w|"
RWC_NORM = "rwc_norm by group: Σ|Δw| / Σ|w| (Eq. 1)"


def test_categories_and_charts(layout):
    assert [c.title for c in layout.category] == [RWC, RWC_NORM, "Accuracy"]
    assert list(charts(layout, RWC)) == ["group means", *GROUPS]
    assert list(charts(layout, RWC_NORM)) == ["group means", *GROUPS]
    assert list(charts(layout, "Accuracy")) == ["loss", "top1", "top5"]


@pytest.mark.parametrize(
    "tag, chart",
    [
        ("rwc/early/conv1/kernel", (RWC, "early")),
        ("rwc/later/block5_conv4/kernel", (RWC, "later")),
        ("rwc_norm/early/conv1/kernel", (RWC_NORM, "early")),
        ("rwc_mean/middle", (RWC, "group means")),
        ("rwc_norm_mean/middle", (RWC_NORM, "group means")),
        ("train/loss", ("Accuracy", "loss")),
        ("train/top1", ("Accuracy", "top1")),
        ("test/top5", ("Accuracy", "top5")),
        ("test/loss", ("Accuracy", "loss")),
    ],
)
def test_each_tag_lands_in_exactly_one_chart(layout, tag, chart):
    assert matching_charts(layout, tag) == [chart]


@pytest.mark.parametrize(
    "tag", ["rwc/stem/conv1/kernel", "rwc/early", "x/rwc/early/a", "rwc/earlyish/a",
            "validation/top1", "test/top1x", "xtest/top1", "train/top1/test/top1"]
)
def test_other_tags_land_nowhere(layout, tag):
    assert matching_charts(layout, tag) == []


def test_group_names_are_regex_escaped():
    layout = build_layout(["a.b"])
    assert matching_charts(layout, "rwc/a.b/conv/kernel") == [(RWC, "a.b")]
    assert matching_charts(layout, "rwc/aXb/conv/kernel") == []


def test_one_category_per_chosen_metric_in_schema_order():
    layout = build_layout(GROUPS, ["weight_norm", "rwc", "rwc_norm", "rotation"])
    rotation = "rotation by group: 1 − cos(w, w0)"
    assert [c.title for c in layout.category] == [
        RWC, RWC_NORM, rotation, "weight_norm by group: ‖w‖", "Accuracy"]
    assert category_title("rotation") == rotation
    assert list(charts(layout, rotation)) == ["group means", *GROUPS]
    assert matching_charts(layout, "rotation/early/conv1/kernel") == [(rotation, "early")]
    assert matching_charts(layout, "rotation_mean/later") == [(rotation, "group means")]
    assert matching_charts(layout, "update_ratio/early/conv1/kernel") == []
    with pytest.raises(ValueError, match="'speed'"):
        build_layout(GROUPS, ["rwc", "speed"])


def test_read_layout_without_a_layout_fails(tmp_path):
    with pytest.raises(ValueError, match="no custom-scalars layout"):
        read_layout(str(tmp_path))


def scalar_tags(log_dir):
    tags = set()
    for path in glob.glob(f"{log_dir}/events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            tags |= {value.tag for value in event.summary.value}
    return tags


def test_layout_charts_every_tag_rwc_callback_writes(tmp_path):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.Dense(2, name="d2")]
    )
    model.compile("sgd", "mse")
    groups = {"d1/kernel": "early", "d2/kernel": "head"}
    callback = RWCCallback(log_dir=str(tmp_path), groups=groups, verbose=0)
    model.fit(np.ones((8, 4)), np.ones((8, 2)), epochs=1, verbose=0, callbacks=[callback])
    write_layout(str(tmp_path), GROUPS)
    layout = read_layout(str(tmp_path))
    tags = scalar_tags(tmp_path) - {"custom_scalars__config__"}
    assert tags == {
        "rwc/early/d1/kernel",
        "rwc_norm/early/d1/kernel",
        "rwc/head/d2/kernel",
        "rwc_norm/head/d2/kernel",
        "rwc_mean/early",
        "rwc_norm_mean/early",
        "rwc_mean/head",
        "rwc_norm_mean/head",
    }
    for tag in tags:
        assert len(matching_charts(layout, tag)) == 1, tag


def test_layout_charts_every_tag_of_every_metric(tmp_path):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, name="d1"), keras.layers.Dense(2, name="d2")]
    )
    model.compile("sgd", "mse")
    groups = {"d1/kernel": "early", "d2/kernel": "head"}
    callback = RWCCallback(log_dir=str(tmp_path), groups=groups, metrics=spec.METRICS, verbose=0)
    model.fit(np.ones((8, 4)), np.ones((8, 2)), epochs=1, verbose=0, callbacks=[callback])
    write_layout(str(tmp_path), GROUPS, callback.metrics)
    layout = read_layout(str(tmp_path))
    tags = scalar_tags(tmp_path) - {"custom_scalars__config__"}
    # Per metric: both layers and both group means.
    assert len(tags) == 4 * len(spec.METRICS)
    for tag in tags:
        assert len(matching_charts(layout, tag)) == 1, tag
