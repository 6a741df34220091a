"""Pure rules about a log tree's runs, shared by the plugin, the report and `tbreg plot`.

No TensorFlow and no file access here: these functions take names, records and plain series and
return plain data, so every reader shows a run the same way.

Seed groups: a model trained with several seeds is written as `<family>/<model>/seed_<k>` (one
run per seed) plus `<family>/<model>/mean`, whose tags are the seeds' mean and whose `<tag>/std`
tags are their standard deviation. Readers show such a group as one member of `<family>`, named
`<model>`: the mean's line with a ±std band; the seed runs are not separate lines, and `/std` tags
are never metrics of their own.
"""

import collections
import dataclasses
import math
import posixpath
import re
import urllib.parse

from tbreg.status import Status

MEAN = "mean"  # the aggregate run of a seed group
STD_SUFFIX = "/std"  # `<tag>/std`: the seeds' standard deviation of `<tag>`, in the mean run
AGGREGATE_STATUS = Status.AGGREGATE  # the mean run's run.json status
SEED_RUN = re.compile(r"seed_(-?\d+)")
# A run dir's splits, each a TensorBoard run: Keras' train and validation, tbreg's train_eval
# (training data in inference mode) and validation_mc (validation data, Monte-Carlo dropout).
SPLITS = ("train", "validation", "train_eval", "validation_mc")


def seed_dir(seed: int) -> str:
    return f"seed_{seed}"


@dataclasses.dataclass(frozen=True)
class RunName:
    """Where a run dir sits: `family` (a folder path, "" at the tree's root), the `name` shown for it
    (the model, or the seed group), and `member` ("mean", "seed_<k>", or None for a plain run)."""

    family: str
    name: str
    member: str | None = None

    @property
    def group(self) -> str:
        """The path of the run, or of the seed group it belongs to, below the tree's root."""
        return f"{self.family}/{self.name}" if self.family else self.name

    @property
    def is_mean(self) -> bool:
        return self.member == MEAN

    @property
    def is_seed(self) -> bool:
        return self.member is not None and self.member != MEAN


def run_name(rel: str, record: dict | None = None) -> RunName:
    """How the run dir `rel` (a '/'-separated path below the tree's root, "." for the root) is shown.

    `<f>/<m>/seed_<k>` is seed `k` of group `<m>` in family `<f>`; `<f>/<m>/mean` is that group's
    mean when its record (if given) says so or the dir's name is `mean` next to seeds; anything
    else is a run `<name>` of family `<dirname>`.
    """
    rel = rel.strip("/")
    if rel in ("", "."):
        return RunName("", ".")
    head, _, tail = rel.rpartition("/")
    is_member = bool(SEED_RUN.fullmatch(tail)) or (
        tail == MEAN and (record is None or record.get("status") == AGGREGATE_STATUS)
    )
    if is_member:
        family, _, group = head.rpartition("/")
        return RunName(family, group or ".", tail)
    return RunName(head, tail)


@dataclasses.dataclass(frozen=True)
class Shown:
    """A member of a family as every view shows it: the run at `index` (of the list given to
    `shown_runs`) under `name`; a seed group is its mean run with `seeds`, the indices of its seed
    runs (by seed), for its band and its weights."""

    index: int
    name: str
    seeds: tuple[int, ...] = ()


def shown_runs(names: list[RunName], records: list) -> list[Shown]:
    """Which runs a family shows, in the order given: a seed group whose mean run's record says so
    (`is_aggregate`) is that mean, named `<model>`, and its seed runs are not shown; seed runs of a
    group with no mean (yet) are plain runs named `<model>/seed_<k>`. `records[i]` is the record of
    `names[i]` (None without one)."""
    means = {n.group for n, record in zip(names, records) if n.is_mean and is_aggregate(record)}
    seeds = collections.defaultdict(list)  # group -> [(seed, index)]
    for i, n in enumerate(names):
        if n.is_seed and n.group in means:
            seeds[n.group].append((int(SEED_RUN.fullmatch(n.member).group(1)), i))
    out = []
    for i, (n, record) in enumerate(zip(names, records)):
        if n.group in means and n.member is not None:
            if n.is_mean and is_aggregate(record):
                out.append(Shown(i, n.name, tuple(index for _, index in sorted(seeds[n.group]))))
            continue
        out.append(Shown(i, f"{n.name}/{n.member}" if n.member else n.name))
    return out


