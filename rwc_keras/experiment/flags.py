"""The driver's flags (`python -m rwc_keras.main`), one group per helper, and ``flags.cfg``:
the flagfile each seed's folder keeps, written by `seed_flagfile` and read by `read_flagfile`.

Nothing is defined at import: `define_flags` runs only when the driver runs, so that any
module of the package can be imported beside another command's flags.
"""

import os

from absl import flags

from rwc_keras import spec
from rwc_keras.freezing import schema

FLAGS = flags.FLAGS

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")

# The flags that define a run, in the order flags.cfg lists them.
RUN_FLAGS = ("arch", "dataset", "epochs", "seeds", "batch_size", "lr", "momentum",
             "weight_decay", "strategy", "logdir", "data_dir", "normalize", "shuffle", "rwc_every",
             "max_train_examples", "max_test_examples", "jit_compile", "mixed_precision",
             "deterministic", "cpu_devices", "freeze", "freeze_bn", "freeze_tolerance",
             "freeze_patience", "freeze_smoothing", "freeze_warmup", "freeze_cap", "rwc_metrics",
             "lr_schedule", "freeze_cache_mb")
# Run flags that flags.cfg lists only when they differ from their default, so that the runs
# made before they existed still match their flagfile. The rule's flags are listed whenever
# --freeze=rwc, so that a flags.cfg tells which rule made its run (rule v1 had other flags).
OPTIONAL_RUN_FLAGS = ("freeze", "freeze_bn", "freeze_tolerance", "freeze_patience",
                      "freeze_smoothing", "freeze_warmup", "freeze_cap", "rwc_metrics",
                      "lr_schedule", "freeze_cache_mb")
# --freeze_<name> sets the RWC freezing rule's <name>.
FREEZE_RULE_FLAGS = {f"freeze_{name}": name for name in schema.RWC_FREEZING_RULE}


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def define_flags():
    """Defines and validates the driver's flags."""
    _define_experiment_flags()
    _define_optimizer_flags()
    _define_data_flags()
    _define_compute_flags()
    _define_rwc_flags()
    _define_freezing_flags()


def _define_experiment_flags():
    flags.DEFINE_enum("arch", None, list(spec.ARCHITECTURES), "Network to train.")
    flags.DEFINE_enum("dataset", "cifar10", list(spec.DATASETS), "Dataset to train on.")
    flags.DEFINE_integer("epochs", spec.EPOCHS, "Epochs per seed.", lower_bound=1)
    flags.DEFINE_list("seeds", [str(seed) for seed in spec.SEEDS], "Seeds; one run per seed.")
    flags.DEFINE_string("logdir", "runs", "Folder the experiments are written under.")
    flags.DEFINE_bool("report", True,
                      "After the last seed, write the report (figures, report.md, "
                      "rwc_aggregated.csv) into the experiment folder; --noreport skips it.")
    flags.mark_flag_as_required("arch")
    flags.register_validator(
        "seeds", lambda seeds: bool(seeds) and all(_is_int(s) for s in seeds),
        message="--seeds must be a comma-separated list of integers, e.g. 0,42,123")


