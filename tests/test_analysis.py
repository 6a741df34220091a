"""The rules of tbreg.analysis on synthetic curves with known answers (no TensorFlow)."""

import numpy as np
import pytest
from scipy import stats

from tbreg import analysis


def turning(turn=25, epochs=60, seed=0, noise=0.0):
    """Validation loss falling to epoch `turn`, then rising: 1.0 → 0.5 at `turn`, +0.02 per epoch after."""
    rng = np.random.default_rng(seed)
    curve = {e: (1.0 - 0.5 * e / turn if e <= turn else 0.5 + 0.02 * (e - turn)) for e in range(epochs)}
    return {e: v + noise * rng.normal() for e, v in curve.items()}


def falling(epochs=40):
    return {e: 1.0 / (1 + 0.1 * e) for e in range(epochs)}


def noisy_flat(epochs=60, seed=1, noise=0.01):
    rng = np.random.default_rng(seed)
    return {e: 0.8 + noise * rng.normal() for e in range(epochs)}


def test_onset_of_a_curve_that_turns_at_epoch_25():
    onset = analysis.overfitting_onset(turning())
    assert onset.epoch == 25
    # GL5 fires where the smoothed curve is 5 % above its lowest: 0.5 * 1.05 = 0.525, 1.25 epochs of rise
    assert 26 <= onset.fired <= 28 and onset.gl > analysis.GL_THRESHOLD
    assert analysis.overfitting_onset(turning(noise=0.01, seed=3)).epoch in range(23, 28)
    # the threshold is a parameter: a larger α fires later, never earlier
    assert analysis.overfitting_onset(turning(), threshold=20).fired > onset.fired


def test_an_early_bump_the_curve_recovers_from_is_not_the_onset():
    # batch norm's first epochs: the validation loss jumps 20 % at epoch 3, then falls to a much lower
    # low at epoch 55 and overfits after it (seen on the main job's batch_norm run: onset was epoch 3)
    curve = {e: 1.0 - 0.004 * e + (0.2 if 2 <= e <= 5 else 0.0) for e in range(56)}
    curve.update({e: curve[55] + 0.01 * (e - 55) for e in range(56, 96)})
    onset = analysis.overfitting_onset(curve)
    assert onset is not None and 53 <= onset.epoch <= 56 and onset.fired > 56


def test_no_onset_on_a_falling_or_a_noisy_flat_curve():
    assert analysis.overfitting_onset(falling()) is None
    assert analysis.overfitting_onset(noisy_flat()) is None
    flat_raw_argmin = analysis.lowest(noisy_flat())[0]
    assert flat_raw_argmin not in (0, 59)  # the raw argmin alone would call a spot in the noise "onset"


def _summary(curve, train=None, record=None, **kw):
    run = analysis.RunCurves(record, "epoch_x", curve, train if train is not None else {e: 0.3 for e in curve}, **kw)
    return analysis.summarize_family([run])[0]


def test_verdicts_on_known_curves():
    row = _summary(turning())
    last = turning()[59]
    assert row.verdict.kind == "overfits" and row.verdict.onset == 25
    assert row.verdict.text == f"overfits from epoch 25 — validation +{last - 0.5:.3g} since its best"
    assert _summary(falling()).verdict.text == "still improving when stopped (raise --max_epochs)"
    assert _summary(noisy_flat()).verdict.kind == "fits"
    diverged = _summary({0: 1.0, 1: 0.9, 2: float("nan")}, train={0: 1.0, 1: 0.9, 2: float("nan")})
    assert diverged.verdict.text == "diverged at epoch 2"
    assert _summary(falling(), record={"status": "diverged", "diverged_epoch": 7}).verdict.text == "diverged at epoch 7"


def test_underfits_and_over_regularized_need_their_family():
    good = analysis.RunCurves({"hparams": {"l2": 0}}, "x", turning(), {e: 0.2 for e in range(60)}, baseline=True)
    flat_high = {e: 1.2 + 0.001 * np.sin(e) for e in range(60)}
    under = analysis.RunCurves(None, "x", flat_high, {e: 1.19 for e in range(60)})
    rows = analysis.summarize_family([good, under])
    assert rows[1].verdict.text.startswith("over-regularized vs its baseline")
    rows = analysis.summarize_family([analysis.RunCurves(None, "x", turning(), {e: 0.2 for e in range(60)}), under])
    assert rows[1].verdict.text == "underfits: train ≈ validation, both high"


