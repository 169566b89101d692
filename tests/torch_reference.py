"""The paper's three networks and optimizer in plain PyTorch, the reference that the Keras
models are judged against (tests/experiment/test_torch_fidelity.py).

Written from docs/paper_facts.md ("Architectures", "Training protocol"), not from
rwc_keras.experiment.models: each module is named after the Keras layer it mirrors, so that
`copy_keras_to_torch` and `copy_torch_to_keras` move weights by name. The optimizer is
``torch.optim.SGD`` itself: its coupled weight decay is what
`rwc_keras.experiment.optimizer.TorchSGD` claims to reproduce.
"""

import math

import keras
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# Configuration E; "M" is a 2x2 max-pool.
VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _bn(channels):
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class ResNet18(nn.Module):
    """kuangliu-style CIFAR ResNet-18: 3x3 stem without max-pool, BasicBlocks, 4x4 pool."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.layers = nn.ModuleDict()
        self.layers["stem_conv"] = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.layers["stem_bn"] = _bn(64)
        self.blocks = []
        channels = 64
        for stage, filters in enumerate((64, 128, 256, 512), start=1):
            for index in (1, 2):
                name, stride = f"block{stage}_{index}", (2 if stage > 1 and index == 1 else 1)
                self.layers[f"{name}_conv1"] = nn.Conv2d(channels, filters, 3, stride, 1,
                                                         bias=False)
                self.layers[f"{name}_bn1"] = _bn(filters)
                self.layers[f"{name}_conv2"] = nn.Conv2d(filters, filters, 3, 1, 1, bias=False)
                self.layers[f"{name}_bn2"] = _bn(filters)
                shortcut = stride != 1 or channels != filters
                if shortcut:
                    self.layers[f"{name}_shortcut_conv"] = nn.Conv2d(channels, filters, 1, stride,
                                                                     bias=False)
                    self.layers[f"{name}_shortcut_bn"] = _bn(filters)
                self.blocks.append((name, shortcut))
                channels = filters
        self.layers["head"] = nn.Linear(512, num_classes)

    def forward(self, x):
        layer = self.layers
        x = F.relu(layer["stem_bn"](layer["stem_conv"](x)))
        for name, shortcut in self.blocks:
            y = F.relu(layer[f"{name}_bn1"](layer[f"{name}_conv1"](x)))
            y = layer[f"{name}_bn2"](layer[f"{name}_conv2"](y))
            if shortcut:
                x = layer[f"{name}_shortcut_bn"](layer[f"{name}_shortcut_conv"](x))
            x = F.relu(y + x)
        x = F.avg_pool2d(x, 4)
        return layer["head"](torch.flatten(x, 1))


class VGG19BN(nn.Module):
    """VGG-19 with BatchNorm and one dense layer on the 512 features."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.layers = nn.ModuleDict()
        channels, conv = in_channels, 0
        for entry in VGG19:
            if entry == "M":
                continue
            conv += 1
            self.layers[f"conv{conv}"] = nn.Conv2d(channels, entry, 3, padding=1)
            self.layers[f"bn{conv}"] = _bn(entry)
            channels = entry
        self.layers["head"] = nn.Linear(512, num_classes)
        # The authors' init: convs normal(0, sqrt(2 / (k * k * out))), biases 0; dense
        # normal(0, 0.01); BatchNorm 1 and 0 (PyTorch's default already).
        for module in self.layers.values():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        conv = 0
        for entry in VGG19:
            if entry == "M":
                x = F.max_pool2d(x, 2)
                continue
            conv += 1
            x = F.relu(self.layers[f"bn{conv}"](self.layers[f"conv{conv}"](x)))
        return self.layers["head"](torch.flatten(x, 1))


