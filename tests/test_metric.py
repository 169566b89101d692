import numpy as np
import pytest

from rwc_keras import rwc, rwc_norm, rwc_stats

from .helpers import reference


@pytest.mark.parametrize("shape", [(7,), (3, 3, 16, 32), (512, 100)])
def test_random_tensors_match_float64(shape):
    rng = np.random.default_rng(0)
    prev = rng.normal(size=shape).astype(np.float32)
    curr = (prev + 0.01 * rng.normal(size=shape)).astype(np.float32)
    got = [float(x) for x in rwc_stats(prev, curr)]
    want = reference(prev, curr)
    np.testing.assert_allclose(got[:2], want[:2], rtol=1e-6)
    assert got[2] == 0


def test_zeros_are_left_out_of_the_mean():
    rng = np.random.default_rng(1)
    prev = rng.normal(size=(1000,)).astype(np.float32)
    prev[::7] = 0.0
    curr = (prev + 0.1 * rng.normal(size=prev.shape)).astype(np.float32)
    got = [float(x) for x in rwc_stats(prev, curr)]
    want = reference(prev, curr)
    assert np.isfinite(got[0]) and np.isfinite(got[1])
    np.testing.assert_allclose(got[:2], want[:2], rtol=1e-6)
    assert got[2] == want[2] == 143


def test_all_zero_prev_gives_nan_not_inf():
    prev = np.zeros((4, 5), np.float32)
    curr = np.ones((4, 5), np.float32)
    values = [float(x) for x in rwc_stats(prev, curr)]
    assert np.isnan(values[0]) and np.isnan(values[1])
    assert values[2] == 20


def test_unchanged_weights_give_zero():
    prev = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    assert float(rwc(prev, prev)) == 0.0
    assert float(rwc_norm(prev, prev)) == 0.0


def test_hand_values():
    assert float(rwc([1.0, 2.0], [1.5, 2.0])) == pytest.approx(0.25)
    assert float(rwc_norm([1.0, -2.0], [1.5, -2.0])) == pytest.approx(0.5 / 3.0)
