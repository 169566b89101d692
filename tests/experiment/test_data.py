"""Tests of rwc_keras.experiment.data: raw file readers, source selection (sources) and the
tf.data pipelines (pipeline).

Nothing here touches the network: TFDS runs under ``tfds.testing.mock_data`` and the
download-host check is patched to report "unreachable" (see the autouse fixture).
"""

import dataclasses
import gzip
import os
import pickle
import struct
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from rwc_keras import spec
from rwc_keras.experiment.data import pipeline, sources

from ..helpers import write_idx, write_mnist_like

PAD = pipeline.CROP_PADDING


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the network: every download host reports unreachable."""
    monkeypatch.setattr(sources, "host_reachable", lambda host, port, timeout=3.0: False)


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Hides Debian's Fashion-MNIST, so the mocked TFDS is the only source."""
    absent = dataclasses.replace(spec.DATASETS["fashion_mnist"],
                                 debian_dir=str(tmp_path / "no-debian"))
    monkeypatch.setitem(spec.DATASETS, "fashion_mnist", absent)


def batches(ds):
    """All batches of a dataset as a list of (images, labels) numpy pairs."""
    return [(x.numpy(), y.numpy()) for x, y in ds]


def transform(raw, info, offset=(PAD, PAD), flip=False, normalize="authors"):
    """Reference preprocessing of one uint8 image, written independently of the module.

    Args:
        raw: one uint8 image HWC at the original size.
        info: the dataset's rwc_keras.spec.Dataset.
        offset: top-left corner of the crop in the zero-padded image (CIFAR only);
            (PAD, PAD) is the uncropped image.
        flip: mirror left-right.
        normalize: one of pipeline.NORMALIZATIONS.
    """
    x = raw.astype(np.float32) / 255.0
    if info.channels == 3:
        dy, dx = offset
        x = np.pad(x, ((PAD, PAD), (PAD, PAD), (0, 0)))[dy : dy + 32, dx : dx + 32]
    if flip:
        x = x[:, ::-1]
    if x.shape[0] != 32:
        x = tf.image.resize(x, (32, 32), method="bilinear").numpy()
    mean_std = info.normalization(normalize)
    return x if mean_std is None else (x - np.float32(mean_std[0])) / np.float32(mean_std[1])


def all_augmentations(raw_images, info):
    """Every image training may produce: (candidates, raw index, is_identity) per candidate."""
    offsets = (
        [(dy, dx) for dy in range(2 * PAD + 1) for dx in range(2 * PAD + 1)]
        if info.channels == 3
        else [(PAD, PAD)]
    )
    candidates, origins, identity = [], [], []
    for i, raw in enumerate(raw_images):
        for offset in offsets:
            for flip in (False, True):
                candidates.append(transform(raw, info, offset, flip))
                origins.append(i)
                identity.append(offset == (PAD, PAD) and not flip)
    return np.stack(candidates), np.array(origins), np.array(identity)


# ---------------------------------------------------------------------------------------
# The pipelines, on mocked TFDS data


@pytest.mark.parametrize("name", sorted(sources.DATASETS))
def test_mocked_pipelines(name, no_debian):
    info = sources.DATASETS[name]
    n, batch = 12, 4
    with tfds.testing.mock_data(num_examples=n):
        (x_raw, y_raw), (x_raw_test, y_raw_test) = sources.load_arrays(name)
        ds = pipeline.make_datasets(name, batch_size=batch, seed=7)
    side = 32 if info.channels == 3 else 28
    assert x_raw.shape == (n, side, side, info.channels) and x_raw.dtype == np.uint8
    assert y_raw.dtype == np.int64
    assert (ds.num_train, ds.num_test, ds.info) == (n, n, info)

    train, test = batches(ds.train(0)), batches(ds.test())
    assert len(train) == n // batch == ds.steps_per_epoch
    mean, std = info.normalization("authors") or (0.0, 1.0)
    lo = (0 - np.array(mean)) / np.array(std) - 1e-5
    hi = (1 - np.array(mean)) / np.array(std) + 1e-5
    for x, y in train + test:
        assert x.shape[1:] == (32, 32, info.channels) and x.dtype == np.float32
        assert y.dtype in (np.int32, np.int64)
        assert ((0 <= y) & (y < info.num_classes)).all()
        assert (x >= lo).all() and (x <= hi).all()

    # Test data: in file order, not augmented.
    x_test = np.concatenate([x for x, _ in test])
    expected = np.stack([transform(raw, info) for raw in x_raw_test])
    np.testing.assert_allclose(x_test, expected, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([y for _, y in test]), y_raw_test)

    # Training data: every image is one of its example's possible crops/flips, each
    # example is used once, and some images are really augmented.
    candidates, origins, identity = all_augmentations(x_raw, info)
    used, augmented = [], 0
    for image, label in zip(*(np.concatenate(a) for a in zip(*train))):
        error = np.abs(candidates - image).reshape(len(candidates), -1).max(axis=1)
        match = int(np.argmin(error))
        assert error[match] < 1e-5
        assert label == y_raw[origins[match]]
        used.append(origins[match])
        augmented += not identity[match]
    assert sorted(used) == list(range(n))
    assert augmented > 0


