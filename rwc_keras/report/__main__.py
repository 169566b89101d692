"""``python -m rwc_keras.report EXPERIMENT_DIR [EXPERIMENT_DIR ...]``: report files for each.

Into every experiment folder it writes ``rwc_aggregated.csv``, ``rwc_layers.png``,
``rwc_norm_layers.png``, ``accuracy.png``, the layer clusters' ``clusters.png``,
``clusters_pca.png`` and ``clusters_k.png``, and ``report.md`` (see
`rwc_keras.report.write`), and prints each one's claims table for ``rwc``, its clusters and
the order its groups settle in. Several experiments of one architecture on one command line
also judge the claims that compare datasets (VGG-19-BN CIFAR-100 against CIFAR-10, MNIST
against Fashion-MNIST). A folder it cannot read is one line on stderr and exit status 1; the
other folders are still reported on. So is a ``--cluster=K`` an experiment's layers cannot be
split into (its report is written, saying why it has no clusters).

Example:
  python -m rwc_keras.report runs/resnet18_mnist runs/resnet18_fashion_mnist
  python -m rwc_keras.report --cluster=3 --cluster_metric=rwc --authors_outliers \
      --drop_ends runs/alexnet_fashion_mnist
"""

import sys

from absl import app, flags

from rwc_keras import spec
from rwc_keras.analysis import claims
from rwc_keras.report import figures, layer_dynamics, verdicts, write
from rwc_keras.report.experiment import ExperimentError, load_experiment

FLAGS = flags.FLAGS


def define_flags():
    """Defines the command's flags; called only when it runs, so importing defines none."""
    flags.DEFINE_float(
        "close_tolerance", claims.CLOSE_TOLERANCE,
        "Relative difference (of the larger value) up to which two group means count as "
        "'about equal' / 'close' in the paper's claims.", lower_bound=0.0)
    flags.DEFINE_integer(
        "cluster", None,
        "K, the number of clusters of layers; by default the K of the best silhouette score.",
        lower_bound=2)
    flags.DEFINE_enum(
        "cluster_metric", layer_dynamics.CLUSTER_METRIC, spec.RWC_METRICS,
        "The curves the layers are clustered by: rwc_norm moves smoothly; rwc (what the "
        "paper plots) can jump by orders of magnitude when a few weights pass near zero.")
    flags.DEFINE_bool(
        "authors_outliers", False,
        "Before clustering, replace values further than 2 std from their layer's mean by "
        "that mean, as the authors' clustering notebook did.")
    flags.DEFINE_bool(
        "drop_ends", False,
        "Leave the first and the last layer out of the clusters, as the authors' clustering "
        "notebook did.")


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
    options = layer_dynamics.ClusterOptions(
        k=FLAGS.cluster, metric=FLAGS.cluster_metric, authors_outliers=FLAGS.authors_outliers,
        drop_ends=FLAGS.drop_ends)
    for experiment in experiments:
        clusters = layer_dynamics.cluster_experiment(experiment, options)
        if options.k is not None and clusters.clustering is None:
            print(f"rwc_keras.report: {experiment.path}: --cluster={options.k}: "
                  f"{clusters.problem}", file=sys.stderr)
            failed = True
        report_md = write.write_report(experiment, by_key, FLAGS.close_tolerance, clusters)[0]
        judgements = verdicts.judge_all(experiment, by_key, "rwc", FLAGS.close_tolerance)
        settling = layer_dynamics.settle_experiment(experiment)
        print(f"{experiment.path}: {experiment.title}, "
              f"{figures.count(len(experiment.seeds), 'seed')}, "
              f"{figures.count(experiment.epochs, 'epoch')} -> {report_md}\n"
              f"{write.claims_table(judgements)}\n"
              f"{layer_dynamics.cluster_summary(clusters)}\n"
              f"{layer_dynamics.settling_order(experiment, settling)}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
