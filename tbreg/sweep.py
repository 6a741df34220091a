"""Sweeps: families × models × a hyperparameter grid × seeds, one run dir per trial, one log tree.

    sweep = Sweep(config.for_dataset("mnist1d"), families=("regularizers",), models=("l2",),
                  grid=parse_grid(["l2=1e-4,1e-3", "dropout=0.2,0.5"]), seeds=(0, 1))
    with LocalPool(jobs=2) as pool:          # or RayPool(address=None, jobs=2)
        result = run_sweep(sweep, "runs/sweep", pool)

Layout: `<logdir>/<family>/<trial>`, the trial named `<model>` plus `,<name>=<value>` per grid axis
(`l2,l2=0.0001,dropout=0.2`); with seeds, `<trial>/seed_<k>` and the aggregate `<trial>/mean`, as
`--seeds` writes them. Each run.json carries `sweep.key`, a digest of everything that decides the
trial's numbers, so a re-run of the same sweep knows its finished trials and skips them.

The driver (`run_sweep`) hands trials to a pool — worker processes here (`LocalPool`) or Ray tasks
on a cluster (`RayPool`); both call `run_trial` in the worker. A trial whose attempt fails (the
training raised, or its worker died) is retried up to `retries` times and never stops the others;
every trial saves its training state every `config.checkpoint_secs`, so a retry — or a re-run after an
interrupt — continues from the last save (tbreg.resume sets aside what the dead attempt wrote
after it). Attempts and errors are recorded in the run's run.json (`sweep.errors`) and in
`<logdir>/sweep.json`. The HParams experiment config is written once at the log tree's root.
"""

import collections
import dataclasses
import datetime
import hashlib
import itertools
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import platform
import signal
import sys
import time
from typing import Callable

from tbreg._quiet import tensorflow as tf  # noqa: I001  quiet in spawned workers, whose first TF import is here

from tbreg import aggregate, datasets, families, logtree, models, resume, training
from tbreg import callbacks as callbacks_lib
from tbreg.config import TrainConfig
from tbreg.errors import UserError

SWEEP_JSON = "sweep.json"


# ---------------------------------------------------------------------------------------------
# The grid: which names it may vary and how their values are read


def _bool(text) -> bool:
    if isinstance(text, bool):
        return text
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("not true/false")


def _rate(text) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise ValueError("not in [0, 1)")
    return value


def _nonnegative(text) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("negative")
    return value


def _positive_int(text) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("below 1")
    return value


def _units(text) -> tuple[int, ...]:
    if isinstance(text, (list, tuple)):
        return tuple(_positive_int(u) for u in text)
    return tuple(_positive_int(u) for u in str(text).split("x")) if str(text) else ()


def _choice(options):
    def parse(text) -> str:
        if str(text) not in options:
            raise ValueError(f"not one of {', '.join(options)}")
        return str(text)

    return parse


def _activation(text) -> str:
    import keras

    keras.activations.get(str(text))  # ValueError for an unknown name
    return str(text)


# name -> (what it changes: "spec" (the model) or "config" (the training), parser)
GRID = {
    "l1": ("spec", _nonnegative),
    "l2": ("spec", _nonnegative),
    "dropout": ("spec", _rate),
    "max_norm": ("spec", _nonnegative),
    "batch_norm": ("spec", _bool),
    "activation": ("spec", _activation),
    "optimizer": ("spec", _choice(models.OPTIMIZERS)),
    "schedule": ("spec", _choice(models.SCHEDULES)),
    "learning_rate": ("spec", _nonnegative),
    "units": ("spec", _units),
    "batch_size": ("config", _positive_int),
    "patience": ("config", int),
    "max_epochs": ("config", _positive_int),
    "decay_epochs": ("config", _nonnegative),
    "n_train": ("config", _positive_int),
}


