"""The one place that reads event files and log trees, through TensorBoard's own loader.

Keras 3 writes scalars and histograms as tensor summaries; TensorBoard's EventAccumulator keeps
only 10 tensors per tag unless told otherwise, so every reader here asks it to keep everything.
A tree's runs (`iter_runs`, `load_runs`: checked, with their record and every scalar) are read here
for the report, export, bundle, plot and the seed means; the plugin reads through TensorBoard's
data provider instead, and shows runs by the same rules (`tbreg.analysis`).
"""

import contextlib
import dataclasses
import os
import shlex
import sys
import warnings

import numpy as np
import tensorflow as tf
from tensorboard.backend.event_processing import directory_watcher, event_accumulator, event_file_loader, io_wrapper
from tensorboard.util import tensor_util

from tbreg import analysis, logtree
from tbreg.errors import UserError, first_line
from tbreg.status import Status

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


class DamagedEventFileWarning(UserWarning):
    """An event file has a corrupted or incomplete record: only the events before it are read."""


def warn_if_damaged(event_dir: str) -> list["EventFileCheck"]:
    """Checks every event file in `event_dir`; warns once per damaged one (file and byte offset)."""
    damaged = []
    try:
        names = tf.io.gfile.listdir(event_dir)
    except tf.errors.OpError:
        return damaged
    for name in sorted(names):
        if not is_event_file(name):
            continue
        path = os.path.join(event_dir, name)
        if not logtree.readable(path):  # a FIFO or device named like an event file: never opened
            continue
        try:
            check = inspect_event_file(path)
        except tf.errors.OpError as e:  # unreadable (permissions, vanished): TensorBoard skips it too
            warnings.warn(f"{path}: cannot read it ({first_line(e)})", DamagedEventFileWarning, stacklevel=3)
            continue
        if not check.ok:
            damaged.append(check)
            warnings.warn(
                f"{check.describe()}; the {check.events} events before it are read",
                DamagedEventFileWarning,
                stacklevel=3,
            )
    return damaged


def load(event_dir: str) -> event_accumulator.EventAccumulator:
    """An EventAccumulator over `event_dir` that has read every event.

    A corrupted or truncated event file gives a DamagedEventFileWarning (file and byte offset)
    and its events up to the damage, as TensorBoard shows them.
    """
    warn_if_damaged(event_dir)
    acc = event_accumulator.EventAccumulator(event_dir, size_guidance=KEEP_ALL)
    names = tf.io.gfile.listdir(event_dir) if tf.io.gfile.isdir(event_dir) else []
    if any(is_event_file(n) and logtree.unreadable_reason(os.path.join(event_dir, n)) for n in names):
        # TensorBoard's loader would open a FIFO named like an event file and wait forever: read the
        # dir with its own DirectoryWatcher (what EventAccumulator builds), regular files only.
        acc._generator = directory_watcher.DirectoryWatcher(
            event_dir,
            event_file_loader.LegacyEventFileLoader,
            lambda path: io_wrapper.IsSummaryEventsFile(path) and not logtree.unreadable_reason(path),
        )
    acc.Reload()
    return acc


def _series(acc, legacy_kind: str, legacy_point, plugin: str, tensor_point) -> dict:
    """{tag: points} of one kind: legacy events (`legacy_kind`) and tensor summaries of `plugin`."""
    tags = acc.Tags()
    getter = {event_accumulator.SCALARS: acc.Scalars, event_accumulator.HISTOGRAMS: acc.Histograms}[legacy_kind]
    out = {tag: [legacy_point(e) for e in getter(tag)] for tag in tags[legacy_kind]}
    for tag in tags[event_accumulator.TENSORS]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == plugin:
            out[tag] = [tensor_point(e) for e in acc.Tensors(tag)]
    return out


def scalars(event_dir: str) -> dict[str, list[Point]]:
    """Every scalar in `event_dir` by tag: Keras 3's tensor summaries and legacy scalar events."""
    return _series(
        load(event_dir),
        event_accumulator.SCALARS,
        lambda e: Point(e.step, e.wall_time, float(e.value)),
        "scalars",
        lambda e: Point(e.step, e.wall_time, float(tensor_util.make_ndarray(e.tensor_proto))),
    )


