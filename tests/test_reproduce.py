"""`tbreg reproduce`: the claim checks on synthetic results with known outcomes, its one-line
errors, and one source reproduced end to end at a reduced size through the real command."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tbreg import claims, reproduce
from tbreg.claims import FAIL, INCONCLUSIVE, PASS, Claim, Seed
from tbreg.errors import UserError

A, B = ("fam", "a"), ("fam", "b")


def seeds(**by_seed) -> dict:
    return {int(k.removeprefix("s")): v for k, v in by_seed.items()}


def bests(*values) -> dict:
    return {i: Seed(best_value=v) for i, v in enumerate(values)}


def lower_best(measured) -> claims.Result:
    return claims.check(Claim("x", "a is better", "lower", A, B), measured)


def test_lower_passes_when_the_paired_interval_is_below_zero():
    r = lower_best({A: bests(1.00, 1.10, 0.90), B: bests(1.50, 1.62, 1.41)})
    assert r.verdict == PASS
    assert "over 3 paired seeds: excludes 0" in r.numbers
    assert "difference -0.51" in r.numbers  # (−0.5 − 0.52 − 0.51) / 3


def test_lower_fails_when_the_interval_excludes_zero_the_other_way():
    r = lower_best({A: bests(1.50, 1.62, 1.41), B: bests(1.00, 1.10, 0.90)})
    assert r.verdict == FAIL
    assert "the other way" in r.numbers


def test_lower_is_inconclusive_when_the_interval_includes_zero_with_one_seed_or_a_missing_run():
    noisy = lower_best({A: bests(1.0, 1.3, 0.9), B: bests(1.2, 1.0, 1.1)})  # diffs −0.2, +0.3, −0.2
    assert noisy.verdict == INCONCLUSIVE and "includes 0" in noisy.numbers
    one = lower_best({A: bests(1.0), B: bests(2.0)})
    assert one.verdict == INCONCLUSIVE and "1 paired seed: a difference needs at least 2" in one.numbers
    missing = lower_best({A: bests(1.0, 1.1)})
    assert missing.verdict == INCONCLUSIVE and missing.missing and "run missing: fam/b" in missing.numbers
    # seeds that do not pair (different seed numbers) are not compared
    unpaired = lower_best({A: bests(1.0, 1.1), B: {5: Seed(best_value=2.0), 6: Seed(best_value=2.1)}})
    assert unpaired.verdict == INCONCLUSIVE and "0 paired seeds" in unpaired.numbers


def test_onset_comparison_counts_a_run_that_never_overfits_as_after_its_last_epoch():
    early = {i: Seed(best_value=1.0, onset=o, stop_epoch=59) for i, o in enumerate((10, 14, 12))}
    never = {i: Seed(best_value=1.0, onset=None, stop_epoch=59) for i in range(3)}
    claim = Claim("x", "a overfits sooner", "lower", A, B, "onset")
    r = claims.check(claim, {A: early, B: never})
    assert r.verdict == PASS
    assert "fam/a 12 vs fam/b 60" in r.numbers
    both_never = claims.check(claim, {A: never, B: never})
    assert both_never.verdict == INCONCLUSIVE  # identical: the interval is [0, 0]


def test_overfits_and_no_overfit_count_the_seeds_whose_onset_fired():
    def group(*onsets):
        return {
            i: Seed(best_value=1.0, onset=o, stop_epoch=59, verdict="overfits" if o else "fits")
            for i, o in enumerate(onsets)
        }

    assert claims.check(Claim("x", "", "overfits", A), {A: group(20, 25, 22)}).verdict == PASS
    assert claims.check(Claim("x", "", "overfits", A), {A: group(20, None, 22)}).verdict == INCONCLUSIVE
    assert claims.check(Claim("x", "", "overfits", A), {A: group(None, None, 22)}).verdict == FAIL
    r = claims.check(Claim("x", "", "no_overfit", A), {A: group(None, None, None)})
    assert r.verdict == PASS and "no onset in 3 seeds" in r.numbers and "trained to epoch 59" in r.numbers
    assert claims.check(Claim("x", "", "no_overfit", A), {A: group(30, None, None)}).verdict == INCONCLUSIVE
    assert claims.check(Claim("x", "", "no_overfit", A), {A: group(30, 40, None)}).verdict == FAIL


def test_rise_gap_and_weight_spread_are_compared_the_same_way():
    def curve_seed(best, last):
        return Seed(best_value=best, validation={0: 2.0, 5: best, 9: last})

    flat = {i: curve_seed(1.0, 1.0 + d) for i, d in enumerate((0.01, 0.02, 0.015))}
    steep = {i: curve_seed(0.9, 0.9 + d) for i, d in enumerate((0.5, 0.6, 0.55))}
    assert claims.check(Claim("x", "", "lower", A, B, "rise"), {A: flat, B: steep}).verdict == PASS
    narrow = {i: Seed(weight_spread=w) for i, w in enumerate((0.020, 0.021, 0.019))}
    wide = {i: Seed(weight_spread=w) for i, w in enumerate((0.060, 0.058, 0.061))}
    r = claims.check(Claim("x", "", "lower", A, B, "weight_spread"), {A: narrow, B: wide})
    assert r.verdict == PASS and "kernel std" in r.numbers
    gaps = claims.check(Claim("x", "", "lower", A, B, "gap"), {A: bests(1, 1, 1), B: bests(1, 1, 1)})
    assert gaps.verdict == INCONCLUSIVE and "0 paired seeds" in gaps.numbers  # no gap measured


def test_mc_dropout_against_plain_dropout_on_the_same_runs():
    better = {i: Seed(best_value=1.0 + d, mc_best=0.9 + d) for i, d in enumerate((0.0, 0.05, -0.03))}
    claim = Claim("x", "", "mc_no_worse", A, A)
    assert claims.check(claim, {A: better}).verdict == PASS
    worse = {i: Seed(best_value=0.9 + d, mc_best=1.0 + d) for i, d in enumerate((0.0, 0.05, -0.03))}
    assert claims.check(claim, {A: worse}).verdict == FAIL
    no_mc = {i: Seed(best_value=1.0) for i in range(3)}
    assert claims.check(claim, {A: no_mc}).verdict == INCONCLUSIVE


def test_converges_sooner_counts_epochs_to_the_higher_best():
    def run(best_at, best):
        return Seed(best_value=best, validation={e: max(best, 2.0 - e * (2.0 - best) / best_at) for e in range(40)})

    fast = {i: run(b, 1.0) for i, b in enumerate((8, 10, 9))}
    slow = {i: run(b, 1.05) for i, b in enumerate((30, 33, 31))}
    r = claims.check(Claim("x", "", "converges_sooner", A, B), {A: fast, B: slow})
    assert r.verdict == PASS and "epochs to reach" in r.numbers
    assert claims.check(Claim("x", "", "converges_sooner", B, A), {A: fast, B: slow}).verdict == FAIL


def test_penalty_in_the_loss():
    l2 = {i: Seed(penalty_share=s) for i, s in enumerate((0.3, 0.25))}
    none = {i: Seed(penalty_share=s) for i, s in enumerate((0.0, None))}
    claim = Claim("x", "", "has_penalty", A, B)
    assert claims.check(claim, {A: l2, B: none}).verdict == PASS
    assert claims.check(claim, {A: none, B: l2}).verdict == FAIL
    half = {0: Seed(penalty_share=0.3), 1: Seed(penalty_share=0.0)}
    assert claims.check(claim, {A: half, B: none}).verdict == INCONCLUSIVE


def test_spread_of_a_histogram():
    values = np.array([-1.0, -1.0, 1.0, 1.0])  # std 1, every value at a bucket's centre
    buckets = [(-1.5, -0.5, 2), (-0.5, 0.5, 0), (0.5, 1.5, 2)]
    assert claims.spread_of_histogram(buckets) == pytest.approx(values.std())
    assert claims.spread_of_histogram([(0.0, 1.0, 0)]) is None


def test_every_source_claim_is_checkable_and_names_trained_models():
    plans = reproduce.plan(list(claims.SOURCES.values()), "runs/reproduce", {}, None)
    for s in claims.SOURCES.values():
        assert s.claims and s.figures
        for c in s.claims:
            assert c.kind in claims.CHECKS and c.stat in claims.STATS
            for fam, model in [k for k in (c.a, c.b) if k]:
                p = next(p for p in plans if p.group == s.group and p.family == fam)
                assert model in p.models
    on_mnist1d = {(p.group, p.family): p.dataset for p in plans}
    assert set(on_mnist1d.values()) == {"mnist1d"}
    real = reproduce.plan(list(claims.SOURCES.values()), "r", {"imdb": "imdb.npz"}, None)
    assert {(p.family, p.dataset) for p in real if p.group == "chollet"} == {
        ("sizes", "imdb"),
        ("regularizers", "imdb"),
        ("learning_rate", "mnist1d"),
        ("capacity", "mnist1d"),
    }


def test_bad_source_and_data_path_are_one_line_errors():
    with pytest.raises(UserError, match="unknown source 'nope'; choose one of tutorial, chollet, blog, geron, all"):
        reproduce.parse_sources("nope")
    with pytest.raises(UserError, match="give DATASET=PATH"):
        reproduce.parse_data_paths(["imdb.npz"])
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    for args, wanted in (
        (["nope"], "tbreg: error: unknown source 'nope'; choose one of tutorial, chollet, blog, geron, all"),
        (["blog", "--data_path=cifar=x.npz"], "tbreg: error: --data_path=cifar=x.npz: give DATASET=PATH"),
        (["blog", "--output=x.html"], "tbreg: error: tbreg reproduce does not take --output"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "tbreg.cli", "reproduce", *args], capture_output=True, text=True, env=env
        )
        assert r.returncode == 1
        assert r.stderr.strip().startswith(wanted) and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_blog_reproduced_end_to_end_at_a_reduced_size(tmp_path):
    """The real command, 2 epochs × 2 seeds: trains the blog's three models, checks every claim,
    writes the page with its verdicts and figure; a second call reuses the runs."""
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    page = tmp_path / "docs" / "reproductions.md"
    cmd = [
        sys.executable,
        "-m",
        "tbreg.cli",
        "reproduce",
        "blog",
        "--max_epochs=2",
        "--seeds=2",
        f"--logdir={tmp_path / 'runs'}",
        f"--page={page}",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    family = tmp_path / "runs" / "mnist1d-2epochs" / "tutorial"
    for model in ("sizes/large", "regularizers/l2", "regularizers/dropout"):
        for member in ("seed_0", "seed_1", "mean"):
            assert (family / model / member / "run.json").is_file()
    text = page.read_text()
    assert "## Blog post on dropout and weight decay" in text
    assert "by `tbreg reproduce blog --max_epochs=2 --seeds=2 --logdir=" in text  # the command as given
    assert "reduced: at most 2 epochs per run (" in text and "; 2 seeds (0–1) per model" in text
    blog = text.split("## Blog post")[1].split("## ")[0]
    rows = [line for line in blog.splitlines() if line.startswith("| ") and "claim |" not in line]
    assert len(rows) == len(claims.SOURCES["blog"].claims)
    assert all(line.rstrip().endswith(("pass |", "fail |", "inconclusive |")) for line in rows)
    assert "kernel std: regularizers/l2" in blog and "penalty share" in blog
    # The L2 model's penalty is in its loss, the unregularized one has none: that holds from epoch 0.
    assert "| ✅ pass |" in next(line for line in rows if "model.losses" in line)
    assert "**Not run**" in text.split("## Chollet")[1].split("## ")[0]  # other sources: checked, not trained
    figure = page.parent / "reproductions" / "tutorial_regularizers_mnist1d-2epochs.png"
    assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "blog: " in r.stdout and f"wrote {page}" in r.stdout

    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    assert "training" not in again.stderr and "reusing complete runs of large" in again.stderr
    assert (family / "sizes" / "large").is_dir() and not (family / "sizes" / "large.2").exists()


def test_help_lists_its_flags():
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    r = subprocess.run(
        [sys.executable, "-m", "tbreg.cli", "reproduce", "--help"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for flag in ("--logdir", "--seeds", "--max_epochs", "--data_path", "--dtype_policy", "--page", "--jobs"):
        assert flag in r.stdout


def test_only_complete_seed_groups_of_the_same_size_are_reused(tmp_path):
    import json

    def record(path, **fields):
        path.mkdir(parents=True)
        (path / "run.json").write_text(json.dumps(fields))

    group = tmp_path / "capacity" / "large"
    record(group / "seed_0", status="completed", config={"batch_size": 500, "max_epochs": 60})
    record(group / "mean", status="aggregate")
    family = str(tmp_path / "capacity")
    assert reproduce._newest_complete(family, "large", [0], {"batch_size": 500}) == str(group)
    assert reproduce._newest_complete(family, "large", [0], {"batch_size": 128}) is None  # another size: train anew
    assert reproduce._newest_complete(family, "large", [0, 1], {}) is None  # seed 1 missing
    record(group / "seed_1", status="interrupted", config={"batch_size": 500})
    assert reproduce._newest_complete(family, "large", [0, 1], {}) is None  # seed 1 not finished
