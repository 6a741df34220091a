"""Seeds: each model trained N times into <family>/<model>/seed_<k>, and the aggregate run
<family>/<model>/mean whose events are the numpy mean and std over the seed runs' events."""

import dataclasses
import functools
import json
import os
import re
import shutil

import numpy as np
import pytest
from scipy import stats
from conftest import run_script, synthetic_data, tbreg

from tbreg import (
    _flags,
    aggregate,
    analysis,
    config,
    families,
    hparams,
    logtree,
    models,
    plot,
    reader,
    share,
    sweep,
    training,
)
from tbreg.share import report as share_report


_data = functools.partial(synthetic_data, n_train=300, n_val=100)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Family t: `a` with seeds 3, 4, 5 (3 epochs) and `b` (dropout, MC line) with patience 1."""
    logdir = tmp_path_factory.mktemp("seeds")
    data = _data()
    cfg = config.TrainConfig(
        dataset="synthetic",
        n_train=300,
        n_validation=100,
        batch_size=50,
        max_epochs=6,
        patience=1,
        learning_rate=3e-2,
        verbose=0,
    )
    fam = families.Family(
        "t", (models.ModelSpec("a", (8,)), models.ModelSpec("b", (64, 64), dropout=0.3, mc_samples=3))
    )
    results = sweep.train_family(fam, fam.models, data, cfg, str(logdir), seeds=[3, 4, 5])
    return logdir, results


def test_tree_has_seed_runs_and_a_mean_per_model(seeded):
    logdir, results = seeded
    assert logtree.find_runs(str(logdir)) == [
        "t/a/mean",
        "t/a/seed_3",
        "t/a/seed_4",
        "t/a/seed_5",
        "t/b/mean",
        "t/b/seed_3",
        "t/b/seed_4",
        "t/b/seed_5",
    ]
    assert [
        (r.model, os.path.relpath(r.run_dir, logdir), r.status in ("completed", "early_stopped", "aggregate"))
        for r in results
    ] == [
        ("a", "t/a/seed_3", True),
        ("a", "t/a/seed_4", True),
        ("a", "t/a/seed_5", True),
        ("a", "t/a/mean", True),
        ("b", "t/b/seed_3", True),
        ("b", "t/b/seed_4", True),
        ("b", "t/b/seed_5", True),
        ("b", "t/b/mean", True),
    ]
    assert [logtree.read_run_json(str(logdir / "t" / "a" / f"seed_{k}"))["seed"] for k in (3, 4, 5)] == [3, 4, 5]
    assert results[0].history != results[1].history  # different seeds, different runs


def test_mean_run_json_lists_its_members(seeded):
    logdir, results = seeded
    record = logtree.read_run_json(str(logdir / "t" / "b" / "mean"))
    assert record["status"] == "aggregate" and record["members"] == ["seed_3", "seed_4", "seed_5"]
    assert record["seeds"] == [3, 4, 5] and record["family"] == "t" and record["model"] == "b"
    assert set(record["member_status"].values()) <= {"completed", "early_stopped"}
    assert record["epochs"] == max(r.epochs for r in results[4:7])
    val = reader.scalars(str(logdir / "t" / "b" / "mean" / "validation"))["epoch_binary_crossentropy"]
    values = [p.value for p in val]
    assert record["best_epoch"] == val[int(np.argmin(values))].step and record["best_value"] == pytest.approx(
        min(values)
    )
    assert results[7].best_value == pytest.approx(record["best_value"])


def test_aggregate_is_numpy_mean_and_std_over_the_seed_runs_events(seeded):
    logdir, _ = seeded
    for model in ("a", "b"):
        group = logdir / "t" / model
        seeds = [reader.run_scalars(str(group / f"seed_{k}")) for k in (3, 4, 5)]
        mean = reader.run_scalars(str(group / "mean"))
        splits = {s for run in seeds for s in run}
        assert set(mean) == splits and ({"train", "validation", "train_eval", "validation_mc"} & splits) >= {
            "train",
            "validation",
        }
        compared = 0
        for split in splits:
            tags = {t for run in seeds for t in run.get(split, {}) if not analysis.is_end_tag(t)}  # curves
            curves = {t for t in mean[split] if not analysis.is_end_tag(t)}
            assert curves == tags | {t + "/std" for t in tags}
            # one number per run, not averaged: the mean's own, from its mean curves (tbreg.hparams)
            assert {t for t in mean[split] if analysis.is_end_tag(t)} == (
                {tag for tag, _, _ in hparams.METRICS} if split == "validation" else set()
            )
            for tag in tags:
                by_step = {}
                for run in seeds:
                    for p in run[split].get(tag, []):
                        by_step.setdefault(p.step, []).append(p.value)
                assert [p.step for p in mean[split][tag]] == sorted(by_step)
                np.testing.assert_allclose(
                    [p.value for p in mean[split][tag]],
                    [np.mean(by_step[s]) for s in sorted(by_step)],
                    rtol=1e-6,
                    atol=1e-7,
                )
                np.testing.assert_allclose(
                    [p.value for p in mean[split][tag + "/std"]],
                    [np.std(by_step[s]) for s in sorted(by_step)],
                    rtol=1e-5,
                    atol=1e-6,
                )
                compared += 1
        assert compared >= 5
    assert "validation_mc" in reader.run_scalars(str(logdir / "t" / "b" / "mean"))


def test_runs_that_stopped_early_drop_out_of_later_steps(tmp_path):
    """Members of different lengths: a step's mean is over the members that logged it."""
    for k, values in ((0, [3.0, 2.0, 1.0]), (1, [5.0, 4.0])):
        import tensorflow as tf

        run = tmp_path / "m" / f"seed_{k}"
        writer = tf.summary.create_file_writer(str(run / "validation"))
        with writer.as_default():
            for step, v in enumerate(values):
                tf.summary.scalar("epoch_loss", v, step=step)
        writer.close()
        logtree.write_run_json(
            str(run), {"seed": k, "status": "completed", "epochs": len(values), "monitor": "val_loss"}
        )
    record = aggregate.write_mean(str(tmp_path / "m"))
    mean = reader.scalars(str(tmp_path / "m" / "mean" / "validation"))
    assert [p.value for p in mean["epoch_loss"]] == [4.0, 3.0, 1.0]
    assert [p.value for p in mean["epoch_loss/std"]] == [1.0, 1.0, 0.0]
    assert record["members"] == ["seed_0", "seed_1"] and record["epochs"] == 3
    assert (record["best_epoch"], record["best_value"]) == (2, 1.0)