@dataclasses.dataclass(frozen=True)
class HistogramPoint:
    step: int
    wall_time: float
    buckets: np.ndarray  # shape (k, 3): left edge, right edge, count

    @property
    def count(self) -> float:
        """Number of values in the histogram."""
        return float(self.buckets[:, 2].sum()) if self.buckets.size else 0.0


@dataclasses.dataclass(frozen=True)
class TextPoint:
    step: int
    wall_time: float
    text: str


def _legacy_buckets(histo) -> np.ndarray:
    limits = list(histo.bucket_limit)
    lefts = [histo.min] + limits[:-1]
    return np.array(list(zip(lefts, limits, histo.bucket)), dtype=float).reshape(-1, 3)


def _tensor_buckets(proto) -> np.ndarray:
    return np.asarray(tensor_util.make_ndarray(proto), dtype=float).reshape(-1, 3)


def histograms(event_dir: str) -> dict[str, list[HistogramPoint]]:
    """Every histogram in `event_dir` by tag: Keras 3's / tf.summary's tensor summaries and legacy ones."""
    return _series(
        load(event_dir),
        event_accumulator.HISTOGRAMS,
        lambda e: HistogramPoint(e.step, e.wall_time, _legacy_buckets(e.histogram_value)),
        "histograms",
        lambda e: HistogramPoint(e.step, e.wall_time, _tensor_buckets(e.tensor_proto)),
    )


def texts(event_dir: str) -> dict[str, list[TextPoint]]:
    """Every text summary in `event_dir` by tag (the first string of each, decoded)."""
    acc = load(event_dir)
    out = {}
    for tag in acc.Tags()[event_accumulator.TENSORS]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
            continue
        points = []
        for e in acc.Tensors(tag):
            value = np.asarray(tensor_util.make_ndarray(e.tensor_proto)).reshape(-1)
            text = value[0] if value.size else b""
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
            points.append(TextPoint(e.step, e.wall_time, text))
        out[tag] = points
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


# ---------------------------------------------------------------------------------------------
# Checking event files: TFRecord framing (u64 length, masked crc32c of it, data, masked crc32c of
# the data). TensorBoard stops reading a file at the first bad record without saying so.

EVENT_FILE_MARK = "tfevents"  # TensorBoard reads every file whose name contains this
_RECORD_OVERHEAD = 16  # 8-byte length + two 4-byte checksums


@dataclasses.dataclass(frozen=True)
class EventFileCheck:
    """What reading `path` record by record found: `events` intact records in `size` bytes.

    `problem` is None for a sound file, "corrupted" (a checksum failed) or "truncated" (the file
    ends inside a record); `offset` is then the byte where the first unreadable record starts.
    """

    path: str
    size: int
    events: int
    problem: str | None = None
    offset: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        """One line for a user: which file, what is wrong, where, and what TensorBoard does with it."""
        if self.ok:
            return f"{self.path}: {self.events} events, {self.size} bytes"
        lost = self.size - self.offset
        what = "corrupted record" if self.problem == "corrupted" else "incomplete record"
        return (
            f"{self.path}: {what} at byte {self.offset} after {self.events} good events; "
            f"TensorBoard silently ignores the remaining {lost} bytes"
        )


def is_event_file(name: str) -> bool:
    return EVENT_FILE_MARK in os.path.basename(name.rstrip("/"))


def _record_iterator(path: str):
    """TensorBoard's own record iterator (checksums checked in C++), its deprecation notice silenced."""
    try:
        from tensorflow.python.util import deprecation

        silence = deprecation.silence()
    except (ImportError, AttributeError):
        silence = contextlib.nullcontext()
    with silence:
        return tf.compat.v1.io.tf_record_iterator(path)


def inspect_event_file(path: str, size: int | None = None) -> EventFileCheck:
    """Reads every record of event file `path` (checksums checked) and says whether all bytes are sound.

    With `size`, only the first `size` bytes count (a file still growing is judged as it was then).
    """
    if size is None:
        size = tf.io.gfile.stat(path).length
    events, offset = 0, 0
    try:
        for record in _record_iterator(path):
            if offset + len(record) + _RECORD_OVERHEAD > size:
                break
            events += 1
            offset += len(record) + _RECORD_OVERHEAD
    except tf.errors.DataLossError as e:
        if offset < size:  # a record past `size` may be half-written by a live writer: not counted
            problem = "corrupted" if "corrupted" in str(e) else "truncated"
            return EventFileCheck(path, size, events, problem, offset)
    if offset != size:  # a partial header at the end reads as a clean end of file
        return EventFileCheck(path, size, events, "truncated", offset)
    return EventFileCheck(path, size, events)