def test_gap_uses_the_inference_mode_training_loss_when_logged():
    val = {0: 1.0, 1: 0.91, 2: 0.95}
    dropout_on = {0: 1.1, 1: 0.976, 2: 0.9}  # dropout-on training loss is higher than validation
    record = {"hparams": {"dropout": 0.5}}
    without = _summary(val, dropout_on, record)
    assert without.summary.gap == pytest.approx(0.91 - 0.976) and without.gap_split == "train"
    assert "dropout on" in without.gap_note
    with_eval = _summary(val, dropout_on, record, train_eval={0: 0.9, 1: 0.777, 2: 0.7})
    assert with_eval.summary.gap == pytest.approx(0.91 - 0.777) and with_eval.gap_split == "train_eval"
    assert with_eval.gap_note is None and with_eval.summary.train_value == pytest.approx(0.777)
    assert _summary(val, dropout_on, {"hparams": {"dropout": 0.0}}).gap_note is None


def test_interval_and_band_match_scipy():
    values = [0.91, 0.95, 0.88, 0.97]
    got = analysis.interval(values)
    low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))
    assert got.std == pytest.approx(np.std(values, ddof=1)) and got.n == 4
    curves = [{0: 1.0, 1: 0.8, 2: 0.7}, {0: 1.2, 1: 0.9}, {0: 1.1, 1: 1.0}]
    band = analysis.seed_band(curves)
    assert band.steps == [0, 1, 2] and band.n == [3, 3, 1] and band.drops == [2]
    assert band.mean[:2] == [pytest.approx(1.1), pytest.approx(0.9)] and band.half[2] is None
    assert band.half[0] == pytest.approx(stats.t.ppf(0.975, 2) * stats.sem([1.0, 1.2, 1.1]))
    std = analysis.seed_band(curves, "std")
    assert std.half[1] == pytest.approx(np.std([0.8, 0.9, 1.0], ddof=1))
    with pytest.raises(ValueError):
        analysis.seed_band(curves, "sem")


def test_paired_difference_matches_scipy():
    group = {0: 0.80, 1: 0.84, 2: 0.79, 3: 0.83}
    base = {0: 0.90, 1: 0.91, 2: 0.88, 3: 0.95, 4: 1.0}  # seed 4 has no pair
    p = analysis.paired_difference(group, base)
    d = np.array([group[k] - base[k] for k in range(4)])
    low, high = stats.t.interval(0.95, 3, loc=d.mean(), scale=stats.sem(d))
    assert (p.diff, p.low, p.high, p.n) == (pytest.approx(d.mean()), pytest.approx(low), pytest.approx(high), 4)
    assert p.excludes_zero and stats.ttest_rel([group[k] for k in range(4)], [base[k] for k in range(4)]).pvalue < 0.05
    noisy = analysis.paired_difference({0: 0.9, 1: 0.8}, {0: 0.85, 1: 0.86})
    assert not noisy.excludes_zero and "could be noise" in analysis.paired_text(noisy)
    assert analysis.paired_difference({0: 0.9}, {0: 0.8}) is None


def test_seed_group_row_has_ci_onset_spread_and_paired_comparison():
    def group(offset, turns, baseline=False):
        seeds = {k: {"validation": {e: v + offset for e, v in turning(t).items()}} for k, t in enumerate(turns)}
        mean = {e: np.mean([c["validation"][e] for c in seeds.values()]) for e in range(60)}
        return analysis.RunCurves(
            {"status": "aggregate"}, "x", mean, {e: 0.3 for e in range(60)}, baseline=baseline, seeds=seeds
        )

    base, l2 = group(0.0, [24, 25, 26], baseline=True), group(-0.05, [30, 25, 28])
    rows = analysis.summarize_family([base, l2])
    assert rows[1].seeds == 3 and rows[1].seed_onsets == (30, 25, 28)
    assert analysis.onset_spread(rows[1].seed_onsets) == "onset in 3 of 3 seeds, epochs 25–30 (median 28)"
    at_best = [c["validation"][rows[1].summary.best_epoch] for c in l2.seeds.values()]
    assert rows[1].best_ci.half == pytest.approx(stats.t.ppf(0.975, 2) * stats.sem(at_best))
    assert rows[1].paired.diff == pytest.approx(-0.05) and rows[1].paired.excludes_zero
    assert rows[0].paired is None
    flat = rows[1].flat()
    assert flat["paired_excludes_zero"] is True and flat["verdict_kind"] == "overfits"
