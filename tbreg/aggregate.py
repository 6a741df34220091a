"""The aggregate run of a model trained with several seeds: mean and standard deviation per epoch.

`write_mean(group_dir)` reads every seed run `<group_dir>/seed_<k>` through `tbreg.reader` and
writes `<group_dir>/mean/`, a run of its own:

- `<split>/` for every split the seed runs logged (train, validation, train_eval, validation_mc):
  for every scalar tag, `<tag>` = the mean over the seed runs at each step and `<tag>/std` = their
  standard deviation (numpy's, ddof=0); a step counts the runs that logged it (runs that stopped
  early drop out of later steps). Same tag names as the seed runs, so TensorBoard draws the mean
  on the seeds' charts; a band is `<tag> ± <tag>/std`.
- `run.json` with status `aggregate`, `members` (the seed runs, relative to the group dir), their
  seeds and statuses, and the best epoch / value of the mean validation data loss.
"""

import contextlib
import dataclasses
import datetime
import logging
import os

import numpy as np
import tensorflow as tf

from tbreg import analysis, hparams, logtree, reader
from tbreg.status import Status

MEAN, STD_SUFFIX, STATUS = analysis.MEAN, analysis.STD_SUFFIX, Status.AGGREGATE  # == analysis.AGGREGATE_STATUS


@dataclasses.dataclass(frozen=True)
class Band:
    """Mean and standard deviation of one tag over the members, per step."""

    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray  # members that logged each step


seed_dir = analysis.seed_dir


def members(group_dir: str) -> list[str]:
    """The seed runs in `group_dir` (names `seed_<k>` holding a run.json), by seed."""
    found = []
    for name in tf.io.gfile.listdir(group_dir):
        name = name.rstrip("/")
        m = analysis.SEED_RUN.fullmatch(name)
        if m and tf.io.gfile.exists(os.path.join(group_dir, name, logtree.RUN_JSON)):
            found.append((int(m.group(1)), name))
    return [name for _, name in sorted(found)]


def bands(series: list[list[reader.Point]]) -> Band:
    """Mean and std over members' series of one tag, at every step any member logged."""
    by_step = {}
    for points in series:
        for p in points:
            by_step.setdefault(p.step, []).append(p.value)
    steps = np.array(sorted(by_step), dtype=np.int64)
    values = [np.asarray(by_step[s], dtype=np.float64) for s in steps]
    return Band(
        steps,
        np.array([v.mean() for v in values]),
        np.array([v.std() for v in values]),
        np.array([len(v) for v in values]),
    )


@contextlib.contextmanager
def _quiet_loader():
    """TensorBoard's loader logs every event file it opens at INFO (visible under absl scripts)."""
    logger = logging.getLogger("tensorboard")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def compute(group_dir: str, names: list[str]) -> dict[str, dict[str, Band]]:
    """{split: {tag: Band}} over the seed runs `names` of `group_dir`."""
    with _quiet_loader():
        scalars = [reader.run_scalars(os.path.join(group_dir, name)) for name in names]
    splits = sorted({split for run in scalars for split in run})
    out = {}
    for split in splits:
        tags = sorted({tag for run in scalars for tag in run.get(split, {}) if not analysis.is_end_tag(tag)})
        out[split] = {tag: bands([run.get(split, {}).get(tag, []) for run in scalars]) for tag in tags}
    return out


def _write(event_dir: str, tag_bands: dict[str, Band]) -> None:
    writer = tf.summary.create_file_writer(event_dir)
    with writer.as_default():
        steps = sorted({int(s) for band in tag_bands.values() for s in band.steps})
        for step in steps:  # step by step, like a training writes them
            for tag, band in tag_bands.items():
                i = np.searchsorted(band.steps, step)
                if i < len(band.steps) and band.steps[i] == step:
                    tf.summary.scalar(tag, band.mean[i], step=step)
                    tf.summary.scalar(tag + STD_SUFFIX, band.std[i], step=step)
    writer.close()


def _best(split_bands: dict, monitor: str | None) -> tuple[int | None, float | None]:
    band = split_bands.get("validation", {}).get("epoch_" + monitor[len("val_") :]) if monitor else None
    if band is None:
        return None, None
    return analysis.lowest({int(step): float(value) for step, value in zip(band.steps, band.mean)})


def write_mean(group_dir: str) -> dict:
    """Writes `<group_dir>/mean` from the seed runs in `group_dir`; returns its record (run.json and
    the Overfitting tab's summary, logtree.write_record). An existing `mean` dir is replaced: it is
    derived data.
    """
    names = members(group_dir)
    if not names:
        raise ValueError(f"{group_dir}: no seed runs (seed_<k>/run.json) to aggregate")
    records = [logtree.read_run_json(os.path.join(group_dir, name)) or {} for name in names]  # unreadable: warned
    split_bands = compute(group_dir, names)
    mean_dir = os.path.join(group_dir, MEAN)
    if tf.io.gfile.exists(mean_dir):
        tf.io.gfile.rmtree(mean_dir)
    tf.io.gfile.makedirs(mean_dir)
    for split, tag_bands in split_bands.items():
        _write(os.path.join(mean_dir, split), tag_bands)
    first = records[0]
    monitor = first.get("monitor")
    best_epoch, best_value = _best(split_bands, monitor)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record = {
        **{
            k: first.get(k)
            for k in (
                "family",
                "model",
                "spec",
                "hparams",
                "dataset",
                "config",
                "params",
                "monitor",
                "versions",
                "flags",
            )
            if k in first
        },
        "status": STATUS,
        "members": names,
        "seeds": [r.get("seed") for r in records],
        "member_status": {name: r.get("status") for name, r in zip(names, records)},
        "epochs": max(int(r.get("epochs") or 0) for r in records),
        "stopped_epoch": max((r["stopped_epoch"] for r in records if r.get("stopped_epoch") is not None), default=None),
        "best_epoch": best_epoch,
        "best_value": best_value,
        "aggregate": {"mean": "<tag>", "std": "<tag>" + STD_SUFFIX, "ddof": 0, "over": "members that logged the step"},
        "started": min((r.get("started") or now) for r in records),
        "finished": now,
    }
    record["seed"] = None
    logtree.write_record(mean_dir, record, start=True)
    hparams.write_run_end(mean_dir, record)  # its HParams metrics, from its mean curves
    return record
