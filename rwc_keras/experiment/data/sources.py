"""Where the four datasets come from: CIFAR-10, CIFAR-100, MNIST and Fashion-MNIST as arrays.

Where the data comes from (first source that has it wins):

1. the original raw files in ``data_dir`` (or ``data_dir/<name>/``): the four MNIST-style
   IDX files (gzipped or not), CIFAR-10's ``cifar-10-batches-py`` or CIFAR-100's
   ``cifar-100-python`` pickles;
2. a Debian package's folder, where the dataset has one (``spec.Dataset.debian_dir``):
   Fashion-MNIST's ``/usr/share/datasets/fashion-mnist/``
   (``apt-get install dataset-fashion-mnist``);
3. TensorFlow Datasets: data already prepared in its data dir, or a download, tried only
   when the download host answers. An offline ``tfds.load`` retries for minutes before it
   gives up; here a missing dataset fails in seconds with one ``DataUnavailableError``
   that lists every source tried.
"""

import gzip
import logging
import os
import pickle
import socket
import struct

import numpy as np
import tensorflow_datasets as tfds

from rwc_keras import spec

logger = logging.getLogger(__name__)


# The datasets, their statistics and where their files are: rwc_keras.spec.
DATASETS = spec.DATASETS

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_IDX_UBYTE = 0x08


class DataUnavailableError(Exception):
    """No source could provide the dataset; the message lists what was tried and how to fix it."""


class DataError(ValueError):
    """A raw file that is not what its name says, or too little data for the request; the
    message names the file or the numbers."""


# ---------------------------------------------------------------------------------------
# Raw file readers


def read_idx(path):
    """Reads one IDX file (the MNIST format), gzipped or not.

    Args:
        path: the file.

    Returns:
        A uint8 array with the shape the file's header gives.

    Raises:
        DataError: the file is not an unsigned-byte IDX file or is truncated; the message
            names the file.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":  # gzip magic: Debian ships the files compressed
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: corrupt gzip data ({e})") from e
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(f"{path}: not an IDX file (bad magic number {data[:4].hex() or 'empty'})")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != _IDX_UBYTE:
        raise DataError(
            f"{path}: IDX data type 0x{dtype_code:02x} is not supported (only 0x08, unsigned byte)"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes, need {header_size})")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(
            f"{path}: size mismatch, the header says shape {shape} ({expected} bytes) "
            f"but the file has {len(data)} bytes (truncated or corrupt)"
        )
    return np.frombuffer(data, np.uint8, offset=header_size).reshape(shape)


def _read_idx_split(images_path, labels_path):
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{images_path} (shape {images.shape}) and {labels_path} (shape {labels.shape}) "
            "are not a matching pair of N images and N labels"
        )
    return images[..., np.newaxis], labels.astype(np.int64)


def _read_cifar_pickle(path, label_key):
    """Reads one python-version CIFAR file: a pickled dict of flat CHW rows and labels."""
    try:
        with open(path, "rb") as f:
            # The files were pickled by Python 2; encoding="bytes" keeps their str keys as
            # bytes. Unpickling can run code: data_dir must hold files you trust.
            batch = pickle.load(f, encoding="bytes")
        rows = np.asarray(batch[b"data"], np.uint8)
        labels = np.asarray(batch[label_key], np.int64)
        images = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except Exception as e:  # any unpickling or layout error means the same thing to the user
        raise DataError(
            f"{path}: not a readable CIFAR python batch ({type(e).__name__}: {e})"
        ) from e
    if len(images) != len(labels):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels")
    return np.ascontiguousarray(images), labels


def _concat(parts):
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _existing(folder, names, gzipped_too=False):
    """Paths of ``names`` in ``folder``, or None if any is missing.

    Args:
        folder: where to look.
        names: the file names.
        gzipped_too: also accept each file as ``name.gz``.
    """
    paths = []
    for name in names:
        for candidate in (name, name + ".gz") if gzipped_too else (name,):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                paths.append(path)
                break
        else:
            return None
    return paths


def _read_raw_folder(name, folder):
    """The dataset's train and test arrays from raw files in ``folder``, or None if absent."""
    raw_format = DATASETS[name].raw_format
    if raw_format == "idx":
        paths = _existing(folder, _IDX_FILES["train"] + _IDX_FILES["test"], gzipped_too=True)
        if paths is None:
            return None
        return _read_idx_split(*paths[:2]), _read_idx_split(*paths[2:])
    if raw_format == "cifar10":
        for sub in ("cifar-10-batches-py", ""):
            paths = _existing(os.path.join(folder, sub), _CIFAR10_TRAIN_FILES + ("test_batch",))
            if paths is not None:
                train = _concat([_read_cifar_pickle(p, b"labels") for p in paths[:5]])
                return train, _read_cifar_pickle(paths[5], b"labels")
    if raw_format == "cifar100":
        for sub in ("cifar-100-python", ""):
            paths = _existing(os.path.join(folder, sub), ("train", "test"))
            if paths is not None:
                return tuple(_read_cifar_pickle(p, b"fine_labels") for p in paths)
    return None


