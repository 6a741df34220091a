"""The one place that reads event files, through TensorBoard's own loader.

Keras 3 writes scalars and histograms as tensor summaries; TensorBoard's EventAccumulator keeps
only 10 tensors per tag unless told otherwise, so every reader here asks it to keep everything.
"""

import dataclasses
import os

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from tbreg import logtree

KEEP_ALL = {
    event_accumulator.TENSORS: 0,
    event_accumulator.SCALARS: 0,
    event_accumulator.HISTOGRAMS: 0,
    event_accumulator.COMPRESSED_HISTOGRAMS: 0,
}


@dataclasses.dataclass(frozen=True)
class Point:
    step: int
    wall_time: float
    value: float


def load(event_dir: str) -> event_accumulator.EventAccumulator:
    """An EventAccumulator over `event_dir` that has read every event."""
    acc = event_accumulator.EventAccumulator(event_dir, size_guidance=KEEP_ALL)
    acc.Reload()
    return acc


def scalars(event_dir: str) -> dict[str, list[Point]]:
    """Every scalar in `event_dir` by tag: Keras 3's tensor summaries and legacy scalar events."""
    acc = load(event_dir)
    tags = acc.Tags()
    out = {
        tag: [Point(e.step, e.wall_time, float(e.value)) for e in acc.Scalars(tag)]
        for tag in tags[event_accumulator.SCALARS]
    }
    for tag in tags[event_accumulator.TENSORS]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            continue
        out[tag] = [
            Point(e.step, e.wall_time, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)
        ]
    return out


def splits(run_dir: str) -> list[str]:
    """Subdirs of `run_dir` that hold event files (train, validation, …), sorted."""
    out = []
    for name in tf.io.gfile.listdir(run_dir):
        sub = os.path.join(run_dir, name.rstrip("/"))
        if tf.io.gfile.isdir(sub) and any("tfevents" in f for f in tf.io.gfile.listdir(sub)):
            out.append(name.rstrip("/"))
    return sorted(out)


def run_scalars(run_dir: str) -> dict[str, dict[str, list[Point]]]:
    """{split: {tag: points}} for one run dir."""
    return {split: scalars(os.path.join(run_dir, split)) for split in splits(run_dir)}


def find_runs(logdir: str) -> list[str]:
    """Run dirs below `logdir` (those with a run.json or a split of event files), relative, sorted."""
    found = []
    for dirpath, dirnames, filenames in tf.io.gfile.walk(logdir):
        if logtree.RUN_JSON in filenames or any(
            tf.io.gfile.isdir(os.path.join(dirpath, d)) and d in ("train", "validation") for d in dirnames
        ):
            found.append(os.path.relpath(dirpath, logdir) if "://" not in logdir else dirpath[len(logdir) :].strip("/"))
    return sorted(found)
