"""The five sources' headline claims as data, and the checks that decide them over measured runs.

Pure (no TensorFlow, no files): a claim is a `Claim` (source, text, the check and the models it
reads); `check(claim, measured)` turns `Measured` numbers (per model and seed, as tbreg.reproduce
reads them from a log tree through tbreg.reader and tbreg.analysis) into a `Result`: pass, fail or
inconclusive, with the numbers it decided on.

A claim about a difference is decided on paired seeds (seed k of one model with seed k of the
other) by `analysis.paired_difference`: it passes when the 95 % interval of the difference
excludes 0 in the claimed direction, fails when it excludes 0 the other way, and is inconclusive
when it includes 0, with fewer than 2 pairs, or when a run is missing.
"""

import dataclasses
import math
from collections.abc import Callable

from tbreg import analysis

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)


@dataclasses.dataclass(frozen=True)
class Seed:
    """What tbreg measured of one seed's run (`analysis.summarize_family` of that run alone, plus
    what the claims read besides): the best validation data loss and its epoch, the gap at the
    best epoch (against `gap_split`: train_eval where logged), the GL onset (None: never fired),
    the verdict's kind, the last epoch, the penalty's share of the training loss, the lowest
    Monte-Carlo dropout validation loss, the hidden-layer weight spread (std of the first
    kernel's histogram at the last logged epoch) and the validation curve ({epoch: loss})."""

    best_value: float | None = None
    best_epoch: int | None = None
    gap: float | None = None
    gap_split: str | None = None
    onset: int | None = None
    verdict: str | None = None
    stop_epoch: int | None = None
    penalty_share: float | None = None
    mc_best: float | None = None
    weight_spread: float | None = None
    validation: dict = dataclasses.field(default_factory=dict)


# {(family, model): {seed: Seed}}: what the checks read; a model that was not trained is absent.
Measured = dict


@dataclasses.dataclass(frozen=True)
class Result:
    verdict: str  # pass | fail | inconclusive
    numbers: str  # what was measured, in one line
    missing: bool = False  # inconclusive because a run it reads is not there


# ---------------------------------------------------------------------------------------------
# Statistics of a seed's run the claims compare.


def best(s: Seed) -> float | None:
    return s.best_value


def gap(s: Seed) -> float | None:
    return s.gap


def onset_or_end(s: Seed) -> float | None:
    """The onset epoch; a run whose GL criterion never fired counts as overfitting after its last
    epoch (censored: the comparison can then only say "later than the other")."""
    if s.onset is not None:
        return float(s.onset)
    return None if s.stop_epoch is None else float(s.stop_epoch + 1)


def rise(s: Seed) -> float | None:
    """How hard it overfits: the last validation loss minus the best."""
    last = max((e for e, v in s.validation.items() if analysis.number(v) is not None), default=None)
    if last is None or s.best_value is None:
        return None
    return analysis.number(s.validation[last] - s.best_value)


def mc_best(s: Seed) -> float | None:
    return s.mc_best


def weight_spread(s: Seed) -> float | None:
    return s.weight_spread


STATS = {
    "best": (best, "best validation data loss"),
    "gap": (gap, "gap (validation − training data loss at the best epoch)"),
    "onset": (onset_or_end, "overfitting onset epoch (GL5; none = after the last epoch)"),
    "rise": (rise, "validation loss rise from its best to the last epoch"),
    "mc_best": (mc_best, "best validation data loss"),
    "weight_spread": (weight_spread, "first hidden layer's kernel std"),
}


def first_epoch_at(curve: dict, target: float) -> int | None:
    """The first epoch whose value is at or below `target` (None if never)."""
    return next((e for e in sorted(curve) if (v := analysis.number(curve[e])) is not None and v <= target), None)


# ---------------------------------------------------------------------------------------------
# Claims


