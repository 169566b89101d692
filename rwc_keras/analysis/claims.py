"""The paper's claims about RWC, as data: which group of layers changes less than which.

Each claim the paper states (``docs/paper_facts.md``, "Claims the paper makes") becomes one or
more `Claim`s comparing two groups' mean RWC, ``left op right``. ``rwc_keras.report`` judges them
on an experiment's curves; this module only says what they are, so it imports neither TensorFlow
nor pandas, and reads the architectures, groups and datasets from ``rwc_keras.spec``.

They live here rather than in ``rwc_keras.spec`` because only the report reads them, and the
schema stays a short list of what runs and files are.

Example:
    >>> [str(claim) for claim in claims_for("alexnet", "cifar10")][1]
    'early < middle (early < middle and later < middle)'
"""

import dataclasses

from rwc_keras import spec

# The two windows of training a claim is judged over: every measurement, and the last half.
WINDOWS = ("all epochs", "last half")
# Relative difference (of the larger mean) up to which two means are the paper's "about
# equal" or "close": a choice, the paper gives no number.
CLOSE_TOLERANCE = 0.10


@dataclasses.dataclass(frozen=True)
class Term:
    """One side of a claim: a group's mean RWC on the experiment's own dataset, or on
    ``dataset`` (claims comparing two datasets)."""

    group: str
    dataset: str | None = None

    def __str__(self):
        if self.dataset is None:
            return self.group
        return f"{self.group} on {spec.dataset(self.dataset).title}"


@dataclasses.dataclass(frozen=True)
class Claim:
    """One comparison of group means the paper states, ``left op right``.

    Attributes:
        source: the paper's statement the comparison comes from.
        arch: the architecture it is about.
        datasets: the experiments whose report lists it.
        left, right: the `Term` s compared.
        op: ``"<"``: left's mean strictly lower; ``"≈"``: means within the tolerance.
    """

    source: str
    arch: str
    datasets: tuple
    left: Term
    op: str
    right: Term

    def __str__(self):
        return f"{self.left} {self.op} {self.right} ({self.source})"


def _within(arch, datasets, source, *comparisons):
    """Claims comparing groups of one experiment: ``comparisons`` are (group, op, group)."""
    return [
        Claim(source, arch, datasets, Term(left), op, Term(right))
        for left, op, right in comparisons
    ]


def _across(arch, lower, higher, groups, source):
    """Claims that each of ``groups`` has a lower mean on dataset ``lower`` than on ``higher``."""
    return [
        Claim(source, arch, (lower, higher), Term(group, lower), "<", Term(group, higher))
        for group in groups
    ]


ALL_DATASETS = tuple(spec.DATASETS)
DIGITS = ("mnist", "fashion_mnist")
OVERALL = "overall: later layers change more than earlier"
ACROSS_DIGITS = "RWC lower on MNIST than on FMNIST"
CLAIMS = (
    # "Later layers" made concrete: the last conv group against the first.
    *_within("resnet18", ALL_DATASETS, OVERALL, ("block1", "<", "block4")),
    *_within("vgg19bn", ALL_DATASETS, OVERALL, ("early", "<", "later")),
    *_within("alexnet", ALL_DATASETS, OVERALL, ("early", "<", "later")),
    *_within(
        "resnet18", ("cifar10",), "block1 < block2 < block3; block4 about equal to block3",
        ("block1", "<", "block2"), ("block2", "<", "block3"), ("block4", "≈", "block3"),
    ),
    *_within(
        "resnet18", ("cifar100",), "block1 < block2 < block3 < block4",
        ("block1", "<", "block2"), ("block2", "<", "block3"), ("block3", "<", "block4"),
    ),
    *_within(
        "resnet18", DIGITS, "block1 and block2 < block3; block4 < block3",
        ("block1", "<", "block3"), ("block2", "<", "block3"), ("block4", "<", "block3"),
    ),
    *_within(
        "vgg19bn", ("cifar10",), "early < middle; later < middle",
        ("early", "<", "middle"), ("later", "<", "middle"),
    ),
    *_within(
        "vgg19bn", ("cifar100",), "early < middle and early < later; middle and later close",
        ("early", "<", "middle"), ("early", "<", "later"), ("middle", "≈", "later"),
    ),
    *_within(
        "vgg19bn", DIGITS, "early < middle; later lowest of all: later < early",
        ("early", "<", "middle"), ("later", "<", "early"),
    ),
    *_within(
        "alexnet", ("cifar10",), "early < middle and later < middle",
        ("early", "<", "middle"), ("later", "<", "middle"),
    ),
    *_within(
        "alexnet", ("cifar100", "mnist", "fashion_mnist"), "early < middle < later",
        ("early", "<", "middle"), ("middle", "<", "later"),
    ),
    *_across("vgg19bn", "cifar10", "cifar100", ("early", "middle", "later"),
             "all groups higher on CIFAR-100 than on CIFAR-10"),
    *_across("resnet18", "mnist", "fashion_mnist", ("block1", "block2", "block3", "block4"),
             ACROSS_DIGITS),
    *_across("vgg19bn", "mnist", "fashion_mnist", ("early", "middle", "later"), ACROSS_DIGITS),
)


def claims_for(arch, dataset_name):
    """The claims an experiment of ``arch`` on ``dataset_name`` is judged on, in order.

    Raises:
        rwc_keras.spec.SchemaError: the architecture or the dataset is unknown.
    """
    spec.architecture(arch)
    spec.dataset(dataset_name)
    return [c for c in CLAIMS if c.arch == arch and dataset_name in c.datasets]
