"""The driver: hands a plan's trials to a pool, retries failed attempts, reports progress, stops
cleanly on an interrupt and writes the `mean` runs; `run_sweep` and `train_family` are its two plans."""

import collections
import dataclasses
import datetime
import json
import os
import sys
import time
from typing import Callable

from tbreg._quiet import tensorflow as tf  # noqa: I001

from tbreg import aggregate, hparams, logtree, resume, stacked, training
from tbreg.errors import UserError, first_line
from tbreg.progress import duration
from tbreg.status import FINISHED, Status, TrialState
from tbreg.sweep.plan import Sweep, Trial, expand, no_callbacks, plan_family
from tbreg.sweep.pools import LocalPool, SerialPool, WorkerLost

SWEEP_JSON = "sweep.json"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclasses.dataclass
class TrialResult:
    trial: Trial
    status: str  # a Status (completed, early_stopped, diverged, failed, interrupted) or a TrialState
    attempts: int = 0
    epochs: int = 0
    best_epoch: int | None = None
    best_value: float | None = None
    seconds: float = 0.0
    errors: list = dataclasses.field(default_factory=list)
    skipped: bool = False  # finished in an earlier run of the sweep
    params: int = 0
    run: training.RunResult | None = None  # the last attempt's, if its training reported one
    resumable: bool | None = None  # interrupted: whether it can continue

    def json(self) -> dict:
        return {
            "run": self.trial.label,
            "run_dir": self.trial.run_dir,
            "key": self.trial.key,
            "status": self.status,
            "skipped": self.skipped,
            "attempts": self.attempts,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "seconds": round(self.seconds, 2),
            "errors": self.errors,
        }


@dataclasses.dataclass
class SweepResult:
    logdir: str
    results: list  # TrialResult per trial, in trial order
    means: list  # aggregate run dirs written
    seconds: float
    interrupted: bool = False


class Progress:
    """Trials done / running / failed with an ETA, printed on every start and end."""

    def __init__(self, total: int, capacity: int):
        self.total, self.capacity = total, capacity
        self.done = self.failed = 0
        self.durations = []  # of attempts that finished this time
        self.running = {}  # label -> monotonic start

    def eta(self, queued: int) -> str:
        if not self.durations:
            return "ETA after the first trial"
        mean = sum(self.durations) / len(self.durations)
        now = time.monotonic()
        left = queued * mean + sum(max(0.0, mean - (now - t)) for t in self.running.values())
        return f"ETA {duration(left / self.capacity)}"

    def line(self, queued: int) -> str:
        failed = f" · {self.failed} failed" if self.failed else ""
        return f"[{self.done}/{self.total} done · {len(self.running)} running{failed} · {self.eta(queued)}]"


def _read_sweep_json(logdir: str) -> dict:
    path = os.path.join(logdir, SWEEP_JSON)
    if not tf.io.gfile.exists(path):
        return {}
    try:
        with tf.io.gfile.GFile(path, "r") as f:
            return json.loads(f.read())
    except (ValueError, tf.errors.OpError):
        return {}


def _write_sweep_json(logdir: str, content: dict) -> None:
    with logtree.atomic_write(os.path.join(logdir, SWEEP_JSON), "w") as f:
        f.write(json.dumps(content, indent=2, default=str))


def _check_existing(trial: Trial) -> dict | None:
    """The trial's finished record if an earlier run of the sweep finished it; None to train it.
    UserError if its run dir holds another trial's run or a live training."""
    record = logtree.read_run_json(trial.run_dir)
    if record is None:
        return None
    key = (record.get("sweep") or {}).get("key")
    if key != trial.key:
        what = "a run not made by tbreg sweep" if key is None else "a run of a different trial (other settings)"
        raise UserError(f"{trial.run_dir} holds {what}; sweep into another --logdir, or move that run away")
    if record.get("status") in FINISHED:
        return record
    resume.preflight(trial.run_dir)
    return None


def _record_failure(trial: Trial, errors: list) -> None:
    """After the last attempt: run.json says failed, with every attempt's error (a worker that died
    left it saying running)."""
    record = logtree.read_run_json(trial.run_dir) or {"family": trial.family, "model": trial.spec.name}
    record["status"] = Status.FAILED
    record["error"] = errors[-1] if errors else record.get("error")
    if trial.key is not None:
        record.setdefault("sweep", {"key": trial.key, "trial": trial.name, "grid": trial.grid})["errors"] = errors
        record["sweep"]["attempt"] = len(errors)
    try:
        logtree.write_record(trial.run_dir, record)
        hparams.write_run_end(trial.run_dir, record)  # its HParams status metric: failed
    except (OSError, tf.errors.OpError) as e:  # the sweep's table and sweep.json still say failed
        print(f"{trial.run_dir}: could not record status=failed ({first_line(e)})", file=sys.stderr)


