"""The experiment schema: every fact about architectures, datasets and run folders, once.

Everything else reads this module: the flags of ``rwc_keras.main`` take their choices from
it, ``rwc_keras.experiment.models`` finds each architecture's builder by the name written here,
``rwc_keras.experiment.data.sources`` each dataset's reader and statistics, the callback and the
driver the file names, CSV columns and TensorBoard tags, the report the groups, panels, titles and
paper accuracies. The paper's claims about RWC, which only the report checks, are data too, in
``rwc_keras.analysis.claims``. It imports no TensorFlow, so flag validation stays instant.

Adding an architecture is one `Architecture` entry here plus one builder function in
``rwc_keras.experiment.models``; adding a dataset is one `Dataset` entry plus, when its raw files
have a new layout, one reader in ``rwc_keras.experiment.data.sources``. ``tests/test_spec.py``
checks that the schema and the code agree.

Where the facts come from (the paper, Table 1 and the authors' code): ``docs/paper_facts.md``.
"""

import dataclasses


class SchemaError(ValueError):
    """A name the schema does not know, or a combination it has no value for."""


# -- architectures ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One of the paper's networks.

    Attributes:
        name: the ``--arch`` value.
        title: its name in figures and reports.
        builder: the name of the function in ``rwc_keras.experiment.models`` that builds it.
        groups: its layer groups, in plotting order (``docs/paper_facts.md``, "Architectures").
        panels: the groups each chart of the paper's figures shows together.
        lr: Table 1's learning rate per dataset.
        weight_decay: Table 1's (PyTorch-style, coupled) weight decay.
        paper_top1: the final test top-1 accuracy the paper reports, per dataset.
        xla: the driver's ``--jit_compile`` default: XLA measured faster (BENCHMARKS.md).
    """

    name: str
    title: str
    builder: str
    groups: tuple
    panels: tuple
    lr: dict
    weight_decay: float
    paper_top1: dict
    xla: bool


ARCHITECTURES = {
    arch.name: arch
    for arch in (
        Architecture(
            name="resnet18", title="ResNet-18", builder="resnet18",
            groups=("stem", "block1", "block2", "block3", "block4", "head"),
            panels=(("block1", "block2"), ("block2", "block3"), ("block3", "block4")),
            lr=dict(cifar10=0.1, cifar100=0.1, mnist=0.1, fashion_mnist=0.1),
            weight_decay=1e-4, xla=False,
            paper_top1=dict(cifar10=0.91, cifar100=0.64, mnist=0.99, fashion_mnist=0.92),
        ),
        Architecture(
            name="vgg19bn", title="VGG-19-BN", builder="vgg19bn",
            groups=("early", "middle", "later", "head"),
            panels=(("early", "middle", "later"),),
            lr=dict(cifar10=0.05, cifar100=0.05, mnist=0.05, fashion_mnist=0.05),
            weight_decay=5e-4, xla=False,
            paper_top1=dict(cifar10=0.905, cifar100=0.636, mnist=0.985, fashion_mnist=0.916),
        ),
        Architecture(
            name="alexnet", title="AlexNet", builder="alexnet",
            groups=("early", "middle", "later", "head"),
            panels=(("early", "middle", "later"),),
            lr=dict(cifar10=0.001, cifar100=0.01, mnist=0.1, fashion_mnist=0.1),
            weight_decay=1e-4, xla=False,
            paper_top1=dict(cifar10=0.81, cifar100=0.53, mnist=0.985, fashion_mnist=0.895),
        ),
    )
}


def architecture(name):
    """The `Architecture` called ``name``; a `SchemaError` naming the valid ones otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise SchemaError(f"unknown architecture {name!r}; valid: "
                          f"{', '.join(ARCHITECTURES)}") from None


# -- the training protocol (docs/paper_facts.md, "The metric" and "Training protocol") ------