def baselines(folder: str, records: list) -> list[bool]:
    """Which of a family's runs are baselines: a run whose record names another family than the
    folder it sits in (`folder`, its path below the tree's root) was copied in from that family (a
    seed group by its mean's record). At the tree's root the folder has no name; there the most
    common recorded family is home, and without one there are no baselines."""
    recorded = [text(r, "family") for r in records]
    home = posixpath.basename(folder)
    if not home:
        counts = collections.Counter(f for f in recorded if f).most_common(2)
        if not counts or (len(counts) == 2 and counts[0][1] == counts[1][1]):
            return [False] * len(records)
        home = counts[0][0]
    return [bool(f) and f != home for f in recorded]


# ---------------------------------------------------------------------------------------------
# A run's numbers: data loss, best epoch, gap, penalty share. Curves are {epoch: value} mappings
# (value None or non-finite where the run logged NaN/inf); records are run.json dicts whose fields
# may be missing or of the wrong type (hand-edited, older versions): bad fields count as missing.

LOSS_TAG = "epoch_loss"  # Keras' training objective: data loss + penalties
PENALTY_TAG = "epoch_regularization_loss"  # tbreg's RegularizationLoss callback
# The data loss is the loss without penalties: the cross-entropy, compiled also as a metric so Keras
# logs it apart from `loss`.
DATA_LOSSES = ("binary_crossentropy", "sparse_categorical_crossentropy", "categorical_crossentropy")
DATA_LOSS_TAGS = tuple(f"epoch_{name}" for name in DATA_LOSSES)


def data_loss_for_outputs(outputs: int, label_shape: tuple = ()) -> str:
    """The cross-entropy for a model with `outputs` logits and labels shaped `label_shape`: binary
    for one logit, categorical for one-hot labels, else sparse categorical."""
    if outputs == 1:
        return "binary_crossentropy"
    if len(label_shape) == 2 and label_shape[-1] == outputs:
        return "categorical_crossentropy"
    return "sparse_categorical_crossentropy"


def number(value) -> float | None:
    """`value` as a finite float when it is a real number (not a bool), else None."""
    try:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return None
    return float(value) if ok else None


def count(value) -> int | None:
    """An epoch or a count: a non-negative int (not a bool) that JavaScript holds exactly, else None."""
    return value if type(value) is int and 0 <= value < 2**53 else None


def text(record, key: str) -> str | None:
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def data_loss_tag(record, logged) -> str | None:
    """The tag of a run's data loss (the loss without penalties) among the tags it `logged`: what
    its record says EarlyStopping watched (`val_<x>` → `epoch_<x>`), else the first cross-entropy
    logged, else `epoch_loss` (a model without penalties), else None."""
    logged = set(logged)
    monitor = text(record, "monitor")
    candidates = [f"epoch_{monitor[len('val_'):]}"] if monitor and monitor.startswith("val_") else []
    return next((t for t in [*candidates, *DATA_LOSS_TAGS, LOSS_TAG] if t in logged), None)


def lowest(curve: dict) -> tuple[int | None, float | None]:
    """(epoch, value) of the lowest finite value of `curve`; the earliest on ties; (None, None) if none."""
    best = (None, None)
    for step in sorted(curve):
        value = number(curve[step])
        if value is not None and (best[1] is None or value < best[1]):
            best = (step, value)
    return best


@dataclasses.dataclass(frozen=True)
class Summary:
    """A run's summary line, as every view shows it."""

    status: str | None
    params: int | None
    data_loss: str | None
    best_epoch: int | None  # lowest validation data loss
    best_value: float | None
    train_value: float | None  # training data loss at the best epoch
    gap: float | None  # best_value - train_value: how much worse on unseen data
    stop_epoch: int | None
    penalty_share: float | None  # the penalty's share of the training loss at the best epoch


