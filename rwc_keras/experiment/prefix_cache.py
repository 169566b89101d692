"""`PrefixCache`: the outputs of a frozen leading prefix, computed once per (example, flip).

Once the leading units are frozen and the prefix is a fixed function of its input
(`rwc_keras.freezing.prefix.frozen_prefix_cut`), the training driver computes the prefix's
output for every training example, as it is and flipped (Fashion-MNIST's and MNIST's only
augmentation), and trains the layers above on those values: the forward pass of the prefix
is then saved as well as its backward pass. Exact: the batches hold the same examples and
flips as `Datasets.train`, and each value is what the prefix computes in the step
(tests/freezing/test_prefix_cache.py).

Memory: 2 x examples x the cut's output size x its bytes per value, kept on the host. It is
printed when the cache is made; when it exceeds the budget one line says so and training
goes on uncached. The budget is a flag of the driver (``--freeze_cache_mb``), not a share of
the free memory, so that a resumed run makes the same decision as an uninterrupted one.
"""

import math

import keras
import tensorflow as tf

from rwc_keras.freezing.prefix import frozen_prefix_cut

MIB = 2 ** 20


class PrefixCache:
    """Decides at each epoch's start whether the frozen prefix is cached, and holds the cache.

    Args:
        datasets: the run's `rwc_keras.experiment.data.pipeline.Datasets`.
        budget_mb: the most host memory the cache may take, in MiB; 0 never caches.
        verbose: 1 prints each decision; 0 is silent.

    Attributes:
        cut: the layer whose outputs are cached, or None (training runs uncached).
        suffix: the model above ``cut`` (sharing its layers), or None.
        decisions: one line per decision made, as printed.

    Example:
        ```python
        cache = PrefixCache(datasets, budget_mb=2048)
        if cache.update(model, units, frozen, epoch):
            batches = cache.batches(epoch)   # (prefix outputs, labels)
        ```
    """

    def __init__(self, datasets, budget_mb, verbose=1):
        self.datasets = datasets
        self.budget_mb = budget_mb
        self.verbose = verbose
        self.cut = self.suffix = None
        self.decisions = []
        self._cache = None
        self._frozen = 0

    def update(self, model, units, frozen, epoch):
        """Makes the cache for ``frozen`` leading units when that changed since the last call.

        Returns:
            True when the model's trainable set now reads from a different cache (or from
            none after one): the train step must be traced again.
        """
        if frozen == self._frozen:
            return False
        self._frozen = frozen
        had_cache = self.cut is not None
        self.cut, self.suffix, self._cache = None, None, None
        cut, reason = frozen_prefix_cut(model, units, frozen)
        if cut is not None and self.datasets.crops:
            cut, reason = None, "the training images are randomly cropped"
        if cut is None:
            self._say(epoch, f"not cached: {reason}")
            return had_cache
        shape, dtype = cut.output.shape[1:], cut.output.dtype
        needed = 2 * self.datasets.num_train * math.prod(shape) * tf.as_dtype(dtype).size
        where = (f"{cut.name}'s output {tuple(shape)} x {self.datasets.num_train} examples x "
                 f"2 flips = {needed / MIB:.0f} MiB (budget {self.budget_mb} MiB)")
        if needed > self.budget_mb * MIB:
            self._say(epoch, f"not cached, too large: {where}; training goes on uncached")
            return had_cache
        self._cache = self._compute(keras.Model(model.input, cut.output))
        self.cut, self.suffix = cut, keras.Model(cut.output, model.output)
        self._say(epoch, f"cached {where}")
        return True

    def _compute(self, prefix):
        # In training mode as in the step: every layer in it computes the same either way.
        with tf.device("/cpu:0"):
            return tf.stack([
                tf.concat([prefix(images, training=True) for images in
                           self.datasets.examples(flip)], axis=0)
                for flip in (False, True)])

    def batches(self, epoch):
        """Epoch ``epoch``'s training batches as ``(prefix outputs, labels)``."""
        return self.datasets.train_from(epoch, self._cache)

    def _say(self, epoch, text):
        line = f"prefix cache at epoch {epoch + 1}: {text}"
        self.decisions.append(line)
        if self.verbose:
            print(line)