def test_seeds_flag_values():
    assert _flags.seeds_from([], 0) is None
    assert _flags.seeds_from(["3"], 0) == [0, 1, 2]
    assert _flags.seeds_from(["2"], 10) == [10, 11]
    assert _flags.seeds_from(["7", "1", "42"], 0) == [7, 1, 42]


def test_script_with_seeds(tmp_path, tbreg_cache):
    logdir = tmp_path / "runs"
    proc = run_script(
        "tbreg.train",
        "--family=sizes",
        "--dataset=mnist1d",
        "--models=tiny",
        "--seeds=2",
        "--max_epochs=2",
        "--callbacks=none",
        "--quiet",
        f"--logdir={logdir}",
        cache_dir=tbreg_cache,
    )
    assert proc.returncode == 0, proc.stderr
    assert logtree.find_runs(str(logdir)) == ["sizes/tiny/mean", "sizes/tiny/seed_0", "sizes/tiny/seed_1"]
    table = proc.stdout.split("):\n", 1)[1]
    assert [line.split()[0] for line in table.splitlines()[1:4]] == ["tiny/seed_0", "tiny/seed_1", "tiny/mean"]
    assert "aggregate" in table.splitlines()[3]
    assert logtree.read_run_json(str(logdir / "sizes" / "tiny" / "seed_1"))["flags"]["seeds"] == ["2"]


# --- how the readers show a seed group: one member of its family, the mean with a ±std band -----


