"""TensorBoard's HParams dashboard for a tbreg log tree: each run's end-of-run metrics and the
tree's curated experiment config (the same for the training scripts and `tbreg sweep`).

Metrics: scalars written into `<run>/validation/` when a run ends, at step = its epochs (a resumed
run's later write supersedes an interrupted one's). Every view of a session reads them from there:

    end/best_data_loss   lowest validation data loss (what EarlyStopping watched), not the last value
    end/best_epoch       its epoch
    end/best_gap         validation − training data loss at that epoch
    end/best_accuracy    validation accuracy at that epoch
    end/stop_epoch       the last epoch trained
    end/status           STATUS_CODES: 0 completed, 1 early_stopped, 2 interrupted, 3 diverged, 4 failed, 5 aggregate

They are one number per run, not curves: views of curves (the seed mean, the Overfitting tab)
leave `end/` tags out (`analysis.is_end_tag`).

A finished run's root also gets HParams' own session status (success; failure for diverged/failed),
which the dashboard's Status filter uses.

Experiment config: `write_experiment(logdir)` at the tree's root, in a file of its own
(`events.out.tfevents.*.<digest>.hparams-config`) that a write of a different config replaces. It lists every hyperparameter some
run has, with its type and values and whether it differs between runs — the dashboard ticks the
first five columns, those that differ first — and only the metrics above (without it TensorBoard
makes a metric of every scalar tag).
"""

import hashlib
import math
import os
import time

from tbreg._quiet import tensorflow as tf  # noqa: I001
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import summary as hp_summary

from tbreg.plugin import summary as run_summary
from tbreg import analysis, logtree, reader
from tbreg.status import Status

PREFIX = analysis.END_PREFIX  # the metric tags' prefix
SUFFIX = ".hparams-config"  # the experiment config's event file name ends with it (after a digest of it)
STATUS_CODES = {
    Status.COMPLETED: 0,
    Status.EARLY_STOPPED: 1,
    Status.INTERRUPTED: 2,
    Status.DIVERGED: 3,
    Status.FAILED: 4,
    Status.AGGREGATE: 5,
}
_SESSION_STATUS = {
    Status.COMPLETED: api_pb2.STATUS_SUCCESS,
    Status.EARLY_STOPPED: api_pb2.STATUS_SUCCESS,
    Status.AGGREGATE: api_pb2.STATUS_SUCCESS,
    Status.DIVERGED: api_pb2.STATUS_FAILURE,
    Status.FAILED: api_pb2.STATUS_FAILURE,
}
GROUP = "validation"  # the split dir the metrics are written to
# (tag, display name, description), in the dashboard's order
METRICS = (
    ("end/best_data_loss", "best val data loss", "lowest validation data loss (the early-stopping monitor)"),
    ("end/best_epoch", "best epoch", "epoch of the lowest validation data loss"),
    ("end/best_gap", "gap at best", "validation − training data loss at the best epoch"),
    ("end/best_accuracy", "val accuracy at best", "validation accuracy at the best epoch"),
    ("end/stop_epoch", "stop epoch", "last epoch trained"),
    (
        "end/status",
        "status (0 completed, 1 early stopped, 2 interrupted, 3 diverged, 4 failed, 5 mean)",
        "how the run ended, as run.json's status",
    ),
)
_DISCRETE_NUMBERS = 12  # numeric hparams with at most this many values get a checkbox filter


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _at(series: dict, epoch: int) -> float | None:
    return _finite(series.get(epoch))


def run_metrics(record: dict, train: dict, validation: dict) -> dict:
    """{tag: value} of METRICS for a run's `record`, given its training and validation curves as
    {"data_loss" | "accuracy": {epoch: value}}; values that are unknown are left out."""
    data_loss = "epoch_" + (analysis.text(record, "monitor") or "val_loss").removeprefix("val_")
    s = analysis.summarize(record, data_loss, validation.get("data_loss", {}), train.get("data_loss", {}), {}, {})
    gap = s.gap
    # the gap against the training data in inference mode where it was logged, as every view
    # takes it (analysis.summarize_family): its curve, or the onset GeneralizationGap recorded
    inference = _at(train.get("eval_data_loss", {}), s.best_epoch) if s.best_epoch is not None else None
    onset = record.get("overfitting_onset") if isinstance(record, dict) else None
    if inference is None and isinstance(onset, dict) and onset.get("train_split") == analysis.TRAIN_EVAL:
        if analysis.count(onset.get("epoch")) == s.best_epoch:
            inference = _finite(onset.get("train"))
    if inference is not None and s.best_value is not None:
        gap = s.best_value - inference
    out = {
        "end/best_data_loss": s.best_value,
        "end/best_epoch": s.best_epoch,
        "end/best_gap": gap,
        "end/stop_epoch": s.stop_epoch,
        "end/status": STATUS_CODES.get(s.status),
    }
    if s.best_epoch is not None:
        out["end/best_accuracy"] = _at(validation.get("accuracy", {}), s.best_epoch)
    return {tag: float(v) for tag, v in out.items() if _finite(v) is not None}


def _from_history(history: dict, data_loss: str) -> tuple[dict, dict]:
    def curve(name):
        return dict(enumerate(history.get(name, [])))

    return (
        {"data_loss": curve(data_loss), "accuracy": curve("accuracy")},
        {"data_loss": curve("val_" + data_loss), "accuracy": curve("val_accuracy")},
    )