# What each preprocessing gives for a white pixel and a black one, written out by hand:
# the authors' loaders leave MNIST-style data in [0, 1] and use ImageNet's mean/std on CIFAR.
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
KNOWN_PIXELS = {
    ("mnist", "authors"): ((0.0,), (1.0,)),
    ("fashion_mnist", "authors"): ((0.0,), (1.0,)),
    ("cifar10", "authors"): IMAGENET,
    ("cifar100", "authors"): IMAGENET,
    ("mnist", "dataset"): ((0.1307,), (0.3081,)),
    ("fashion_mnist", "dataset"): ((0.2860,), (0.3530,)),
    ("cifar10", "dataset"): ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ("cifar100", "dataset"): ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    **{(name, "none"): ((0.0,), (1.0,)) for name in ("mnist", "fashion_mnist", "cifar10", "cifar100")},
}


@pytest.mark.parametrize("name,normalize", sorted(KNOWN_PIXELS))
def test_normalization_of_a_known_image(name, normalize):
    info = sources.DATASETS[name]
    side = 32 if info.channels == 3 else 28
    image = np.zeros((side, side, info.channels), np.uint8)
    image[:, : side // 2] = 255  # left half white, right half black
    arrays = (image[None], np.zeros(1, np.int64))
    ds = pipeline.Datasets(info, arrays, arrays, batch_size=1, seed=0, normalize=normalize)
    (x, _), = batches(ds.test())
    mean, std = (np.array(v, np.float32) for v in KNOWN_PIXELS[name, normalize])
    np.testing.assert_allclose(x[0, 5, 2], (1 - mean) / std * np.ones(info.channels), rtol=1e-5)
    np.testing.assert_allclose(x[0, 5, 29], -mean / std * np.ones(info.channels), rtol=1e-5)


def test_unknown_normalization_names_the_valid_ones():
    with pytest.raises(ValueError, match="normalize='imagenet'.*authors, dataset, none"):
        sources.DATASETS["mnist"].normalization("imagenet")


def test_noshuffle_keeps_file_order_and_augments():
    with tfds.testing.mock_data(num_examples=32):
        ds = pipeline.make_datasets("cifar10", batch_size=8, seed=1, shuffle=False)
        (_, y_raw), _ = sources.load_arrays("cifar10")
    first, second = ([np.concatenate(a) for a in zip(*batches(ds.train(e)))] for e in (0, 1))
    np.testing.assert_array_equal(first[1], y_raw)
    np.testing.assert_array_equal(second[1], y_raw)
    assert not np.array_equal(first[0], second[0])  # other crops and flips each epoch


def test_train_is_a_function_of_seed_and_epoch():
    with tfds.testing.mock_data(num_examples=32):
        first = pipeline.make_datasets("cifar10", batch_size=8, seed=1)
        again = pipeline.make_datasets("cifar10", batch_size=8, seed=1)  # e.g. a resumed run
        other_seed = pipeline.make_datasets("cifar10", batch_size=8, seed=2)

    def flat(ds):
        return [np.concatenate(a) for a in zip(*batches(ds))]

    epoch3 = flat(first.train(3))
    for same in (first.train(3), again.train(3)):
        for a, b in zip(epoch3, flat(same)):
            np.testing.assert_array_equal(a, b)
    # Another epoch or seed: another example order (the labels show it), other images.
    for different in (first.train(4), other_seed.train(3)):
        images, labels = flat(different)
        assert not np.array_equal(epoch3[1], labels)
        assert sorted(epoch3[1]) == sorted(labels)
        assert not np.array_equal(epoch3[0], images)


def test_max_examples_and_too_few_for_a_batch():
    with tfds.testing.mock_data(num_examples=30):
        ds = pipeline.make_datasets(
            "mnist", batch_size=8, seed=0, max_train_examples=17, max_test_examples=5
        )
        with pytest.raises(ValueError, match="fewer than one batch"):
            pipeline.make_datasets("mnist", batch_size=8, seed=0, max_train_examples=7)
    assert (ds.num_train, ds.num_test) == (17, 5)
    assert [x.shape[0] for x, _ in batches(ds.train(0))] == [8, 8]
    assert [x.shape[0] for x, _ in batches(ds.test())] == [5]


# ---------------------------------------------------------------------------------------
# Raw files


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx(tmp_path, gz):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = tmp_path / "x-idx3-ubyte"
    write_idx(path, array, gz)
    np.testing.assert_array_equal(sources.read_idx(path), array)


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x08\x03\x00\x00" + bytes(20), "bad magic"),
        (bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + bytes(4), "data type 0x0d"),
        (bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 5) + bytes(29), "size mismatch"),
        (bytes([0, 0, 0x08, 3]) + struct.pack(">I", 2), "truncated IDX header"),
        (gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]))[:-6], "corrupt gzip"),
    ],
)
def test_read_idx_rejects_bad_files(tmp_path, content, problem):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=problem) as error:
        sources.read_idx(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("in_subfolder, gz", [(False, True), (True, False)])
def test_mnist_from_raw_files(tmp_path, in_subfolder, gz):
    folder = tmp_path / "mnist" if in_subfolder else tmp_path
    expected = write_mnist_like(folder, num_train=9, num_test=4, gz=gz)
    loaded = sources.load_arrays("mnist", data_dir=str(tmp_path))
    for (x, y), (x_want, y_want) in zip(loaded, expected):
        assert x.dtype == np.uint8 and y.dtype == np.int64
        np.testing.assert_array_equal(x, x_want)
        np.testing.assert_array_equal(y, y_want)


def test_truncated_raw_file_is_reported(tmp_path):
    write_mnist_like(tmp_path, num_train=9, num_test=4, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="size mismatch") as error:
        sources.load_arrays("mnist", data_dir=str(tmp_path))
    assert str(path) in str(error.value)


def cifar_batch(rng, n, label_keys):
    """One python-version CIFAR batch: the dict as pickled, and the NHWC images it holds."""
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    batch = {b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072)}  # rows are CHW
    for key in label_keys:
        batch[key] = [int(v) for v in rng.integers(0, 100, n)]
    return batch, images


