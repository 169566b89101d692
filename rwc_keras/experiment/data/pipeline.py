"""The deterministic `tf.data` pipelines of the four datasets, at 32x32 (`Datasets`).

Preprocessing: every image is resized to 32x32 (MNIST-style 28x28 images bilinearly, one
channel kept), scaled to [0, 1] and then normalised as ``normalize`` says (``NORMALIZATIONS``):

* ``"authors"`` (default): exactly the authors' loaders (their ``utils/data.py``): MNIST and
  Fashion-MNIST are not normalised at all (pixels stay in [0, 1]); CIFAR-10 and CIFAR-100
  are normalised with the ImageNet statistics (mean 0.485, 0.456, 0.406; std 0.229, 0.224,
  0.225), not with CIFAR's own;
* ``"dataset"``: each dataset's own per-channel mean and std;
* ``"none"``: pixels in [0, 1] for every dataset.

Training batches are augmented: CIFAR with a random 32x32 crop of the image zero-padded by
4 pixels plus a random horizontal flip, MNIST and Fashion-MNIST with the flip only (the
authors' code flips them too). The training set is shuffled every epoch unless
``shuffle=False``, which feeds it in file order as the authors' ``DataLoader`` (built
without ``shuffle=True``) did; augmentation stays random either way.

Resumable by construction: the batches of training epoch ``e`` are a pure function of
``(seed, e)``. The example order is a permutation seeded with ``(seed, e)`` and the
augmentation uses stateless random ops seeded with ``(seed, e, batch index)``, so a run
resumed at epoch ``e`` sees exactly the data an uninterrupted run would.
"""

import logging

import numpy as np
import tensorflow as tf

from rwc_keras import spec
from rwc_keras.experiment.data.sources import DATASETS, DataError, load_with_source

logger = logging.getLogger(__name__)

NORMALIZATIONS = spec.NORMALIZATIONS
IMAGE_SIZE = spec.IMAGE_SIZE
CROP_PADDING = 4

# Batches prepared ahead, in parallel, while the model trains on the current one: a batch
# takes milliseconds to make and a training step far longer, so a few always suffice.
PARALLEL_BATCHES = 4