def count_events(path: str) -> int:
    """Number of intact events (records) in event file `path`."""
    return inspect_event_file(path).events


# ---------------------------------------------------------------------------------------------
# A log tree's runs, checked and read in full (report, export, bundle, plot, seed means)


@dataclasses.dataclass
class Run:
    """One run dir of a tree: where it sits, its run.json and every scalar, by split and tag."""

    family: str
    name: str
    path: str
    rel: str  # the run dir relative to the tree's root ("" when the tree is one run)
    info: dict
    scalars: dict[str, dict[str, list[Point]]]
    member: str | None = None  # in a seed group: "mean" or "seed_<k>" (`name` is then `<model>/<member>`)

    @property
    def run_name(self) -> analysis.RunName:
        """Where it sits, as the rules in tbreg.analysis take it."""
        group = self.name.rpartition("/")[0] if self.member else self.name
        return analysis.RunName(self.family, group, self.member)

    def sort_key(self):
        return (self.family, self.info.get("started") or "", self.name)


def check_source(logdir: str) -> None:
    """Fails with a one-line UserError unless `logdir` is an existing dir we can read."""
    try:
        exists = tf.io.gfile.isdir(logdir)
    except tf.errors.OpError as e:
        raise UserError(f"{logdir}: cannot read it ({first_line(e)})") from None
    if not exists:
        hint = "train one first: tbreg-train-sizes --logdir=" + shlex.quote(logdir)
        raise UserError(f"{logdir}: no such log dir; {hint}")


def tree_files(logdir: str) -> list[str]:
    """Regular files of the tree below `logdir`, relative, sorted; tbreg's own temporary and state
    files left out (`logtree.is_internal`), and what no reader may open (`logtree.list_files`)."""
    return [rel for rel in logtree.list_files(logdir) if not logtree.is_internal(rel)]


def _run_names(logdir: str, rel: str, record: dict | None = None) -> tuple[str, str, str | None]:
    """(family, run, member) for run dir `rel` below `logdir`, by the dir layout; a seed group's runs
    (`<family>/<model>/seed_<k>`, `…/mean`) are runs `<model>/seed_<k>`, `<model>/mean` of `<family>`
    (member `seed_<k>`, `mean`)."""
    base = os.path.basename(logdir.rstrip("/"))
    parent = os.path.basename(os.path.dirname(logdir.rstrip("/")))
    if rel in ("", "."):
        return parent or base, base, None
    name = analysis.run_name(rel, record)
    if name.member is None:
        return name.family or base, name.name, None
    if name.name == ".":  # `logdir` is the seed group itself
        return parent or base, f"{base}/{name.member}", name.member
    return name.family or base, f"{name.name}/{name.member}", name.member


def check_run_files(run_dir: str, live: bool = False, keep_damaged: bool = False) -> dict[str, EventFileCheck]:
    """Checks every event file below `run_dir`; a damaged one is a UserError naming file and byte.

    With `live` (the run is still training) an incomplete last record is what the writer has not
    flushed yet, not damage. With `keep_damaged` a damaged file is a one-line warning on stderr
    instead, and its records before the damage are used. Returns {path: check}.
    """
    checks = {}
    for split in splits(run_dir):
        split_dir = os.path.join(run_dir, split)
        for name in sorted(tf.io.gfile.listdir(split_dir)):
            if is_event_file(name) and logtree.readable(os.path.join(split_dir, name)):
                check = inspect_event_file(os.path.join(split_dir, name))
                if not check.ok and not (live and check.problem == "truncated"):
                    if not keep_damaged:
                        raise UserError(
                            f"{check.describe()}; restore it from a copy, or pass --keep_damaged to use "
                            "the records before the damage"
                        )
                    print(
                        f"tbreg: warning: {check.describe()}; using the {check.events} events before it",
                        file=sys.stderr,
                    )
                checks[check.path] = check
    return checks


