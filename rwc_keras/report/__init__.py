"""Reports on finished experiments: seed-averaged RWC curves, figures, the paper's claims,
layer clusters and settling points.

Usage::

    python -m rwc_keras.report EXPERIMENT_DIR [EXPERIMENT_DIR ...]

An experiment folder is ``<logdir>/<arch>_<dataset>/`` with one run folder ``seed_<seed>/``
per seed, as ``python -m rwc_keras.main`` writes it (which also reports at its end). One
module per job:

* `rwc_keras.report.experiment`: reading an experiment folder, statistics over seeds;
* `rwc_keras.report.verdicts`: the paper's claims (``rwc_keras.analysis.claims``) judged on the seed
  means and per seed;
* `rwc_keras.report.layer_dynamics`: the layers clustered by the shape of their curves, and
  when each layer and group settles (``rwc_keras.analysis.dynamics``);
* `rwc_keras.report.figures`: the per-layer RWC figures and the accuracy figure;
* `rwc_keras.report.write`: the files written into the experiment folder, report.md's text;
* ``rwc_keras/report/__main__.py``: the command line.

Example:
    experiment = load_experiment("runs/alexnet_fashion_mnist")
    write_report(experiment, {experiment.key: experiment}, tolerance=0.1)
"""

from rwc_keras.report.experiment import Experiment, ExperimentError, load_experiment
from rwc_keras.report.write import write_report

__all__ = ["Experiment", "ExperimentError", "load_experiment", "write_report"]
