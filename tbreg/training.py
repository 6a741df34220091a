"""Training one run the tutorial's way: compile, fit, early stopping, its record.

`train_run` trains one model spec into one run dir and records its outcome (logtree.write_record:
run.json and the Overfitting tab's summary). A family of runs is trained by the orchestrator,
`tbreg.sweep.train_family` (one planner, one driver for families and sweeps).
"""

import dataclasses
import datetime
import functools
import math
import os
import platform
import sys

from tbreg._quiet import tensorflow as tf  # noqa: I001  before keras: quiet in spawned --jobs workers too
import keras
import numpy as np

from tbreg import analysis, engine, hparams, logtree, models, progress, resume
from tbreg.errors import first_line
from tbreg.status import Status


@dataclasses.dataclass
class RunResult:
    """What one training produced. Epochs are counted like TensorBoard's step: from 0."""

    family: str
    model: str
    run_dir: str
    status: str  # a tbreg.status.Status
    params: int
    epochs: int = 0  # epochs trained
    best_epoch: int | None = None
    best_value: float | None = None  # lowest validation data loss
    history: dict = dataclasses.field(default_factory=dict)
    error: str | None = None


def versions() -> dict:
    import tensorboard

    import tbreg

    return {
        "tbreg": tbreg.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorboard": tensorboard.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def make_datasets(data, config):
    """tf.data pipelines: training reshuffled every epoch, validation in order."""
    train = (
        tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
        .shuffle(config.buffer_size, seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .prefetch(2)
    )
    val = tf.data.Dataset.from_tensor_slices((data.x_val, data.y_val)).batch(config.batch_size)
    return train, val


def fit(model, data, config, callbacks, resume_dir: str | None = None) -> None:
    """Trains a compiled model with `config.engine`: "fast" (blocks of `config.epochs_per_call` epochs
    per compiled call, tbreg.engine) or "keras".

    The fast engine saves its state into `resume_dir` when interrupted and continues from it
    (tbreg.resume), and every `config.checkpoint_secs` too; the keras engine is not resumable.
    """
    if config.engine == "fast":
        engine.fast_fit(
            model,
            data.x_train,
            data.y_train,
            (data.x_val, data.y_val),
            config.max_epochs,
            config.batch_size,
            callbacks,
            seed=config.seed,
            resume_dir=resume_dir,
            checkpoint_secs=config.checkpoint_secs,
            epochs_per_call=config.epochs_per_call,
        )
    elif config.engine == "keras":
        train_ds, val_ds = make_datasets(data, config)
        model.fit(
            train_ds, validation_data=val_ds, epochs=config.max_epochs, callbacks=callbacks, verbose=0, shuffle=False
        )
    else:
        raise ValueError(f"unknown engine {config.engine!r}; use fast or keras")


def compile_model(spec, data, config) -> keras.Model:
    """Builds and compiles `spec` for `data` with the config's optimizer, loss and metrics."""
    model = models.build_model(
        spec, data.num_features, data.num_classes, seed=config.seed, dtype_policy=config.dtype_policy
    )
    loss, metrics = models.loss_and_metrics(data.num_classes)
    steps = config.steps_per_epoch()
    optimizer = models.make_optimizer(spec, config.learning_rate, steps * config.decay_epochs, steps, config.max_epochs)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


# A training data loss above this many times the chance level (ln of the number of classes) means
# the optimizer blew up (e.g. Chollet's RMSprop at learning rate 1.0), even if it comes back down.
DIVERGENCE_FACTOR = 100


def diverged_epoch(history: dict, num_classes: int) -> int | None:
    """The first epoch whose training loss is not finite or whose training data loss exceeds
    DIVERGENCE_FACTOR × ln(num_classes); None if there is none."""
    limit = DIVERGENCE_FACTOR * math.log(max(num_classes, 2))
    losses = history.get("loss", [])
    data_losses = history.get(models.data_loss_for_classes(num_classes)) or losses
    for epoch, (loss, data_loss) in enumerate(zip(losses, data_losses)):
        if not (math.isfinite(loss) and math.isfinite(data_loss)) or data_loss > limit:
            return epoch
    return None


def _status(history: dict, early_stopping, num_classes: int = 2) -> Status:
    if diverged_epoch(history, num_classes) is not None:
        return Status.DIVERGED
    return Status.EARLY_STOPPED if early_stopping.stopped_epoch > 0 else Status.COMPLETED


def _spec_callbacks(spec, data, run_dir: str, config) -> list:
    """Callbacks a spec asks for: Monte-Carlo dropout evaluation of the validation data."""
    if not spec.mc_samples:
        return []
    from tbreg.callbacks.mc_dropout import MCDropout

    return [MCDropout(run_dir, data.x_val, data.y_val, samples=spec.mc_samples, seed=config.seed)]


class Interrupted(KeyboardInterrupt):
    """The KeyboardInterrupt train_run raises: `result` says which run stopped after which epoch."""

    def __init__(self, result: "RunResult", resumable: bool):
        super().__init__(result, resumable)  # args make it picklable (--jobs workers)
        self.result, self.resumable = result, resumable


def _close_writers(callbacks) -> None:
    """Flushes and closes every summary writer of `callbacks` (after an error, fit may not have)."""
    for callback in callbacks:
        close = getattr(callback, "_close_writers", None) or getattr(callback, "close", None)
        try:
            if callable(close):
                close()
        except Exception:  # noqa: BLE001 - the run's outcome is already decided
            pass


def _record_outcome(run_dir: str, record: dict, history: dict) -> None:
    """Writes the final run.json, record summary and HParams metrics; a failing disk only gets a warning."""
    try:
        logtree.write_record(run_dir, record)
        hparams.write_run_end(run_dir, record, history)
    except (OSError, tf.errors.OpError) as e:
        print(f"{run_dir}: could not record status={record['status']} in run.json ({first_line(e)})", file=sys.stderr)


def train_run(spec, data, config, run_dir: str, family: str = "", callbacks=(), extra: dict | None = None) -> RunResult:
    """Trains `spec` on `data` into `run_dir` (which must be new) and returns the result.

    Writes Keras' TensorBoard logs under `run_dir/train` and `run_dir/validation`, and
    `run_dir/run.json` (status `running` while training, then the outcome). `callbacks` are added
    to Keras' own; `extra` is merged into run.json (e.g. the script's flags), and so is the dict
    of any callback's `run_json_fields()` at the end (e.g. GeneralizationGap's onset).
    KeyboardInterrupt marks the run `interrupted` (every writer flushed) and propagates as
    `Interrupted`; the fast engine then leaves its state in `run_dir/.resume/`, and a later
    train_run on the same `run_dir` continues from it (same steps, no duplicate points). A lock
    (`run_dir/.lock`) keeps a second training out while this one writes. A spec's own learning
    rate replaces the config's (and is what run.json's config says). With `config.checkpoint_secs`
    the fast engine also saves that state periodically, so a killed training continues from its
    last save (what it wrote after that save is set aside, see tbreg.resume.rewind_events).
    """
    if spec.learning_rate is not None:
        config = dataclasses.replace(config, learning_rate=spec.learning_rate)
    try:
        logtree.lock_run(run_dir)
    except (OSError, tf.errors.OpError) as e:  # e.g. disk full
        return _not_started(family, spec, run_dir, e)
    default_writer = _default_summary_writer()
    try:
        return _train_locked(spec, data, config, run_dir, family, callbacks, extra)
    finally:
        logtree.unlock_run(run_dir)
        _default_summary_writer(default_writer)


def _default_summary_writer(restore=False):
    """TF's default summary writer; with `restore` (a writer or None), makes it the default again.

    A flush that fails inside `writer.as_default()` (e.g. disk full) leaves that writer as TF's
    default — TF flushes before it restores — and every later summary outside a `with` would go
    to it; so a run puts back the default it found.
    """
    from tensorflow.python.ops import summary_ops_v2

    state = getattr(summary_ops_v2, "_summary_state", None)
    if restore is False:
        return getattr(state, "writer", None)
    if state is not None:
        state.writer = restore
    return restore


def _not_started(family: str, spec, run_dir: str, e: Exception, params: int = 0) -> RunResult:
    print(f"{run_dir}: cannot write there ({first_line(e)}); not trained", file=sys.stderr)
    return RunResult(family, spec.name, run_dir, Status.FAILED, params, error=f"{type(e).__name__}: {first_line(e)}")


def _set_aside_damaged_record(run_dir: str, attempt: str) -> None:
    """Copies a run.json with problems to `.attempts/<attempt>/` before a resumed training rewrites it."""
    if not logtree.load_run_json(run_dir)[1]:
        return
    path = os.path.join(run_dir, logtree.RUN_JSON)
    aside = os.path.join(run_dir, resume.ATTEMPTS_DIR, attempt, logtree.RUN_JSON + ".damaged")
    tf.io.gfile.makedirs(os.path.dirname(aside))
    if tf.io.gfile.isdir(path):
        tf.io.gfile.rename(path, aside)
    else:
        tf.io.gfile.copy(path, aside, overwrite=True)
    print(f"{path}: its old content is kept as {aside}", file=sys.stderr)


def _prepare_resume(run_dir: str) -> tuple[dict | None, int | None]:
    """(the run's record, the epoch its save ends with) when `run_dir` holds a save to continue
    from, after setting aside what a killed training wrote after that save; (None, None) otherwise."""
    resume_dir = os.path.join(run_dir, resume.RESUME_DIR)
    if not resume.exists(resume_dir):
        return None, None
    previous = logtree.read_run_json(run_dir) or {}
    after_epoch = resume.saved_epoch(resume_dir)  # read the save once
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    attempt = f"after-epoch-{after_epoch}-{stamp}"
    if resume.start_over_if_shrunk(resume_dir, attempt):  # steps lost since the save: train them all again
        _set_aside_damaged_record(run_dir, attempt)
        return None, None
    resume.rewind_events(resume_dir, attempt)  # written again by this training
    _set_aside_damaged_record(run_dir, attempt)
    return previous, after_epoch


def _start_record(spec, data, config, model, family: str, extra, previous: dict | None, after_epoch) -> dict:
    """The record of a run that starts (or, with `previous`, continues after `after_epoch`)."""
    record = {
        "family": family,
        "model": spec.name,
        "spec": dataclasses.asdict(spec),
        "hparams": spec.hparams(),
        "dataset": data.name,
        "config": dataclasses.asdict(config),
        "seed": config.seed,
        "params": model.count_params(),
        "monitor": _monitor(data),
        "status": Status.RUNNING,
        "started": _now(),
        "versions": versions(),
        **(extra or {}),
    }
    if previous is not None:  # continuing an interrupted training: same run, same start
        record["started"] = previous.get("started", record["started"])
        record["resumed"] = [*previous.get("resumed", []), {"after_epoch": after_epoch, "at": _now()}]
    return record


def _monitor(data) -> str:
    """What early stopping watches: the validation data loss."""
    return "val_" + models.data_loss_for_classes(data.num_classes)


def _all_callbacks(spec, data, config, run_dir: str, callbacks, history, early_stopping) -> list:
    """Keras' own (History, EarlyStopping, TerminateOnNaN, TensorBoard), the caller's, the spec's,
    and with `config.verbose` the progress display (tbreg.progress). The fast engine logs Keras'
    epoch scalars with `EpochTensorBoard` (the same events, no eager summary ops)."""
    from tbreg.callbacks.epoch_tensorboard import EpochTensorBoard

    tensorboard = (
        EpochTensorBoard
        if config.engine == "fast"
        else functools.partial(keras.callbacks.TensorBoard, write_graph=False)
    )
    out = [
        history,
        early_stopping,
        keras.callbacks.TerminateOnNaN(),
        tensorboard(run_dir),
        *callbacks,
        *_spec_callbacks(spec, data, run_dir, config),
    ]
    if config.verbose:
        out += progress.callbacks(run_dir, config.max_epochs, _monitor(data))
    return out


def _fit_outcome(model, data, config, run_dir: str, all_callbacks, history, early_stopping, result, record):
    """Fits and sets `result.status` (and `.error`); returns Interrupted to raise after recording, or None."""
    resume_dir = os.path.join(run_dir, resume.RESUME_DIR)
    try:
        fit(model, data, config, all_callbacks, resume_dir if config.engine == "fast" else None)
        result.status = _status(history.history, early_stopping, data.num_classes)
        resume.clear(resume_dir)
    except KeyboardInterrupt:
        result.status = Status.INTERRUPTED
        _close_writers(all_callbacks)
        return Interrupted(result, resume.exists(resume_dir))
    except Exception as e:  # recorded in run.json; the family goes on with its next model
        result.status, result.error = Status.FAILED, f"{type(e).__name__}: {e}"
        _close_writers(all_callbacks)
        diverged_at = diverged_epoch(history.history, data.num_classes)
        if diverged_at is not None:  # it blew up first; what broke afterwards (NaN weights) stays in run.json
            print(
                f"{run_dir}: diverged at epoch {diverged_at}, then {type(e).__name__}: {first_line(e)}", file=sys.stderr
            )
            record["error"], result.status, result.error = result.error, Status.DIVERGED, None
            resume.clear(resume_dir)  # like any diverged run: nothing to continue
    return None


def _finish_record(record: dict, result: RunResult, history, callbacks, num_classes: int, interrupted) -> None:
    """Puts the outcome into `result` and `record`: epochs, best epoch and value, status, error."""
    result.history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    result.epochs = len(result.history.get("loss", []))
    result.best_epoch, result.best_value = analysis.lowest(dict(enumerate(result.history.get(record["monitor"], []))))
    record.update(
        status=result.status,
        epochs=result.epochs,
        stopped_epoch=result.epochs - 1 if result.epochs else None,
        best_epoch=result.best_epoch,
        best_value=result.best_value,
        diverged_epoch=diverged_epoch(result.history, num_classes),
        error=result.error or record.get("error"),
        finished=_now(),
    )
    if interrupted:
        record["resumable"] = interrupted.resumable
    for callback in callbacks:  # e.g. GeneralizationGap's overfitting onset
        if hasattr(callback, "run_json_fields"):
            record.update(callback.run_json_fields())


def _train_locked(spec, data, config, run_dir, family, callbacks, extra) -> RunResult:
    previous, after_epoch = _prepare_resume(run_dir)
    keras.utils.set_random_seed(config.seed)
    model = compile_model(spec, data, config)
    if config.verbose:
        print(f"{family}/{spec.name}: {model.count_params():,} parameters -> {run_dir}", file=sys.stderr)
    record = _start_record(spec, data, config, model, family, extra, previous, after_epoch)
    try:
        if previous is not None:
            logtree.write_run_json(run_dir, record)  # its start record (and HParams) are in its events already
        else:
            logtree.write_record(run_dir, record, start=True)
    except (OSError, tf.errors.OpError) as e:  # e.g. disk full: this run fails, the family goes on
        return _not_started(family, spec, run_dir, e, model.count_params())
    result = RunResult(family, spec.name, run_dir, Status.RUNNING, model.count_params())
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=record["monitor"], patience=config.patience, min_delta=config.min_delta, mode="min"
    )
    history = keras.callbacks.History()
    all_callbacks = _all_callbacks(spec, data, config, run_dir, callbacks, history, early_stopping)
    interrupted = None
    try:
        interrupted = _fit_outcome(model, data, config, run_dir, all_callbacks, history, early_stopping, result, record)
    finally:  # also on a second Ctrl-C or an error in a callback: the run's record says what happened
        _finish_record(record, result, history, callbacks, data.num_classes, interrupted)
        _record_outcome(run_dir, record, result.history)
    if interrupted:
        raise interrupted
    return result


def set_cpu_threads(threads: int) -> None:
    """TensorFlow's intra- and inter-op threads for this process (before its first op)."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
