"""Trains a project model and its PyTorch reference (tests/torch_reference.py) side by side
from identical weights on identical batches, in float64, and saves how far apart they are.

Run as a script, in a process of its own: PyTorch must be imported before TensorFlow, or
importing ``torch._dynamo`` (which ``torch.optim`` does) crashes the process, and the test
process has imported TensorFlow long before.

    python tests/torch_steps.py OUT.npz --arch=resnet18 --lr=0.1 --steps=20 --batch=8
        [--weight_decay=1e-4] [--momentum=0.9] [--perturb=1e-10]

``--perturb`` runs PyTorch against PyTorch instead, the second copy's initial weights scaled
by ``1 + perturb``: how much the dynamics themselves amplify a tiny difference.

OUT.npz holds ``loss`` (the project model, or the perturbed copy) and ``torch_loss`` per
step; ``apart/<weight path>``: each weight's ``(max |keras - torch|, max |torch|)`` after the
last step (moving statistics included); ``logits`` and ``torch_logits``: eval-mode logits on
64 held-out images.
"""

import argparse
import os
import sys

import torch
import torch._dynamo  # noqa: F401  (before TensorFlow: see the module docstring)
import torch.optim

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from rwc_keras.experiment.data.sources import load_arrays  # noqa: E402
from rwc_keras.experiment.models import build_model  # noqa: E402
from rwc_keras.experiment.optimizer import TorchSGD  # noqa: E402
from tests import torch_reference  # noqa: E402

HELD_OUT = 64


def fashion_mnist(count, split):
    """``count`` Fashion-MNIST images of a split, float64 NHWC 32x32 in [0, 1], and labels."""
    (x_train, y_train), (x_test, y_test) = load_arrays("fashion_mnist")
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    images = keras.ops.image.resize(x[:count].astype(np.float64) / 255.0, (32, 32))
    return np.asarray(keras.ops.convert_to_numpy(images), np.float64), y[:count].astype(np.int64)


class TorchTrainer:
    """The PyTorch reference model with ``torch.optim.SGD``, fed Keras-layout (NHWC) batches."""

    def __init__(self, arch, keras_model, lr, momentum, weight_decay, scale=1.0):
        self.model = torch_reference.MODELS[arch](1, 10).double()
        if arch == "alexnet":
            self.model.dropout.p = 0.0
        torch_reference.copy_keras_to_torch(keras_model, self.model)
        with torch.no_grad():
            for parameter in self.model.parameters():
                parameter.mul_(scale)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=momentum,
                                         weight_decay=weight_decay)

    def step(self, images, labels):
        self.model.train()
        self.optimizer.zero_grad()
        logits = self.model(torch.from_numpy(images).permute(0, 3, 1, 2))
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels))
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def logits(self, images):
        self.model.eval()
        with torch.no_grad():
            return self.model(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()


def keras_model(arch):
    keras.config.set_floatx("float64")
    keras.utils.set_random_seed(0)
    model = build_model(arch, (32, 32, 1), 10)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0  # dropout's masks cannot be shared across frameworks
    return model


class KerasTrainer:
    """The project's model with `TorchSGD`, trained one batch at a time."""

    def __init__(self, model, lr, momentum, weight_decay):
        self.model = model
        model.compile(optimizer=TorchSGD(lr, momentum=momentum, weight_decay=weight_decay),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def step(self, images, labels):
        return float(self.model.train_on_batch(images, labels))

    def logits(self, images):
        return keras.ops.convert_to_numpy(self.model(images, training=False))


def differences(model, values_of, reference_of):
    """{weight path: (max |value - reference|, max |reference|)}."""
    return {
        variable.path: (np.max(np.abs(values_of[variable.path] - reference_of[variable.path])),
                        np.max(np.abs(reference_of[variable.path])))
        for variable in model.weights
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--arch", required=True, choices=sorted(torch_reference.MODELS))
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight_decay", type=float, default=1e-4)
    parser.add_argument("--perturb", type=float, default=0.0)
    args = parser.parse_args()

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    images, labels = fashion_mnist(args.steps * args.batch, "train")
    held_out, _ = fashion_mnist(HELD_OUT, "test")
    model = keras_model(args.arch)
    settings = (args.lr, args.momentum, args.weight_decay)
    reference = TorchTrainer(args.arch, model, *settings)
    if args.perturb:
        candidate = TorchTrainer(args.arch, model, *settings, scale=1.0 + args.perturb)
    else:
        candidate = KerasTrainer(model, *settings)
    losses = {"loss": [], "torch_loss": []}
    for start in range(0, args.steps * args.batch, args.batch):
        batch = images[start:start + args.batch], labels[start:start + args.batch]
        losses["loss"].append(candidate.step(*batch))
        losses["torch_loss"].append(reference.step(*batch))
    if args.perturb:
        values = torch_reference.keras_layout(candidate.model, model)
    else:
        values = {variable.path: keras.ops.convert_to_numpy(variable) for variable in model.weights}
    apart = differences(model, values, torch_reference.keras_layout(reference.model, model))
    np.savez(args.out, logits=candidate.logits(held_out), torch_logits=reference.logits(held_out),
             **{name: np.array(series) for name, series in losses.items()},
             **{f"apart/{path}": np.array(pair) for path, pair in apart.items()})


if __name__ == "__main__":
    main()
