"""Planning: a sweep's trials (families × models × grid × seeds) and a family run's trials.

A trial is one training into one run dir. A sweep places its trials by name and knows its finished
ones by key (`trial_key`); a family run (`plan_family`, what `tbreg-train-*` and
`train_family` train) is a sweep with an empty grid whose run dirs are claimed as
`--if_exists` says, or, with `resume`, its models' newest interrupted runs.
"""

import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
from typing import Callable

from tbreg import aggregate, families, logtree, models, resume
from tbreg.config import TrainConfig
from tbreg.errors import UserError
from tbreg.status import FINISHED, Status
from tbreg.sweep.grid import GRID, _format


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What to train: `families` (of `config.dataset`), their `models` (empty: all) × `grid` × `seeds`."""

    config: TrainConfig
    families: tuple[str, ...] = ("sizes",)
    models: tuple[str, ...] = ()
    grid: tuple[tuple[str, tuple], ...] = ()
    seeds: tuple[int, ...] = ()  # empty: one run per trial, seed config.seed, no seed_<k> dirs
    callbacks: dict = dataclasses.field(default_factory=dict)  # tbreg.callbacks.make options (no train_data)
    max_trials: int = 10_000  # MAX_TRIALS: a larger sweep is refused before it is planned


@dataclasses.dataclass(frozen=True)
class Trial:
    family: str
    name: str  # below the family dir: `large`, `large,l2=0.0001`, `large.2`
    seed: int | None  # None: the sweep has no seeds
    spec: models.ModelSpec
    config: TrainConfig
    run_dir: str
    grid: dict
    callbacks: dict
    key: str | None  # None: a family run's trial (no `sweep` record in its run.json)
    # A family run's: its data (None: the worker loads config's), `callbacks_for(run_dir)` (None:
    # tbreg.callbacks.make(**callbacks)) and what run.json gets besides (e.g. the script's flags).
    data: object = dataclasses.field(default=None, repr=False, compare=False)
    callbacks_for: Callable | None = dataclasses.field(default=None, repr=False, compare=False)
    extra: dict | None = dataclasses.field(default=None, compare=False)

    @property
    def label(self) -> str:
        return f"{self.family}/{self.name}" + ("" if self.seed is None else f"/{aggregate.seed_dir(self.seed)}")

    @property
    def group_dir(self) -> str | None:
        """The dir of the trial's seed runs and their `mean`; None without seeds."""
        return None if self.seed is None else os.path.dirname(self.run_dir)


