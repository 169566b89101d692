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

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")

# The flags that define a run, in the order flags.cfg lists them.
RUN_FLAGS = ("arch", "dataset", "epochs", "seeds", "batch_size", "lr", "momentum",
             "weight_decay", "strategy", "logdir", "data_dir", "normalize", "shuffle", "rwc_every",
             "max_train_examples", "max_test_examples", "jit_compile", "mixed_precision",
             "deterministic", "cpu_devices", "freeze", "freeze_bn", "freeze_threshold",
             "freeze_patience", "freeze_smoothing", "freeze_warmup", "rwc_metrics")
# Run flags that flags.cfg lists only when they differ from their default, so that the runs
# made before they existed still match their flagfile.
OPTIONAL_RUN_FLAGS = ("freeze", "freeze_bn", "freeze_threshold", "freeze_patience",
                      "freeze_smoothing", "freeze_warmup", "rwc_metrics")
# --freeze_<name> sets the RWC freezing rule's <name>.
FREEZE_RULE_FLAGS = {f"freeze_{name}": name for name in spec.RWC_FREEZING_RULE}


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def define_flags():
    """Defines and validates the driver's flags; called only when it runs, so that importing
    this module (with ``rwc_keras.benchmarks.bench``, say) defines none."""
    flags.DEFINE_enum("arch", None, list(spec.ARCHITECTURES), "Network to train.")
    flags.DEFINE_enum("dataset", "cifar10", list(spec.DATASETS), "Dataset to train on.")
    flags.DEFINE_integer("epochs", spec.EPOCHS, "Epochs per seed.", lower_bound=1)
    flags.DEFINE_list("seeds", [str(seed) for seed in spec.SEEDS], "Seeds; one run per seed.")
    flags.DEFINE_integer("batch_size", spec.BATCH_SIZE,
                         "Global batch size (split across replicas).", lower_bound=1)
    flags.DEFINE_float("lr", None, "Learning rate (default: Table 1 for arch and dataset).")
    flags.DEFINE_float("momentum", spec.MOMENTUM, "SGD momentum, in [0, 1].", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_float("weight_decay", None,
                       "PyTorch-style (coupled) weight decay (default: Table 1 for arch).",
                       lower_bound=0.0)
    flags.DEFINE_enum("strategy", "auto", STRATEGIES,
                      "auto: mirrored when more than one GPU is visible, else default; "
                      "multi_worker reads TF_CONFIG.")
    flags.DEFINE_string("logdir", "runs", "Folder the experiments are written under.")
    flags.DEFINE_string("data_dir", None,
                        "Folder with the raw dataset files (IDX or CIFAR python batches) or a "
                        "TFDS data dir.")
    flags.DEFINE_enum("normalize", "authors", spec.NORMALIZATIONS,
                      "Input normalisation. authors: exactly the authors' loaders (MNIST and "
                      "Fashion-MNIST unnormalised, CIFAR with ImageNet's mean and std); "
                      "dataset: each dataset's own mean and std; none: pixels in [0, 1].")
    flags.DEFINE_bool("shuffle", True,
                      "Shuffle the training set every epoch; --noshuffle feeds it in file "
                      "order, as the authors' loaders did (augmentation stays random).")
    flags.DEFINE_string("rwc_every", "epoch",
                        "Measure RWC every 'epoch' or every N optimizer steps.")
    flags.DEFINE_integer("max_train_examples", None, "Use only the first N training examples.",
                         lower_bound=1)
    flags.DEFINE_integer("max_test_examples", None, "Use only the first N test examples.",
                         lower_bound=1)
    flags.DEFINE_bool("jit_compile", False, "XLA-compile the forward and backward pass.")
    flags.DEFINE_bool("mixed_precision", False,
                      "Compute in bfloat16 with float32 variables (Keras 'mixed_bfloat16').")
    flags.DEFINE_bool("deterministic", False,
                      "Deterministic TensorFlow ops: runs with one seed repeat bit for bit, and "
                      "a resumed run equals an uninterrupted one (slower on GPUs).")
    flags.DEFINE_integer("cpu_devices", 1,
                         "Split the CPU into N logical devices, to run MirroredStrategy "
                         "without GPUs (testing).", lower_bound=1)
    flags.DEFINE_enum("freeze", "none", spec.FREEZE_MODES,
                      "Layer freezing: none; rwc: freeze the leading layer groups whose "
                      "smoothed RWC has fallen off its peak (rwc_keras.RWCFreezing, default "
                      "rule); freezeout: FreezeOut's schedule, which also replaces the "
                      "constant learning rate with per-layer cosine annealing "
                      "(rwc_keras.FreezeOut).")
    flags.DEFINE_enum("freeze_bn", "batch", spec.FREEZE_BATCHNORM,
                      "How frozen BatchNormalization layers normalise: batch: with the "
                      "batch's statistics, as before they froze; inference: with their moving "
                      "statistics (Keras's trainable=False).")
    rule = spec.RWC_FREEZING_RULE
    flags.DEFINE_float("freeze_threshold", rule["threshold"],
                       "--freeze=rwc: a group freezes when its smoothed rwc_norm is below this "
                       "fraction of its peak ...")
    flags.DEFINE_integer("freeze_patience", rule["patience"],
                         "... for this many consecutive measurements ...", lower_bound=1)
    flags.DEFINE_float("freeze_smoothing", rule["smoothing"],
                       "... smoothed by an exponential moving average with this weight on "
                       "the old value, in [0, 1) ...", lower_bound=0.0)
    flags.DEFINE_float("freeze_warmup", rule["warmup"],
                       "... once this fraction of training has passed, in [0, 1) "
                       "(docs/freezing.md).", lower_bound=0.0)
    flags.DEFINE_list("rwc_metrics", list(spec.RWC_METRICS),
                      "What RWCCallback records per layer: rwc and rwc_norm always, plus any "
                      f"of {', '.join(m for m in spec.METRICS if m not in spec.RWC_METRICS)} "
                      "(README, the callback's metrics).")
    flags.DEFINE_bool("report", True,
                      "After the last seed, write the report (figures, report.md, "
                      "rwc_aggregated.csv) into the experiment folder; --noreport skips it.")
    flags.mark_flag_as_required("arch")
    flags.register_validator(
        "seeds", lambda seeds: bool(seeds) and all(_is_int(s) for s in seeds),
        message="--seeds must be a comma-separated list of integers, e.g. 0,42,123")
    flags.register_validator(
        "rwc_every", lambda v: v == "epoch" or (_is_int(v) and int(v) > 0),
        message="--rwc_every must be 'epoch' or a positive number of steps")
    flags.register_validator(
        "lr", lambda v: v is None or v > 0, message="--lr must be a positive number")
    flags.register_validator(
        "rwc_metrics", lambda names: bool(names) and set(names) <= set(spec.METRICS),
        message=f"--rwc_metrics must be a comma-separated list of {','.join(spec.METRICS)}")
    for name in ("freeze_smoothing", "freeze_warmup"):
        flags.register_validator(name, lambda v: v < 1, message=f"--{name} must be below 1")
    flags.register_validator("freeze_threshold", lambda v: v > 0,
                             message="--freeze_threshold must be a positive number")
    flags.register_multi_flags_validator(
        ["freeze", *FREEZE_RULE_FLAGS],
        lambda f: f["freeze"] == "rwc" or all(
            f[flag] == spec.RWC_FREEZING_RULE[name] for flag, name in FREEZE_RULE_FLAGS.items()),
        message=f"--{', --'.join(FREEZE_RULE_FLAGS)} set the rule of --freeze=rwc: give "
                "--freeze=rwc with them")
    # Freezing is decided by the chief's callbacks, which other hosts do not run.
    flags.register_multi_flags_validator(
        ["freeze", "strategy"],
        lambda f: f["freeze"] == "none" or f["strategy"] != "multi_worker",
        message="--freeze runs on one host: it cannot be combined with --strategy=multi_worker")
    # XLA refuses deterministic mode for the models' MaxPool gradients (checked with TF 2.21).
    flags.register_multi_flags_validator(
        ["jit_compile", "deterministic"],
        lambda f: not (f["jit_compile"] and f["deterministic"]),
        message="--jit_compile cannot be combined with --deterministic: XLA has no "
                "deterministic MaxPool gradient; drop one of them")


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


def seed_flagfile(config):
    """This seed's flags, defaults resolved, as a flagfile that re-runs it."""
    resolved = {"seeds": config.seed, "lr": config.lr, "weight_decay": config.weight_decay}
    lines = []
    for name in RUN_FLAGS:
        if name in resolved:
            lines.append(f"--{name}={resolved[name]}")
        elif name in OPTIONAL_RUN_FLAGS and FLAGS[name].value == FLAGS[name].default:
            continue
        elif FLAGS[name].value is not None:
            lines.append(FLAGS[name].serialize())
    return "\n".join(lines) + "\n"


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
        config = RunConfig(
            arch=arch, dataset=dataset, seed=seed, epochs=FLAGS.epochs,
            batch_size=FLAGS.batch_size, lr=lr, momentum=FLAGS.momentum,
            weight_decay=weight_decay, rwc_every=FLAGS.rwc_every,
            jit_compile=FLAGS.jit_compile, mixed_precision=FLAGS.mixed_precision,
            freeze=FLAGS.freeze, freeze_bn=FLAGS.freeze_bn,
            freeze_rule={name: FLAGS[flag].value for flag, name in FREEZE_RULE_FLAGS.items()},
            rwc_metrics=spec.check_metrics([*spec.RWC_METRICS, *FLAGS.rwc_metrics]))
        datasets = make_datasets(dataset, FLAGS.batch_size, seed, data_dir=FLAGS.data_dir,
                                 max_train_examples=FLAGS.max_train_examples,
                                 max_test_examples=FLAGS.max_test_examples,
                                 normalize=FLAGS.normalize, shuffle=FLAGS.shuffle)
        run_dir = RunDir(os.path.join(experiment_dir, spec.SEED_FOLDER.format(seed=seed)),
                         seed_flagfile(config), is_chief=chief)
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