@dataclasses.dataclass(frozen=True)
class Claim:
    """`kind` is the check (see CHECKS); `a` and `b` are (family, model) keys of `Measured`;
    `stat` the statistic a comparison reads (STATS); `source` the source's key; `text` the claim
    as the source makes it; `why` what to expect on MNIST-1D where it may differ."""

    source: str
    text: str
    kind: str
    a: tuple[str, str]
    b: tuple[str, str] | None = None
    stat: str = "best"
    why: str = ""


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def _name(key) -> str:
    return "/".join(key)


def _missing(claim: Claim, measured: Measured) -> Result | None:
    gone = [k for k in (claim.a, claim.b) if k is not None and not measured.get(k)]
    if gone:
        return Result(
            INCONCLUSIVE, f"run missing: {', '.join(_name(k) for k in gone)} (not trained, or failed)", missing=True
        )
    return None


def _verdicts(key, seeds: dict) -> str:
    """ "sizes/large: overfits ×3": the seeds' verdict kinds (analysis.verdict)."""
    counts = {}
    for s in seeds.values():
        if s.verdict:
            counts[s.verdict] = counts.get(s.verdict, 0) + 1
    return f"{_name(key)}: {', '.join(f'{k} ×{n}' for k, n in counts.items())}" if counts else ""


def _paired(claim: Claim, measured: Measured, a_stat: Callable, b_stat: Callable, label: str) -> Result:
    """a's statistic lower than b's over paired seeds (analysis.paired_difference)."""
    a, b = measured[claim.a], measured[claim.b]
    va = {s: a_stat(x) for s, x in a.items() if a_stat(x) is not None}
    vb = {s: b_stat(x) for s, x in b.items() if b_stat(x) is not None}

    def mean(v):
        return None if not v else sum(v.values()) / len(v)

    head = f"{label}: {_name(claim.a)} {_fmt(mean(va))} vs {_name(claim.b)} {_fmt(mean(vb))} (mean over seeds)"
    kinds = [_verdicts(k, measured[k]) for k in dict.fromkeys((claim.a, claim.b))]
    if any(kinds):
        head += f" [{'; '.join(k for k in kinds if k)}]"
    p = analysis.paired_difference(va, vb)
    if p is None:
        n = len(set(va) & set(vb))
        return Result(INCONCLUSIVE, f"{head}; {n} paired seed{'s' * (n != 1)}: a difference needs at least 2")
    diff = f"difference {p.diff:+.4g}, 95 % CI [{p.low:+.4g}, {p.high:+.4g}] over {p.n} paired seeds"
    if p.high < 0:
        return Result(PASS, f"{head}; {diff}: excludes 0")
    if p.low > 0:
        return Result(FAIL, f"{head}; {diff}: excludes 0, the other way")
    return Result(INCONCLUSIVE, f"{head}; {diff}: includes 0, could be noise")


def lower(claim: Claim, measured: Measured) -> Result:
    """a's `stat` is lower than b's (paired seeds)."""
    fn, label = STATS[claim.stat]
    return _paired(claim, measured, fn, fn, label)


def mc_no_worse(claim: Claim, measured: Measured) -> Result:
    """a's Monte-Carlo dropout best validation loss is lower than its own plain one (a == b)."""
    return _paired(claim, measured, mc_best, best, "best validation data loss (MC dropout vs plain)")


def converges_sooner(claim: Claim, measured: Measured) -> Result:
    """a reaches the validation loss both runs of a seed reach (the higher of their bests) in
    fewer epochs than b (paired seeds)."""
    a, b = measured[claim.a], measured[claim.b]
    ea, eb = {}, {}
    for seed in set(a) & set(b):
        bests = [x.best_value for x in (a[seed], b[seed])]
        if None in bests:
            continue
        target = max(bests)
        ea[seed], eb[seed] = first_epoch_at(a[seed].validation, target), first_epoch_at(b[seed].validation, target)
    sub = Measured({claim.a: {}, claim.b: {}})
    for seed in ea:
        if ea[seed] is not None and eb[seed] is not None:
            sub[claim.a][seed] = Seed(best_value=float(ea[seed]))
            sub[claim.b][seed] = Seed(best_value=float(eb[seed]))
    return _paired(claim, sub, best, best, "epochs to reach the higher of the two bests")