def test_run_names_put_a_seed_group_inside_its_family():
    assert analysis.run_name("sizes/tiny") == analysis.RunName("sizes", "tiny")
    assert analysis.run_name("sizes/tiny/seed_3") == analysis.RunName("sizes", "tiny", "seed_3")
    assert analysis.run_name("sizes/tiny/mean", {"status": "aggregate"}).is_mean
    assert analysis.run_name("sweep/reg/l2,l2=0.001/seed_-1").group == "sweep/reg/l2,l2=0.001"
    assert analysis.run_name("sizes/mean", {"status": "completed"}) == analysis.RunName("sizes", "mean")
    assert analysis.run_name("seed_0") == analysis.RunName("", ".", "seed_0")
    assert analysis.is_std_tag("epoch_loss/std") and not analysis.is_std_tag("weights/std_layer/kernel")


def _report(logdir, capsys, tmp_path):
    code, out, err = tbreg(capsys, "share", "report", str(logdir), "-o", str(tmp_path / "r.html"))
    assert code == 0, err
    text = (tmp_path / "r.html").read_text()
    data = json.loads(re.search(r'id="tbreg-data">(.*?)</script>', text, re.S).group(1))
    return text, data["charts"]


def test_report_shows_each_seed_group_as_its_mean_with_a_band(seeded, capsys, tmp_path):
    logdir, _ = seeded
    text, charts = _report(logdir, capsys, tmp_path)
    assert re.findall(r"<h2>(.*?)</h2>", text) == ["t"]  # not t/a, t/b
    summary = re.search(r'<table class="summary">(.*?)</table>', text, re.S).group(1)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in re.findall(r"<tr>(.*?)</tr>", summary)]
    assert cells[0][:3] == ["run", "seeds", "status"] and "± std" in cells[0]
    record = logtree.read_run_json(str(logdir / "t" / "a" / "mean"))
    row = dict(zip(cells[0], cells[1]))
    assert (row["run"], row["seeds"], row["status"]) == ("a", "3", "aggregate")
    assert row["best validation"] == f"{record['best_value']:.4f}"
    at_best = [
        next(
            p.value
            for p in reader.scalars(str(logdir / "t" / "a" / f"seed_{k}" / "validation"))["epoch_binary_crossentropy"]
            if p.step == record["best_epoch"]
        )
        for k in (3, 4, 5)
    ]
    assert row["± std"] == f"{np.std(at_best, ddof=1):.4f}"  # over the seed runs, ddof=1
    assert row["± 95% CI"] == f"{stats.t.ppf(0.975, 2) * stats.sem(at_best):.4f}"
    assert row["verdict"] and "vs baseline (paired)" not in cells[0]  # no baseline in this family
    assert [c[0] for c in cells[1:]] == ["a", "b"]
    assert not [c for c in charts if c["layout"]["title"]["text"].endswith("/std")]
    loss = next(c for c in charts if c["layout"]["title"]["text"] == "epoch_binary_crossentropy")
    names = [t["name"] for t in loss["traces"]]
    band_name = "a validation 95% CI of the mean"
    assert "a validation" in names and band_name in names and not [n for n in names if "seed" in n]
    band = next(t for t in loss["traces"] if t["name"] == band_name)
    line = next(t for t in loss["traces"] if t["name"] == "a validation")
    seed_steps = [
        [
            p.step
            for p in reader.scalars(str(logdir / "t" / "a" / f"seed_{k}" / "validation"))["epoch_binary_crossentropy"]
        ]
        for k in (3, 4, 5)
    ]
    two_or_more = [e for e in line["x"] if sum(e in steps for steps in seed_steps) >= 2]
    assert band["fill"] == "toself" and band["x"] == two_or_more + two_or_more[::-1]  # no CI from one seed
    mean = reader.scalars(str(logdir / "t" / "a" / "mean" / "validation"))["epoch_binary_crossentropy"]
    first = [
        reader.scalars(str(logdir / "t" / "a" / f"seed_{k}" / "validation"))["epoch_binary_crossentropy"][0].value
        for k in (3, 4, 5)
    ]
    half = stats.t.ppf(0.975, 2) * stats.sem(first)
    assert band["y"][0] == pytest.approx(mean[0].value + half, rel=1e-5) and band["y"][-1] == pytest.approx(
        mean[0].value - half, rel=1e-5
    )
    assert line["customdata"][0] == [pytest.approx(half, rel=1e-5), 3]  # hover: ± CI and n seeds
    assert {t.get("meta") for t in loss["traces"]} >= {"best epoch"}  # the best epoch's dot