def summarize(record, data_loss: str | None, validation: dict, train: dict, loss: dict, penalty: dict) -> Summary:
    """The summary of one run from its record and its curves ({epoch: value}): `validation` and
    `train` of the data loss, Keras' `loss` (train) and the logged `penalty` (train, may be empty).

    A finished run's best epoch is its record's (training saw every epoch; a reader may hold only a
    sample of long curves); a running run's (or one without a usable record) is its curve's lowest
    so far, and its stop epoch the last epoch logged.
    """
    record = record if isinstance(record, dict) else {}
    status = text(record, "status")
    finished = status not in (None, Status.RUNNING)
    best_epoch, best_value = lowest(validation)
    if finished and count(record.get("best_epoch")) is not None and number(record.get("best_value")) is not None:
        best_epoch, best_value = record["best_epoch"], number(record["best_value"])
    train_value = number(train.get(best_epoch)) if best_epoch is not None else None
    onset = record.get("overfitting_onset")
    if train_value is None and best_epoch is not None and isinstance(onset, dict) and count(onset.get("epoch")) == best_epoch:
        train_value = number(onset.get("train"))  # tbreg's GeneralizationGap callback recorded it
    share = None
    total = number(loss.get(best_epoch)) if best_epoch is not None else None
    if total:
        part = number(penalty.get(best_epoch))
        if part is None and train_value is not None and data_loss != LOSS_TAG:
            part = max(0.0, total - train_value)
        share = None if part is None else number(part / total)
    stop_epoch = count(record.get("stopped_epoch")) if finished else None
    if stop_epoch is None:
        stop_epoch = max((e for curve in (validation, train, loss) for e in curve), default=None)
    return Summary(
        status=status,
        params=count(record.get("params")),
        data_loss=data_loss,
        best_epoch=best_epoch,
        best_value=best_value,
        train_value=train_value,
        gap=None if best_value is None or train_value is None else number(best_value - train_value),
        stop_epoch=stop_epoch,
        penalty_share=share,
    )


def penalty_curve(loss: dict, data: dict) -> dict:
    """The penalty when no callback logged it: Keras' loss minus the data loss (both average the
    same training batches), never below 0."""
    out = {}
    for step, total in loss.items():
        total, part = number(total), number(data.get(step))
        if total is not None and part is not None:
            out[step] = max(0.0, total - part)
    return out


def is_aggregate(record) -> bool:
    """A seed group's mean run, by its record (run.json)."""
    return isinstance(record, dict) and record.get("status") == AGGREGATE_STATUS


def is_std_tag(tag: str) -> bool:
    """A seed group's `<tag>/std`: drawn as the band around `<tag>`, never a metric or a layer."""
    return tag.endswith(STD_SUFFIX)


def std_tag(tag: str) -> str:
    return tag + STD_SUFFIX


# TensorBoard's Scalars, Distributions and Histograms tabs (its older dashboards) select every run
# only when at most this many match the run filter; above it they open with no run selected. Its
# Time Series tab selects up to 500. A link's `regexInput` sets the filter, so a family fits.
TENSORBOARD_RUN_LIMIT = 40


def tensorboard_runs(files: list[str]) -> list[str]:
    """The split dirs (TensorBoard runs with scalars) among a tree's files, given relative to it."""
    dirs = {posixpath.dirname(f) for f in files if ".tfevents." in posixpath.basename(f)}
    return sorted(d for d in dirs if posixpath.basename(d) in SPLITS)


def tensorboard_note(runs: list[str], url: str | None = None) -> str | None:
    """What to open when TensorBoard's Scalars/Histograms tabs would start empty (more than 40
    split runs), with a link per family that fits; None when they don't. The links are `url` (the
    address TensorBoard is served at, e.g. behind `--port`, a remote host or a proxy) plus a
    fragment; without `url`, the fragments alone, to append to that address."""
    if len(runs) <= TENSORBOARD_RUN_LIMIT:
        return None
    families = collections.Counter(run_name(posixpath.dirname(r)).family for r in runs)
    base = "" if url is None else url if url.endswith(("/", "#")) else url + "/"
    links = [
        f"{base}#scalars&regexInput={urllib.parse.quote('^' + re.escape(f) + '/', safe='')}"
        for f, n in sorted(families.items())
        if f and n <= TENSORBOARD_RUN_LIMIT
    ]
    how = "" if url is not None else " (append one to the address TensorBoard serves, e.g. http://localhost:6006/; --tensorboard_url=URL prints whole links)"
    where = f"; one family each{how}: {' '.join(links)}" if links else ""
    return (
        f"{len(runs)} TensorBoard runs: its Scalars and Histograms tabs select none above "
        f"{TENSORBOARD_RUN_LIMIT} (tick them, or filter runs); Time Series and Overfitting show all{where}"
    )