# The authors' seeds: each curve of the paper is their mean.
SEEDS = (0, 42, 123, 1000, 1234)
EPOCHS = 150
BATCH_SIZE = 128
MOMENTUM = 0.9
# ``--lr_schedule``: Table 1's constant rate, or FreezeOut's cosine annealing of it to 0 over
# the run's steps (the rate FreezeOut gives its output layer), for a baseline that separates
# FreezeOut's schedule from its freezing.
LR_SCHEDULES = ("constant", "cosine")
DEFAULT_LR_SCHEDULE = "constant"

# The benchmarks' optimizer: a real run's update path, weight decay included (speed ignores values).
BENCH_LR, BENCH_WEIGHT_DECAY = 0.01, 1e-4
# The dataset whose image shape and classes the benchmarks' generated data takes.
BENCH_DATASET = "cifar10"


# -- datasets -----------------------------------------------------------------------------

# The authors' CIFAR loaders normalise with ImageNet's statistics, not CIFAR's own.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Input normalisations (``--normalize``): the authors' loaders, the dataset's own mean and
# std, or none at all ([0, 1] pixels).
NORMALIZATIONS = ("authors", "dataset", "none")
DEFAULT_NORMALIZATION = "authors"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One of the paper's datasets.

    Attributes:
        name: the ``--dataset`` value, as TFDS spells it.
        title: its name in figures and reports.
        num_classes: number of labels.
        channels: image channels (3 for CIFAR, 1 for MNIST-style data).
        mean: per-channel mean of the training images scaled to [0, 1].
        std: per-channel standard deviation of the same.
        authors_mean: the per-channel mean the authors' loader subtracts, or None when it
            does not normalise this dataset.
        authors_std: the per-channel std the authors' loader divides by, or None.
        raw_format: the layout of the original files, which names the reader in
            ``rwc_keras.experiment.data.sources`` (``"idx"``, ``"cifar10"`` or ``"cifar100"``).
        debian_package: the Debian package that ships the original files, or None.
        debian_dir: where that package puts them.
        download_host: ``(host, port)`` the TFDS builder downloads from.
    """

    name: str
    title: str
    num_classes: int
    channels: int
    mean: tuple
    std: tuple
    authors_mean: tuple | None
    authors_std: tuple | None
    raw_format: str
    debian_package: str | None
    debian_dir: str | None
    download_host: tuple

    def normalization(self, normalize):
        """``(mean, std)`` for one of ``NORMALIZATIONS``, or None for no normalisation."""
        if normalize not in NORMALIZATIONS:
            raise SchemaError(f"unknown normalize={normalize!r}; valid: "
                              f"{', '.join(NORMALIZATIONS)}")
        if normalize == "dataset":
            return self.mean, self.std
        if normalize == "authors" and self.authors_mean is not None:
            return self.authors_mean, self.authors_std
        return None

    @property
    def input_shape(self):
        """The models' input shape for this dataset: its images at ``IMAGE_SIZE`` square."""
        return (IMAGE_SIZE, IMAGE_SIZE, self.channels)


DATASETS = {
    dataset.name: dataset
    for dataset in (
        Dataset("cifar10", "CIFAR-10", 10, 3, (0.4914, 0.4822, 0.4465),
                (0.2470, 0.2435, 0.2616), IMAGENET_MEAN, IMAGENET_STD,
                "cifar10", None, None, ("www.cs.toronto.edu", 443)),
        Dataset("cifar100", "CIFAR-100", 100, 3, (0.5071, 0.4865, 0.4409),
                (0.2673, 0.2564, 0.2762), IMAGENET_MEAN, IMAGENET_STD,
                "cifar100", None, None, ("www.cs.toronto.edu", 443)),
        Dataset("mnist", "MNIST", 10, 1, (0.1307,), (0.3081,), None, None,
                "idx", None, None, ("storage.googleapis.com", 443)),
        Dataset("fashion_mnist", "Fashion-MNIST", 10, 1, (0.2860,), (0.3530,), None, None,
                "idx", "dataset-fashion-mnist", "/usr/share/datasets/fashion-mnist",
                ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80)),
    )
}