def _from_events(run_dir: str, data_loss: str) -> tuple[dict, dict]:
    scalars = reader.run_scalars(run_dir)

    def curves(split):
        tags = scalars.get(split, {})
        return {
            name: {p.step: p.value for p in tags.get(tag, [])}
            for name, tag in (("data_loss", f"epoch_{data_loss}"), ("accuracy", "epoch_accuracy"))
        }

    train = curves("train")
    train["eval_data_loss"] = curves(analysis.TRAIN_EVAL)["data_loss"]
    return train, curves("validation")


def write_run_end(run_dir: str, record: dict, history: dict | None = None) -> dict:
    """Writes the run's METRICS into `<run_dir>/validation/` (from `history`, Keras' History dict, or
    else from the run's event files) and, if it finished, its HParams session status; returns them."""
    data_loss = (record.get("monitor") or "").removeprefix("val_")
    train, validation = _from_history(history, data_loss) if history is not None else _from_events(run_dir, data_loss)
    metrics = run_metrics(record, train, validation)
    step = run_summary._epoch_step(record)
    writer = tf.summary.create_file_writer(os.path.join(run_dir, GROUP))
    with writer.as_default():
        for tag, value in metrics.items():
            tf.summary.scalar(tag, value, step=step)
    writer.close()
    status = _SESSION_STATUS.get(record.get("status"))
    if status is not None:
        writer = tf.summary.create_file_writer(run_dir)
        with writer.as_default():
            pb = hp_summary.session_end_pb(status, end_time_secs=time.time())
            tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=step)
        writer.close()
    return metrics


def _hparam_info(name: str, values: list) -> api_pb2.HParamInfo:
    """Type, domain and `differs` of hparam `name` from its values in the runs (as TensorBoard
    infers them, but numbers with few values get a discrete domain: checkboxes)."""
    info = api_pb2.HParamInfo(name=name)
    kinds = {bool if isinstance(v, bool) else str if isinstance(v, str) else float for v in values}
    distinct = sorted(set(values), key=str)
    info.differs = len(distinct) > 1
    if kinds == {float}:
        info.type = api_pb2.DATA_TYPE_FLOAT64
        numbers = sorted({float(v) for v in values})
        if len(numbers) <= _DISCRETE_NUMBERS:
            info.domain_discrete.extend(numbers)
        else:
            info.domain_interval.min_value, info.domain_interval.max_value = numbers[0], numbers[-1]
    elif kinds == {bool}:
        info.type = api_pb2.DATA_TYPE_BOOL
        info.domain_discrete.extend(sorted(set(values)))
    else:
        info.type = api_pb2.DATA_TYPE_STRING
        info.domain_discrete.extend(sorted({str(v) for v in values}))
    return info


def experiment(records: list[dict]) -> api_pb2.Experiment:
    """The curated experiment of runs with these records: their hparams (those that differ first,
    each group in tbreg's order) and METRICS."""
    values = {}
    for record in records:
        for name, value in run_summary.hparams_of(record).items():
            values.setdefault(name, []).append(value)
    infos = [_hparam_info(name, values[name]) for name in run_summary.HPARAM_NAMES if name in values]
    infos.sort(key=lambda info: not info.differs)  # stable: tbreg's order within each group
    metrics = [
        api_pb2.MetricInfo(
            name=api_pb2.MetricName(group=GROUP, tag=tag),
            display_name=display,
            description=description,
            dataset_type=api_pb2.DATASET_VALIDATION,
        )
        for tag, display, description in METRICS
    ]
    return api_pb2.Experiment(hparam_infos=infos, metric_infos=metrics, time_created_secs=time.time())


def tree_records(logdir: str) -> list[dict]:
    """The run.json records of every run below `logdir` (each is an HParams session)."""
    records = []
    for run in logtree.find_runs(logdir):
        record = logtree.read_run_json(os.path.join(logdir, run))
        if record:
            records.append(record)
    return records


def write_experiment(logdir: str) -> api_pb2.Experiment:
    """Writes (or replaces) the experiment config at `logdir`'s root for the runs now below it."""
    exp = experiment(tree_records(logdir))
    what = api_pb2.Experiment(hparam_infos=exp.hparam_infos, metric_infos=exp.metric_infos).SerializeToString()
    suffix = f".{hashlib.sha256(what).hexdigest()[:12]}{SUFFIX}"  # the same config: the file stays as it is
    before = _own_files(logdir)
    if any(name.rstrip("/").endswith(suffix) for name in before):
        return exp
    writer = tf.summary.create_file_writer(logdir, filename_suffix=suffix)
    with writer.as_default():
        pb = hp_summary.experiment_pb(exp.hparam_infos, exp.metric_infos, time_created_secs=exp.time_created_secs)
        tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=0)
    writer.close()
    for name in before:  # TensorBoard keeps the first experiment it reads in a run: one file only
        tf.io.gfile.remove(os.path.join(logdir, name))
    return exp


def _own_files(logdir: str) -> list[str]:
    if not tf.io.gfile.isdir(logdir):
        return []
    return [n for n in tf.io.gfile.listdir(logdir) if reader.is_event_file(n) and n.rstrip("/").endswith(SUFFIX)]
