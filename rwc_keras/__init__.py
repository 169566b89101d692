"""rwc_keras: layer-wise Relative Weight Change (RWC) for Keras 3 / TensorFlow training.

    from rwc_keras import RWCCallback, ResumeCallback, rwc, rwc_norm
    from rwc_keras import RWCFreezing, FreezeOut, FreezeOutSchedule, FreezeOutSGD, LinearFreezing
    from rwc_keras import build_model, TorchSGD    # the paper's models and optimizer
"""

import importlib

# Imported on first use, so `python -m rwc_keras.main --help` and bad flags answer at once
# instead of after TensorFlow's multi-second import.
_EXPORTS = {
    "RWCCallback": "rwc_keras.callbacks.rwc_callback",
    "ResumeCallback": "rwc_keras.callbacks.resume",
    "RWCFreezing": "rwc_keras.freezing.rwc_freezing",
    "FreezeOut": "rwc_keras.freezing.freezeout",
    "FreezeOutSchedule": "rwc_keras.freezing.freezeout",
    "FreezeOutSGD": "rwc_keras.freezing.freezeout",
    "LinearFreezing": "rwc_keras.freezing.linear",
    "rwc": "rwc_keras.measure.metric",
    "rwc_norm": "rwc_keras.measure.metric",
    "rwc_stats": "rwc_keras.measure.metric",
    "build_model": "rwc_keras.experiment.models",
    "TorchSGD": "rwc_keras.experiment.optimizer",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rwc_keras' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
