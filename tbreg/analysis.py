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
import functools
import math
import posixpath
import re
import urllib.parse

import numpy as np

from tbreg import constants
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
    if type(value) is float:  # the common case, first: a curve's point
        return value if math.isfinite(value) else None
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
    candidates = [f"epoch_{monitor[len('val_') :]}"] if monitor and monitor.startswith("val_") else []
    return next((t for t in [*candidates, *DATA_LOSS_TAGS, LOSS_TAG] if t in logged), None)


def lowest(curve: dict) -> tuple[int | None, float | None]:
    """(epoch, value) of the lowest finite value of `curve`; the earliest on ties; (None, None) if none."""
    steps, values = finite_points(curve)
    if not steps:
        return None, None
    i = int(np.argmin(values))
    return steps[i], float(values[i])


def finite_points(curve: dict) -> tuple[list, "np.ndarray"]:
    """(epochs ascending, float64 values) of the points of `curve` ({epoch: value}) whose value is
    a finite number (`number`); a curve of floats (every curve a log holds) is checked in C."""
    items = sorted(curve.items())  # epochs are unique: values are never compared
    values = [v for _, v in items]
    if set(map(type, values)) <= {float}:
        array = np.array(values, dtype=np.float64)
        ok = np.isfinite(array)
        if ok.all():
            return [e for e, _ in items], array
        return [e for (e, _), keep in zip(items, ok.tolist()) if keep], array[ok]
    kept = [(e, number(v)) for e, v in items if number(v) is not None]
    return [e for e, _ in kept], np.array([v for _, v in kept], dtype=np.float64)


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
    if (
        train_value is None
        and best_epoch is not None
        and isinstance(onset, dict)
        and count(onset.get("epoch")) == best_epoch
    ):
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


END_PREFIX = "end/"  # a run's end-of-run HParams metrics (tbreg.hparams): one number per run, never a curve


def is_end_tag(tag: str) -> bool:
    """One of a run's end-of-run metric tags (`end/…`): left out of curves, means and charts."""
    return tag.startswith(END_PREFIX)


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
    how = (
        ""
        if url is not None
        else " (append one to the address TensorBoard serves, e.g. http://localhost:6006/; --tensorboard_url=URL prints whole links)"
    )
    where = f"; one family each{how}: {' '.join(links)}" if links else ""
    return (
        f"{len(runs)} TensorBoard runs: its Scalars and Histograms tabs select none above "
        f"{TENSORBOARD_RUN_LIMIT} (tick them, or filter runs); Time Series and Overfitting show all{where}"
    )


# ---------------------------------------------------------------------------------------------
# What the curves mean: the gap against the inference-mode training loss, the overfitting onset
# (Prechelt's generalization loss on the smoothed validation curve), a verdict per run, and
# seed statistics (confidence bands with n per step, paired comparisons against the baseline).

TRAIN_EVAL = "train_eval"  # the split of the training data evaluated in inference mode (TrainEval)
# Prechelt (1998), "Early stopping — but when?": the generalization loss at epoch t is
# GL(t) = 100 · (E_va(t) / E_opt(t) − 1), E_opt(t) the lowest validation loss up to t; criterion
# GL_α stops at the first t with GL(t) > α. Applied here to the smoothed validation data loss.
GL_THRESHOLD = 5.0  # α, percent
SMOOTH_WINDOW = 5  # epochs of the centred moving average the criterion reads (odd; no lag)
CONFIDENCE = 0.95
BAND_KINDS = ("ci", "std")  # a seed group's band: 95 % CI of the mean (default) or ± std (ddof=1)
IMPROVING_TAIL = 0.1  # best within the last 10 % of the epochs (at least 2): still improving
UNDERFIT_GAP = 0.05  # |gap| below 5 % of the validation loss: train ≈ validation …
UNDERFIT_EXCESS = 0.10  # … and the validation loss 10 % above the family's best: both high


def behaves_differently_in_training(record) -> bool:
    """Whether a run's model has a layer that acts differently in training (dropout, batch
    normalization), by its record's hyperparameters; False when the record does not say."""
    hp = record.get("hparams") if isinstance(record, dict) else None
    if not isinstance(hp, dict):
        return False
    return bool(number(hp.get("dropout"))) or hp.get("batch_norm") is True


