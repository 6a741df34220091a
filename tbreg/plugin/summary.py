"""Writer side of the overfitting plugin: a run's record and hyperparameters as summaries.

Training code calls `write_run_start(run_dir, record)` when a run begins and
`write_run_end(run_dir, record)` when it ends, with the dict it writes to run.json. Both go into
the run's root dir (beside `train/` and `validation/`), so that

- the plugin reads the record (params, status, best epoch, …) through TensorBoard's data provider;
- TensorBoard's HParams dashboard sees one session per run, with the splits' scalars as metrics.

    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        run_record(record, step=0)
"""

import datetime
import json
import math
import operator
import time

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from tbreg import constants
from tbreg.plugin import metadata

# HParams names, in the order the dashboard lists them, and where each comes from in the record.
_FROM_HPARAMS = (
    "model",
    "units",
    "depth",
    "activation",
    "l1",
    "l2",
    "dropout",
    "max_norm",
    "batch_norm",
    "optimizer",
    "schedule",
)
HPARAM_NAMES = ("family", *_FROM_HPARAMS, *constants.CONFIG_HPARAMS, "dataset", "params")


def run_record(record: dict, step: int) -> bool:
    """Writes `record` as JSON under `metadata.RUN_TAG` at `step` to the default summary writer."""
    payload = json.dumps(record, sort_keys=True, default=str)
    return tf.summary.write(
        metadata.RUN_TAG, tf.constant(payload), step=step, metadata=metadata.create_summary_metadata()
    )


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _hparam_value(value) -> bool:
    """A value the HParams dashboard shows: a str, bool, int or finite float (not NaN or ±inf)."""
    if isinstance(value, (str, bool)):
        return True
    try:
        return isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int too large for the dashboard's double
        return False


def _epoch_step(record: dict) -> int:
    """The record's `epochs` as a summary step; 0 when it is not a non-negative int."""
    epochs = record.get("epochs")
    try:
        step = operator.index(epochs)  # an int or a numpy integer; not a float, str or None
    except TypeError:
        return 0
    return step if not isinstance(epochs, bool) and 0 <= step < 2**63 else 0


def hparams_of(record: dict) -> dict:
    """The run's hyperparameters for TensorBoard's HParams dashboard (str, int, float or bool).

    Values of other types and non-finite numbers are left out (records are written by hand too).
    """
    hparams = _dict(record.get("hparams"))
    config = _dict(record.get("config"))
    values = {
        "family": record.get("family"),
        **{name: hparams.get(name, 0.0 if name == "l1" else None) for name in _FROM_HPARAMS},
        **{name: config.get(name) for name in constants.CONFIG_HPARAMS},
        "dataset": record.get("dataset"),
        "params": record.get("params"),
    }
    return {k: v for k, v in values.items() if _hparam_value(v)}


def _started_secs(record: dict) -> float:
    try:
        return datetime.datetime.fromisoformat(record["started"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return time.time()


def write_run_start(run_dir: str, record: dict) -> None:
    """At the start of a run: its hyperparameters (HParams) and its record at step 0."""
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        # trial_id="": every run is its own session group, even a byte-identical baseline copy.
        hp.hparams(hparams_of(record), trial_id="", start_time_secs=_started_secs(record))
        run_record(record, step=0)
    writer.close()


def write_run_end(run_dir: str, record: dict) -> None:
    """At the end of a run: its final record, at step = epochs trained (so it supersedes step 0)."""
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        run_record(record, step=_epoch_step(record))
    writer.close()