def trial_key(family: str, spec, config: TrainConfig, callbacks: dict) -> str:
    """A digest of what decides a trial's numbers (not where its data is cached, nor verbosity)."""
    decided = {
        "family": family,
        "spec": dataclasses.asdict(spec),
        "config": {
            k: v
            for k, v in dataclasses.asdict(config).items()
            if k not in ("cache_dir", "verbose", "checkpoint_secs", "epochs_per_call")
            and not (k == "dtype_policy" and v == "float32")
        },  # the keys of sweeps from before it
        "callbacks": {k: list(v) if isinstance(v, tuple) else v for k, v in callbacks.items()},
    }
    return hashlib.sha256(json.dumps(decided, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _select(sweep: Sweep) -> list[tuple[str, list]]:
    """(family, specs) per family; `sweep.models` may name models of any of the families."""
    chosen = []
    for name in sweep.families:
        family = families.get(name, sweep.config.dataset)
        specs = [m for m in family.models if not sweep.models or m.name in sweep.models]
        chosen.append((name, family, specs))
    known = {m.name for _, family, _ in chosen for m in family.models}
    unknown = [m for m in sweep.models if m not in known]
    if unknown:
        raise UserError(
            f"--models: {', '.join(unknown)} not in {', '.join(sweep.families)} on {sweep.config.dataset}; "
            f"choose from {', '.join(sorted(known))}"
        )
    empty = [name for name, _, specs in chosen if not specs]
    if empty:
        raise UserError(f"--models: none of them is in family {', '.join(empty)}; drop that family or add its models")
    return [(name, specs) for name, _, specs in chosen]


MAX_TRIALS = Sweep.max_trials


def count_trials(sweep: Sweep) -> int:
    """How many trials `sweep` has (models × grid points × seeds), without planning them."""
    points = math.prod(len(values) for _, values in sweep.grid)
    return sum(len(specs) for _, specs in _select(sweep)) * points * max(1, len(sweep.seeds))


def check_size(sweep: Sweep, trials: int | None = None) -> None:
    """A one-line UserError when `sweep` has more than `sweep.max_trials` trials."""
    trials = count_trials(sweep) if trials is None else trials
    if trials > sweep.max_trials:
        raise UserError(
            f"the sweep has {trials:,} trials, more than --max_trials={sweep.max_trials:,}; use fewer grid values, "
            f"models or seeds, or pass --max_trials={trials} if you mean it"
        )


def expand(sweep: Sweep, logdir: str) -> list[Trial]:
    """Every trial of `sweep`, in order: family, model, grid point (first axis slowest), seed.

    More than `sweep.max_trials` trials is a UserError before any is planned (see check_size).
    """
    check_size(sweep)
    config = dataclasses.replace(sweep.config, verbose=0, engine="fast")
    names = [name for name, _ in sweep.grid]
    trials = []
    for family, specs in _select(sweep):
        for spec in specs:
            for point in itertools.product(*(values for _, values in sweep.grid)):
                grid = dict(zip(names, point))
                spec_changes = {k: v for k, v in grid.items() if GRID[k][0] == "spec"}
                if "dropout" in spec_changes and spec.dropout_before_output:  # the paper's model: one Dropout
                    spec_changes["dropout_before_output"] = spec_changes.pop("dropout")
                trial_spec = dataclasses.replace(spec, **spec_changes)
                trial_config = dataclasses.replace(config, **{k: v for k, v in grid.items() if GRID[k][0] == "config"})
                name = ",".join([spec.name, *(f"{k}={_format(v)}" for k, v in grid.items())])
                group = os.path.join(logdir, family, name)
                for seed in sweep.seeds or (None,):
                    seeded = trial_config if seed is None else dataclasses.replace(trial_config, seed=seed)
                    run_dir = group if seed is None else os.path.join(group, aggregate.seed_dir(seed))
                    trials.append(
                        Trial(
                            family,
                            name,
                            seed,
                            trial_spec,
                            seeded,
                            run_dir,
                            grid,
                            dict(sweep.callbacks),
                            trial_key(family, trial_spec, seeded, sweep.callbacks),
                        )
                    )
    return trials


def no_callbacks(run_dir: str) -> list:
    """A family run's `callbacks_for` when it asks for none (a function: it pickles for --jobs)."""
    return []


def plan_family(
    family: str,
    specs,
    config: TrainConfig,
    logdir: str,
    if_exists: str = "new",
    seeds=None,
    resume_runs: bool = False,
    data=None,
    callbacks_for=None,
    extra=None,
) -> tuple[list[Trial], dict]:
    """A family run's trials, one per spec (or per spec and seed), and {run_dir: run.json} of those
    that need no training (finished runs `resume_runs` skips).

    Run dirs are claimed now (`<logdir>/<family>/<model>`, see logtree.claim_run_dir for
    `if_exists`; with `seeds`, `<model>/seed_<k>` below it). `resume_runs` takes each spec's
    newest run instead: skipped if it finished, continued if it has a save, else a new run dir.
    """
    if resume_runs:
        return _plan_resume(family, specs, config, logdir, if_exists, seeds, data, callbacks_for, extra)
    callbacks_for = callbacks_for or no_callbacks
    trials = []
    for spec in specs:
        run_dir = logtree.claim_run_dir(logdir, family, spec.name, if_exists)
        name = os.path.basename(run_dir)
        for seed in seeds or (None,):
            seeded = config if seed is None else dataclasses.replace(config, seed=seed)
            at = run_dir if seed is None else logtree.claim_run_dir(run_dir, "", aggregate.seed_dir(seed))
            trials.append(Trial(family, name, seed, spec, seeded, at, {}, {}, None, data, callbacks_for, extra))
    return trials, {}


def _plan_resume(family, specs, config, logdir, if_exists, seeds, data, callbacks_for, extra):
    if seeds:
        raise UserError("--resume does not work with --seeds yet; resume without --seeds or start anew")
    family_dir = os.path.join(logdir, family)
    newest = {}  # spec name -> (its newest run dir or None, that run's record, the epoch its save ends with)
    for spec in specs:  # a live training or a damaged save is a UserError before anything is trained
        runs = logtree.runs_of(family_dir, spec.name)
        run = runs[-1] if runs else None
        record = (logtree.read_run_json(run) or {}) if run else {}
        finished = record.get("status") in FINISHED
        if run and finished:
            logtree.check_unlocked(run)
        newest[spec.name] = (run, record, None if finished or not run else resume.preflight(run))
    trials, earlier = [], {}
    for spec in specs:
        run, record, after = newest[spec.name]
        label = f"{family}/{os.path.basename(run or spec.name)}"
        if record.get("status") in FINISHED:
            epochs = f" after {record['epochs']} epochs" if "epochs" in record else ""
            print(f"{label}: already {record['status']}{epochs}; skipped", file=sys.stderr)
            run_dir, earlier[run] = run, record
        elif after is not None:
            status = record.get("status")
            how = "" if status == Status.INTERRUPTED else f" (its training stopped while {status})" if status else ""
            print(f"{label}: resuming after epoch {after}{how}", file=sys.stderr)
            run_dir = run
        else:
            run_dir = logtree.claim_run_dir(logdir, family, spec.name, if_exists)
            print(f"{family}/{spec.name}: nothing to resume; training {run_dir}", file=sys.stderr)
        trials.append(
            Trial(
                family,
                os.path.basename(run_dir),
                None,
                spec,
                config,
                run_dir,
                {},
                {},
                None,
                data,
                callbacks_for or no_callbacks,
                extra,
            )
        )
    return trials, earlier
