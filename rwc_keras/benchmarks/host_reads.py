"""`HostReads`: counts how often Python waits for the device, for the benchmark and tests."""

# Private: the one method every read of an eager tensor's value goes through.
from tensorflow.python.framework import ops as tf_ops


class HostReads:
    """Counts reads of eager tensor values into Python (``.numpy()``, ``float()``,
    ``int()``, ``bool()``) inside a ``with`` block: each one waits until the device has
    computed the tensor, so a GPU cannot run ahead across it.

    Every such read goes through ``_EagerTensorBase._numpy`` (TensorFlow 2.21), which the
    block wraps with a counter. Not thread-safe; for measurements only.

    Example:
        ```python
        with HostReads() as reads:
            trainer.train_epoch(0, callbacks)
        print(reads.count)
        ```
    """

    def __init__(self):
        self.count = 0
        self._original = None

    def __enter__(self):
        self.count = 0
        self._original = tf_ops._EagerTensorBase._numpy
        original = self._original

        def counted(tensor):
            self.count += 1
            return original(tensor)

        tf_ops._EagerTensorBase._numpy = counted
        return self

    def __exit__(self, *exc_info):
        tf_ops._EagerTensorBase._numpy = self._original