def iter_runs(logdir: str, keep_damaged: bool = False):
    """Yields every run below `logdir` (a tree, a family dir or one run), checked and read in full,
    one at a time in dir order; a missing or empty tree is a UserError before the first.
    `keep_damaged`: see `check_run_files`."""
    check_source(logdir)
    rels = [rel for rel in logtree.find_runs(logdir) if not logtree.is_internal(rel)]
    if not rels:
        raise UserError(
            f"{logdir}: no runs found (no run.json or train/validation dirs below it); "
            f"train some first: tbreg-train-sizes --logdir={shlex.quote(logdir)}"
        )
    for rel in rels:
        path = logdir.rstrip("/") if rel in ("", ".") else os.path.join(logdir, rel)
        info = logtree.read_run_json(path) or {}
        check_run_files(path, live=info.get("status") == Status.RUNNING, keep_damaged=keep_damaged)
        family, name, member = _run_names(logdir, rel, info or None)  # no record: the dir's name decides
        yield Run(family, name, path, "" if rel == "." else rel, info, run_scalars(path), member)


def load_runs(logdir: str, keep_damaged: bool = False) -> list[Run]:
    """All of `iter_runs`, families in name order, runs in the order they were trained."""
    return sorted(iter_runs(logdir, keep_damaged), key=Run.sort_key)


def shown_runs(runs: list[Run]) -> list[Run]:
    """The runs a family shows (`analysis.shown_runs`): a seed group as its mean run, named `<model>`."""
    names, records = [r.run_name for r in runs], [r.info or None for r in runs]
    return [dataclasses.replace(runs[s.index], name=s.name) for s in analysis.shown_runs(names, records)]


@dataclasses.dataclass
class Member:
    """A member of a family as every view shows it: its run (a seed group's mean, named `<model>`),
    a seed group's seed runs by seed, and whether it is the family's baseline."""

    run: Run
    seeds: dict  # seed -> Run
    baseline: bool


def members(runs: list[Run]) -> list[Member]:
    """The members of one family's `runs` (seed runs included: a group's band and statistics are
    computed from them), as `analysis.shown_runs` and `analysis.baselines` say."""
    names, records = [r.run_name for r in runs], [r.info or None for r in runs]
    shown = analysis.shown_runs(names, records)
    folder = runs[0].family if runs else ""
    base = analysis.baselines(folder, [runs[s.index].info or None for s in shown])
    return [
        Member(
            dataclasses.replace(runs[s.index], name=s.name),
            {analysis.seed_of(runs[i].member): runs[i] for i in s.seeds},
            b,
        )
        for s, b in zip(shown, base)
    ]


def curve(run: Run, split: str, tag: str | None) -> dict:
    """{step: value} of one tag of one split of `run` ({} when it was not logged)."""
    return {p.step: p.value for p in run.scalars.get(split, {}).get(tag, [])} if tag else {}


def data_loss_tag(run: Run) -> str | None:
    """The run's data-loss tag among its validation scalars (see `analysis.data_loss_tag`)."""
    return analysis.data_loss_tag(run.info, run.scalars.get("validation", {}))


def run_curves(member: Member) -> analysis.RunCurves:
    """What `analysis.summarize_family` reads of a member (the tab builds the same from TensorBoard)."""
    run, tag = member.run, data_loss_tag(member.run)
    return analysis.RunCurves(
        run.info or None,
        tag,
        validation=curve(run, "validation", tag),
        train=curve(run, "train", tag),
        train_eval=curve(run, analysis.TRAIN_EVAL, tag),
        loss=curve(run, "train", analysis.LOSS_TAG),
        penalty=curve(run, "train", analysis.PENALTY_TAG),
        baseline=member.baseline,
        seeds={seed: {"validation": curve(r, "validation", tag)} for seed, r in member.seeds.items()},
    )


def summarize_family(family: list[Member]) -> list[analysis.FamilyRow]:
    """`analysis.summarize_family` of a family's members, read from their event files."""
    return analysis.summarize_family([run_curves(m) for m in family])


def diagnostic_correlations(family: list[Member], rows: list[analysis.FamilyRow]) -> list[analysis.Correlation]:
    """`analysis.diagnostic_correlations` of a family's members (`rows`: their `summarize_family`)."""
    scalars = [
        {t: curve(m.run, "train", t) for t in m.run.scalars.get("train", {}) if analysis.is_diagnostic_tag(t)}
        for m in family
    ]
    return analysis.diagnostic_correlations(rows, scalars)