def _format(value) -> str:
    """A grid value as it appears in a run name: 0.0001, 1e-05, 16x16, true, relu."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value)


def parse_axis(name: str, values) -> tuple[str, tuple]:
    """(name, values) of one grid axis; `values` is a comma string or a list (from a config file)."""
    if name not in GRID:
        raise UserError(f"grid: unknown hyperparameter {name!r}; choose from {', '.join(GRID)}")
    raw = [v.strip() for v in values.split(",")] if isinstance(values, str) else list(values)
    if not raw or any(v == "" for v in raw):
        raise UserError(f"grid: {name} needs a comma list of values, e.g. {name}=1e-4,1e-3")
    parsed = []
    for v in raw:
        try:
            value = GRID[name][1](v)
        except (TypeError, ValueError) as e:
            raise UserError(f"grid: {name}={v}: {e}; give a valid value") from None
        if value not in parsed:
            parsed.append(value)
    return name, tuple(parsed)


def parse_grid(items) -> tuple[tuple[str, tuple], ...]:
    """Grid axes from `name=v1,v2` items (an item may hold several, separated by spaces)."""
    axes = {}
    for item in items:
        for word in str(item).split():
            name, sep, values = word.partition("=")
            if not sep:
                raise UserError(f"grid: {word!r} is not name=v1,v2 (e.g. l2=1e-4,1e-3)")
            if name in axes:
                raise UserError(f"grid: {name} is given twice; give all its values in one {name}=v1,v2")
            axes[name] = parse_axis(name, values)[1]
    return tuple(axes.items())


# ---------------------------------------------------------------------------------------------
# Sweeps and their trials


@dataclasses.dataclass(frozen=True)
class Sweep:
    """What to train: `families` (of `config.dataset`), their `models` (empty: all) × `grid` × `seeds`."""

    config: TrainConfig
    families: tuple[str, ...] = ("sizes",)
    models: tuple[str, ...] = ()
    grid: tuple[tuple[str, tuple], ...] = ()
    seeds: tuple[int, ...] = ()  # empty: one run per trial, seed config.seed, no seed_<k> dirs
    callbacks: dict = dataclasses.field(default_factory=dict)  # tbreg.callbacks.make options (no train_data)


@dataclasses.dataclass(frozen=True)
class Trial:
    family: str
    name: str  # below the family dir: `large`, `large,l2=0.0001`
    seed: int | None  # None: the sweep has no seeds
    spec: models.ModelSpec
    config: TrainConfig
    run_dir: str
    grid: dict
    callbacks: dict
    key: str

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
        "config": {k: v for k, v in dataclasses.asdict(config).items()
                   if k not in ("cache_dir", "verbose", "checkpoint_secs")},
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


def expand(sweep: Sweep, logdir: str) -> list[Trial]:
    """Every trial of `sweep`, in order: family, model, grid point (first axis slowest), seed."""
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
                    trials.append(Trial(family, name, seed, trial_spec, seeded, run_dir, grid, dict(sweep.callbacks),
                                        trial_key(family, trial_spec, seeded, sweep.callbacks)))
    return trials


# ---------------------------------------------------------------------------------------------
# One trial, in a worker process (local or Ray)

_DATA = {}


def _data(config: TrainConfig):
    """The dataset, loaded once per worker process (per dataset and size)."""
    key = (config.dataset, config.data_path, config.cache_dir, config.n_train, config.n_validation)
    if key not in _DATA:
        _DATA.clear()
        _DATA[key] = datasets.load(config)
    return _DATA[key]


def _set_aside_attempt(run_dir: str) -> None:
    """Moves what an attempt that left no saved state wrote (event files, run.json) into
    `<run>/.attempts/<time>/`, renamed so TensorBoard does not read it: the retry starts afresh."""
    files = list(resume.event_files(run_dir))
    if tf.io.gfile.exists(os.path.join(run_dir, logtree.RUN_JSON)):
        files.append(logtree.RUN_JSON)
    if not files:
        return
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    aside = os.path.join(run_dir, resume.ATTEMPTS_DIR, f"from-scratch-{stamp}")
    for rel in files:
        dst = os.path.join(aside, rel.replace("tfevents", "set-aside-events"))
        tf.io.gfile.makedirs(os.path.dirname(dst))
        tf.io.gfile.rename(os.path.join(run_dir, rel), dst, overwrite=True)


def run_trial(trial: Trial, attempt: int, errors=()) -> dict:
    """Trains `trial` into its run dir (attempt `attempt`, after `errors` of earlier ones); returns
    its outcome. Continues from the trial's saved state if there is one; otherwise what an earlier
    attempt wrote is set aside and the trial starts afresh."""
    start = time.monotonic()
    tf.io.gfile.makedirs(trial.run_dir)
    holder = logtree.lock_holder(trial.run_dir)
    if holder and attempt > 1 and holder.get("host") != platform.node():  # that attempt's worker is gone
        tf.io.gfile.remove(os.path.join(trial.run_dir, logtree.LOCK))
    else:
        logtree.check_unlocked(trial.run_dir)
    resumed_after = resume.saved_epoch(os.path.join(trial.run_dir, resume.RESUME_DIR))
    if resumed_after is None:
        _set_aside_attempt(trial.run_dir)
    data = _data(trial.config)
    callbacks = callbacks_lib.make(trial.run_dir, train_data=(data.x_train, data.y_train), **trial.callbacks)
    extra = {"sweep": {"key": trial.key, "trial": trial.name, "grid": trial.grid, "attempt": attempt,
                       "errors": list(errors)}}
    try:
        r = training.train_run(trial.spec, data, trial.config, trial.run_dir, trial.family, callbacks, extra)
    except training.Interrupted as e:
        r = e.result
    return {"status": r.status, "epochs": r.epochs, "best_epoch": r.best_epoch, "best_value": r.best_value,
            "params": r.params, "error": r.error, "resumed_after": resumed_after,
            "seconds": time.monotonic() - start, "pid": os.getpid(), "host": platform.node()}


def _set_threads(threads: int) -> None:
    try:
        training.set_cpu_threads(threads)
    except RuntimeError:  # TensorFlow already started in this process (a reused Ray worker)
        pass


def _call_safely(call) -> dict:
    """run_trial(*call), with any exception turned into a failed outcome (one line)."""
    try:
        return run_trial(*call)
    except (UserError, OSError, tf.errors.OpError, ValueError) as e:
        return {"status": "failed", "error": str(getattr(e, "message", None) or e).splitlines()[0]}
    except Exception as e:  # noqa: BLE001 - reported and retried by the driver
        return {"status": "failed", "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}


# ---------------------------------------------------------------------------------------------
# Pools: where attempts run. submit() a call, wait() for (handle, outcome) pairs.


class WorkerLost(Exception):
    """An attempt's worker died (killed, out of memory, a lost node) before it reported."""


