"""The layer-freezing schema: modes, defaults, file names and columns, once.

The freezing callbacks (`rwc_keras.freezing`), the driver's flags and the freezing report read
these. Like `rwc_keras.spec` it imports nothing, so flag validation stays instant.
"""

# ``--freeze``: no freezing, the RWC rule (`RWCFreezing`), FreezeOut's schedule, or a linear
# schedule like Composer's LayerFreezing (`LinearFreezing`).
FREEZE_MODES = ("none", "rwc", "freezeout", "linear")
DEFAULT_FREEZE = "none"
# `LinearFreezing`'s schedule, Composer's LayerFreezing defaults: from half of training the
# frozen share of the freezable units grows linearly to ``level`` at the end.
LINEAR_FREEZING = {"start": 0.5, "level": 1.0}
# The RWC freezing rule's defaults (`rwc_keras.RWCFreezing`, rule v2; docs/freezing.md says
# how they were chosen), for RWC measured once per epoch. The driver's --freeze_<name> flags.
RWC_FREEZING_RULE = {"tolerance": 0.35, "patience": 1, "smoothing": 0.0, "warmup": 0.2,
                     "cap": 0.75}
# ``--freeze_cache_mb``: the most host memory the driver's cache of a frozen prefix's outputs
# may take (`rwc_keras.experiment.prefix_cache`); a fixed budget, not a share of the free
# memory, so that a resumed run decides as an uninterrupted one did.
DEFAULT_FREEZE_CACHE_MB = 2048
# How a frozen BatchNormalization layer normalises: with the batch's statistics as before it
# froze (its scale and offset fixed, its moving statistics still updated), or in inference
# mode with its moving statistics, which is what Keras's ``trainable = False`` means.
FREEZE_BATCHNORM = ("batch", "inference")
DEFAULT_FREEZE_BATCHNORM = "batch"
# Written by a freezing callback, per run: one row per frozen layer group. ``smoothed`` and
# ``change`` are the RWC rule's (empty for the schedules). ``saved_macs``: multiply-adds per
# example that every training step skips from then on (all groups frozen so far);
# ``train_macs``: those of a step without freezing (the same in every row).
FREEZING_CSV = "freezing.csv"
FREEZING_COLUMNS = ("epoch", "step", "group", "layers", "smoothed", "change", "saved_macs",
                    "train_macs")
# Written by `python -m rwc_keras.report.freezing`, into the folder it compares.
FREEZING_REPORT_MD = "freezing_report.md"
FREEZING_PNG = "freezing.png"


def freezing_tag(group):
    """TensorBoard tag of the marker a freezing callback writes when ``group`` freezes."""
    return f"freezing/{group}"
