import numpy as np
import pytest
import tensorflow as tf

from rwc_keras import rwc, rwc_norm, rwc_stats
from rwc_keras.measure.metric import initial_norms, layer_stats
from rwc_keras.spec import INITIAL_METRICS, METRICS, RWC_METRICS, check_metrics, needs_initial

from ..helpers import reference, reference_metrics


def all_stats(prev, curr, initial):
    values = layer_stats(prev, curr, initial, METRICS).numpy()
    return dict(zip((*METRICS, "zeros"), values))


def perturbed(rng, shape, scale, base=None):
    base = rng.normal(size=shape).astype(np.float32) if base is None else base
    return base, (base + scale * rng.normal(size=shape)).astype(np.float32)


@pytest.mark.parametrize("shape", [(7,), (3, 3, 16, 32), (512, 100)])
def test_random_tensors_match_float64(shape):
    rng = np.random.default_rng(0)
    prev, curr = perturbed(rng, shape, 0.01)
    got = [float(x) for x in rwc_stats(prev, curr)]
    want = reference(prev, curr)
    np.testing.assert_allclose(got[:2], want[:2], rtol=1e-6)
    assert got[2] == want[2] == 0


@pytest.mark.parametrize("shape", [(2,), (7,), (3, 3, 16, 32), (512, 100), (5, 5, 1, 64)])
@pytest.mark.parametrize("scale", [1e-3, 1e-1, 2.0])
@pytest.mark.parametrize("shrink", [1.0, 0.9])
def test_every_metric_matches_float64(shape, scale, shrink):
    rng = np.random.default_rng(len(shape) + int(1 / scale))
    initial, prev = perturbed(rng, shape, scale)
    _, curr = perturbed(rng, shape, scale, base=prev)
    # Shrinking as weight decay does: a change mostly along the tensor, hardest for rotation.
    curr = (curr * np.float32(shrink)).astype(np.float32)
    got = all_stats(prev, curr, initial)
    want = reference_metrics(prev, curr, initial)
    for name in (*METRICS, "zeros"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, err_msg=name)


def test_million_elements_match_float64_to_1e6():
    rng = np.random.default_rng(2)
    initial, prev = perturbed(rng, (3, 3, 256, 512), 1e-2)
    _, curr = perturbed(rng, prev.shape, 1e-3, base=prev)
    got = all_stats(prev, curr, initial)
    want = reference_metrics(prev, curr, initial)
    for name in METRICS:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-6, err_msg=name)


def test_zeros_are_left_out_of_the_mean():
    rng = np.random.default_rng(1)
    prev, curr = perturbed(rng, (1000,), 0.1)
    prev[::7] = 0.0
    curr[::14] = 0.0  # 0 / 0 as well as x / 0
    initial = np.where(np.arange(1000) % 3 == 0, 0.0, prev).astype(np.float32)
    got = all_stats(prev, curr, initial)
    want = reference_metrics(prev, curr, initial)
    assert got["zeros"] == want["zeros"] == 143
    for name in METRICS:
        assert np.isfinite(got[name]), name
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, err_msg=name)


def test_diverged_weights_give_nan_values_and_an_integer_zero_count():
    prev = np.array([[np.nan, 1.0, 0.0], [2.0, np.inf, 3.0]], np.float32)
    curr = np.full_like(prev, np.nan)
    rwc_value, norm_value, zeros = (float(x) for x in rwc_stats(prev, curr))
    assert np.isnan(rwc_value) and np.isnan(norm_value)
    assert zeros == 1  # NaN and inf are not zeros: a training run that diverged can log them


def test_all_zero_prev_gives_nan_not_inf():
    prev = np.zeros((4, 5), np.float32)
    curr = np.ones((4, 5), np.float32)
    values = [float(x) for x in rwc_stats(prev, curr)]
    assert np.isnan(values[0]) and np.isnan(values[1])
    assert values[2] == 20
    got = all_stats(prev, curr, curr)
    assert np.isnan(got["update_ratio"])
    assert got["weight_norm"] == pytest.approx(np.sqrt(20))
    assert got["dist_init"] == 0 and got["rotation"] == 0


def test_all_zero_initial_or_curr_gives_nan_where_they_divide():
    rng = np.random.default_rng(3)
    prev, curr = perturbed(rng, (6, 4), 0.1)
    zero = np.zeros_like(prev)
    from_zero = all_stats(prev, curr, zero)
    assert np.isnan(from_zero["dist_init"]) and np.isnan(from_zero["rotation"])
    to_zero = all_stats(prev, zero, curr)
    assert np.isnan(to_zero["rotation"])
    assert to_zero["weight_norm"] == 0
    assert to_zero["dist_init"] == pytest.approx(1.0)
    assert to_zero["update_ratio"] == pytest.approx(1.0)


