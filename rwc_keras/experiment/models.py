"""The paper's three CIFAR-style networks as Keras models (``docs/paper_facts.md``,
"Architectures").

Each model matches the authors' PyTorch model: the same layers, the same trainable parameter
count and PyTorch's initialisation (RWC depends on the weights' scale). Every tracked kernel
carries its paper group in ``model.rwc_groups`` (layer name -> group), which
`rwc_keras.RWCCallback` picks up with no argument.

Strided convolutions pad explicitly by 1 on every side as PyTorch does; Keras's "same"
padding would pad only bottom/right at stride 2 and shift every feature map.
"""

import math

import keras
from keras import backend, layers, ops

from rwc_keras import spec
from rwc_keras.measure.selection import is_tracked

# PyTorch's BatchNorm: eps 1e-5, running-average momentum 0.1 (0.9 in Keras terms).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# Initializers are made per layer, at build time: an instance made at import would take its
# seed before keras.utils.set_random_seed runs, and runs would not repeat.


def torch_kernel_init():
    """PyTorch's default kernel init, kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in",
                                              distribution="uniform")


def vgg_conv_init():
    """The authors' VGG conv init: normal(0, sqrt(2 / (k * k * out_channels)))."""
    return keras.initializers.VarianceScaling(
        scale=2.0, mode="fan_out", distribution="untruncated_normal")

VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def torch_bias_init(fan_in):
    """PyTorch's default bias init: U(+-1/sqrt(fan_in)) with the layer's fan-in."""
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


@keras.saving.register_keras_serializable(package="rwc_keras")
class TorchBatchNormalization(layers.BatchNormalization):
    """BatchNormalization whose moving statistics follow PyTorch's ``BatchNorm2d``.

    In training PyTorch normalises with the biased batch variance, as Keras does, but its
    ``running_var`` averages the unbiased one, ``var * n / (n - 1)`` with ``n`` the values
    per channel (batch x height x width); Keras averages the biased one. The difference is
    1/(n-1) relative per step (about 1e-4 at batch 32 in ResNet-18's last stage), and it
    reaches every evaluation. Everything else, inference included, is Keras's layer.

    Args:
        epsilon: added to the variance (PyTorch's default 1e-5).
        momentum: Keras's moving-average momentum (0.9 is PyTorch's ``momentum=0.1``).
        **kwargs: passed on to ``keras.layers.BatchNormalization``.
    """

    def __init__(self, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, **kwargs):
        super().__init__(epsilon=epsilon, momentum=momentum, **kwargs)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        inputs = ops.cast(inputs, backend.result_type(inputs.dtype, "float32"))
        dtype = inputs.dtype
        mean, variance = self._moments(inputs, mask)
        count = ops.divide(ops.cast(ops.size(inputs), dtype), ops.cast(ops.size(mean), dtype))
        unbiased = ops.multiply(variance, ops.divide(count, ops.subtract(count, 1.0)))
        # PyTorch's `(1 - m) * running + m * batch`, with its m as written (0.1, where
        # 1 - 0.9 would be 0.09999999999999998), as constants of the inputs' dtype.
        keep = ops.convert_to_tensor(self.momentum, dtype)
        take = ops.convert_to_tensor(round(1.0 - self.momentum, 15), dtype)
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, unbiased)):
            moving.assign(ops.cast(ops.add(ops.multiply(keep, ops.cast(moving, dtype)),
                                           ops.multiply(take, batch)), moving.dtype))
        gamma = ops.cast(self.gamma, dtype) if self.scale else None
        beta = ops.cast(self.beta, dtype) if self.center else None
        outputs = ops.batch_normalization(inputs, mean, variance, axis=self.axis, offset=beta,
                                          scale=gamma, epsilon=self.epsilon)
        return ops.cast(outputs, self.compute_dtype)


def batch_norm(name):
    return TorchBatchNormalization(name=name)


def torch_conv(x, filters, kernel_size, strides=1, use_bias=True, name=None):
    """Conv2D with PyTorch's symmetric padding (kernel_size // 2) and default init."""
    pad = kernel_size // 2
    if strides > 1 and pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    fan_in = kernel_size * kernel_size * x.shape[-1]
    return layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=use_bias,
        kernel_initializer=torch_kernel_init(),
        bias_initializer=torch_bias_init(fan_in) if use_bias else None,
        name=name,
    )(x)


def torch_dense(x, units, name):
    return layers.Dense(
        units, kernel_initializer=torch_kernel_init(),
        bias_initializer=torch_bias_init(x.shape[-1]), name=name,
    )(x)


