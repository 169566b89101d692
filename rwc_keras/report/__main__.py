"""``python -m rwc_keras.report EXPERIMENT_DIR [EXPERIMENT_DIR ...]``: report files for each.

Into every experiment folder it writes ``rwc_aggregated.csv``, ``rwc_layers.png``,
``rwc_norm_layers.png``, ``accuracy.png`` and ``report.md`` (see `rwc_keras.report.write`),
and prints each one's claims table for ``rwc``. Several experiments of one architecture on one
command line also judge the claims that compare datasets (VGG-19-BN CIFAR-100 against
CIFAR-10, MNIST against Fashion-MNIST). A folder it cannot read is one line on stderr and exit
status 1; the other folders are still reported on.

Example:
  python -m rwc_keras.report runs/resnet18_mnist runs/resnet18_fashion_mnist
"""

import sys

from absl import app, flags

from rwc_keras import claims
from rwc_keras.report import figures, verdicts, write
from rwc_keras.report.experiment import ExperimentError, load_experiment

FLAGS = flags.FLAGS


def define_flags():
    """Defines the command's flags; called only when it runs, so importing defines none."""
    flags.DEFINE_float(
        "close_tolerance", claims.CLOSE_TOLERANCE,
        "Relative difference (of the larger value) up to which two group means count as "
        "'about equal' / 'close' in the paper's claims.", lower_bound=0.0)


def main(argv):
    """Reports on every experiment folder in ``argv[1:]``; exit status 1 if any is unreadable."""
    if len(argv) < 2:
        raise app.UsageError("give at least one EXPERIMENT_DIR")
    experiments, failed = [], False
    for path in argv[1:]:
        try:
            experiments.append(load_experiment(path))
        except ExperimentError as error:
            print(f"rwc_keras.report: {error}", file=sys.stderr)
            failed = True
    by_key = {experiment.key: experiment for experiment in experiments}
    for experiment in experiments:
        report_md = write.write_report(experiment, by_key, FLAGS.close_tolerance)[0]
        judgements = verdicts.judge_all(experiment, by_key, "rwc", FLAGS.close_tolerance)
        print(f"{experiment.path}: {experiment.title}, "
              f"{figures.count(len(experiment.seeds), 'seed')}, "
              f"{figures.count(experiment.epochs, 'epoch')} -> {report_md}\n"
              f"{write.claims_table(judgements)}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