# Every image is resized to this square size (the paper's CIFAR-style 32x32 input).
IMAGE_SIZE = 32


def dataset(name):
    """The `Dataset` called ``name``; a `SchemaError` naming the valid ones otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise SchemaError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}") from None


def table1_lr(arch, dataset_name):
    """Table 1's learning rate for an architecture on a dataset.

    Raises:
        SchemaError: the architecture is unknown, or Table 1 has no learning rate for the
            pair (a dataset the paper did not train it on); the message says to pass --lr.
    """
    lrs = architecture(arch).lr
    if dataset_name not in lrs:
        raise SchemaError(f"Table 1 has no learning rate for {arch} on {dataset_name!r} "
                          f"(it has one for {', '.join(lrs)}); pass --lr")
    return lrs[dataset_name]


# -- the experiment folder ----------------------------------------------------------------
# An experiment is one architecture trained on one dataset with several seeds; each seed's
# training is a run. <logdir>/<arch>_<dataset>/ is the experiment folder: one run folder
# seed_<seed>/ per seed, and the report's files.

EXPERIMENT_FOLDER = "{arch}_{dataset}"
SEED_FOLDER = "seed_{seed}"
SEED_GLOB = "seed_*"


def experiment_folder(arch, dataset_name):
    """The experiment folder's name, e.g. ``alexnet_fashion_mnist``."""
    return EXPERIMENT_FOLDER.format(arch=arch, dataset=dataset_name)


def parse_experiment_folder(name):
    """``(arch, dataset)`` of an experiment folder's name, e.g. ``alexnet_fashion_mnist``.

    Raises:
        SchemaError: ``name`` is not ``<arch>_<dataset>`` of a known architecture and dataset.
    """
    for arch in ARCHITECTURES:
        for dataset_name in DATASETS:
            if name == experiment_folder(arch, dataset_name):
                return arch, dataset_name
    raise SchemaError(f"folder name {name!r} is not <arch>_<dataset> with an architecture of "
                      f"{', '.join(ARCHITECTURES)} and a dataset of {', '.join(DATASETS)}")


def paper_top1(arch, dataset_name):
    """The final test top-1 the paper reports for the pair, or None where it reports none.

    Raises:
        SchemaError: the architecture or the dataset is unknown.
    """
    dataset(dataset_name)
    return architecture(arch).paper_top1.get(dataset_name)


# Every measure of a weight tensor RWCCallback can record (``rwc_keras.measure.metric`` computes
# them), in the order of the CSV's columns; each is a CSV column and a TensorBoard tag family.
METRICS = ("rwc", "rwc_norm", "update_ratio", "dist_init", "rotation", "weight_norm")
# The two RWC definitions (docs/paper_facts.md, "The metric"): always recorded, and the only
# measures the paper's claims are about.
RWC_METRICS = ("rwc", "rwc_norm")
# The measures comparing with the weights at train begin (w0), which costs one extra copy of
# every tracked tensor.
INITIAL_METRICS = ("dist_init", "rotation")
# The formula figures and reports label each measure by (Δw: the change since the previous
# measurement, w0: the weights at train begin).
METRIC_FORMULAS = {
    "rwc": "mean of |Δw| / |w|",
    "rwc_norm": "Σ|Δw| / Σ|w| (Eq. 1)",
    "update_ratio": "‖Δw‖ / ‖w‖",
    "dist_init": "Σ|w − w0| / Σ|w0|",
    "rotation": "1 − cos(w, w0)",
    "weight_norm": "‖w‖",
}


