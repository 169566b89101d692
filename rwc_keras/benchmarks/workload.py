"""What the driver benchmarks train on: generated CIFAR-10-shaped data through the real
CIFAR-10 pipeline, and the driver's run configuration for it."""

import numpy as np

from rwc_keras import spec
from rwc_keras.experiment.data.pipeline import Datasets
from rwc_keras.experiment.train import RunConfig

CIFAR10 = spec.DATASETS[spec.BENCH_DATASET]


def generated_cifar(steps, batch_size):
    """The CIFAR-10 pipeline (crops and flips) over random uint8 images: one epoch of
    ``steps`` batches, and one test batch."""
    rng = np.random.default_rng(0)
    count = steps * batch_size
    images = rng.integers(0, 256, size=(count, *CIFAR10.input_shape), dtype=np.uint8)
    labels = rng.integers(0, CIFAR10.num_classes, size=count, dtype=np.int64)
    test = (images[:batch_size], labels[:batch_size])
    return Datasets(CIFAR10, (images, labels), test, batch_size, seed=0, source="generated")


def bench_config(arch, batch_size, **options):
    """The driver's `RunConfig` for one epoch of ``arch`` on `generated_cifar`, with the
    benchmarks' optimizer settings; ``options`` sets the other fields."""
    return RunConfig(arch=arch, dataset=CIFAR10.name, seed=0, epochs=1, batch_size=batch_size,
                     lr=spec.BENCH_LR, momentum=spec.MOMENTUM,
                     weight_decay=spec.BENCH_WEIGHT_DECAY, **options)