def smooth_centered(curve: dict, window: int = SMOOTH_WINDOW) -> dict:
    """{epoch: mean of the finite values within ±window//2 points}: a moving average without lag
    (the ends average fewer points); non-finite values are left out."""
    steps, smoothed = _smoothed(curve, window)
    return dict(zip(steps, smoothed.tolist()))


def _smoothed(curve: dict, window: int) -> tuple[list, "np.ndarray"]:
    """`smooth_centered` as (epochs, values): the sum of each window in order from its left end
    (shifted copies of the curve, zero-padded), over the number of points it holds."""
    steps, values = finite_points(curve)
    half, n = max(0, int(window) // 2), len(steps)
    padded = np.concatenate([np.zeros(half), values, np.zeros(half)])
    total = np.zeros(n)
    for k in range(2 * half + 1):
        total += padded[k : k + n]
    i = np.arange(n)
    held = np.minimum(i + half, n - 1) - np.maximum(i - half, 0) + 1
    return steps, total / held


@dataclasses.dataclass(frozen=True)
class Onset:
    """Where overfitting starts by GL_α on the smoothed validation curve: `epoch`, the smoothed
    curve's lowest point before the criterion fired, and `fired`, the first epoch with GL > α
    (where early stopping by GL_α would have stopped), with `gl` there (percent)."""

    epoch: int
    fired: int
    gl: float


def overfitting_onset(validation: dict, threshold: float = GL_THRESHOLD, window: int = SMOOTH_WINDOW) -> Onset | None:
    """The onset of overfitting of a validation curve ({epoch: loss}) by Prechelt's GL_α
    (`threshold` = α in percent) on its centred moving average over `window` epochs; None when
    the criterion never fires (still improving, flat, or too noisy to tell).

    Read after the fact, a firing whose reference low the curve later beats was a bump it
    recovered from (e.g. batch norm's noisy first epochs), not the onset: the onset is the first
    firing after which the smoothed curve never again goes below that low."""
    return _onset(*_smoothed(validation, window), threshold)


def _onset(steps: list, smoothed: "np.ndarray", threshold: float) -> Onset | None:
    """`overfitting_onset` of a smoothed curve: at each epoch the lowest value so far (`best`, the
    earliest on ties), GL there, and the lowest value after it (a later low means a bump)."""
    if not steps:
        return None
    best = np.minimum.accumulate(smoothed)
    later_low = np.append(np.minimum.accumulate(smoothed[::-1])[::-1][1:], math.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        gl = 100.0 * (smoothed / best - 1.0)
        fires = (best > 0) & (gl > threshold) & (later_low >= best)
    if not fires.any():
        return None
    i = int(np.argmax(fires))
    return Onset(steps[int(np.argmin(smoothed[: i + 1]))], steps[i], float(gl[i]))


@functools.lru_cache(maxsize=1024)  # a band asks it per epoch: scipy takes ~0.1 ms per call
def t_quantile(n: int, level: float = CONFIDENCE) -> float | None:
    """The two-sided `level` quantile of Student's t with n − 1 degrees of freedom (None for n < 2)."""
    if n < 2:
        return None
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2.0, n - 1))


@dataclasses.dataclass(frozen=True)
class Interval:
    """The mean of `n` values with its spread: `std` (ddof=1) and `half`, the half-width of its
    `level` confidence interval (t, n − 1 degrees of freedom); None for both when n < 2."""

    mean: float
    n: int
    std: float | None
    half: float | None

    @property
    def low(self) -> float | None:
        return None if self.half is None else self.mean - self.half

    @property
    def high(self) -> float | None:
        return None if self.half is None else self.mean + self.half


def interval(values, level: float = CONFIDENCE) -> Interval | None:
    """Mean, std (ddof=1) and the t confidence interval of the finite `values`; None without any."""
    xs = [v for v in map(number, values) if v is not None]
    if not xs:
        return None
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return Interval(mean, n, None, None)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Interval(mean, n, std, t_quantile(n, level) * std / math.sqrt(n))


@dataclasses.dataclass(frozen=True)
class Band:
    """A seed group's band per step: the mean over the seeds that logged the step, `half` the
    band's half-width (CI of the mean or std, None where fewer than 2 seeds logged it), `n` the
    seeds per step, and `drops`, the steps where n falls (seeds that stopped early)."""

    kind: str
    steps: list
    mean: list
    half: list
    n: list
    drops: list