def test_report_shows_seed_runs_of_a_group_without_a_mean_as_runs(seeded, capsys, tmp_path):
    logdir, _ = seeded
    tree = tmp_path / "runs"
    shutil.copytree(logdir / "t" / "a", tree / "t" / "a", ignore=shutil.ignore_patterns("mean"))
    text, _ = _report(tree, capsys, tmp_path)
    assert re.findall(r"<h2>(.*?)</h2>", text) == ["t"]
    summary = re.search(r'<table class="summary">(.*?)</table>', text, re.S).group(1)
    assert re.findall(r"<tr><td>(.*?)</td>", summary) == ["a/seed_3", "a/seed_4", "a/seed_5"]
    assert "<th>seeds</th>" not in summary


def test_plot_draws_a_seed_groups_mean_and_band(seeded, capsys, tmp_path):
    logdir, _ = seeded
    out = tmp_path / "t.svg"
    code, stdout, err = tbreg(capsys, "plot", str(logdir / "t"), "-o", str(out))
    assert code == 0, err
    assert "binary_crossentropy of 2 runs (a, b)" in stdout
    svg = out.read_text()
    assert "<!-- a validation -->" in svg and "<!-- b train -->" in svg and "seed" not in svg.lower()
    assert svg.count("fill-opacity: 0.15") >= 4  # train and validation band of each group


def test_report_and_plot_show_names_with_dollars_literally(seeded, capsys, tmp_path):
    logdir, _ = seeded
    tree = tmp_path / "runs"
    shutil.copytree(logdir / "t" / "a" / "seed_3", tree / "t$1" / "lr=$a$b")
    text, charts = _report(tree, capsys, tmp_path)
    names = {t["name"] for c in charts for t in c["traces"]}
    # plotly reads `$…$` as LaTeX; &#36; shows a `$` (the copy's record names family t: a baseline of t$1)
    assert "lr=&#36;a&#36;b (baseline) validation" in names
    assert "<h2>t$1</h2>" in text
    code, stdout, err = tbreg(capsys, "plot", str(tree / "t$1"), "-o", str(tmp_path / "d.svg"))
    assert code == 0 and "runs (lr=$a$b)" in stdout, err


def test_report_keeps_a_constant_learning_rate_readable():
    points = [reader.Point(step, 0.0, 1e-3) for step in range(5)]
    run = reader.Run("f", "r", "/x", "f/r", {}, {"train": {"epoch_learning_rate": points}})
    chart = share_report._chart("c", "epoch_learning_rate", [run], {"r": "#1f77b4"}, 100)
    low, high = chart["layout"]["yaxis"]["range"]
    assert low > 0 and low < 1e-3 < high < 2e-3  # plotly's own range, [v - 1, v + 1], shows 0.001 as 0
    varying = share_report._chart(
        "c",
        "t",
        [dataclasses.replace(run, scalars={"train": {"t": [reader.Point(0, 0.0, 1.0), reader.Point(1, 0.0, 2.0)]}})],
        {"r": "#1f77b4"},
        100,
    )
    assert "range" not in varying["layout"]["yaxis"]


