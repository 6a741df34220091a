"""One trial's attempt, where a pool runs it: in this process or in a worker (local or Ray)."""

import datetime
import os
import platform
import time

from tbreg._quiet import tensorflow as tf  # noqa: I001  quiet in spawned workers, whose first TF import is here

from tbreg import callbacks as callbacks_lib
from tbreg import datasets, logtree, resume, training
from tbreg.config import TrainConfig
from tbreg.errors import UserError, first_line
from tbreg.status import Status
from tbreg.sweep.plan import Trial

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
    its outcome (`result`: training.train_run's RunResult). Continues from the trial's saved state
    if there is one; otherwise what an earlier attempt wrote is set aside and the trial starts afresh."""
    start = time.monotonic()
    tf.io.gfile.makedirs(trial.run_dir)
    resumed_after = resume.preflight(trial.run_dir, after_lost_worker=attempt > 1)
    if resumed_after is None:
        _set_aside_attempt(trial.run_dir)
    data = _data(trial.config) if trial.data is None else trial.data
    if trial.callbacks_for is not None:
        callbacks = trial.callbacks_for(trial.run_dir)
    else:
        callbacks = callbacks_lib.make(trial.run_dir, train_data=(data.x_train, data.y_train), **trial.callbacks)
    extra = dict(trial.extra or {})
    if trial.key is not None:
        extra["sweep"] = {
            "key": trial.key,
            "trial": trial.name,
            "grid": trial.grid,
            "attempt": attempt,
            "errors": list(errors),
        }
    resumable = None
    try:
        r = training.train_run(trial.spec, data, trial.config, trial.run_dir, trial.family, callbacks, extra)
    except training.Interrupted as e:
        r, resumable = e.result, e.resumable
    return {
        "status": r.status,
        "epochs": r.epochs,
        "best_epoch": r.best_epoch,
        "best_value": r.best_value,
        "params": r.params,
        "error": r.error,
        "resumed_after": resumed_after,
        "resumable": resumable,
        "result": r,
        "seconds": time.monotonic() - start,
        "pid": os.getpid(),
        "host": platform.node(),
    }


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
        return {"status": Status.FAILED, "error": first_line(e)}
    except Exception as e:  # noqa: BLE001 - reported and retried by the driver
        return {"status": Status.FAILED, "error": f"{type(e).__name__}: {first_line(e)}"}