def seed_band(curves: list[dict], kind: str = "ci", level: float = CONFIDENCE) -> Band:
    """The band of a metric over a seed group's runs (`curves`, one {epoch: value} per seed):
    `kind` "ci" is the `level` confidence interval of the mean (t, n − 1 degrees of freedom),
    "std" is ± the standard deviation (ddof=1)."""
    if kind not in BAND_KINDS:
        raise ValueError(f"band kind must be one of {', '.join(BAND_KINDS)}, not {kind!r}")
    steps = sorted({s for c in curves for s in c})
    out = Band(kind, [], [], [], [], [])
    previous = None
    for step in steps:
        got = interval([c[step] for c in curves if step in c], level)
        if got is None:
            continue
        half = got.half if kind == "ci" else got.std
        out.steps.append(step)
        out.mean.append(got.mean)
        out.half.append(half)
        out.n.append(got.n)
        if previous is not None and got.n < previous:
            out.drops.append(step)
        previous = got.n
    return out


@dataclasses.dataclass(frozen=True)
class Paired:
    """A seed group against the family's baseline, seed k with seed k: the mean difference of the
    best validation data loss (group − baseline; negative = the group is better) with its `level`
    t interval over the `n` pairs, and whether that excludes 0."""

    diff: float
    low: float
    high: float
    n: int
    excludes_zero: bool


def paired_difference(group: dict, baseline: dict, level: float = CONFIDENCE) -> Paired | None:
    """Paired comparison of {seed: best validation loss} of a group and of the baseline, over the
    seeds both have; None with fewer than 2 pairs."""
    seeds = sorted(set(group) & set(baseline))
    diffs = [group[s] - baseline[s] for s in seeds if number(group[s]) is not None and number(baseline[s]) is not None]
    got = interval(diffs, level)
    if got is None or got.half is None:
        return None
    return Paired(got.mean, got.low, got.high, got.n, got.low > 0 or got.high < 0)