def test_tab_report_and_plot_agree_on_every_summary_number(seeded, script_tree, tmp_path):
    """One rule (tbreg.analysis) for the data loss, best epoch, gap (and what it is measured
    against), penalty share, verdict, onset, the seeds' CI and onsets and the paired comparison:
    the Overfitting tab's summary, the report's and `tbreg plot`'s are the same numbers, on seed
    groups and on plain runs, and the plot's markers sit at the same epochs."""
    from tb_server import Server

    for logdir, family in ((seeded[0], "t"), (script_tree["logdir"], "regularizers"), (seeded[0], "r")):
        if family == "r":  # a family with a seed-group baseline: copy group `a` in as the baseline of `r`
            logdir = tmp_path / "paired"
            shutil.copytree(seeded[0] / "t", logdir / "r", ignore=shutil.ignore_patterns("a"))
            shutil.copytree(seeded[0] / "t" / "a", logdir / "r" / "a")
            for k in ("mean", "seed_3", "seed_4", "seed_5"):
                _rename_family(logdir / "r" / "b" / k, "r")  # `a` keeps family t: the baseline
        tab = {row["name"]: row for row in Server(logdir).json("summary", family=family)["rows"]}
        runs = reader.load_runs(str(logdir))
        report = {
            name.removesuffix(" (baseline)"): row
            for name, row in share.summary_rows([r for r in runs if r.family == family]).items()
        }
        drawn = plot.plot_family(str(logdir / family), str(tmp_path / f"{family}.png"))
        assert set(tab) == set(report) == set(drawn.rows) and tab
        for name, row in report.items():
            ours, theirs = row["_row"], tab[name]
            assert ours == drawn.rows[name]  # the plot's rows: the same dataclasses
            assert (theirs["best_epoch"], theirs["stop_epoch"], theirs["params"]) == (
                row["best epoch"],
                row["stop epoch"],
                row["params"],
            )
            assert "epoch_" + row["metric"] == theirs["data_loss"]
            for key, cell in (
                ("best_value", "best validation"),
                ("gap", "gap at best"),
                ("penalty_share", "penalty share"),
                ("train_value", "train at best"),
                ("best_ci", "± 95% CI"),
                ("best_std", "± std"),
            ):
                assert theirs[key] == pytest.approx(row[cell], rel=1e-6), (name, key)
            assert theirs["gap_split"] == ours.gap_split and row["gap vs"].startswith(theirs["gap_split"])
            assert theirs["verdict"] in row["verdict"] and theirs["onset"] == ours.verdict.onset
            assert theirs["seed_onsets"] == list(ours.seed_onsets)
            assert theirs["paired_text"] == row["vs baseline (paired)"]
            for key in ("paired_diff", "paired_low", "paired_high"):
                assert theirs[key] == pytest.approx(getattr(ours.paired, key.removeprefix("paired_"), None), rel=1e-6)
            marks = {what: epoch for what, epoch, _ in drawn.markers.get(name, [])}
            assert marks.get("best epoch") == theirs["best_epoch"]
            assert marks.get("overfitting onset") == theirs["onset"]
        if family == "regularizers":
            assert report["l2"]["penalty share"] > 0.01 and report["tiny"]["penalty share"] == 0
            assert all(row["gap_split"] == "train_eval" for row in tab.values())
        if family == "r":  # both have 3 seeds: the paired comparison is there, and agrees with scipy
            assert tab["a"]["baseline"] and tab["a"]["paired_diff"] is None
            best = lambda g: [
                min(
                    p.value
                    for p in reader.scalars(str(logdir / "r" / g / f"seed_{k}" / "validation"))[  # noqa: E731
                        "epoch_binary_crossentropy"
                    ]
                )
                for k in (3, 4, 5)
            ]
            d = np.subtract(best("b"), best("a"))
            low, high = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
            assert (tab["b"]["paired_diff"], tab["b"]["paired_low"], tab["b"]["paired_high"]) == (
                pytest.approx(d.mean()),
                pytest.approx(low),
                pytest.approx(high),
            )
        metric = plot.default_metric([r for r in runs if r.family == family])
        assert "epoch_" + metric == next(iter(tab.values()))["data_loss"]


def _rename_family(run_dir, family):
    """Rewrites a run's record (run.json and the tab's record summary) to name `family`."""
    record = logtree.read_run_json(str(run_dir))
    record["family"] = family
    logtree.write_record(str(run_dir), record)
