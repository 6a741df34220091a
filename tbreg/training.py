"""Training a run and a family the tutorial's way: compile, fit, early stopping, run.json.

`train_run` trains one model spec into one run dir; `train_family` trains several specs of a
family into `<logdir>/<family>/<model>` dirs and records each run's outcome in its run.json.
"""

import dataclasses
import datetime
import math
import os
import platform
import sys

import keras
import numpy as np
import tensorflow as tf

from tbreg import logtree, models
from tbreg.errors import UserError


@dataclasses.dataclass
class RunResult:
    """What one training produced. Epochs are counted like TensorBoard's step: from 0."""

    family: str
    model: str
    run_dir: str
    status: str
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


def compile_model(spec, data, config) -> keras.Model:
    """Builds and compiles `spec` for `data` with the config's optimizer, loss and metrics."""
    model = models.build_model(spec, data.num_features, data.num_classes, seed=config.seed)
    loss, metrics = models.loss_and_metrics(data.num_classes)
    optimizer = models.make_optimizer(spec, config.learning_rate, config.steps_per_epoch() * config.decay_epochs)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return model


def _status(history: dict, early_stopping) -> str:
    losses = history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        return "diverged"
    return "early_stopped" if early_stopping.stopped_epoch > 0 else "completed"


def _best(history: dict, monitor: str) -> tuple[int | None, float | None]:
    values = [v if math.isfinite(v) else math.inf for v in history.get(monitor, [])]
    if not values or min(values) == math.inf:
        return None, None
    epoch = int(np.argmin(values))
    return epoch, float(values[epoch])


def train_run(spec, data, config, run_dir: str, family: str = "", callbacks=(), extra: dict | None = None) -> RunResult:
    """Trains `spec` on `data` into `run_dir` (which must be new) and returns the result.

    Writes Keras' TensorBoard logs under `run_dir/train` and `run_dir/validation`, and
    `run_dir/run.json` (status `running` while training, then the outcome). `callbacks` are added
    to Keras' own; `extra` is merged into run.json (e.g. the script's flags).
    KeyboardInterrupt marks the run `interrupted` and propagates.
    """
    keras.utils.set_random_seed(config.seed)
    model = compile_model(spec, data, config)
    monitor = "val_" + models.data_loss_name(data.num_classes)
    if config.verbose:
        print(f"{family}/{spec.name}: {model.count_params():,} parameters -> {run_dir}", file=sys.stderr)
    record = {
        "family": family,
        "model": spec.name,
        "spec": dataclasses.asdict(spec),
        "hparams": spec.hparams(),
        "dataset": data.name,
        "config": dataclasses.asdict(config),
        "seed": config.seed,
        "params": model.count_params(),
        "monitor": monitor,
        "status": "running",
        "started": _now(),
        "versions": versions(),
        **(extra or {}),
    }
    logtree.write_run_json(run_dir, record)
    result = RunResult(family, spec.name, run_dir, "running", model.count_params())
    early_stopping = keras.callbacks.EarlyStopping(
        monitor=monitor, patience=config.patience, min_delta=config.min_delta, mode="min"
    )
    history = keras.callbacks.History()
    all_callbacks = [
        history,
        early_stopping,
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(run_dir, write_graph=False),
        *callbacks,
    ]
    if config.verbose:
        import tensorflow_docs.modeling as tfdocs_modeling

        all_callbacks.append(tfdocs_modeling.EpochDots(report_every=100))
    train_ds, val_ds = make_datasets(data, config)
    try:
        model.fit(train_ds, validation_data=val_ds, epochs=config.max_epochs, callbacks=all_callbacks, verbose=0, shuffle=False)
        result.status = _status(history.history, early_stopping)
    except KeyboardInterrupt:
        result.status = "interrupted"
        raise
    except Exception as e:  # recorded in run.json; the family goes on with its next model
        result.status, result.error = "failed", f"{type(e).__name__}: {e}"
    finally:
        result.history = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        result.epochs = len(result.history.get("loss", []))
        result.best_epoch, result.best_value = _best(result.history, monitor)
        record.update(
            status=result.status,
            epochs=result.epochs,
            stopped_epoch=result.epochs - 1 if result.epochs else None,
            best_epoch=result.best_epoch,
            best_value=result.best_value,
            error=result.error,
            finished=_now(),
        )
        logtree.write_run_json(run_dir, record)
        if config.verbose:
            print(file=sys.stderr)
    return result


def train_family(
    family, specs, data, config, logdir: str, if_exists: str = "new", callbacks_for=None, extra=None
) -> list[RunResult]:
    """Trains each spec into `<logdir>/<family.name>/<spec.name>` (see logtree for re-runs).

    `callbacks_for(run_dir)` may return extra callbacks per run.
    """
    results = []
    for spec in specs:
        run_dir = logtree.claim_run_dir(logdir, family.name, spec.name, if_exists)
        callbacks = callbacks_for(run_dir) if callbacks_for else ()
        results.append(train_run(spec, data, config, run_dir, family.name, callbacks, extra))
    return results


def check_logdir(logdir: str) -> None:
    """Fails early, before any training, if `logdir` cannot be created or written."""
    try:
        tf.io.gfile.makedirs(logdir)
        probe = os.path.join(logdir, f".tbreg-write-test-{os.getpid()}")
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("ok")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        message = getattr(e, "message", None) or str(e)
        raise UserError(f"--logdir={logdir} is not writable ({message.splitlines()[0]}); pick another dir") from None