def _define_optimizer_flags():
    flags.DEFINE_integer("batch_size", spec.BATCH_SIZE,
                         "Global batch size (split across replicas).", lower_bound=1)
    flags.DEFINE_float("lr", None, "Learning rate (default: Table 1 for arch and dataset).")
    flags.DEFINE_float("momentum", spec.MOMENTUM, "SGD momentum, in [0, 1].", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_float("weight_decay", None,
                       "PyTorch-style (coupled) weight decay (default: Table 1 for arch).",
                       lower_bound=0.0)
    flags.DEFINE_enum("lr_schedule", spec.DEFAULT_LR_SCHEDULE, spec.LR_SCHEDULES,
                      "constant: Table 1's rate throughout; cosine: annealed to 0 over the run "
                      "as FreezeOut anneals its output layer (a baseline for --freeze).")
    flags.register_validator(
        "lr", lambda v: v is None or v > 0, message="--lr must be a positive number")


def _define_data_flags():
    flags.DEFINE_string("data_dir", None,
                        "Folder with the raw dataset files (IDX or CIFAR python batches) or a "
                        "TFDS data dir.")
    flags.DEFINE_enum("normalize", spec.DEFAULT_NORMALIZATION, spec.NORMALIZATIONS,
                      "Input normalisation. authors: exactly the authors' loaders (MNIST and "
                      "Fashion-MNIST unnormalised, CIFAR with ImageNet's mean and std); "
                      "dataset: each dataset's own mean and std; none: pixels in [0, 1].")
    flags.DEFINE_bool("shuffle", True,
                      "Shuffle the training set every epoch; --noshuffle feeds it in file "
                      "order, as the authors' loaders did (augmentation stays random).")
    flags.DEFINE_integer("max_train_examples", None, "Use only the first N training examples.",
                         lower_bound=1)
    flags.DEFINE_integer("max_test_examples", None, "Use only the first N test examples.",
                         lower_bound=1)


def _define_compute_flags():
    flags.DEFINE_enum("strategy", "auto", STRATEGIES,
                      "auto: mirrored when more than one GPU is visible, else default; "
                      "multi_worker reads TF_CONFIG.")
    flags.DEFINE_bool("jit_compile", None,
                      "XLA-compile the forward and backward pass. Default: as the run being "
                      "resumed began; else on for the models XLA trains faster "
                      "(rwc_keras.spec.Architecture.xla), and off with --deterministic.")
    flags.DEFINE_bool("mixed_precision", False,
                      "Compute in bfloat16 with float32 variables (Keras 'mixed_bfloat16').")
    flags.DEFINE_bool("deterministic", False,
                      "Deterministic TensorFlow ops: runs with one seed repeat bit for bit, and "
                      "a resumed run equals an uninterrupted one (slower on GPUs).")
    flags.DEFINE_integer("cpu_devices", 1,
                         "Split the CPU into N logical devices, to run MirroredStrategy "
                         "without GPUs (testing).", lower_bound=1)
    # XLA refuses deterministic mode for the models' MaxPool gradients (checked with TF 2.21).
    flags.register_multi_flags_validator(
        ["jit_compile", "deterministic"],
        lambda f: not (f["jit_compile"] and f["deterministic"]),
        message="--jit_compile cannot be combined with --deterministic: XLA has no "
                "deterministic MaxPool gradient; drop one of them")


def _define_rwc_flags():
    flags.DEFINE_string("rwc_every", "epoch",
                        "Measure RWC every 'epoch' or every N optimizer steps.")
    flags.DEFINE_list("rwc_metrics", list(spec.RWC_METRICS),
                      "What RWCCallback records per layer: rwc and rwc_norm always, plus any "
                      f"of {', '.join(m for m in spec.METRICS if m not in spec.RWC_METRICS)} "
                      "(README, the callback's metrics).")
    flags.register_validator(
        "rwc_every", lambda v: v == "epoch" or (_is_int(v) and int(v) > 0),
        message="--rwc_every must be 'epoch' or a positive number of steps")
    flags.register_validator(
        "rwc_metrics", lambda names: bool(names) and set(names) <= set(spec.METRICS),
        message=f"--rwc_metrics must be a comma-separated list of {','.join(spec.METRICS)}")


def _define_freezing_flags():
    flags.DEFINE_enum("freeze", schema.DEFAULT_FREEZE, schema.FREEZE_MODES,
                      "Layer freezing: none; rwc: freeze the leading layer groups whose RWC "
                      "has levelled off (rwc_keras.RWCFreezing, rule v2); freezeout: "
                      "FreezeOut's schedule, which also replaces the constant learning rate "
                      "with per-layer cosine annealing (rwc_keras.FreezeOut); linear: single "
                      "leading layers on a linear schedule from half of training, like "
                      "Composer's LayerFreezing (rwc_keras.LinearFreezing).")
    flags.DEFINE_enum("freeze_bn", schema.DEFAULT_FREEZE_BATCHNORM, schema.FREEZE_BATCHNORM,
                      "How frozen BatchNormalization layers normalise: batch: with the "
                      "batch's statistics, as before they froze; inference: with their moving "
                      "statistics (Keras's trainable=False).")
    flags.DEFINE_integer("freeze_cache_mb", schema.DEFAULT_FREEZE_CACHE_MB,
                         "Host memory (MiB) the outputs of a frozen leading prefix may take "
                         "when cached (a fixed function of the input: --freeze_bn=inference, "
                         "or no BatchNormalization); 0 never caches.", lower_bound=0)
    _define_freezing_rule_flags()
    # Freezing is decided by the chief's callbacks, which other hosts do not run.
    flags.register_multi_flags_validator(
        ["freeze", "strategy"],
        lambda f: f["freeze"] == schema.DEFAULT_FREEZE or f["strategy"] != "multi_worker",
        message="--freeze runs on one host: it cannot be combined with --strategy=multi_worker")
    # FreezeOut sets every layer's rate itself.
    flags.register_multi_flags_validator(
        ["freeze", "lr_schedule"],
        lambda f: f["freeze"] != "freezeout" or f["lr_schedule"] == spec.DEFAULT_LR_SCHEDULE,
        message="--freeze=freezeout anneals each layer's rate itself: it cannot be combined "
                "with --lr_schedule=cosine")


def _define_freezing_rule_flags():
    rule = schema.RWC_FREEZING_RULE
    flags.DEFINE_float("freeze_tolerance", rule["tolerance"],
                       "--freeze=rwc: a group freezes when the relative change of its smoothed "
                       "rwc_norm between two measurements stays below this ...")
    flags.DEFINE_integer("freeze_patience", rule["patience"],
                         "... for this many consecutive measurements ...", lower_bound=1)
    flags.DEFINE_float("freeze_smoothing", rule["smoothing"],
                       "... smoothed by an exponential moving average with this weight on "
                       "the old value, in [0, 1) ...", lower_bound=0.0)
    flags.DEFINE_float("freeze_warmup", rule["warmup"],
                       "... once this fraction of training has passed, in [0, 1) ...",
                       lower_bound=0.0)
    flags.DEFINE_float("freeze_cap", rule["cap"],
                       "... while at most this fraction of the groups is frozen, in (0, 1] "
                       "(docs/freezing.md).", upper_bound=1.0)
    for name in ("freeze_smoothing", "freeze_warmup"):
        flags.register_validator(name, lambda v: v < 1, message=f"--{name} must be below 1")
    for name in ("freeze_tolerance", "freeze_cap"):
        flags.register_validator(name, lambda v: v > 0,
                                 message=f"--{name} must be a positive number")
    flags.register_multi_flags_validator(
        ["freeze", *FREEZE_RULE_FLAGS],
        lambda f: f["freeze"] == "rwc" or all(
            f[flag] == schema.RWC_FREEZING_RULE[name] for flag, name in FREEZE_RULE_FLAGS.items()),
        message=f"--{', --'.join(FREEZE_RULE_FLAGS)} set the rule of --freeze=rwc: give "
                "--freeze=rwc with them")


def _bool_line(name, value):
    """A boolean flag's line as absl writes it (``--name`` or ``--noname``)."""
    return f"--{'' if value else 'no'}{name}"


def jit_compile(arch, run_folder):
    """``--jit_compile`` resolved for a run of ``arch`` in ``run_folder``.

    As given; else as the run in ``run_folder`` began (its flags.cfg says), so that a run
    started under another default resumes unchanged; else the model's default
    (`rwc_keras.spec.Architecture.xla`), but off with ``--deterministic``, which XLA refuses
    (no deterministic MaxPool gradient in TensorFlow 2.21).
    """
    if FLAGS.jit_compile is not None:
        return FLAGS.jit_compile
    try:
        with open(os.path.join(run_folder, spec.FLAGS_CFG)) as f:
            recorded = f.read().splitlines()
    except FileNotFoundError:
        recorded = []
    for value in (True, False):
        if _bool_line("jit_compile", value) in recorded:
            return value
    return spec.architecture(arch).xla and not FLAGS.deterministic


def seed_flagfile(config):
    """This seed's flags, defaults resolved, as a flagfile that re-runs it: one
    ``--name=value`` line per flag of `RUN_FLAGS` (see `read_flagfile`)."""
    resolved = {"seeds": f"--seeds={config.seed}", "lr": f"--lr={config.lr}",
                "weight_decay": f"--weight_decay={config.weight_decay}",
                "jit_compile": _bool_line("jit_compile", config.jit_compile)}
    lines = []
    for name in RUN_FLAGS:
        if name in resolved:
            lines.append(resolved[name])
        elif name in FREEZE_RULE_FLAGS and FLAGS["freeze"].value == "rwc":
            lines.append(FLAGS[name].serialize())
        elif name in OPTIONAL_RUN_FLAGS and FLAGS[name].value == FLAGS[name].default:
            continue
        elif FLAGS[name].value is not None:
            lines.append(FLAGS[name].serialize())
    return "\n".join(lines) + "\n"


def read_flagfile(text):
    """The flags a ``flags.cfg`` written by `seed_flagfile` sets, as ``{name: value text}``
    (the flags it leaves out are at their defaults)."""
    values = {}
    for line in text.splitlines():
        if line.startswith("--") and "=" in line:
            name, value = line[2:].split("=", 1)
            values[name] = value
    return values