def _overfit_counts(seeds: dict) -> tuple[int, int, list]:
    onsets = [s.onset for _, s in sorted(seeds.items())]
    return sum(o is not None for o in onsets), len(onsets), onsets


def _onsets_text(key, seeds: dict) -> str:
    _, _, onsets = _overfit_counts(seeds)
    verdicts = sorted({s.verdict for s in seeds.values() if s.verdict})
    last = max((s.stop_epoch for s in seeds.values() if s.stop_epoch is not None), default=None)
    spread = analysis.onset_spread(onsets) or "no seeds"
    note = "; still improving when stopped: a longer run could yet overfit" if "improving" in verdicts else ""
    return f"{_name(key)}: {spread}; trained to epoch {_fmt(last)}; verdicts: {', '.join(verdicts) or '-'}{note}"


def no_overfit(claim: Claim, measured: Measured) -> Result:
    """a does not overfit within its epochs: GL5 fires in none of its seeds (fails when it fires in
    most; inconclusive in between)."""
    k, n, _ = _overfit_counts(measured[claim.a])
    text = _onsets_text(claim.a, measured[claim.a])
    return Result(PASS if k == 0 else FAIL if 2 * k > n else INCONCLUSIVE, text)


def overfits(claim: Claim, measured: Measured) -> Result:
    """a overfits within its epochs: GL5 fires in every seed (fails when in at most half)."""
    k, n, _ = _overfit_counts(measured[claim.a])
    text = _onsets_text(claim.a, measured[claim.a])
    return Result(PASS if k == n else FAIL if 2 * k <= n else INCONCLUSIVE, text)


PENALTY_FLOOR = 1e-6


def has_penalty(claim: Claim, measured: Measured) -> Result:
    """a's training loss holds a penalty (model.losses: its share at the best epoch > 0 in every
    seed) and b's holds none."""
    sa = [s.penalty_share for s in measured[claim.a].values()]
    sb = [s.penalty_share for s in measured[claim.b].values()]
    text = (
        f"penalty share of the training loss at the best epoch: {_name(claim.a)} "
        f"{', '.join(map(_fmt, sa))}; {_name(claim.b)} {', '.join(map(_fmt, sb))}"
    )
    a_has = [x is not None and x > PENALTY_FLOOR for x in sa]
    b_has = [x is not None and x > PENALTY_FLOOR for x in sb]
    if all(a_has) and not any(b_has):
        return Result(PASS, text)
    if not any(a_has) or all(b_has):
        return Result(FAIL, text)
    return Result(INCONCLUSIVE, text)


CHECKS = {
    "lower": lower,
    "mc_no_worse": mc_no_worse,
    "converges_sooner": converges_sooner,
    "no_overfit": no_overfit,
    "overfits": overfits,
    "has_penalty": has_penalty,
}


def check(claim: Claim, measured: Measured) -> Result:
    """The verdict of `claim` over `measured`, with its numbers."""
    return _missing(claim, measured) or CHECKS[claim.kind](claim, measured)


def spread_of_histogram(buckets) -> float | None:
    """The standard deviation of the values a histogram counts: rows (left, right, count), each
    bucket's values at its centre."""
    rows = [(float(lo), float(hi), float(c)) for lo, hi, c in buckets]
    total = sum(c for *_, c in rows)
    if total <= 0:
        return None
    mean = sum((lo + hi) / 2 * c for lo, hi, c in rows) / total
    var = sum(((lo + hi) / 2 - mean) ** 2 * c for lo, hi, c in rows) / total
    return analysis.number(math.sqrt(var))


