"""Sweeps: families × models × a hyperparameter grid × seeds, one run dir per trial, one log tree.

    sweep = Sweep(config.for_dataset("mnist1d"), families=("regularizers",), models=("l2",),
                  grid=parse_grid(["l2=1e-4,1e-3", "dropout=0.2,0.5"]), seeds=(0, 1))
    with LocalPool(jobs=2) as pool:          # or RayPool(address=None, jobs=2)
        result = run_sweep(sweep, "runs/sweep", pool)

Layout: `<logdir>/<family>/<trial>`, the trial named `<model>` plus `,<name>=<value>` per grid axis
(`l2,l2=0.0001,dropout=0.2`); with seeds, `<trial>/seed_<k>` and the aggregate `<trial>/mean`, as
`--seeds` writes them. Each run.json carries `sweep.key`, a digest of everything that decides the
trial's numbers, so a re-run of the same sweep knows its finished trials and skips them.

The driver (`run_sweep`) hands trials to a pool — in this process (`SerialPool`), worker processes
(`LocalPool`) or Ray tasks on a cluster (`RayPool`); each calls `run_trial`. A trial whose attempt
fails (the training raised, or its worker died) is retried up to `retries` times and never stops the
others; every trial saves its training state every `config.checkpoint_secs`, so a retry — or a
re-run after an interrupt — continues from the last save (tbreg.resume sets aside what the dead
attempt wrote after it). Attempts and errors are recorded in the run's run.json (`sweep.errors`) and
in `<logdir>/sweep.json`. The HParams experiment config (tbreg.hparams) is written at the log tree's root at the start and
end of each sweep.

A family run (`train_family`, the tbreg-train-* scripts) is a sweep with an empty grid,
planned by `plan_family` (run dirs claimed as --if_exists says, or --resume's) and driven by the
same driver (`train_family`), without retries.

Modules: grid (what a grid may vary), plan (trials), worker (one attempt), pools, driver.
"""

from tbreg._quiet import tensorflow as _tf  # noqa: F401, I001  first: spawned workers import TensorFlow quietly

from tbreg.errors import UserError
from tbreg.sweep.grid import GRID, parse_axis, parse_grid
from tbreg.sweep.plan import MAX_TRIALS, Sweep, Trial, check_size, count_trials, expand, plan_family, trial_key
from tbreg.sweep.worker import run_trial
from tbreg.sweep.pools import LocalPool, RayPool, SerialPool, WorkerLost
from tbreg.sweep.driver import (
    SWEEP_JSON,
    Progress,
    SweepResult,
    TrialResult,
    drive,
    train_family,
    run_sweep,
)

__all__ = [
    "GRID",
    "MAX_TRIALS",
    "SWEEP_JSON",
    "LocalPool",
    "Progress",
    "RayPool",
    "SerialPool",
    "Sweep",
    "SweepResult",
    "Trial",
    "TrialResult",
    "UserError",
    "WorkerLost",
    "check_size",
    "count_trials",
    "drive",
    "expand",
    "parse_axis",
    "parse_grid",
    "plan_family",
    "run_sweep",
    "run_trial",
    "train_family",
    "trial_key",
]