def _worker_main(conn, threads: int) -> None:
    """A local worker: runs the calls it receives until told to stop. Ctrl-C in the terminal is
    left to the driver, which sends SIGTERM: the trial then ends its epoch and saves (resumable)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    _set_threads(threads)
    try:
        while True:
            try:
                call = conn.recv()
            except EOFError:
                return
            if call is None:
                return
            conn.send(_call_safely(call))
    except KeyboardInterrupt:  # SIGTERM while idle
        return


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _signal_name(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class LocalPool:
    """`jobs` worker processes on this machine, each with its share of the CPU threads. A worker
    that dies is replaced; only its own trial's attempt is lost."""

    engine = "local"

    def __init__(self, jobs: int = 1):
        self.capacity = max(1, jobs)
        self._threads = max(1, (os.cpu_count() or 1) // self.capacity)
        self._context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
        self._idle, self._busy = [], {}  # busy: conn -> (process, handle)
        self._handles = itertools.count()

    def describe(self) -> str:
        return f"{self.capacity} local worker process{'es' if self.capacity != 1 else ''}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _spawn(self):
        conn, child = self._context.Pipe()
        process = self._context.Process(target=_worker_main, args=(child, self._threads), daemon=True)
        process.start()
        child.close()
        return conn, process

    def submit(self, call) -> int:
        conn, process = self._idle.pop() if self._idle else self._spawn()
        handle = next(self._handles)
        conn.send(call)
        self._busy[conn] = (process, handle)
        return handle

    def wait(self, timeout: float) -> list:
        waitables = [*self._busy, *(p.sentinel for p, _ in self._busy.values())]
        if not waitables:
            return []
        multiprocessing.connection.wait(waitables, timeout)
        done = []
        for conn, (process, handle) in list(self._busy.items()):
            outcome = None
            if conn.poll():
                try:
                    outcome = conn.recv()
                except (EOFError, OSError):
                    outcome = None
            if outcome is None and not process.is_alive():
                process.join()
                outcome = WorkerLost(f"worker process {process.pid} died ({_signal_name(process.exitcode)})")
            if outcome is None:
                continue
            del self._busy[conn]
            if isinstance(outcome, WorkerLost):
                conn.close()
            else:
                self._idle.append((conn, process))
            done.append((handle, outcome))
        return done

    def interrupt(self) -> None:
        """Asks every running trial to end its epoch, save and report (SIGTERM)."""
        for process, _ in self._busy.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def close(self) -> None:
        for conn, process in self._idle:
            try:
                conn.send(None)
            except OSError:
                pass
        for conn, process in [*self._idle, *((c, p) for c, (p, _) in self._busy.items())]:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
        self._idle, self._busy = [], {}


def _ray_task(call, threads: int) -> dict:
    _set_threads(threads)
    return _call_safely(call)


class RayPool:
    """Trials as Ray tasks: on a local Ray instance with `jobs` CPUs (address None), or on the
    cluster at `address` (e.g. `ray://head:10001`, `auto`), `jobs` at a time (default: its CPUs).
    Every worker must have tbreg installed and reach the log dir (a shared path or gs://…)."""

    engine = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None):
        try:
            import ray
        except ImportError:
            raise UserError("--engine=ray needs Ray: pip install 'tbreg[ray]' (or pip install ray)") from None
        self._ray = ray
        options = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        address = address or os.environ.get("RAY_ADDRESS") or None  # what ray.init() would connect to
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=jobs or 1, object_store_memory=128 * 1024**2, **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise UserError(f"--address={address}: cannot connect to a Ray cluster there ({str(e).splitlines()[0]}); "
                            "start one with `ray start --head`, or drop --address for a local one") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max(1, jobs or cpus)
        self._address = address
        self._threads = max(1, cpus // self.capacity) if not address else 1
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
        self._running = {}  # ObjectRef -> handle
        self._handles = itertools.count()

    def describe(self) -> str:
        where = f"the Ray cluster at {self._address}" if self._address else "a local Ray instance"
        return f"{self.capacity} Ray task{'s' if self.capacity != 1 else ''} at a time on {where}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def submit(self, call) -> int:
        handle = next(self._handles)
        self._running[self._remote.remote(call, self._threads)] = handle
        return handle

    def wait(self, timeout: float) -> list:
        if not self._running:
            return []
        ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        done = []
        for ref in ready:
            handle = self._running.pop(ref)
            try:
                outcome = self._ray.get(ref)
            except self._ray.exceptions.RayError as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                outcome = WorkerLost(f"Ray worker lost ({type(e).__name__}: {first})")
            done.append((handle, outcome))
        return done

    def interrupt(self) -> None:
        for ref in self._running:
            self._ray.cancel(ref)

    def close(self) -> None:
        self._ray.shutdown()


# ---------------------------------------------------------------------------------------------
# The driver


FINISHED = training.FINISHED


@dataclasses.dataclass
class TrialResult:
    trial: Trial
    status: str  # completed, early_stopped, diverged, failed, interrupted, or `skipped` is set
    attempts: int = 0
    epochs: int = 0
    best_epoch: int | None = None
    best_value: float | None = None
    seconds: float = 0.0
    errors: list = dataclasses.field(default_factory=list)
    skipped: bool = False  # finished in an earlier run of the sweep

    def json(self) -> dict:
        return {"run": self.trial.label, "run_dir": self.trial.run_dir, "key": self.trial.key, "status": self.status,
                "skipped": self.skipped, "attempts": self.attempts, "epochs": self.epochs,
                "best_epoch": self.best_epoch, "best_value": self.best_value, "seconds": round(self.seconds, 2),
                "errors": self.errors}


@dataclasses.dataclass
class SweepResult:
    logdir: str
    results: list  # TrialResult per trial, in trial order
    means: list  # aggregate run dirs written
    seconds: float
    interrupted: bool = False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


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
        return f"ETA {_duration(left / self.capacity)}"

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
    path = os.path.join(logdir, SWEEP_JSON)
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(content, indent=2, default=str))
    tf.io.gfile.rename(tmp, path, overwrite=True)


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
    logtree.check_unlocked(trial.run_dir)
    return None