def test_rotation_of_a_rescaling_is_zero_and_of_a_turn_exact():
    rng = np.random.default_rng(4)
    initial = rng.normal(size=(64, 64)).astype(np.float32)
    got = all_stats(initial, np.float32(1.5) * initial, initial)
    # Scaling by 1.5 is exact in float32, so the tensor has not turned at all.
    assert got["rotation"] == pytest.approx(0.0, abs=1e-7)
    assert got["dist_init"] == pytest.approx(0.5, rel=1e-6)
    # A quarter turn in the plane of two orthogonal vectors: cos = 0, rotation = 1.
    turned = all_stats(np.float32([1, 0]), np.float32([0, 3]), np.float32([2, 0]))
    assert turned["rotation"] == pytest.approx(1.0)
    # A scalar can only be rescaled or flipped.
    assert all_stats(1.0, 3.0, 2.0)["rotation"] == pytest.approx(0.0, abs=1e-6)
    assert all_stats(1.0, -3.0, 2.0)["rotation"] == pytest.approx(2.0)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_graph_and_eager_agree(jit_compile):
    rng = np.random.default_rng(5)
    initial, prev = perturbed(rng, (3, 3, 8, 8), 0.1)
    _, curr = perturbed(rng, prev.shape, 0.1, base=prev)
    graph = tf.function(lambda p, c, i: layer_stats(p, c, i, METRICS), jit_compile=jit_compile)
    np.testing.assert_allclose(graph(prev, curr, initial).numpy(),
                               layer_stats(prev, curr, initial, METRICS).numpy(), rtol=1e-6)


def test_initial_norms_computed_once_give_the_same_values():
    rng = np.random.default_rng(6)
    initial, prev = perturbed(rng, (3, 3, 8, 16), 0.1)
    _, curr = perturbed(rng, prev.shape, 0.1, base=prev)
    norms = initial_norms(initial)
    np.testing.assert_allclose(norms, [np.abs(initial.astype(np.float64)).sum(),
                                       np.linalg.norm(initial.astype(np.float64))], rtol=1e-6)
    np.testing.assert_array_equal(layer_stats(prev, curr, initial, METRICS, norms),
                                  layer_stats(prev, curr, initial, METRICS))


def test_values_come_in_the_order_asked_then_zeros():
    prev, curr, initial = [1.0, 0.0, 2.0], [1.5, 1.0, 2.0], [1.0, 1.0, 1.0]
    values = layer_stats(prev, curr, initial, ("weight_norm", "rwc")).numpy()
    np.testing.assert_allclose(values, [np.sqrt(1.5 ** 2 + 1 + 4), 0.25, 1.0])


def test_bfloat16_weights_are_measured_in_float32():
    prev = tf.constant([1.0, 2.0], tf.bfloat16)
    curr = tf.constant([1.5, 2.0], tf.bfloat16)
    assert float(layer_stats(prev, curr)[0]) == pytest.approx(0.25)


def test_check_metrics_orders_and_names_bad_values():
    assert check_metrics(["rotation", "rwc", "rotation"]) == ("rwc", "rotation")
    assert check_metrics("weight_norm") == ("weight_norm",)
    assert check_metrics(RWC_METRICS) == RWC_METRICS
    with pytest.raises(ValueError, match="'speed'.*valid: rwc, rwc_norm, update_ratio"):
        check_metrics(["rwc", "speed"])
    with pytest.raises(ValueError, match="no metric chosen"):
        check_metrics([])


def test_initial_is_required_only_by_the_initial_metrics():
    assert set(INITIAL_METRICS) == {"dist_init", "rotation"}
    assert needs_initial(["rwc", "rotation"]) and not needs_initial(METRICS[:3])
    with pytest.raises(ValueError, match="rotation compare with the weights at train begin"):
        layer_stats([1.0], [2.0], metrics=("rwc", "rotation"))
    with pytest.raises(ValueError, match="unknown metric"):
        layer_stats([1.0], [2.0], metrics=("rwc", "speed"))


def test_unchanged_weights_give_zero():
    prev = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    assert float(rwc(prev, prev)) == 0.0
    assert float(rwc_norm(prev, prev)) == 0.0
    got = all_stats(prev, prev, prev)
    assert got["update_ratio"] == got["dist_init"] == got["rotation"] == 0.0


def test_hand_values():
    assert float(rwc([1.0, 2.0], [1.5, 2.0])) == pytest.approx(0.25)
    assert float(rwc_norm([1.0, -2.0], [1.5, -2.0])) == pytest.approx(0.5 / 3.0)