class AlexNet(nn.Module):
    """The CIFAR AlexNet: five convolutions (the first at stride 2), three dense layers."""

    CONVS = ((64, 2, True), (192, 1, True), (384, 1, False), (256, 1, False), (256, 1, True))

    def __init__(self, in_channels, num_classes, dropout=0.5):
        super().__init__()
        self.layers = nn.ModuleDict()
        channels = in_channels
        for index, (filters, stride, _) in enumerate(self.CONVS, start=1):
            self.layers[f"conv{index}"] = nn.Conv2d(channels, filters, 3, stride, 1)
            channels = filters
        self.layers["fc1"] = nn.Linear(256 * 2 * 2, 4096)
        self.layers["fc2"] = nn.Linear(4096, 1024)
        self.layers["fc3"] = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        for index, (_, _, pool) in enumerate(self.CONVS, start=1):
            x = F.relu(self.layers[f"conv{index}"](x))
            if pool:
                x = F.max_pool2d(x, 2)
        x = self.dropout(torch.flatten(x, 1))
        x = self.dropout(F.relu(self.layers["fc1"](x)))
        x = F.relu(self.layers["fc2"](x))
        return self.layers["fc3"](x)


MODELS = {"resnet18": ResNet18, "vgg19bn": VGG19BN, "alexnet": AlexNet}


def _dense_after_flatten(layer):
    """The (height, width, channels) map a dense layer reads through a Flatten, else None."""
    producer = layer.input._keras_history.operation
    while isinstance(producer, keras.layers.Dropout):
        producer = producer.input._keras_history.operation
    if not isinstance(producer, keras.layers.Flatten):
        return None
    shape = producer.input.shape[1:]
    return shape if len(shape) == 3 and shape[0] * shape[1] > 1 else None


def _torch_to_keras_tensors(layer, module):
    """The Keras layer's weights in its own order, made from the PyTorch module's tensors."""
    if isinstance(module, nn.BatchNorm2d):
        return [t.detach().cpu().numpy() for t in _module_tensors(module)]
    weight = module.weight.detach().cpu().numpy()
    if isinstance(module, nn.Conv2d):
        kernel = weight.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    else:
        kernel = weight.T  # (out, in) -> (in, out)
        spatial = _dense_after_flatten(layer)
        if spatial is not None:
            # PyTorch flattens (C, H, W), Keras (H, W, C): reorder the kernel's rows.
            height, width, channels = spatial
            kernel = kernel.reshape(channels, height, width, -1).transpose(1, 2, 0, 3)
            kernel = kernel.reshape(height * width * channels, -1)
    tensors = [kernel]
    if module.bias is not None:
        tensors.append(module.bias.detach().cpu().numpy())
    return tensors


def _keras_to_torch_tensors(layer, module):
    """The PyTorch module's tensors, in `_torch_to_keras_tensors`'s order, from Keras's."""
    weights = [np.asarray(w) for w in layer.get_weights()]
    if isinstance(module, nn.BatchNorm2d):
        return weights
    kernel = weights[0]
    if isinstance(module, nn.Conv2d):
        weight = kernel.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    else:
        spatial = _dense_after_flatten(layer)
        if spatial is not None:
            height, width, channels = spatial
            kernel = kernel.reshape(height, width, channels, -1).transpose(2, 0, 1, 3)
            kernel = kernel.reshape(height * width * channels, -1)
        weight = kernel.T
    return [weight] + weights[1:]


def _module_tensors(module):
    """The PyTorch module's tensors in the order of the Keras layer's weights."""
    if isinstance(module, nn.BatchNorm2d):
        return [module.weight, module.bias, module.running_mean, module.running_var]
    return [module.weight] + ([module.bias] if module.bias is not None else [])


def copy_keras_to_torch(keras_model, torch_model):
    """Sets every PyTorch parameter and BatchNorm statistic from the same-named Keras layer."""
    with torch.no_grad():
        for name, module in torch_model.layers.items():
            layer = keras_model.get_layer(name)
            for target, value in zip(_module_tensors(module),
                                     _keras_to_torch_tensors(layer, module), strict=True):
                target.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=target.dtype))


def copy_torch_to_keras(torch_model, keras_model):
    """Sets every Keras layer's weights from the same-named PyTorch module."""
    for name, module in torch_model.layers.items():
        layer = keras_model.get_layer(name)
        layer.set_weights(_torch_to_keras_tensors(layer, module))


def keras_layout(torch_model, keras_model):
    """{Keras weight path: the PyTorch model's value in Keras's layout}, for comparisons."""
    values = {}
    for name, module in torch_model.layers.items():
        layer = keras_model.get_layer(name)
        for variable, value in zip(layer.weights, _torch_to_keras_tensors(layer, module),
                                   strict=True):
            values[variable.path] = value
    return values