def check_metrics(metrics):
    """The chosen measure names, without repeats, in the order of ``METRICS``.

    Args:
        metrics: a name or an iterable of names from ``METRICS``.

    Returns:
        A tuple, so that the columns written do not depend on the order asked.

    Raises:
        SchemaError: a name is not in ``METRICS`` (the message names it and the valid ones),
            or none is given.
    """
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [name for name in metrics if name not in METRICS]
    if unknown:
        raise SchemaError(f"unknown metric(s) {', '.join(map(repr, unknown))}; "
                          f"valid: {', '.join(METRICS)}")
    if not metrics:
        raise SchemaError(f"no metric chosen; valid: {', '.join(METRICS)}")
    return tuple(name for name in METRICS if name in metrics)


def needs_initial(metrics):
    """Whether any of ``metrics`` compares with the weights at train begin."""
    return any(name in INITIAL_METRICS for name in metrics)


# Written by RWCCallback, per run.
RWC_CSV = "rwc.csv"
# The column after the measures: elements left out of the rwc mean (previous value 0).
ZEROS = "zeros"


def rwc_columns(metrics=RWC_METRICS):
    """The columns of an ``rwc.csv`` holding ``metrics`` (in ``METRICS`` order)."""
    return ("epoch", "step", "layer", "group", *metrics, ZEROS, "size")


# The columns of an rwc.csv with the RWC alone (the callback's default).
RWC_COLUMNS = rwc_columns()


def layer_name(model, variable):
    """The CSV's ``layer`` of a Keras variable: its path without the model's name, e.g.
    ``conv1/kernel`` (the keys of a model's ``rwc_groups`` too)."""
    return variable.path.removeprefix(model.name + "/")


# Written by the training driver, per run.
HISTORY_CSV = "history.csv"
METRICS_JSON = "metrics.json"
# TensorBoard's event files, written by RWCCallback and the driver.
EVENTS_GLOB = "events.out.tfevents.*"
FLAGS_CFG = "flags.cfg"
CHECKPOINT_DIR = "checkpoint"
# Held locked (flock) by the process writing a run folder.
LOCK_FILE = ".lock"
# Written by the report, per experiment folder.
AGGREGATED_CSV = "rwc_aggregated.csv"
# Long format: one row per layer or group (``level``), measurement and metric, with the
# statistics over seeds; ``step`` only where RWC was measured per optimizer step.
AGGREGATED_COLUMNS = ("level", "name", "group", "epoch", "step", "metric",
                      "mean", "std", "min", "max", "n_seeds")
REPORT_MD = "report.md"
ACCURACY_PNG = "accuracy.png"
LAYERS_PNG = "{metric}_layers.png"
# The layer clusters: curves coloured by cluster, the layers' 2-D PCA, the choice of K.
CLUSTERS_PNG = "clusters.png"
CLUSTERS_PCA_PNG = "clusters_pca.png"
CLUSTERS_K_PNG = "clusters_k.png"


def layer_tag(metric, group, layer):
    """TensorBoard tag of one layer's curve: ``<metric>/<group>/<layer>`` (no empty group)."""
    return f"{metric}/{group}/{layer}" if group else f"{metric}/{layer}"


def group_mean_tag(metric, group):
    """TensorBoard tag of a group's mean curve: ``<metric>_mean/<group>``."""
    return f"{metric}_mean/{group}"


def accuracy_tag(split, metric):
    """TensorBoard tag of a training-driver curve, e.g. ``test/top1``."""
    return f"{split}/{metric}"


# The splits and metrics the driver logs per epoch (history.csv and TensorBoard).
SPLITS = ("train", "test")
EPOCH_METRICS = ("loss", "top1", "top5")
# The prefix of each split's metrics in the driver's Keras logs: loss, test_loss, ...
LOG_PREFIX = {"train": "", "test": "test_"}
# history.csv: the epoch, each split's metrics, then the epoch's training seconds.
HISTORY_COLUMNS = ("epoch", *(f"{split}_{metric}" for split in SPLITS for metric in EPOCH_METRICS),
                   "seconds")