def _record_failure(trial: Trial, errors: list) -> None:
    """After the last attempt: run.json says failed, with every attempt's error (a worker that died
    left it saying running)."""
    record = logtree.read_run_json(trial.run_dir) or {"family": trial.family, "model": trial.spec.name}
    record["status"] = "failed"
    record["error"] = errors[-1] if errors else record.get("error")
    record.setdefault("sweep", {"key": trial.key, "trial": trial.name, "grid": trial.grid})["errors"] = errors
    record["sweep"]["attempt"] = len(errors)
    try:
        logtree.write_run_json(trial.run_dir, record)
    except (OSError, tf.errors.OpError):
        pass


def run_sweep(sweep: Sweep, logdir: str, pool, retries: int = 2,
              log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)) -> SweepResult:
    """Runs every trial of `sweep` into `logdir` on `pool` (see the module doc); returns the results.

    KeyboardInterrupt (Ctrl-C; the CLI turns SIGTERM into it) asks the running trials to end their
    epoch and save, waits for them, and returns with `interrupted` set: a re-run continues.
    """
    started = time.monotonic()
    if "://" not in logdir:  # workers (Ray's above all) may run in another working dir
        logdir = os.path.abspath(logdir)
    trials = expand(sweep, logdir)
    results = {t.run_dir: TrialResult(t, "queued") for t in trials}
    queue = collections.deque()
    for t in trials:
        record = _check_existing(t)
        if record is None:
            queue.append(t)
            continue
        results[t.run_dir] = TrialResult(t, record["status"], 0, record.get("epochs") or 0, record.get("best_epoch"),
                                         record.get("best_value"), skipped=True)
    training.check_logdir(logdir)
    history = _read_sweep_json(logdir)
    if not history.get("hparams_config"):  # once per log tree: the HParams dashboard's columns and metrics
        from plugins.overfitting import summary

        summary.write_experiment(logdir, models.data_loss_name(datasets.NUM_CLASSES[sweep.config.dataset]))
        history["hparams_config"] = True
    entry = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "engine": pool.engine, "workers": pool.capacity, "dataset": sweep.config.dataset,
             "families": list(sweep.families), "models": list(sweep.models),
             "grid": {k: [list(v) if isinstance(v, tuple) else v for v in vs] for k, vs in sweep.grid},
             "seeds": list(sweep.seeds), "retries": retries, "trials": []}
    history["runs"] = [*history.get("runs", []), entry]
    _write_sweep_json(logdir, history)

    skipped = len(trials) - len(queue)
    progress = Progress(len(trials), pool.capacity)
    progress.done = skipped
    log(f"sweep: {len(trials)} trials into {logdir}"
        + (f" ({skipped} already finished, skipped)" if skipped else "") + f" on {pool.describe()}")
    attempts, errors, running = collections.Counter(), collections.defaultdict(list), {}
    interrupted = False

    def finish(trial: Trial, outcome) -> None:
        result = results[trial.run_dir]
        result.attempts = attempts[trial.run_dir]
        progress.running.pop(trial.label, None)
        if isinstance(outcome, dict):
            result.seconds += outcome.get("seconds", 0.0)
            result.epochs, result.best_epoch, result.best_value = (outcome.get("epochs") or 0, outcome.get("best_epoch"),
                                                                   outcome.get("best_value"))
        status = outcome.get("status") if isinstance(outcome, dict) else "lost"
        if status in FINISHED:
            result.status = status
            progress.done += 1
            progress.durations.append(outcome.get("seconds", 0.0))
            best = "" if result.best_value is None else f", best {result.best_value:.4f} at epoch {result.best_epoch}"
            log(f"  done   {trial.label}: {status} after {result.epochs} epochs{best} "
                f"({_duration(outcome.get('seconds', 0))}) {progress.line(len(queue))}")
            return
        if interrupted:  # asked to stop: not a failure, a re-run continues from the trial's last save
            result.status = "interrupted"
            saved = "saved after its epoch" if status == "interrupted" else "stopped"
            log(f"  {saved}: {trial.label} ({result.epochs} epochs); a re-run of the sweep continues it")
            return
        error = str(outcome) if isinstance(outcome, WorkerLost) else outcome.get("error") or status
        errors[trial.run_dir].append(f"attempt {attempts[trial.run_dir]}: {error}")
        result.errors = list(errors[trial.run_dir])
        if attempts[trial.run_dir] <= retries and not interrupted:
            log(f"  retry  {trial.label}: attempt {attempts[trial.run_dir]} failed ({error}); "
                f"{retries - attempts[trial.run_dir] + 1} more attempt(s) left")
            queue.appendleft(trial)
            return
        result.status = "failed"
        progress.failed += 1
        progress.done += 1
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
            if interrupted and not running:
                break
    except KeyboardInterrupt:
        interrupted = True
        log(f"sweep: interrupted; the {len(running)} running trial(s) end their epoch and save (Ctrl-C again: stop now)")
        pool.interrupt()
        try:
            while running:
                for handle, outcome in pool.wait(timeout=1.0):
                    finish(running.pop(handle), outcome)
        except KeyboardInterrupt:
            log("sweep: stopped without waiting; the running trials continue from their last periodic save")
        for trial in running.values():
            results[trial.run_dir].status = "interrupted"
        for trial in queue:
            results[trial.run_dir].status = "not started"
    means = [] if interrupted else _write_means(trials, results, log)
    entry["trials"] = [results[t.run_dir].json() for t in trials]
    entry["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    entry["interrupted"] = interrupted
    _write_sweep_json(logdir, history)
    return SweepResult(logdir, [results[t.run_dir] for t in trials], means, time.monotonic() - started, interrupted)


def _write_means(trials, results, log) -> list[str]:
    """The `mean` run of every seed group whose seeds all finished (rewritten if any seed ran now)."""
    groups = collections.defaultdict(list)
    for t in trials:
        if t.group_dir:
            groups[t.group_dir].append(results[t.run_dir])
    written = []
    for group, members in groups.items():
        fresh = any(not r.skipped for r in members) or not tf.io.gfile.exists(os.path.join(group, aggregate.MEAN))
        if fresh and all(r.status in FINISHED for r in members):
            aggregate.write_mean(group, training.write_record_summaries)
            written.append(os.path.join(group, aggregate.MEAN))
    if written:
        log(f"sweep: wrote {len(written)} aggregate run(s) (mean and std over the seeds)")
    return written