_EXPECTED_FILES = {
    "idx": ", ".join(f + "[.gz]" for f in _IDX_FILES["train"] + _IDX_FILES["test"]),
    "cifar10": "cifar-10-batches-py/data_batch_1..5 and test_batch",
    "cifar100": "cifar-100-python/train and test",
}


def _expected_files(name):
    return _EXPECTED_FILES[DATASETS[name].raw_format]


# ---------------------------------------------------------------------------------------
# TFDS


def host_reachable(host, port, timeout=3.0):
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _tfds_split(name, split, data_dir, download):
    ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=True, download=download)
    # Batches of 10,000 instead of TFDS's batch_size=-1: under tfds.testing.mock_data the
    # latter asks for a batch of sys.maxsize examples, which aborts the process.
    parts = list(tfds.as_numpy(ds.batch(10_000)))
    return _concat(parts)


def _load_tfds(name, data_dir, download):
    train = _tfds_split(name, "train", data_dir, download)
    return train, _tfds_split(name, "test", data_dir, download)


# ---------------------------------------------------------------------------------------
# Source selection


def load_with_source(name, data_dir):
    """Returns ``(arrays, source)``: the data as ``load_arrays`` gives it and where it came from."""
    info = spec.dataset(name)
    tried = []

    if data_dir is not None:
        # A data_dir given but unusable is a mistake to report, not a reason to fall back
        # silently to another copy of the data.
        if not os.path.isdir(data_dir) or not os.listdir(data_dir):
            state = "does not exist" if not os.path.isdir(data_dir) else "is empty"
            raise DataUnavailableError(
                f"--data_dir {data_dir} {state}: it should hold the {name!r} files "
                f"({_expected_files(name)}) or a TFDS data dir; leave it out to use the "
                "default sources")
        folders = [data_dir, os.path.join(data_dir, name)]
        for folder in folders:
            if os.path.isdir(folder):
                arrays = _read_raw_folder(name, folder)
                if arrays is not None:
                    return arrays, f"raw files in {folder}"
        tried.append(
            f"raw files in {' and '.join(folders)}: not found "
            f"(expected {_expected_files(name)})"
        )

    if info.debian_dir:
        arrays = None
        if os.path.isdir(info.debian_dir):
            arrays = _read_raw_folder(name, info.debian_dir)
        if arrays is not None:
            return arrays, f"Debian's {info.debian_dir}"
        tried.append(f"Debian's {info.debian_dir}: not installed")

    tfds_dir = data_dir or tfds.core.constants.DATA_DIR
    try:
        return _load_tfds(name, data_dir, download=False), f"TFDS data prepared in {tfds_dir}"
    except AssertionError:  # TFDS's way of saying "not prepared in this data dir"
        pass
    host, port = info.download_host
    if not host_reachable(host, port):
        tried.append(
            f"TFDS: not prepared in {tfds_dir}, and no download because {host}:{port} "
            "is unreachable"
        )
    else:
        try:
            return _load_tfds(name, data_dir, download=True), f"TFDS download into {tfds_dir}"
        except Exception as e:  # whatever broke the download, the user gets one message
            tried.append(f"TFDS: download into {tfds_dir} failed ({type(e).__name__}: {e})")

    how = [f"put the original files ({_expected_files(name)}) in --data_dir"]
    if info.debian_dir:
        how.insert(0, f"`apt-get install {info.debian_package}`")
    how.append("run once where TFDS can download it, then point --data_dir at the TFDS data dir")
    raise DataUnavailableError(
        f"Dataset {name!r} is not available. Sources tried: "
        + "; ".join(f"({i}) {t}" for i, t in enumerate(tried, 1))
        + ". To get it: " + ", or ".join(how) + "."
    )


def load_arrays(name, data_dir=None):
    """Loads a whole dataset as numpy arrays at its original size.

    Args:
        name: one of ``DATASETS``.
        data_dir: optional folder with the raw files (or a TFDS data dir); see the module
            docstring for the order in which sources are tried.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: uint8 images NHWC (28x28x1 or 32x32x3)
        and int64 labels.

    Raises:
        rwc_keras.spec.SchemaError: unknown dataset name.
        DataError: a raw file that is corrupt.
        DataUnavailableError: no source has the data.
    """
    return load_with_source(name, data_dir)[0]
