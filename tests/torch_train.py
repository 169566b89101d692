"""The reference protocol trained in plain PyTorch: the accuracy the project's runs are
compared with (runs/README.md, "Project against PyTorch").

The same files (`rwc_keras.experiment.data.sources.load_arrays`), the same preprocessing as the
authors' loaders (bilinear resize to 32x32, pixels in [0, 1], a random horizontal flip per image),
the same example order rule as `rwc_keras.experiment.data.pipeline.Datasets` (a permutation seeded
with ``(seed, epoch)``), Table 1's optimizer (``torch.optim.SGD``, momentum 0.9, coupled weight
decay) and batch 128, the models of tests/torch_reference.py with PyTorch's or the authors'
initialisation. Flips and initial weights come from ``torch.manual_seed(seed)``.

    python tests/torch_train.py --arch=resnet18 --seeds=0,42,123,1,2 \\
        --max_train_examples=20000 --logdir=runs/reference_pytorch

writes ``<logdir>/<arch>_fashion_mnist/seed_<n>/metrics.json`` (``test_top1``, ``test_loss``,
``wall_seconds``) and skips a seed whose file is there, so an interrupted command resumes.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch._dynamo  # noqa: F401  (before TensorFlow, see tests/torch_steps.py)
import torch.optim
from torch.nn import functional as F

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rwc_keras import spec  # noqa: E402
from rwc_keras.experiment.data.sources import load_arrays  # noqa: E402
from tests import torch_reference  # noqa: E402

DATASET = "fashion_mnist"


def preprocess(images):
    """uint8 NHWC 28x28x1 -> float32 NCHW 32x32 in [0, 1] (tf.image.resize's bilinear)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return F.interpolate(x, size=(spec.IMAGE_SIZE, spec.IMAGE_SIZE), mode="bilinear",
                         align_corners=False)


def train_one_seed(arch, seed, train, test, epochs, batch_size, out_dir):
    torch.manual_seed(seed)
    model = torch_reference.MODELS[arch](1, 10)
    info = spec.architecture(arch)
    optimizer = torch.optim.SGD(model.parameters(), lr=spec.table1_lr(arch, DATASET),
                                momentum=spec.MOMENTUM, weight_decay=info.weight_decay)
    (x_train, y_train), (x_test, y_test) = train, test
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(len(x_train))
        steps = len(x_train) // batch_size
        for step in range(steps):
            indices = order[step * batch_size:(step + 1) * batch_size]
            images = x_train[indices]
            flip = torch.rand(len(indices)) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(3), images)
            loss = F.cross_entropy(model(images), y_train[indices])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % 20 == 0 or step == steps - 1:
                print(f"  {arch} seed {seed} epoch {epoch + 1}/{epochs} step {step + 1}/{steps} "
                      f"loss {loss.item():.4f}", flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad():
        for first in range(0, len(x_test), 500):
            logits = model(x_test[first:first + 500])
            labels = y_test[first:first + 500]
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
            correct += (logits.argmax(1) == labels).sum().item()
    metrics = dict(arch=arch, dataset=DATASET, seed=seed, epochs=epochs, framework="pytorch",
                   torch_version=torch.__version__, test_top1=correct / len(x_test),
                   test_loss=loss_sum / len(x_test), wall_seconds=seconds)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"{arch} seed {seed}: top-1 {metrics['test_top1']:.4f} in {seconds:.0f} s", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", required=True, choices=sorted(torch_reference.MODELS))
    parser.add_argument("--seeds", required=True, help="comma-separated, e.g. 0,42,123")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max_train_examples", type=int, default=None)
    parser.add_argument("--batch_size", type=int, default=spec.BATCH_SIZE)
    parser.add_argument("--logdir", default="runs/reference_pytorch")
    args = parser.parse_args()
    (x_train, y_train), (x_test, y_test) = load_arrays(DATASET)
    x_train, y_train = x_train[:args.max_train_examples], y_train[:args.max_train_examples]
    train = preprocess(x_train), torch.from_numpy(y_train.astype(np.int64))
    test = preprocess(x_test), torch.from_numpy(y_test.astype(np.int64))
    for seed in (int(s) for s in args.seeds.split(",")):
        out_dir = os.path.join(args.logdir, f"{args.arch}_{DATASET}", f"seed_{seed}")
        if os.path.exists(os.path.join(out_dir, "metrics.json")):
            print(f"{args.arch} seed {seed}: done already ({out_dir})")
            continue
        train_one_seed(args.arch, seed, train, test, args.epochs, args.batch_size, out_dir)


if __name__ == "__main__":
    main()
