"""The measurement's compiled functions on JAX and PyTorch (TensorFlow's is a `tf.function`
in `rwc_keras.measure.snapshots.GraphSnapshots`), and the copies and norms it keeps on the
weights' device."""

import keras
from keras import ops

from rwc_keras.measure.metric import initial_norms


def copies(tensors):
    return [ops.copy(tensor) for tensor in tensors]


def norms_of(initials):
    return [initial_norms(initial) for initial in initials]


def compiled(fn):
    """``fn`` of backend tensors, compiled on JAX and PyTorch as the bench found fastest.

    JAX: ``jax.jit``, traced and run with float64 enabled, which the measurement's
    float64 accumulation needs (`rwc_keras.measure.metric`) and which the model's float32 weights
    do not notice. PyTorch: eager, without the autograd graph.
    """
    if keras.backend.backend() == "jax":
        import jax  # noqa: PLC0415 (only on this backend)

        jitted = jax.jit(fn)

        def run(*args):
            with jax.enable_x64(True):
                return jitted(*args)
        return run
    import torch  # noqa: PLC0415 (only on this backend)

    def run_without_grad(*args):
        with torch.no_grad():
            return fn(*args)
    return run_without_grad