def drive(
    trials: list[Trial], earlier: dict, pool, retries: int, log: Callable[[str], None], name: str = "sweep"
) -> tuple[dict, bool]:
    """Trains `trials` on `pool`, each attempt failed by its training or its worker retried up to
    `retries` times; those in `earlier` ({run_dir: run.json}) finished before and are skipped.
    Returns ({run_dir: TrialResult}, interrupted).

    KeyboardInterrupt (Ctrl-C; the scripts turn SIGTERM into it) asks the running trials to end their
    epoch and save, waits for them, and returns with `interrupted` set: a re-run continues.
    """
    results = {t.run_dir: TrialResult(t, TrialState.QUEUED) for t in trials}
    queue = collections.deque()
    for t in trials:
        record = earlier.get(t.run_dir)
        if record is None:
            queue.append(t)
            continue
        results[t.run_dir] = TrialResult(
            t,
            record["status"],
            0,
            record.get("epochs") or 0,
            record.get("best_epoch"),
            record.get("best_value"),
            skipped=True,
            params=record.get("params") or 0,
        )
    progress = Progress(len(trials), pool.capacity)
    progress.done = len(trials) - len(queue)
    attempts, errors, running = collections.Counter(), collections.defaultdict(list), {}
    interrupted = False

    def finish(trial: Trial, outcome) -> None:
        result = results[trial.run_dir]
        result.attempts = attempts[trial.run_dir]
        progress.running.pop(trial.label, None)
        if isinstance(outcome, dict):
            result.seconds += outcome.get("seconds", 0.0)
            result.epochs, result.best_epoch, result.best_value = (
                outcome.get("epochs") or 0,
                outcome.get("best_epoch"),
                outcome.get("best_value"),
            )
            result.params = outcome.get("params") or result.params
            result.run, result.resumable = outcome.get("result"), outcome.get("resumable")
        status = outcome.get("status") if isinstance(outcome, dict) else "lost"
        if status in FINISHED:
            result.status = status
            progress.done += 1
            progress.durations.append(outcome.get("seconds", 0.0))
            best = "" if result.best_value is None else f", best {result.best_value:.4f} at epoch {result.best_epoch}"
            log(
                f"  done   {trial.label}: {status} after {result.epochs} epochs{best} "
                f"({duration(outcome.get('seconds', 0))}) {progress.line(len(queue))}"
            )
            return
        if interrupted:  # asked to stop: not a failure, a re-run continues from the trial's last save
            result.status = Status.INTERRUPTED
            saved = "saved after its epoch" if status == Status.INTERRUPTED else "stopped"
            log(f"  {saved}: {trial.label} ({result.epochs} epochs); a re-run continues it")
            return
        error = str(outcome) if isinstance(outcome, WorkerLost) else outcome.get("error") or status
        errors[trial.run_dir].append(f"attempt {attempts[trial.run_dir]}: {error}")
        result.errors = list(errors[trial.run_dir])
        if attempts[trial.run_dir] <= retries and not interrupted:
            log(
                f"  retry  {trial.label}: attempt {attempts[trial.run_dir]} failed ({error}); "
                f"{retries - attempts[trial.run_dir] + 1} more attempt(s) left"
            )
            queue.appendleft(trial)
            return
        result.status = Status.FAILED
        progress.failed += 1
        progress.done += 1
        if result.run is None or trial.key is not None:  # a training that failed recorded that itself
            _record_failure(trial, result.errors)
        log(f"  FAILED {trial.label}: {error} (after {attempts[trial.run_dir]} attempts) {progress.line(len(queue))}")

    try:
        while queue or running:
            while queue and len(running) < pool.capacity and not interrupted:
                trial = queue.popleft()
                attempts[trial.run_dir] += 1
                call = (trial, attempts[trial.run_dir], tuple(errors[trial.run_dir]))
                running[pool.submit(call)] = trial
                progress.running[trial.label] = time.monotonic()
                again = f" (attempt {attempts[trial.run_dir]} of {retries + 1})" if attempts[trial.run_dir] > 1 else ""
                log(f"  start  {trial.label}{again} {progress.line(len(queue))}")
            for handle, outcome in pool.wait(timeout=1.0):
                finish(running.pop(handle), outcome)
    except KeyboardInterrupt:
        interrupted = True
        log(
            f"{name}: interrupted; the {len(running)} running trial(s) end their epoch and save "
            "(Ctrl-C again: stop now)"
        )
        pool.interrupt()
        try:
            while running:
                for handle, outcome in pool.wait(timeout=1.0):
                    finish(running.pop(handle), outcome)
        except KeyboardInterrupt:
            log(f"{name}: stopped without waiting; the running trials continue from their last periodic save")
        for trial in running.values():
            results[trial.run_dir].status = Status.INTERRUPTED
        for trial in queue:
            results[trial.run_dir].status = TrialState.NOT_STARTED
    return results, interrupted


