"""Why AlexNet at rate 0.1 trains on some runs and stays at chance on others (this folder's
README.md, "A network that did not learn"): epoch 1 of seed 1, three times from the same
start, at Table 1's constant rate, with a schedule that returns that same rate at every
step, and with ``--lr_schedule=cosine``, whose rate is below it by 0.005% at step 20 and
0.1% at step 100.

Prints each run's mean training loss per 40 steps and the relative gap of its per-step loss
to the constant run's. Run from the repository root (about 5 minutes on 2 cores):

    .venv/bin/python runs/freezing/lr_sensitivity.py > runs/freezing/lr_sensitivity.txt
"""

import keras
import numpy as np
import tensorflow as tf

from rwc_keras import spec
from rwc_keras.experiment.data.pipeline import make_datasets
from rwc_keras.experiment.train import RunConfig, Trainer

ARCH, DATASET, SEED, EPOCHS = "alexnet", "fashion_mnist", 1, 10
LR = spec.table1_lr(ARCH, DATASET)
GAP_STEPS = (10, 20, 40, 60, 80, 100, 200, 467)


class FlatRate(keras.optimizers.schedules.LearningRateSchedule):
    """The constant rate, handed to the optimizer as a schedule."""

    def __call__(self, step):
        return tf.constant(LR, tf.float32)


class FlatRateTrainer(Trainer):
    def _learning_rate(self, steps_per_epoch):
        return FlatRate()


def epoch_one_losses(trainer_class, lr_schedule):
    config = RunConfig(arch=ARCH, dataset=DATASET, seed=SEED, epochs=EPOCHS,
                       batch_size=spec.BATCH_SIZE, lr=LR, momentum=spec.MOMENTUM,
                       weight_decay=spec.architecture(ARCH).weight_decay,
                       lr_schedule=lr_schedule)
    datasets = make_datasets(DATASET, spec.BATCH_SIZE, SEED)
    trainer = trainer_class(config, tf.distribute.get_strategy(), datasets)
    losses = []
    for batch in trainer._distribute(datasets.train(0)):
        loss_sum, _, _, examples = trainer._train_step(batch).numpy()
        losses.append(loss_sum / examples)
    return np.array(losses)


constant = epoch_one_losses(Trainer, "constant")
for name, losses in [("constant", constant),
                     ("flat schedule", epoch_one_losses(FlatRateTrainer, "constant")),
                     ("cosine", epoch_one_losses(Trainer, "cosine"))]:
    windows = " ".join(f"{losses[i:i + 40].mean():.3f}" for i in range(0, len(losses), 40))
    gap = np.abs(losses - constant) / constant
    gaps = " ".join(f"{step}:{gap[step]:.0e}" for step in GAP_STEPS)
    print(f"{name:14s} loss per 40 steps: {windows}\n{'':14s} gap to constant at step {gaps}",
          flush=True)
