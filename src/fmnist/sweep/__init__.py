"""Hyperparameter search on the held-out split (never the test set): `fmnist sweep`.

space (the parameters and their ranges), study (Optuna: TPE sampler, median pruner on the per-epoch held-out
accuracy, a resumable SQLite study; trials in this process, in N processes, or as Ray tasks), report (the trials
table, the best settings as an `fmnist train` command, the plot).
"""

from fmnist.sweep.space import Param, parse_param
from fmnist.sweep.study import SweepConfig, run_sweep, sweep_dir

__all__ = ["Param", "SweepConfig", "parse_param", "run_sweep", "sweep_dir"]