def _write_means(trials, results, log, only_finished: bool = True) -> dict:
    """{group dir: its `mean` run's record} for every seed group whose seeds all finished (or, not
    `only_finished`, every group), rewritten if any seed ran now."""
    groups = collections.defaultdict(list)
    for t in trials:
        if t.group_dir:
            groups[t.group_dir].append(results[t.run_dir])
    written = {}
    for group, members in groups.items():
        fresh = any(not r.skipped for r in members) or not tf.io.gfile.exists(os.path.join(group, aggregate.MEAN))
        if fresh and (not only_finished or all(r.status in FINISHED for r in members)):
            written[group] = aggregate.write_mean(group)
    if written:
        log(f"wrote {len(written)} aggregate run(s) (mean and std over the seeds)")
    return written


def run_sweep(sweep: Sweep, logdir: str, pool, retries: int = 2, log: Callable[[str], None] = _stderr) -> SweepResult:
    """Runs every trial of `sweep` into `logdir` on `pool` (see tbreg.sweep); returns the results.

    Trials an earlier run of the sweep finished (same key in their run.json) are skipped; an
    interrupt returns with `interrupted` set, and a re-run continues.
    """
    started = time.monotonic()
    if "://" not in logdir:  # workers (Ray's above all) may run in another working dir
        logdir = os.path.abspath(logdir)
    trials = expand(sweep, logdir)
    earlier = {t.run_dir: record for t in trials if (record := _check_existing(t)) is not None}
    logtree.check_logdir(logdir)
    history = _read_sweep_json(logdir)
    hparams.write_experiment(logdir)  # the HParams dashboard's columns and metrics; again at the end
    history["hparams_config"] = True
    entry = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "engine": pool.engine,
        "workers": pool.capacity,
        "dataset": sweep.config.dataset,
        "families": list(sweep.families),
        "models": list(sweep.models),
        "grid": {k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in sweep.grid},
        "seeds": list(sweep.seeds),
        "retries": retries,
        "trials": [],
    }
    history["runs"] = [*history.get("runs", []), entry]
    _write_sweep_json(logdir, history)

    skipped = len(earlier)
    log(
        f"sweep: {len(trials)} trials into {logdir}"
        + (f" ({skipped} already finished, skipped)" if skipped else "")
        + f" on {pool.describe()}"
    )
    results, interrupted = drive(trials, earlier, pool, retries, log)
    means = [] if interrupted else list(_write_means(trials, results, lambda line: log(f"sweep: {line}")))
    means = [os.path.join(group, aggregate.MEAN) for group in means]
    hparams.write_experiment(logdir)  # now with every trial's hyperparameters: which of them differ
    entry["trials"] = [results[t.run_dir].json() for t in trials]
    entry["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    entry["interrupted"] = interrupted
    _write_sweep_json(logdir, history)
    return SweepResult(logdir, [results[t.run_dir] for t in trials], means, time.monotonic() - started, interrupted)


def train_family(
    family,
    specs,
    data,
    config,
    logdir: str,
    if_exists: str = "new",
    callbacks_for=None,
    extra=None,
    jobs: int = 1,
    seeds=None,
    resume: bool = False,
    retries: int = 0,
    stack_seeds: bool = True,
) -> list:
    """Trains each spec of `family` into `<logdir>/<family.name>/<spec.name>` (see logtree for re-runs).

    A sweep with an empty grid (plan_family): its run dirs are claimed up front, then trained one
    by one in this process, or with `jobs` > 1 that many at once in worker processes (LocalPool),
    each with its share of the CPU threads (the tree is the same). A failed model is recorded
    failed and the family goes on. `callbacks_for(run_dir)` may return extra callbacks per run (it
    must pickle when jobs > 1). `seeds` (a list of ints) trains each spec once per seed into
    `<spec.name>/seed_<seed>` and then writes the aggregate run `<spec.name>/mean` (tbreg.aggregate);
    with `stack_seeds`, the seeds of a spec tbreg.stacked can stack train as one stack of models in
    this process (the same runs, `config.stacked` in their run.json), the others one by one.
    `resume` continues the newest run of each spec if it was interrupted, skips it if it finished,
    and otherwise trains a new run.

    Returns training.RunResult per run, each seed group's `mean` (status `aggregate`) after its seed
    runs; raises training.Interrupted (or KeyboardInterrupt before any training reported) when
    interrupted, after the running trials saved."""
    trials, earlier = plan_family(
        family.name, specs, config, logdir, if_exists, seeds, resume, data, callbacks_for, extra
    )
    stacked_results = _train_stacked(trials, earlier) if stack_seeds else {}  # seed groups as one stack
    rest = [t for t in trials if t.run_dir not in stacked_results]
    jobs = max(1, min(jobs, len(rest) - len(earlier)))
    if jobs > 1:
        rest = [dataclasses.replace(t, config=dataclasses.replace(t.config, verbose=0)) for t in rest]
    log = _stderr if config.verbose and jobs > 1 else (lambda line: None)
    with LocalPool(jobs) if jobs > 1 else SerialPool() as pool:
        results, interrupted = drive(rest, earlier, pool, retries, log, name=family.name)
    results.update(stacked_results)
    if interrupted:
        stopped = [r for t in trials if (r := results[t.run_dir]).run is not None and r.status == Status.INTERRUPTED]
        if stopped:
            raise training.Interrupted(stopped[0].run, bool(stopped[0].resumable))
        raise KeyboardInterrupt
    means = _write_means(trials, results, lambda line: log(f"{family.name}: {line}"), only_finished=False)
    out, groups_done = [], set()
    for i, t in enumerate(trials):
        out.append(_run_result(results[t.run_dir]))
        last_of_group = i + 1 == len(trials) or trials[i + 1].group_dir != t.group_dir
        if t.group_dir in means and last_of_group and t.group_dir not in groups_done:
            groups_done.add(t.group_dir)
            record = means[t.group_dir]
            first = next(r for r in out if os.path.dirname(r.run_dir) == t.group_dir)
            out.append(
                training.RunResult(
                    family.name,
                    record.get("model") or first.model,
                    os.path.join(t.group_dir, aggregate.MEAN),
                    Status.AGGREGATE,
                    first.params,
                    record["epochs"],
                    record["best_epoch"],
                    record["best_value"],
                )
            )
    return out


def _train_stacked(trials: list[Trial], earlier: dict) -> dict:
    """{run_dir: TrialResult} of the seed groups trained as one stack of models (tbreg.stacked): every
    group of >= 2 seeds, none finished before, whose spec, config and callbacks can be stacked; the
    others are left to the pool (a line says why when the config is verbose)."""
    groups = collections.defaultdict(list)
    for t in trials:
        if t.group_dir and t.data is not None and t.key is None and t.run_dir not in earlier:
            groups[t.group_dir].append(t)
    out = {}
    for members in groups.values():
        first = members[0]
        if len(members) < 2:
            continue
        why = stacked.unstackable(first.spec, first.config, (first.callbacks_for or no_callbacks)(first.run_dir))
        if why:
            if first.config.verbose:
                _stderr(
                    f"{first.family}/{first.name}: {len(members)} seeds trained one by one ({why} cannot be stacked)"
                )
            continue
        started = time.monotonic()
        runs = stacked.train_seeds(
            first.spec, first.data, [t.config for t in members], [t.run_dir for t in members], first.family, first.extra
        )
        seconds = (time.monotonic() - started) / len(members)
        for t, run in zip(members, runs):
            out[t.run_dir] = TrialResult(
                t, run.status, 1, run.epochs, run.best_epoch, run.best_value, seconds, params=run.params, run=run
            )
    return out


def _run_result(r: TrialResult) -> "training.RunResult":
    if r.run is not None:
        return r.run
    t = r.trial
    error = r.errors[-1].split(": ", 1)[-1] if r.errors else None
    return training.RunResult(
        t.family, t.spec.name, t.run_dir, r.status, r.params, r.epochs, r.best_epoch, r.best_value, error=error
    )
