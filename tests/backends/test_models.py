"""The paper's models on every Keras backend (tests/test_backends.py runs this module under
JAX and PyTorch too): parameter counts, groups, initialisation, PyTorch's padding."""

import math

import keras
from keras.ops import convert_to_numpy as to_numpy
import numpy as np
import pytest

from rwc_keras import spec
from rwc_keras.experiment.models import BN_EPSILON, BN_MOMENTUM, build_model

# The table of docs/paper_facts.md, "Architectures"; the (100 classes, 1 channel) column is derived
# from it: one input channel fewer removes the same 3*3*64 first-conv weights as with 10 classes.
PARAMS = {
    "resnet18": {(10, 3): 11_173_962, (10, 1): 11_172_810, (100, 3): 11_220_132},
    "vgg19bn": {(10, 3): 20_040_522, (10, 1): 20_039_370, (100, 3): 20_086_692},
    "alexnet": {(10, 3): 10_655_562, (10, 1): 10_654_410, (100, 3): 10_747_812},
}
for counts in PARAMS.values():
    counts[(100, 1)] = counts[(100, 3)] - (counts[(10, 3)] - counts[(10, 1)])

TRACKED = {"resnet18": 21, "vgg19bn": 17, "alexnet": 8}

EXPECTED_GROUPS = {
    "resnet18": {"stem": 1, "block1": 4, "block2": 5, "block3": 5, "block4": 5, "head": 1},
    "vgg19bn": {"early": 4, "middle": 7, "later": 5, "head": 1},
    "alexnet": {"early": 1, "middle": 2, "later": 2, "head": 3},
}


def trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


@pytest.mark.parametrize("arch", sorted(PARAMS))
@pytest.mark.parametrize("classes,channels", [(10, 3), (10, 1), (100, 3), (100, 1)])
def test_parameter_and_tracked_counts(arch, classes, channels):
    model = build_model(arch, (32, 32, channels), classes)
    assert trainable_count(model) == PARAMS[arch][(classes, channels)]
    tracked = [v for v in model.trainable_variables if len(v.shape) > 1]
    assert len(tracked) == TRACKED[arch]
    assert model.output_shape == (None, classes)


@pytest.mark.parametrize("arch", sorted(PARAMS))
def test_every_tracked_kernel_has_its_paper_group(arch):
    model = build_model(arch, (32, 32, 3), 10)
    tracked = [v.path.removeprefix(model.name + "/")
               for v in model.trainable_variables if len(v.shape) > 1]
    assert sorted(model.rwc_groups) == sorted(tracked)
    sizes = {}
    for group in model.rwc_groups.values():
        sizes[group] = sizes.get(group, 0) + 1
    assert sizes == EXPECTED_GROUPS[arch]
    assert tuple(sizes) == spec.architecture(arch).groups  # groups appear in network order


def test_group_boundaries_follow_spec():
    vgg = build_model("vgg19bn").rwc_groups
    assert [vgg[f"conv{i}/kernel"] for i in (4, 5, 11, 12, 16)] == [
        "early", "middle", "middle", "later", "later"]
    resnet = build_model("resnet18").rwc_groups
    assert resnet["block2_1_shortcut_conv/kernel"] == "block2"
    assert resnet["block4_2_conv2/kernel"] == "block4"
    alex = build_model("alexnet").rwc_groups
    assert [alex[f"conv{i}/kernel"] for i in range(1, 6)] == [
        "early", "middle", "middle", "later", "later"]
    assert {alex[f"fc{i}/kernel"] for i in (1, 2, 3)} == {"head"}


def kernel(model, name):
    return to_numpy(model.get_layer(name).kernel)


def test_pytorch_default_initialisation_resnet_and_alexnet():
    keras.utils.set_random_seed(0)
    resnet = build_model("resnet18")
    for name in ("block3_1_conv2", "block4_2_conv1"):
        weights = kernel(resnet, name)
        bound = 1 / math.sqrt(np.prod(weights.shape[:3]))
        assert np.abs(weights).max() <= bound
        assert weights.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    alex = build_model("alexnet")
    for name in ("conv4", "fc1", "fc2"):
        layer = alex.get_layer(name)
        weights = to_numpy(layer.kernel)
        bound = 1 / math.sqrt(np.prod(weights.shape[:-1]))
        assert weights.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        bias = to_numpy(layer.bias)
        assert np.abs(bias).max() <= bound and bias.std() > bound / 3


def test_vgg_initialisation():
    keras.utils.set_random_seed(0)
    vgg = build_model("vgg19bn")
    for name in ("conv8", "conv14"):
        weights = kernel(vgg, name)
        assert weights.std() == pytest.approx(math.sqrt(2 / (9 * weights.shape[-1])), rel=0.05)
        # not truncated: a normal sample this large has values beyond 2 std
        assert np.abs(weights).max() > 3 * weights.std()
        assert not to_numpy(vgg.get_layer(name).bias).any()
    assert kernel(vgg, "head").std() == pytest.approx(0.01, rel=0.05)


@pytest.mark.parametrize("arch", ["resnet18", "vgg19bn"])
def test_batch_norm_matches_pytorch(arch):
    model = build_model(arch)
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms
    for layer in norms:
        assert layer.epsilon == BN_EPSILON == 1e-5
        assert layer.momentum == BN_MOMENTUM == 0.9
        assert np.all(to_numpy(layer.gamma) == 1) and not to_numpy(layer.beta).any()


def test_strided_convolutions_pad_symmetrically_like_pytorch():
    model = build_model("alexnet", (32, 32, 1), 10)
    conv1 = model.get_layer("conv1")
    # a single bright pixel at the top-left corner reaches output (0, 0) through kernel tap
    # (1, 1) only with PyTorch's 1-pixel padding on every side
    probe = keras.Model(model.input, conv1.output)
    image = np.zeros((1, 32, 32, 1), np.float32)
    image[0, 0, 0, 0] = 1.0
    out = to_numpy(probe(image))[0, 0, 0] - to_numpy(conv1.bias)
    # atol: subtracting the bias leaves float32 rounding at the bias's scale (~3e-8)
    np.testing.assert_allclose(out, to_numpy(conv1.kernel)[1, 1, 0], rtol=1e-6, atol=1e-7)
    assert probe.output_shape == (None, 16, 16, 64)


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="'lenet'.*resnet18, vgg19bn, alexnet"):
        build_model("lenet")


@pytest.mark.parametrize("arch", sorted(PARAMS))
def test_same_seed_same_initial_weights(arch):
    weights = []
    for seed in (5, 5, 6):
        keras.utils.set_random_seed(seed)
        weights.append([to_numpy(v) for v in build_model(arch, (32, 32, 1), 10).trainable_variables])
    assert all(np.array_equal(a, b) for a, b in zip(weights[0], weights[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(weights[0], weights[2]))