def write_pickle(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.mark.parametrize("subfolder", ["cifar-10-batches-py", ""])
def test_cifar10_from_raw_files(tmp_path, subfolder):
    folder = tmp_path / "cifar10" / subfolder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    parts = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch, images = cifar_batch(rng, 3, [b"labels"])
        write_pickle(folder / name, batch)
        parts.append((images, np.array(batch[b"labels"])))
    (x, y), (x_test, y_test) = sources.load_arrays("cifar10", data_dir=str(tmp_path))
    np.testing.assert_array_equal(x, np.concatenate([p[0] for p in parts[:5]]))
    np.testing.assert_array_equal(y, np.concatenate([p[1] for p in parts[:5]]))
    np.testing.assert_array_equal(x_test, parts[5][0])
    np.testing.assert_array_equal(y_test, parts[5][1])
    assert x.shape == (15, 32, 32, 3) and y.dtype == np.int64


def test_cifar100_from_raw_files_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    expected = []
    for name, n in (("train", 6), ("test", 2)):
        batch, images = cifar_batch(rng, n, [b"fine_labels", b"coarse_labels"])
        write_pickle(folder / name, batch)
        expected.append((images, np.array(batch[b"fine_labels"])))
    for (x, y), (x_want, y_want) in zip(sources.load_arrays("cifar100", str(tmp_path)), expected):
        np.testing.assert_array_equal(x, x_want)
        np.testing.assert_array_equal(y, y_want)


def test_corrupt_cifar_file_is_reported(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(b"not a pickle")
    (folder / "test").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable CIFAR") as error:
        sources.load_arrays("cifar100", str(tmp_path))
    assert str(folder / "train") in str(error.value)


# ---------------------------------------------------------------------------------------
# The real Fashion-MNIST (Debian's package)


def test_real_fashion_mnist_from_debian():
    info = spec.DATASETS["fashion_mnist"]
    if not os.path.isdir(info.debian_dir):
        pytest.skip(f"{info.debian_dir} is absent: `apt-get install {info.debian_package}`")
    ds = pipeline.make_datasets("fashion_mnist", batch_size=500, seed=0)
    assert ds.source.startswith("Debian")
    assert (ds.num_train, ds.num_test) == (60_000, 10_000)
    x, y = next(iter(ds.train(0)))
    assert x.shape == (500, 32, 32, 1) and y.shape == (500,)
    test = batches(ds.test())
    assert sum(len(y) for _, y in test) == 10_000
    x_test = np.concatenate([x for x, _ in test])
    assert x_test.shape == (10_000, 32, 32, 1)
    # The authors' protocol leaves Fashion-MNIST unnormalised: pixels in [0, 1] with about the
    # dataset's mean and std (bilinear resizing smooths the spread a little).
    assert x_test.min() >= 0 and x_test.max() <= 1
    assert abs(x_test.mean() - 0.286) < 0.01 and abs(x_test.std() - 0.353) < 0.03
    assert sorted(np.unique(np.concatenate([y for _, y in test]))) == list(range(10))


# ---------------------------------------------------------------------------------------
# Failures


def test_unavailable_dataset_fails_fast_and_says_why(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "notes.txt").write_text("not a dataset")
    start = time.monotonic()
    with pytest.raises(sources.DataUnavailableError) as error:
        pipeline.make_datasets("cifar10", batch_size=8, seed=0, data_dir=str(data_dir))
    assert time.monotonic() - start < 10
    message = str(error.value)
    for part in ("'cifar10'", str(data_dir), "cifar-10-batches-py", "TFDS",
                 "www.cs.toronto.edu", "unreachable"):
        assert part in message


@pytest.mark.parametrize("data_dir_state", ["empty", "missing"])
def test_missing_or_empty_data_dir_is_an_error_at_once(tmp_path, data_dir_state, monkeypatch):
    data_dir = tmp_path / "data"
    if data_dir_state == "empty":
        data_dir.mkdir()
    # Even where another source exists (Debian's Fashion-MNIST), a mistyped --data_dir must
    # not silently fall back to it.
    monkeypatch.setattr(sources, "_load_tfds", lambda *args: pytest.fail("TFDS was tried"))
    with pytest.raises(sources.DataUnavailableError) as error:
        sources.load_arrays("fashion_mnist", data_dir=str(data_dir))
    message = str(error.value)
    assert str(data_dir) in message and "fashion_mnist" in message
    assert ("is empty" if data_dir_state == "empty" else "does not exist") in message


def test_unavailable_fashion_mnist_names_the_debian_package(tmp_path, no_debian):
    (tmp_path / "notes.txt").write_text("not a dataset")
    with pytest.raises(sources.DataUnavailableError) as error:
        sources.load_arrays("fashion_mnist", data_dir=str(tmp_path))
    assert "apt-get install dataset-fashion-mnist" in str(error.value)
    assert "no-debian: not installed" in str(error.value)


def test_tfds_download_only_when_host_reachable(monkeypatch):
    calls = []
    arrays = ((np.zeros((2, 28, 28, 1), np.uint8), np.zeros(2, np.int64)),) * 2

    def fake_load_tfds(name, data_dir, download):
        calls.append(download)
        if not download:
            raise AssertionError("Dataset mnist: could not find data")  # TFDS's "not prepared"
        return arrays

    monkeypatch.setattr(sources, "_load_tfds", fake_load_tfds)
    monkeypatch.setattr(sources, "host_reachable", lambda host, port, timeout=3.0: True)
    assert sources.load_arrays("mnist") is arrays
    assert calls == [False, True]


def test_unknown_dataset_name():
    for call in (lambda: sources.load_arrays("svhn"), lambda: pipeline.make_datasets("svhn", 8, 0)):
        with pytest.raises(ValueError, match="'svhn'.*cifar10.*mnist"):
            call()


def test_the_explicit_flips_are_tensorflow_s_stateless_random_flips():
    """`pipeline.flip_mask` draws what ``tf.image.stateless_random_flip_left_right`` draws, so that
    runs made before the prefix cache existed repeat, and the cache follows the flips."""
    images = tf.constant(np.random.default_rng(0).integers(0, 256, (256, 5, 5, 1), np.uint8))
    for seed in ([0, 7], [3, 1], [42, 9]):
        seed = tf.constant(seed, tf.int64)
        flipped = tf.where(pipeline.flip_mask(seed, 256)[:, None, None, None], tf.reverse(images, [2]),
                           images)
        np.testing.assert_array_equal(
            flipped, tf.image.stateless_random_flip_left_right(images, seed))