@dataclasses.dataclass
class RunCurves:
    """What `summarize_family` needs of one member of a family, as every view reads it: the
    record, the data-loss tag and its curves ({epoch: value}) per split, Keras' loss and the
    penalty (train), whether it is the baseline, and for a seed group its seed runs'
    ({seed: {split: {epoch: value}}} of the data loss) and their records."""

    record: dict | None
    data_loss: str | None
    validation: dict
    train: dict
    train_eval: dict = dataclasses.field(default_factory=dict)
    loss: dict = dataclasses.field(default_factory=dict)
    penalty: dict = dataclasses.field(default_factory=dict)
    baseline: bool = False
    seeds: dict = dataclasses.field(default_factory=dict)  # seed -> {"validation": {…}, "train": …}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a run's curves mean, in one line (`text`), its `kind` (overfits, improving, underfits,
    over_regularized, diverged, fits, unknown) and the epochs of its markers."""

    kind: str
    text: str
    onset: int | None = None  # where overfitting starts (GL_α)
    fired: int | None = None  # where GL_α early stopping would have stopped


def seed_of(member: str | None) -> int | None:
    m = SEED_RUN.fullmatch(member or "")
    return int(m.group(1)) if m else None


def _last_value(curve: dict) -> tuple[int | None, float | None]:
    for step in sorted(curve, reverse=True):
        if number(curve[step]) is not None:
            return step, number(curve[step])
    return None, None


def _first_non_finite(*curves) -> int | None:
    bad = [e for c in curves if len(finite_points(c)[0]) < len(c) for e, v in c.items() if number(v) is None]
    return min(bad) if bad else None


def verdict(
    s: Summary,
    run: RunCurves,
    family_best: float | None = None,
    baseline: Summary | None = None,
    threshold: float = GL_THRESHOLD,
    window: int = SMOOTH_WINDOW,
) -> Verdict:
    """The verdict of one run from its summary `s` and curves; `family_best` (the lowest best
    validation data loss of its family) and its family's `baseline` summary give the context for
    "underfits" and "over-regularized". In order: diverged, overfits (GL_α fired), still
    improving (best in the last 10 % of the epochs), over-regularized (worse than the baseline
    on validation and on training), underfits (train ≈ validation, both well above the family's
    best), else fits."""
    record = run.record if isinstance(run.record, dict) else {}
    bad = _first_non_finite(run.validation, run.train)
    if s.status == Status.DIVERGED or bad is not None:
        epoch = count(record.get("diverged_epoch"))
        epoch = epoch if epoch is not None else bad if bad is not None else s.stop_epoch
        return Verdict("diverged", f"diverged at epoch {epoch}" if epoch is not None else "diverged")
    epochs, smoothed = _smoothed(run.validation, window)
    if not epochs or s.best_value is None:
        return Verdict("unknown", "no validation data loss yet")
    onset = _onset(epochs, smoothed, threshold)
    if onset is not None:
        _, last = _last_value(run.validation)
        return Verdict(
            "overfits",
            f"overfits from epoch {onset.epoch} — validation +{last - s.best_value:.3g} since its best",
            onset.epoch,
            onset.fired,
        )
    low_step = epochs[int(np.argmin(smoothed))]
    tail = max(2, math.ceil(IMPROVING_TAIL * len(epochs)))
    if low_step >= epochs[-min(tail, len(epochs))]:
        return Verdict("improving", "still improving when stopped (raise --max_epochs)")
    if (
        baseline is not None
        and not run.baseline
        and baseline.best_value is not None
        and baseline.train_value is not None
        and s.train_value is not None
        and s.best_value > baseline.best_value
        and s.train_value > baseline.train_value
    ):
        return Verdict("over_regularized", "over-regularized vs its baseline (worse on training and validation)")
    if (
        family_best is not None
        and s.gap is not None
        and abs(s.gap) < UNDERFIT_GAP * s.best_value
        and s.best_value > (1 + UNDERFIT_EXCESS) * family_best
    ):
        return Verdict("underfits", "underfits: train ≈ validation, both high")
    return Verdict("fits", f"levelled off at epoch {s.best_epoch}, no overfitting by GL{threshold:g}")


@dataclasses.dataclass(frozen=True)
class FamilyRow:
    """A member's line in every view's summary: its `Summary`, the training split its gap is
    measured on (`gap_split`: train_eval, or train) and `gap_note` when that is the dropout-on
    loss of a model that behaves differently in training; its `Verdict`; a seed group's number of
    seeds, the CI of its best validation data loss (over the seeds at the best epoch), the
    onsets of its seeds, and the paired comparison with the baseline."""

    summary: Summary
    gap_split: str | None
    gap_note: str | None
    verdict: Verdict
    seeds: int | None = None
    best_ci: Interval | None = None
    seed_onsets: tuple = ()
    paired: Paired | None = None

    def flat(self) -> dict:
        """Plain data (the tab's JSON, the report's cells)."""
        p, ci = self.paired, self.best_ci
        onsets = [o for o in self.seed_onsets if o is not None]
        return {
            **dataclasses.asdict(self.summary),
            "gap_split": self.gap_split,
            "gap_note": self.gap_note,
            "verdict": self.verdict.text,
            "verdict_kind": self.verdict.kind,
            "onset": self.verdict.onset,
            "gl_fired": self.verdict.fired,
            "seed_count": self.seeds,
            "best_ci": None if ci is None else ci.half,
            "best_std": None if ci is None else ci.std,
            "seed_onsets": list(self.seed_onsets),
            "onset_spread": onset_spread(self.seed_onsets) if onsets else None,
            "paired_diff": None if p is None else p.diff,
            "paired_low": None if p is None else p.low,
            "paired_high": None if p is None else p.high,
            "paired_n": None if p is None else p.n,
            "paired_excludes_zero": None if p is None else p.excludes_zero,
            "paired_text": paired_text(p),
        }


def onset_spread(onsets) -> str | None:
    """ "onset in 2 of 3 seeds, epochs 22–28 (median 25)"."""
    found = sorted(o for o in onsets if o is not None)
    if not found:
        return f"no onset in {len(onsets)} seeds" if onsets else None
    mid = found[len(found) // 2] if len(found) % 2 else (found[len(found) // 2 - 1] + found[len(found) // 2]) / 2
    span = f"epoch {found[0]}" if found[0] == found[-1] else f"epochs {found[0]}–{found[-1]}"
    return f"onset in {len(found)} of {len(onsets)} seeds, {span} (median {mid:g})"


def paired_text(p: Paired | None) -> str | None:
    if p is None:
        return None
    word = "better" if p.diff < 0 else "worse"
    sure = "excludes 0" if p.excludes_zero else "includes 0: could be noise"
    return f"{p.diff:+.3g} [{p.low:+.3g}, {p.high:+.3g}] vs baseline over {p.n} paired seeds ({word}; CI {sure})"


def summarize_family(
    runs: list[RunCurves],
    threshold: float = GL_THRESHOLD,
    window: int = SMOOTH_WINDOW,
    level: float = CONFIDENCE,
) -> list[FamilyRow]:
    """Every member's row of a family's summary, as the tab, the report and `tbreg plot` show it."""
    rows = []
    for run in runs:
        s = summarize(run.record, run.data_loss, run.validation, run.train, run.loss, run.penalty)
        at_best = number(run.train_eval.get(s.best_epoch)) if s.best_epoch is not None else None
        use_eval = at_best is not None  # the inference-mode training loss, where it was logged
        if use_eval:  # the penalty share stays of Keras' training loss and its own data loss
            s = dataclasses.replace(s, train_value=at_best, gap=number(s.best_value - at_best))
        note = None
        if not use_eval and s.gap is not None and behaves_differently_in_training(run.record):
            note = "dropout on: no train_eval logged, so the gap is against the training loss in training mode"
        rows.append([run, s, TRAIN_EVAL if use_eval else "train" if s.gap is not None else None, note])
    summaries = [s for _, s, _, _ in rows]
    bests = [s.best_value for s in summaries if s.best_value is not None]
    family_best = min(bests) if bests else None
    base = next((i for i, (run, *_) in enumerate(rows) if run.baseline), None)
    base_summary = summaries[base] if base is not None else None
    base_bests = _seed_bests(rows[base][0]) if base is not None else {}
    out = []
    for i, (run, s, split, note) in enumerate(rows):
        v = verdict(s, run, family_best, None if i == base else base_summary, threshold, window)
        n, ci, onsets, paired = None, None, (), None
        if run.seeds:
            n = len(run.seeds)
            at_best = [c.get("validation", {}).get(s.best_epoch) for c in run.seeds.values()]
            ci = interval(at_best, level) if s.best_epoch is not None else None
            onsets = tuple(
                (lambda o: None if o is None else o.epoch)(
                    overfitting_onset(c.get("validation", {}), threshold, window)
                )
                for _, c in sorted(run.seeds.items())
            )
            if i != base and len(base_bests) >= 2:
                paired = paired_difference(_seed_bests(run), base_bests, level)
        out.append(FamilyRow(s, split, note, v, n, ci, onsets, paired))
    return out


def _seed_bests(run: RunCurves) -> dict:
    """{seed: its lowest validation data loss} of a seed group."""
    out = {}
    for seed, curves in run.seeds.items():
        _, value = lowest(curves.get("validation", {}))
        if value is not None:
            out[seed] = value
    return out


# ---------------------------------------------------------------------------------------------
# Comparing runs the way W&B and Aim users do: a run's hyperparameters as columns, a filter over
# them, runs grouped by any hyperparameter (one line and band per value, whatever the seeds) and
# long curves downsampled without moving their minimum or best epoch.

MISSING = "–"  # a group's value for runs without the key


def _scalar(value) -> bool:
    return isinstance(value, (str, bool)) or number(value) is not None or (type(value) is int and abs(value) < 2**53)


def run_hparams(record) -> dict:
    """A run's hyperparameters as every view shows them: the record's `hparams` (any key), its
    config's constants.CONFIG_HPARAMS, `dataset` and `seed`; values that are not a str, bool or finite
    number are left out (records are written by hand too)."""
    if not isinstance(record, dict):
        return {}
    hp = record.get("hparams") if isinstance(record.get("hparams"), dict) else {}
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    values = {
        **{str(k): v for k, v in hp.items()},
        **{k: config.get(k) for k in constants.CONFIG_HPARAMS},
        "dataset": record.get("dataset"),
        "seed": record.get("seed", config.get("seed")),
    }
    return {k: v for k, v in values.items() if v is not None and _scalar(v)}


def hparam_columns(hparams: list[dict]) -> tuple[list[str], list[str]]:
    """(every key some run has, the keys whose value differs between runs — a key missing in one
    run differs), in first-seen order."""
    keys = list(dict.fromkeys(k for hp in hparams for k in hp))
    varying = [k for k in keys if len({repr(hp.get(k)) for hp in hparams}) > 1]
    return keys, varying


_CLAUSE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(<=|>=|!=|==|=|<|>|~)\s*(.*?)\s*")
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "=": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
NAME_KEYS = ("name", "run")  # filter keys that are a run's name (`tiny`) and path (`sizes/tiny`)


class FilterError(ValueError):
    """A filter that cannot be read; its message is one line naming the clause and the fix."""


@dataclasses.dataclass(frozen=True)
class RunFilter:
    """A filter over runs: clauses separated by `,` or ` and `, all of which must hold. A clause is
    `key op value` (op one of < <= > >= = != ~; `~` a regex) on a hyperparameter or on `name`/`run`,
    or else a regex searched in the run's path (`sizes/tiny`). Numbers compare as numbers
    (`l2 > 1e-4`), anything else as text (`model = large`); a run without the key never matches."""

    text: str
    clauses: tuple = ()

    def __call__(self, path: str, name: str, hparams: dict) -> bool:
        for key, op, value in self.clauses:
            if key is None:
                if not (value.search(path) or value.search(name)):
                    return False
                continue
            have = {"name": name, "run": path}.get(key, hparams.get(key))
            if have is None:
                return False
            if op == "~":
                if not value.search(str(have)):
                    return False
            elif isinstance(value, float) and not isinstance(have, str):
                if isinstance(have, bool) or number(have) is None or not _OPS[op](float(have), value):
                    return False
            elif op in ("=", "==", "!="):
                same = str(have).lower() == str(value).lower()
                if same != (op != "!="):
                    return False
            else:
                return False  # `<` on text: no order
        return True


def _regex(text: str, clause: str):
    try:
        return re.compile(text)
    except re.error as e:
        raise FilterError(f"filter {clause.strip()!r}: not a valid regex ({e}); escape special characters with \\")


def parse_filter(text: str | None, keys=()) -> RunFilter:
    """The RunFilter of `text` ("" or None: every run). `keys` are the hyperparameters the runs
    have: a comparison on another key is an error that lists them (a typo, not an empty view)."""
    text = (text or "").strip()
    clauses = []
    for part in re.split(r",|\s+and\s+", text) if text else []:
        if not part.strip():
            continue
        m = _CLAUSE.fullmatch(part)
        if m is None:
            clauses.append((None, "~", _regex(part.strip(), part)))
            continue
        key, op, value = m.groups()
        if key not in keys and key not in NAME_KEYS:
            known = ", ".join(sorted(keys)) or "none"
            raise FilterError(
                f"filter {part.strip()!r}: no hyperparameter {key!r} in these runs (they have: {known}; "
                "or filter by name, e.g. name ~ tiny)"
            )
        if value == "":
            raise FilterError(f"filter {part.strip()!r}: a value is missing after {op!r} (e.g. {key} {op} 0.5)")
        if op == "~":
            clauses.append((key, op, _regex(value, part)))
            continue
        try:
            parsed = float(value)
            if not math.isfinite(parsed):
                raise ValueError
        except ValueError:
            if op not in ("=", "==", "!="):
                raise FilterError(
                    f"filter {part.strip()!r}: {op} needs a number (e.g. {key} {op} 1e-4); use = or ~ for text"
                ) from None
            parsed = value.strip("'\"")
        clauses.append((key, op, parsed))
    return RunFilter(text, tuple(clauses))


def group_value(hparams: dict, key: str):
    """The value of `key` that groups a run (MISSING without it)."""
    return hparams.get(key, MISSING)


def group_runs(hparams: list[dict], key: str) -> list[tuple[str, list[int]]]:
    """Runs grouped by their value of hyperparameter `key`: [(label "key=value", [indices])],
    ordered by value (numbers numerically, runs without the key last)."""
    groups = collections.defaultdict(list)
    for i, hp in enumerate(hparams):
        groups[group_value(hp, key)].append(i)

    def order(value):
        if value == MISSING:
            return (2, 0.0, "")
        n = number(value)
        return (0, n, "") if n is not None and not isinstance(value, bool) else (1, 0.0, str(value))

    return [
        (
            f"{key}={value:g}" if number(value) is not None and not isinstance(value, bool) else f"{key}={value}",
            groups[value],
        )
        for value in sorted(groups, key=order)
    ]


def downsample(steps: list, values: list, points: int, keep=()) -> list[int]:
    """Indices of at most about `points` points of a curve that draw it faithfully: per bucket of
    steps its lowest and highest value, plus always the first and last point, the curve's minimum
    and maximum (so its best epoch stays exact), its first non-finite value (None) and the points
    at the steps in `keep` (a recorded best epoch, where early stopping fired). All indices when
    the curve has no more than `points` points."""
    n = len(steps)
    if n <= max(points, 4):
        return list(range(n))
    y = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    finite = np.isfinite(y)
    chosen = {0, n - 1}
    if not finite.all():
        chosen.add(int(np.argmin(finite)))  # the first non-finite value
    if finite.any():
        low, high = np.where(finite, y, np.inf), np.where(finite, y, -np.inf)
        chosen.update((int(np.argmin(low)), int(np.argmax(high))))
        wanted = set(keep)
        chosen.update(i for i, s in enumerate(steps) if s in wanted)
        buckets = max(1, (points - len(chosen)) // 2)
        size = -(-n // buckets)  # ceil
        pad = buckets * size - n
        lows = np.concatenate([low, np.full(pad, np.inf)]).reshape(buckets, size)
        highs = np.concatenate([high, np.full(pad, -np.inf)]).reshape(buckets, size)
        base = np.arange(buckets) * size
        for found, ok in (
            (base + lows.argmin(axis=1), np.isfinite(lows.min(axis=1))),
            (base + highs.argmax(axis=1), np.isfinite(highs.max(axis=1))),
        ):
            chosen.update(int(i) for i in found[ok])
    return sorted(chosen)


# Weight diagnostics (tbreg.callbacks.WeightDiagnostics): which of them ranks a family's runs like
# their measured gap. A run's diagnostics are `diagnostics/<measure>/<layer>` curves of its train
# split; one number per run and diagnostic is taken at the logged epoch nearest its best epoch.

DIAGNOSTIC_PREFIX = "diagnostics/"
ALPHA_UNRELIABLE = "alpha_unreliable"
MIN_CORRELATION_RUNS = 3
EXACT_P_RUNS = 8  # up to this many runs the p-value is exact (all n! orderings), past it scipy's t approximation


def spearman(x: list, y: list) -> tuple[float | None, float | None]:
    """(Spearman's ρ, its two-sided p) of paired values (scipy.stats.spearmanr; ties get mean ranks).
    For n ≤ EXACT_P_RUNS, p is exact: the share of the n! orderings of y whose |ρ| is at least as
    large (scipy's t approximation says p = 0 for a perfect ρ at any n; exactly, n = 4 gives 1/12)."""
    import itertools

    from scipy import stats

    if len(set(x)) < 2 or len(set(y)) < 2:  # no ranking to compare (scipy would warn and say NaN)
        return None, None
    got = stats.spearmanr(x, y)
    rho, p = number(float(got.statistic)), number(float(got.pvalue))
    if rho is None or len(x) > EXACT_P_RUNS:
        return rho, p
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    perms = ry[np.array(list(itertools.permutations(range(len(ry)))))]
    rhos = perms @ rx / (np.linalg.norm(rx) * np.linalg.norm(ry))
    return rho, float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    """How a run's per-layer `measure` becomes one number: `how` is "log_product" (Σ ln over its
    layers: the log of the product, as the norm-based bounds multiply layers) or "mean" (over its
    layers; for α only the layers whose fit is reliable)."""

    name: str
    measure: str
    how: str
    text: str


DIAGNOSTICS = (
    Diagnostic("log_prod_spectral", "spectral", "log_product", "Σ ln ‖W‖₂ over layers (log product of spectral norms)"),
    Diagnostic(
        "log_prod_frobenius", "frobenius", "log_product", "Σ ln ‖W‖_F over layers (log product of Frobenius norms)"
    ),
    Diagnostic("mean_stable_rank", "stable_rank", "mean", "mean over layers of ‖W‖²_F / ‖W‖²₂"),
    Diagnostic("mean_alpha", "alpha", "mean", "mean power-law α over the layers whose tail fit is reliable"),
    Diagnostic(
        "sharpness", "sharpness", "mean", "relative loss increase under weight noise σ·|w| (logged at each new best)"
    ),
)


def is_diagnostic_tag(tag: str) -> bool:
    return tag.startswith(DIAGNOSTIC_PREFIX) and not is_std_tag(tag)


def diagnostic_layers(scalars: dict) -> dict:
    """{measure: {layer: curve}} of a run's `diagnostics/<measure>/<layer>` curves in `scalars` ({tag: curve})."""
    out = collections.defaultdict(dict)
    for tag, curve in scalars.items():
        if is_diagnostic_tag(tag):
            measure, _, layer = tag[len(DIAGNOSTIC_PREFIX) :].partition("/")
            if layer:
                out[measure][layer] = curve
    return {m: dict(sorted(layers.items())) for m, layers in sorted(out.items())}


def nearest_epoch(epochs, target: int) -> int | None:
    """The epoch of `epochs` nearest `target` (the earlier one on ties); None if there is none."""
    return min(epochs, key=lambda e: (abs(e - target), e), default=None)


def diagnostic_value(layers: dict, d: Diagnostic, best_epoch: int | None) -> tuple[float | None, int | None]:
    """(value, epoch) of diagnostic `d` for one run, from its `diagnostic_layers`, at the logged epoch
    nearest `best_epoch`; (None, None) when it has none there."""
    curves = layers.get(d.measure, {})
    if best_epoch is None or not curves:
        return None, None
    epoch = nearest_epoch({e for c in curves.values() for e, v in c.items() if number(v) is not None}, best_epoch)
    if epoch is None:
        return None, None
    unreliable = layers.get(ALPHA_UNRELIABLE, {}) if d.measure == "alpha" else {}
    values = []
    for layer, curve in curves.items():
        value = number(curve.get(epoch))
        flag = number(unreliable.get(layer, {}).get(epoch))
        if value is None or (flag is not None and flag > 0):  # a seed group's mean flag: any seed unreliable
            continue
        if d.how == "log_product":
            if value <= 0:
                return None, epoch
            value = math.log(value)
        values.append(value)
    if not values:
        return None, epoch
    return (math.fsum(values) if d.how == "log_product" else math.fsum(values) / len(values)), epoch


@dataclasses.dataclass(frozen=True)
class Correlation:
    """How well a diagnostic ranks a family's runs by their gap at the best epoch: Spearman's `rho`
    over the `n` runs that have both, its two-sided `p`, and `note` (why there is no ρ, or its sign).
    `values` are (run index, diagnostic, gap) of those runs."""

    diagnostic: str
    text: str
    n: int
    rho: float | None
    p: float | None
    note: str
    values: tuple = ()

    def flat(self) -> dict:
        return {**dataclasses.asdict(self), "values": [list(v) for v in self.values]}


def diagnostic_correlations(rows: list, diagnostics: list[dict]) -> list[Correlation]:
    """For each of DIAGNOSTICS, Spearman's rank correlation across a family's shown runs between the
    diagnostic at each run's best epoch and its measured gap there. `rows[i]` is run i's
    `FamilyRow` (from `summarize_family`: its best epoch and gap), `diagnostics[i]` its train
    split's scalars ({tag: curve}). Fewer than MIN_CORRELATION_RUNS runs with both: no ρ,
    "not enough runs"."""
    layers = [diagnostic_layers(scalars) for scalars in diagnostics]
    out = []
    for d in DIAGNOSTICS:
        values = []
        for i, (row, run_layers) in enumerate(zip(rows, layers)):
            gap = row.summary.gap
            value, _ = diagnostic_value(run_layers, d, row.summary.best_epoch)
            if value is not None and gap is not None:
                values.append((i, value, gap))
        n, rho, p = len(values), None, None
        if n < MIN_CORRELATION_RUNS:
            note = f"not enough runs (n={n}; needs {MIN_CORRELATION_RUNS})"
        else:
            rho, p = spearman([v for _, v, _ in values], [g for _, _, g in values])
            if rho is None:
                note = "no ranking: the diagnostic or the gap is the same for every run"
            else:
                note = f"higher {d.measure} ↔ {'larger' if rho > 0 else 'smaller'} gap" if rho else "no rank relation"
        out.append(Correlation(d.name, d.text, n, rho, p, note, tuple(values)))
    return out