# ---------------------------------------------------------------------------------------------
# The sources and their claims. Keys are (family, model) of the source's group of runs: the
# tutorial, the blog and Géron read one tree (the tutorial's families on MNIST-1D or HIGGS),
# Chollet his own (his IMDB and MNIST families, on MNIST-1D unless the real data is given).


@dataclasses.dataclass(frozen=True)
class Source:
    key: str
    title: str
    seed_files: tuple[str, ...]  # the source extracts in ../shared/seeds the claims come from
    group: str  # the tree its runs are in: "tutorial" or "chollet"
    claims: tuple[Claim, ...]
    figures: tuple[str, ...]  # families of the group to plot


_SIZES_WHY = (
    "MNIST-1D has 4,000 examples of 10 classes: given enough epochs even a 16-16 network fits part of it by "
    "heart; the tutorial's HIGGS (11,000 rows, binary) keeps the small models under capacity."
)
_ONSET_WHY = (
    "Neither medium nor small overfits MNIST-1D within the epochs run (both still improving), so there is no "
    "onset to order; the tutorial's HIGGS runs go for thousands of epochs."
)
_TINY_WHY = (
    "On MNIST-1D tiny (16 units) underfits: its loss stays far above the 512×4 models' (see the numbers), so "
    "a regularized 512×4 model beats it; on HIGGS tiny is near the best any model reaches, the tutorial's point."
)

