"""Trains the paper's networks, records every layer's Relative Weight Change, and reports.

An experiment is one architecture on one dataset with several seeds. Each seed's run writes
<logdir>/<arch>_<dataset>/seed_<seed>/: rwc.csv, TensorBoard events (RWC, train/test loss and
top-1/top-5), history.csv, metrics.json and flags.cfg, a flagfile that re-runs it
(python -m rwc_keras.main --flagfile=.../flags.cfg). After the last seed the report
(`rwc_keras.report`) writes its figures, report.md and rwc_aggregated.csv into
<logdir>/<arch>_<dataset>/, unless --noreport.

Example:
  python -m rwc_keras.main --arch=vgg19bn --dataset=cifar10
"""

import json
import os
import sys

from absl import flags, logging

from rwc_keras import spec
from rwc_keras.analysis import claims
from rwc_keras.experiment.flags import FREEZE_RULE_FLAGS, jit_compile, seed_flagfile

FLAGS = flags.FLAGS


class UsageError(Exception):
    """A flag or environment problem found before any training."""


def check_tf_config():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise UsageError("--strategy=multi_worker needs TF_CONFIG (see BUILD.md, multi-host)")
    try:
        config = json.loads(raw)
        workers, task = config["cluster"], config["task"]
        valid = (isinstance(workers, dict) and task["type"] in workers
                 and 0 <= int(task["index"]) < len(workers[task["type"]]))
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise UsageError(
            f"malformed TF_CONFIG {raw!r}: expected JSON like "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, '
            '"task": {"type": "worker", "index": 0}}')


def make_strategy(name, cpu_devices):
    import tensorflow as tf

    if name == "multi_worker":
        check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = None if gpus else [f"/cpu:{i}" for i in range(cpu_devices)]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def check_logdir(logdir):
    try:
        os.makedirs(logdir, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--logdir={logdir} cannot be created: {error.strerror}") from None
    if not os.access(logdir, os.W_OK | os.X_OK):
        raise UsageError(f"--logdir={logdir} is not writable")


def report_experiment(path):
    """Writes the report files into the experiment folder ``path`` and prints where they are."""
    from rwc_keras.report import load_experiment, write_report

    experiment = load_experiment(path)
    written = write_report(experiment, {experiment.key: experiment}, claims.CLOSE_TOLERANCE)
    print(f"report on seeds {', '.join(experiment.seeds)}: {written[0]}")
    print(f"  with {', '.join(os.path.basename(name) for name in written[1:])} beside it")


def train_experiment():
    """Trains every seed of the flags' experiment, then reports on it (chief only)."""
    from rwc_keras.experiment.data.pipeline import make_datasets
    from rwc_keras.experiment.rundir import RunDir
    from rwc_keras.experiment.train import RunConfig, is_chief, run

    arch, dataset = FLAGS.arch, FLAGS.dataset
    lr = FLAGS.lr if FLAGS.lr is not None else spec.table1_lr(arch, dataset)
    weight_decay = (FLAGS.weight_decay if FLAGS.weight_decay is not None
                    else spec.architecture(arch).weight_decay)
    if FLAGS.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(FLAGS.strategy, FLAGS.cpu_devices)
    chief = is_chief(strategy)
    if chief:
        check_logdir(FLAGS.logdir)
    replicas = strategy.num_replicas_in_sync
    if FLAGS.batch_size % replicas:
        raise UsageError(f"--batch_size={FLAGS.batch_size} is not divisible by the "
                         f"{replicas} replicas of --strategy={FLAGS.strategy}")
    experiment_dir = os.path.join(FLAGS.logdir, spec.experiment_folder(arch, dataset))
    for seed in (int(s) for s in FLAGS.seeds):
        run_folder = os.path.join(experiment_dir, spec.SEED_FOLDER.format(seed=seed))
        config = RunConfig(
            arch=arch, dataset=dataset, seed=seed, epochs=FLAGS.epochs,
            batch_size=FLAGS.batch_size, lr=lr, momentum=FLAGS.momentum,
            weight_decay=weight_decay, rwc_every=FLAGS.rwc_every,
            jit_compile=jit_compile(arch, run_folder), mixed_precision=FLAGS.mixed_precision,
            freeze=FLAGS.freeze, freeze_bn=FLAGS.freeze_bn,
            freeze_rule={name: FLAGS[flag].value for flag, name in FREEZE_RULE_FLAGS.items()},
            rwc_metrics=spec.check_metrics([*spec.RWC_METRICS, *FLAGS.rwc_metrics]),
            lr_schedule=FLAGS.lr_schedule, freeze_cache_mb=FLAGS.freeze_cache_mb)
        datasets = make_datasets(dataset, FLAGS.batch_size, seed, data_dir=FLAGS.data_dir,
                                 max_train_examples=FLAGS.max_train_examples,
                                 max_test_examples=FLAGS.max_test_examples,
                                 normalize=FLAGS.normalize, shuffle=FLAGS.shuffle)
        run_dir = RunDir(run_folder, seed_flagfile(config), is_chief=chief)
        try:
            if not run_dir.claim():
                print(f"seed {seed}: {run_dir.path} is complete already; nothing to do")
                continue
            logging.info("%s on %s, seed %d, lr %g, weight decay %g, %d replica(s): %s",
                         arch, dataset, seed, lr, weight_decay, replicas, run_dir.path)
            metrics = run(config, strategy, datasets, run_dir)
        finally:
            run_dir.release()
        if chief:
            print(f"seed {seed}: test top-1 {metrics['test_top1']:.4f}, "
                  f"top-5 {metrics['test_top5']:.4f}, {metrics['images_per_second']:.0f} img/s")
            print(f"  RWC CSV:      {run_dir.file(spec.RWC_CSV)}")
            print(f"  metrics:      {run_dir.file(spec.METRICS_JSON)}")
            print(f"  TensorBoard:  tensorboard --logdir {FLAGS.logdir}")
    if chief and FLAGS.report:
        report_experiment(experiment_dir)


def main(argv):
    if len(argv) > 1:
        sys.exit(f"rwc_keras.main: error: unexpected arguments {argv[1:]}")
    from rwc_keras.experiment.data.sources import DataError, DataUnavailableError
    from rwc_keras.report import ExperimentError
    from rwc_keras.experiment.rundir import RunDirError
    from rwc_keras.experiment.train import TrainingDiverged

    # Only the errors that mean bad input or a stopped run: anything else is a bug, and its
    # traceback must show.
    try:
        train_experiment()
    except (UsageError, spec.SchemaError, DataError, DataUnavailableError, RunDirError,
            TrainingDiverged) as error:
        sys.exit(f"rwc_keras.main: error: {error}")
    except ExperimentError as error:
        # Only the report reads experiment folders, after every seed has finished.
        sys.exit(f"rwc_keras.main: error: the runs are complete, but the report failed: "
                 f"{error} (retry with python -m rwc_keras.report)")