def basic_block(x, filters, strides, name, groups, group):
    shortcut = x
    y = torch_conv(x, filters, 3, strides, use_bias=False, name=f"{name}_conv1")
    y = layers.ReLU(name=f"{name}_relu1")(batch_norm(f"{name}_bn1")(y))
    y = torch_conv(y, filters, 3, 1, use_bias=False, name=f"{name}_conv2")
    y = batch_norm(f"{name}_bn2")(y)
    groups[f"{name}_conv1"] = groups[f"{name}_conv2"] = group
    if strides != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(
            filters, 1, strides=strides, use_bias=False,
            kernel_initializer=torch_kernel_init(), name=f"{name}_shortcut_conv",
        )(x)
        shortcut = batch_norm(f"{name}_shortcut_bn")(shortcut)
        groups[f"{name}_shortcut_conv"] = group
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def resnet18(inputs, num_classes, groups):
    x = torch_conv(inputs, 64, 3, use_bias=False, name="stem_conv")
    x = layers.ReLU(name="stem_relu")(batch_norm("stem_bn")(x))
    groups["stem_conv"] = "stem"
    for stage, filters in enumerate((64, 128, 256, 512), start=1):
        for index in (1, 2):
            strides = 2 if stage > 1 and index == 1 else 1
            x = basic_block(x, filters, strides, f"block{stage}_{index}", groups, f"block{stage}")
    # The authors' 4x4 average pool is a global average pool at 32x32 input.
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    groups["head"] = "head"
    return torch_dense(x, num_classes, "head")


def vgg_group(conv_index):
    if conv_index <= 4:
        return "early"
    return "middle" if conv_index <= 11 else "later"


def vgg19bn(inputs, num_classes, groups):
    x, conv_index, pool_index = inputs, 0, 0
    for entry in VGG19_CONFIG:
        if entry == "M":
            pool_index += 1
            x = layers.MaxPooling2D(2, name=f"pool{pool_index}")(x)
            continue
        conv_index += 1
        name = f"conv{conv_index}"
        x = layers.Conv2D(entry, 3, padding="same", kernel_initializer=vgg_conv_init(),
                          bias_initializer="zeros", name=name)(x)
        x = layers.ReLU(name=f"relu{conv_index}")(batch_norm(f"bn{conv_index}")(x))
        groups[name] = vgg_group(conv_index)
    x = layers.Flatten(name="flatten")(x)
    groups["head"] = "head"
    return layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
                        bias_initializer="zeros", name="head")(x)


ALEXNET_CONVS = ((64, 2, True, "early"), (192, 1, True, "middle"), (384, 1, False, "middle"),
                 (256, 1, False, "later"), (256, 1, True, "later"))


def alexnet(inputs, num_classes, groups):
    x = inputs
    for index, (filters, strides, pool_after, group) in enumerate(ALEXNET_CONVS, start=1):
        name = f"conv{index}"
        x = layers.ReLU(name=f"relu{index}")(torch_conv(x, filters, 3, strides, name=name))
        if pool_after:
            x = layers.MaxPooling2D(2, name=f"pool{index}")(x)
        groups[name] = group
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.5, name="dropout1")(x)
    x = layers.ReLU(name="fc1_relu")(torch_dense(x, 4096, "fc1"))
    x = layers.Dropout(0.5, name="dropout2")(x)
    x = layers.ReLU(name="fc2_relu")(torch_dense(x, 1024, "fc2"))
    groups.update(fc1="head", fc2="head", fc3="head")
    return torch_dense(x, num_classes, "fc3")


def build_model(arch, input_shape=(32, 32, 3), num_classes=10):
    """Builds one of the paper's networks as a functional Keras model returning logits.

    Args:
        arch: a name of ``rwc_keras.spec.ARCHITECTURES``, whose ``builder`` names the
            function here that builds it.
        input_shape: (height, width, channels); the paper uses 32x32 with 1 or 3 channels.
        num_classes: width of the output layer.

    Returns:
        A `keras.Model` with ``rwc_groups``: a dict from every tracked kernel's layer name
        (as `RWCCallback` writes it, e.g. ``"conv3/kernel"``) to its paper group.

    Example:
        ```python
        model = build_model("alexnet", (32, 32, 1), 10)
        model.compile(...); model.fit(..., callbacks=[RWCCallback()])
        ```
    """
    builder = globals()[spec.architecture(arch).builder]
    inputs = keras.Input(tuple(input_shape), name="images")
    layer_groups = {}
    logits = builder(inputs, num_classes, layer_groups)
    # Under a mixed-precision policy the logits (and so the loss) stay in floatx (float32);
    # a float64 model keeps float64 logits.
    logits = layers.Activation("linear", dtype=keras.config.floatx(), name="logits")(logits)
    model = keras.Model(inputs, logits, name=arch)
    model.rwc_groups = {
        spec.layer_name(model, variable): layer_groups[layer.name]
        for layer in model.layers
        if layer.name in layer_groups
        for variable in layer.trainable_weights
        if is_tracked(variable.shape)
    }
    return model
