"""The process runs the Keras backend that ``KERAS_BACKEND`` names (tests/test_backends.py)."""

import os

import keras


def test_keras_runs_the_requested_backend():
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")
