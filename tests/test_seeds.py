"""Seeds: each model trained N times into <family>/<model>/seed_<k>, and the aggregate run
<family>/<model>/mean whose events are the numpy mean and std over the seed runs' events."""

import functools
import os

import numpy as np
import pytest
from conftest import run_script, synthetic_data

from tbreg import (
    _flags,
    aggregate,
    config,
    families,
    logtree,
    models,
    reader,
    training,
)


_data = functools.partial(synthetic_data, n_train=300, n_val=100)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Family t: `a` with seeds 3, 4, 5 (3 epochs) and `b` (dropout, MC line) with patience 1."""
    logdir = tmp_path_factory.mktemp("seeds")
    data = _data()
    cfg = config.TrainConfig(dataset="synthetic", n_train=300, n_validation=100, batch_size=50, max_epochs=6,
                             patience=1, learning_rate=3e-2, verbose=0)
    fam = families.Family("t", (models.ModelSpec("a", (8,)), models.ModelSpec("b", (64, 64), dropout=0.3, mc_samples=3)))
    results = training.train_family(fam, fam.models, data, cfg, str(logdir), seeds=[3, 4, 5])
    return logdir, results


def test_tree_has_seed_runs_and_a_mean_per_model(seeded):
    logdir, results = seeded
    assert reader.find_runs(str(logdir)) == [
        "t/a/mean", "t/a/seed_3", "t/a/seed_4", "t/a/seed_5", "t/b/mean", "t/b/seed_3", "t/b/seed_4", "t/b/seed_5",
    ]
    assert [(r.model, os.path.relpath(r.run_dir, logdir), r.status in ("completed", "early_stopped", "aggregate"))
            for r in results] == [
        ("a", "t/a/seed_3", True), ("a", "t/a/seed_4", True), ("a", "t/a/seed_5", True), ("a", "t/a/mean", True),
        ("b", "t/b/seed_3", True), ("b", "t/b/seed_4", True), ("b", "t/b/seed_5", True), ("b", "t/b/mean", True),
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
    assert record["best_epoch"] == val[int(np.argmin(values))].step and record["best_value"] == pytest.approx(min(values))
    assert results[7].best_value == pytest.approx(record["best_value"])


def test_aggregate_is_numpy_mean_and_std_over_the_seed_runs_events(seeded):
    logdir, _ = seeded
    for model in ("a", "b"):
        group = logdir / "t" / model
        seeds = [reader.run_scalars(str(group / f"seed_{k}")) for k in (3, 4, 5)]
        mean = reader.run_scalars(str(group / "mean"))
        splits = {s for run in seeds for s in run}
        assert set(mean) == splits and ({"train", "validation", "train_eval", "validation_mc"} & splits) >= {
            "train", "validation"}
        compared = 0
        for split in splits:
            tags = {t for run in seeds for t in run.get(split, {})}
            assert set(mean[split]) == tags | {t + "/std" for t in tags}
            for tag in tags:
                by_step = {}
                for run in seeds:
                    for p in run[split].get(tag, []):
                        by_step.setdefault(p.step, []).append(p.value)
                assert [p.step for p in mean[split][tag]] == sorted(by_step)
                np.testing.assert_allclose([p.value for p in mean[split][tag]],
                                           [np.mean(by_step[s]) for s in sorted(by_step)], rtol=1e-6, atol=1e-7)
                np.testing.assert_allclose([p.value for p in mean[split][tag + "/std"]],
                                           [np.std(by_step[s]) for s in sorted(by_step)], rtol=1e-5, atol=1e-6)
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
        logtree.write_run_json(str(run), {"seed": k, "status": "completed", "epochs": len(values), "monitor": "val_loss"})
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
    proc = run_script("tbreg.train", "--family=sizes", "--dataset=mnist1d", "--models=tiny", "--seeds=2",
                      "--max_epochs=2", "--callbacks=none", "--quiet", f"--logdir={logdir}", cache_dir=tbreg_cache)
    assert proc.returncode == 0, proc.stderr
    assert reader.find_runs(str(logdir)) == ["sizes/tiny/mean", "sizes/tiny/seed_0", "sizes/tiny/seed_1"]
    table = proc.stdout.split("):\n", 1)[1]
    assert [line.split()[0] for line in table.splitlines()[1:4]] == ["tiny/seed_0", "tiny/seed_1", "tiny/mean"]
    assert "aggregate" in table.splitlines()[3]
    assert logtree.read_run_json(str(logdir / "sizes" / "tiny" / "seed_1"))["flags"]["seeds"] == ["2"]