SOURCES = {
    s.key: s
    for s in (
        Source(
            "tutorial",
            'TensorFlow tutorial "Overfit and underfit"',
            ("000_f2e5915cbf61114f.txt",),
            "tutorial",
            (
                Claim("tutorial", "The tiny model avoids overfitting altogether.", "no_overfit", ("sizes", "tiny")),
                Claim(
                    "tutorial",
                    "The small model does not overfit either.",
                    "no_overfit",
                    ("sizes", "small"),
                    why=_SIZES_WHY,
                ),
                Claim("tutorial", "The large model overfits.", "overfits", ("sizes", "large")),
                Claim(
                    "tutorial",
                    "Larger models overfit sooner: large's onset is earlier than medium's.",
                    "lower",
                    ("sizes", "large"),
                    ("sizes", "medium"),
                    "onset",
                ),
                Claim(
                    "tutorial",
                    "Larger models overfit sooner: medium's onset is earlier than small's.",
                    "lower",
                    ("sizes", "medium"),
                    ("sizes", "small"),
                    "onset",
                    why=_ONSET_WHY,
                ),
                Claim(
                    "tutorial",
                    "L2 makes the large model much better: L2's best validation loss is lower than large's.",
                    "lower",
                    ("regularizers", "l2"),
                    ("sizes", "large"),
                    why="Three seeds give a wide 95 % interval against the seed-to-seed spread of the large model's early best; more seeds (--seeds=N) narrow it.",
                ),
                Claim(
                    "tutorial",
                    "Dropout improves the large model: dropout's best validation loss is lower than large's.",
                    "lower",
                    ("regularizers", "dropout"),
                    ("sizes", "large"),
                    why="Dropout 0.5 after each of the four 512-unit layers learns slowly on MNIST-1D's 4,000 examples: where its verdicts read 'improving' it was still getting better when stopped, while large's best comes early (the tutorial trains HIGGS for up to 10,000 epochs).",
                ),
                Claim(
                    "tutorial",
                    "L2 closes the gap: L2's gap (against the training loss in inference mode) is smaller than large's.",
                    "lower",
                    ("regularizers", "l2"),
                    ("sizes", "large"),
                    "gap",
                    why="L2's best epoch comes late, when its training loss has fallen far (see the figure), so its gap at the best epoch stays large; the rise after the best is what L2 removes.",
                ),
                Claim(
                    "tutorial",
                    "Dropout closes the gap: dropout's gap (against train_eval, dropout off) is smaller than large's.",
                    "lower",
                    ("regularizers", "dropout"),
                    ("sizes", "large"),
                    "gap",
                ),
                Claim(
                    "tutorial",
                    "L2 + dropout combined is the best so far: its best validation loss is lower than L2's.",
                    "lower",
                    ("regularizers", "combined"),
                    ("regularizers", "l2"),
                    why="The combined model carries the same dropout 0.5 and learns as slowly (see the dropout claim); L2 alone reaches its best within the epochs run.",
                ),
                Claim(
                    "tutorial",
                    "Even so, the regularized models don't beat the tiny model: tiny's best is lower than L2's.",
                    "lower",
                    ("sizes", "tiny"),
                    ("regularizers", "l2"),
                    why=_TINY_WHY,
                ),
            ),
            ("sizes", "regularizers"),
        ),
        Source(
            "chollet",
            "Chollet, Deep Learning with Python (2e ch. 5, 1e 4.4)",
            ("001_2d763335675365e9.txt", "003_05512828fbbef54f.txt"),
            "chollet",
            (
                Claim(
                    "chollet",
                    "The bigger network (512-512) starts overfitting sooner than the original (16-16).",
                    "lower",
                    ("sizes", "bigger"),
                    ("sizes", "original"),
                    "onset",
                ),
                Claim(
                    "chollet",
                    "The smaller network (4-4) starts overfitting later than the original.",
                    "lower",
                    ("sizes", "original"),
                    ("sizes", "smaller"),
                    "onset",
                    why="Neither the 4-4 nor the 16-16 network overfits MNIST-1D within the epochs run, so there is no onset to compare (Chollet's IMDB, 10,000 multi-hot inputs, lets even small networks memorize).",
                ),
                Claim(
                    "chollet",
                    "The bigger network overfits much more severely: its validation loss rises more after its best.",
                    "lower",
                    ("sizes", "original"),
                    ("sizes", "bigger"),
                    "rise",
                    why="The 16-16 original does not overfit MNIST-1D within the epochs run (rise 0), and the bigger network's rise varies a lot between seeds.",
                ),
                Claim(
                    "chollet",
                    "A learning rate of 1.0 makes training fail; 1e-2 trains: lr 1e-2's best loss is lower.",
                    "lower",
                    ("learning_rate", "lr_1e-2"),
                    ("learning_rate", "lr_1"),
                ),
                Claim(
                    "chollet",
                    "A learning rate too low makes training slow: lr 1e-2 gets there in fewer epochs than 1e-5.",
                    "converges_sooner",
                    ("learning_rate", "lr_1e-2"),
                    ("learning_rate", "lr_1e-5"),
                ),
                Claim(
                    "chollet",
                    "Logistic regression (no hidden layer) cannot overfit.",
                    "no_overfit",
                    ("capacity", "small"),
                ),
                Claim(
                    "chollet",
                    "The 96-96 model has the capacity to overfit.",
                    "overfits",
                    ("capacity", "large"),
                    why="On MNIST-1D's 4,000 examples the 96-96 network may need more updates than the epochs run give it to overfit; Chollet's MNIST has 48,000 training images (375 updates an epoch at batch 128).",
                ),
                Claim(
                    "chollet",
                    "L2 (0.002) makes the original model more resistant to overfitting: its validation loss rises less.",
                    "lower",
                    ("regularizers", "l2"),
                    ("sizes", "original"),
                    "rise",
                    why="The 16-16 original barely overfits MNIST-1D within the epochs run, so there is little rise to reduce.",
                ),
                Claim(
                    "chollet",
                    "Dropout works better than L2 here: dropout's best validation loss is lower than L2's.",
                    "lower",
                    ("regularizers", "dropout"),
                    ("regularizers", "l2"),
                    why="Dropout 0.5 on 16-unit layers removes much of a small network's capacity on a 10-class problem; Chollet's IMDB task is binary with 10,000 inputs.",
                ),
            ),
            ("sizes", "learning_rate", "capacity", "regularizers"),
        ),
        Source(
            "blog",
            "Blog post on dropout and weight decay",
            ("002_729d87dd68f15fde.txt",),
            "tutorial",
            (
                Claim(
                    "blog",
                    "L2 makes the weights smaller: the L2 model's first hidden-layer weight histogram is narrower "
                    "than the unregularized model's.",
                    "lower",
                    ("regularizers", "l2"),
                    ("sizes", "large"),
                    "weight_spread",
                ),
                Claim(
                    "blog",
                    "Weight decay shows up in model.losses: the L2 model's training loss holds a penalty, the "
                    "unregularized model's none.",
                    "has_penalty",
                    ("regularizers", "l2"),
                    ("sizes", "large"),
                ),
                Claim(
                    "blog",
                    "Dropout reduces overfitting: the dropout model's gap is smaller than the unregularized one's.",
                    "lower",
                    ("regularizers", "dropout"),
                    ("sizes", "large"),
                    "gap",
                ),
            ),
            ("weights", "regularizers"),
        ),
        Source(
            "geron",
            "Géron, Hands-On Machine Learning ch. 11",
            ("004_48ea86777256fe6e.txt",),
            "tutorial",
            (
                Claim(
                    "geron",
                    "MC dropout is at least as good as plain dropout: averaging 20 dropout passes gives a lower "
                    "best validation loss than the same model with dropout off.",
                    "mc_no_worse",
                    ("regularizers", "dropout"),
                    ("regularizers", "dropout"),
                    why="20 passes (Géron uses 100) move the dropout model's best loss by less than the seeds' spread: not refuted, not shown either.",
                ),
                Claim(
                    "geron",
                    "ℓ1 regularization improves the large model: l1's best validation loss is lower than large's.",
                    "lower",
                    ("regularizers", "l1"),
                    ("sizes", "large"),
                    why="ℓ1 at 0.001 on every kernel of the 512×4 model is too strong for MNIST-1D at this size: its training loss stays as high as its validation loss (train ≈ validation in the figure), i.e. over-regularized at this factor.",
                ),
                Claim(
                    "geron",
                    "ℓ1 + ℓ2 improves the large model: l1_l2's best validation loss is lower than large's.",
                    "lower",
                    ("regularizers", "l1_l2"),
                    ("sizes", "large"),
                    why="Same as ℓ1: 0.001 ℓ1 (plus ℓ2) on every kernel keeps the training loss high; over-regularized at this factor on MNIST-1D.",
                ),
                Claim(
                    "geron",
                    "Max-norm (r = 1) improves the large model: max_norm's best validation loss is lower than large's.",
                    "lower",
                    ("regularizers", "max_norm"),
                    ("sizes", "large"),
                    why="Max-norm r = 1 hardly binds a 512×4 elu model here: its curve overfits like large's, with about the same best.",
                ),
                Claim(
                    "geron",
                    "1cycle speeds up convergence: it reaches the validation loss the tutorial's InverseTimeDecay "
                    "reaches (the same 512×4 model: sizes/large) in fewer epochs.",
                    "converges_sooner",
                    ("schedules", "one_cycle"),
                    ("sizes", "large"),
                    why="Under 1cycle the 512×4 model starts overfitting MNIST-1D early (its onset in the schedules figure), so its best is no lower than InverseTimeDecay's and both reach the shared level at about the same epoch.",
                ),
            ),
            ("regularizers", "schedules"),
        ),
    )
}
ALL = "all"


def needed(sources) -> dict:
    """{group: {family: [models]}} the claims of `sources` read, in claim order."""
    out = {}
    for source in sources:
        fams = out.setdefault(source.group, {})
        for c in source.claims:
            for fam, model in [k for k in (c.a, c.b) if k is not None]:
                models = fams.setdefault(fam, [])
                if model not in models:
                    models.append(model)
    return out
