"""rwc_keras: layer-wise Relative Weight Change (RWC) for Keras 3 / TensorFlow training."""

from rwc_keras.callback import RWCCallback
from rwc_keras.metric import rwc, rwc_norm, rwc_stats

__all__ = ["RWCCallback", "rwc", "rwc_norm", "rwc_stats"]