class Datasets:
    """The training and test pipelines of one dataset, batched for one global batch size.

    Args:
        info: the dataset's `rwc_keras.spec.Dataset`.
        train_arrays: ``(images, labels)``, uint8 NHWC images at the original size.
        test_arrays: the same for the test split.
        batch_size: global batch size.
        seed: the run's seed; with the epoch number it fixes the order and augmentation.
        source: where the arrays came from, for logs and reports.
        normalize: one of ``NORMALIZATIONS`` (see the module docstring).
        shuffle: shuffle the training set every epoch; False keeps file order.
    """

    def __init__(self, info, train_arrays, test_arrays, batch_size, seed, source="",
                 normalize=spec.DEFAULT_NORMALIZATION, shuffle=True):
        self.info = info
        self.batch_size = batch_size
        self.seed = seed
        self.source = source
        self.normalize = normalize
        self.shuffle = shuffle
        self._normalization = info.normalization(normalize)
        self.num_train = len(train_arrays[0])
        self.num_test = len(test_arrays[0])
        # Decoded once and kept on the host; each batch gathers its examples from here.
        with tf.device("/cpu:0"):
            self._train = tuple(tf.constant(a) for a in train_arrays)
            self._test = tuple(tf.constant(a) for a in test_arrays)

    @property
    def steps_per_epoch(self):
        """Number of training batches per epoch (the remainder is dropped)."""
        return self.num_train // self.batch_size

    @property
    def crops(self):
        """Whether training images are randomly cropped (CIFAR) besides flipped."""
        return self.info.channels == 3

    def train(self, epoch):
        """The augmented training batches of one epoch, shuffled unless ``shuffle=False``.

        Args:
            epoch: the epoch number; the result depends only on it and the seed.

        Returns:
            A ``tf.data.Dataset`` of ``(images, labels)``: float32 ``(batch, 32, 32, C)`` and
            int64 ``(batch,)``, every batch full (the remainder is dropped).
        """

        def make_batch(seed, indices):
            images = self._augment(tf.gather(self._train[0], indices), seed)
            return self._normalise(images), tf.gather(self._train[1], indices)

        return self._epoch_batches(epoch, make_batch)

    def train_from(self, epoch, cache):
        """The batches of `train` with each image replaced by a precomputed function of it.

        For data augmented by flips alone (not `crops`): batch for batch the examples and
        flips of ``train(epoch)``, as ``cache[flip, index]``.

        Args:
            epoch: the epoch number.
            cache: a tensor ``(2, examples, ...)``: per training example, in file order, the
                value for the image as it is (0) and flipped (1).

        Returns:
            A ``tf.data.Dataset`` of ``(cache rows, labels)``.
        """
        if self.crops:
            raise ValueError("images that are randomly cropped cannot be read from a cache")

        def make_batch(seed, indices):
            flips = flip_mask(_flip_seed(seed), tf.size(indices))
            rows = tf.gather_nd(cache, tf.stack([tf.cast(flips, indices.dtype), indices], 1))
            return rows, tf.gather(self._train[1], indices)

        return self._epoch_batches(epoch, make_batch)

    def examples(self, flip):
        """Every training image in file order, flipped or not, normalised, in batches."""

        def make_batch(indices):
            images = tf.gather(self._train[0], indices)
            if flip:
                images = tf.reverse(images, [2])
            return self._normalise(images)

        ds = tf.data.Dataset.range(self.num_train).batch(self.batch_size)
        return _without_autotuning(ds.map(make_batch, num_parallel_calls=PARALLEL_BATCHES))

    def _epoch_batches(self, epoch, make_batch):
        """The epoch's batches of example indices, each made by ``make_batch(seed, indices)``
        with the batch's own seed: the order and the seeds depend on the seed and epoch only."""
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_train)
        else:
            order = np.arange(self.num_train)
        epoch_seed = tf.constant([self.seed, epoch], tf.int64)

        def batch(batch_index, indices):
            return make_batch(tf.random.experimental.stateless_fold_in(epoch_seed, batch_index),
                              indices)

        ds = tf.data.Dataset.from_tensor_slices(order)
        ds = ds.batch(self.batch_size, drop_remainder=True).enumerate()
        return _without_autotuning(ds.map(batch, num_parallel_calls=PARALLEL_BATCHES))

    def test(self):
        """The test batches in file order, not augmented; the last batch may be smaller.

        Returns:
            A ``tf.data.Dataset`` of ``(images, labels)`` as in ``train``.
        """

        def make_batch(indices):
            images = tf.gather(self._test[0], indices)
            return self._normalise(images), tf.gather(self._test[1], indices)

        ds = tf.data.Dataset.range(self.num_test).batch(self.batch_size)
        return _without_autotuning(ds.map(make_batch, num_parallel_calls=PARALLEL_BATCHES))

    def _augment(self, images, seed):
        """Random flips (and crops for CIFAR) of a uint8 batch, one draw per image."""
        if self.crops:
            images = _random_crop(images, _crop_seed(seed))
        flips = flip_mask(_flip_seed(seed), tf.shape(images)[0])
        return tf.where(flips[:, None, None, None], tf.reverse(images, [2]), images)

    def _normalise(self, images):
        """uint8 batch at the original size -> float32 32x32 batch, normalised."""
        images = tf.cast(images, tf.float32) / 255.0
        if images.shape[1] != IMAGE_SIZE:
            images = tf.image.resize(images, (IMAGE_SIZE, IMAGE_SIZE), method="bilinear")
        if self._normalization is None:
            return images
        mean, std = self._normalization
        return (images - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def _flip_seed(seed):
    return tf.random.experimental.stateless_split(seed, 2)[0]


def _crop_seed(seed):
    return tf.random.experimental.stateless_split(seed, 2)[1]


def flip_mask(seed, count):
    """Which of ``count`` images a batch flips: the draws of
    ``tf.image.stateless_random_flip_left_right`` with the same seed (one uniform per image,
    rounded), made explicit so that a cache of flipped and unflipped images can follow them
    (tests/experiment/test_data.py checks the two agree)."""
    return tf.random.stateless_uniform([count], seed, 0.0, 1.0) > 0.5  # tf.round: 0.5 -> 0


def _without_autotuning(ds):
    """Prefetches ``PARALLEL_BATCHES`` batches, with tf.data's autotuning switched off.

    Deleting an autotuned iterator waits for its tuning thread's next wake-up, which stalled
    every epoch (training and test pass) by up to about 10 s on 2 CPU cores (TF 2.21, seen in
    ``~RootDataset::Iterator``). Fixed parallelism has nothing to wait for and, at these batch
    costs, loses no speed (``python -m rwc_keras.benchmarks.bench`` measures the pipeline alone).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(PARALLEL_BATCHES).with_options(options)


def _random_crop(images, seed):
    """Per-image random crop of the zero-padded batch back to its own size.

    Same as torchvision's ``RandomCrop(32, padding=4)`` applied to each image, done for
    the whole batch at once with two batched gathers instead of a per-image loop.
    """
    size = images.shape[1]
    padded = tf.pad(images, [[0, 0], [CROP_PADDING] * 2, [CROP_PADDING] * 2, [0, 0]])
    offsets = tf.random.stateless_uniform(
        [tf.shape(images)[0], 2], seed, maxval=2 * CROP_PADDING + 1, dtype=tf.int32
    )
    window = tf.range(size)
    rows = offsets[:, :1] + window  # (batch, size)
    cols = offsets[:, 1:] + window
    padded = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(padded, cols, axis=2, batch_dims=1)


def make_datasets(
    name, batch_size, seed, data_dir=None, max_train_examples=None, max_test_examples=None,
    normalize=spec.DEFAULT_NORMALIZATION, shuffle=True,
):
    """Loads a dataset and builds its training and test pipelines.

    Args:
        name: one of ``DATASETS``.
        batch_size: global batch size (all replicas together).
        seed: the run's seed (a non-negative integer).
        data_dir: optional folder with raw files or TFDS data (see ``load_arrays``).
        max_train_examples: keep only the first this many training examples (quick runs).
        max_test_examples: keep only the first this many test examples.
        normalize: one of ``NORMALIZATIONS``: ``"authors"`` (their loaders' preprocessing),
            ``"dataset"`` (the dataset's own mean and std) or ``"none"`` ([0, 1] pixels).
        shuffle: shuffle the training set every epoch (False: file order, as the authors).

    Returns:
        A ``Datasets``.

    Raises:
        ValueError: batch_size below 1.
        rwc_keras.spec.SchemaError: unknown name or normalisation.
        DataError: corrupt raw file, or fewer training examples than one batch (every epoch
            would be empty).
        DataUnavailableError: no source has the data.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    spec.dataset(name).normalization(normalize)  # bad values fail before the data loads
    ((x_train, y_train), (x_test, y_test)), source = load_with_source(name, data_dir)
    x_train, y_train = x_train[:max_train_examples], y_train[:max_train_examples]
    x_test, y_test = x_test[:max_test_examples], y_test[:max_test_examples]
    if len(x_train) < batch_size:
        raise DataError(
            f"{len(x_train)} training examples are fewer than one batch of {batch_size}: "
            "every epoch would be empty (raise max_train_examples or lower batch_size)"
        )
    logger.info("%s: %d train / %d test examples from %s", name, len(x_train), len(x_test), source)
    return Datasets(DATASETS[name], (x_train, y_train), (x_test, y_test), batch_size, seed, source,
                    normalize=normalize, shuffle=shuffle)
