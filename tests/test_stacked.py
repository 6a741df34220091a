"""--seeds=N stacked (tbreg.stacked): N models on a model axis in one compiled call per epoch write the
same seed runs, records and mean as the seeds trained one by one."""

import dataclasses
import functools
import json
import os

import numpy as np
import pytest
from conftest import run_script, synthetic_data

from tbreg import config, families, logtree, models, reader, stacked, sweep, training

_data = functools.partial(synthetic_data, n_train=300, n_val=100)
SEEDS = [3, 4, 5]
# Without dropout a stacked model follows its seed's own training to float32 rounding (only the
# order of additions in a batched matmul differs): every logged value within this relative error.
CLOSE = 1e-4
# With dropout the masks differ (the stack draws its own): the mean over the seeds of the best
# validation loss within this of the one-by-one mean (their seed spread here is ~0.01).
SEED_NOISE = 0.05
DETERMINISTIC = ("a", "p", "r")  # the models without dropout


def _family():
    return families.Family(
        "t",
        (
            models.ModelSpec("a", (8, 8), l2=1e-3, max_norm=3.0),  # deterministic given the seed
            models.ModelSpec(  # the paper's optimizer and inits, without its dropout
                "p",
                (8, 8),
                activation="tanh",
                l2=1e-3,
                l2_first=False,
                init_std=(0.1, 0.05, 0.001),
                optimizer="paper_sgd",
            ),
            models.ModelSpec("r", (8,), activation="relu", l1=1e-3, optimizer="rmsprop", schedule="constant"),
            models.ModelSpec("d", (16,), l1=1e-4, dropout=0.3),  # dropout: seed noise
            models.ModelSpec("bn", (8,), batch_norm=True),  # cannot be stacked: trained one by one
        ),
    )


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """The family trained with seeds 3, 4, 5 stacked, and again one seed after another."""
    root = tmp_path_factory.mktemp("stacked")
    data = _data()
    cfg = config.TrainConfig(
        dataset="synthetic",
        n_train=300,
        n_validation=100,
        batch_size=50,
        max_epochs=10,
        patience=2,
        learning_rate=3e-2,
        verbose=0,
    )
    fam = _family()
    out = {}
    for name, stack in (("stacked", True), ("one", False)):
        logdir = str(root / name)
        results = sweep.train_family(fam, fam.models, data, cfg, logdir, seeds=SEEDS, stack_seeds=stack)
        out[name] = (logdir, results)
    return out


def _record(logdir, run):
    with open(os.path.join(logdir, run, logtree.RUN_JSON)) as f:
        return json.load(f)


def _without_times(record):
    drop = ("started", "finished", "versions")
    return {k: v for k, v in record.items() if k not in drop}


def test_same_layout_and_results(trees):
    (stacked_dir, stacked), (one_dir, one) = trees["stacked"], trees["one"]
    assert logtree.find_runs(stacked_dir) == logtree.find_runs(one_dir)
    assert "t/a/mean" in logtree.find_runs(stacked_dir) and "t/a/seed_5" in logtree.find_runs(stacked_dir)
    assert [os.path.relpath(r.run_dir, stacked_dir) for r in stacked] == [
        os.path.relpath(r.run_dir, one_dir) for r in one
    ]
    same = [(r.model, r.status, r.epochs, r.best_epoch) for r in stacked if r.model != "d"]  # d: its own dropout
    assert same == [(r.model, r.status, r.epochs, r.best_epoch) for r in one if r.model != "d"]
    assert all(r.status in ("completed", "early_stopped", "aggregate") for r in stacked)


def test_records_say_stacked_and_match_one_by_one(trees):
    (stacked_dir, _), (one_dir, _) = trees["stacked"], trees["one"]
    for run in (f"t/{m}/seed_{seed}" for m in DETERMINISTIC for seed in SEEDS):
        s, o = _record(stacked_dir, run), _record(one_dir, run)
        assert s["config"].pop("stacked") == len(SEEDS)
        assert "stacked" not in o["config"]
        s, o = _without_times(s), _without_times(o)
        assert sorted(s) == sorted(o)
        assert s["best_value"] == pytest.approx(o["best_value"], rel=CLOSE)
        s.pop("best_value"), o.pop("best_value")
        assert s == o  # status, epochs, best and stop epoch, params of one model, seed, spec, config
    for seed in SEEDS:  # dropout: the same fields; the model that cannot be stacked: trained one by one
        s, o = _record(stacked_dir, f"t/d/seed_{seed}"), _record(one_dir, f"t/d/seed_{seed}")
        assert s["config"]["stacked"] == len(SEEDS) and sorted(s) == sorted(o) and s["params"] == o["params"]
        assert "stacked" not in _record(stacked_dir, f"t/bn/seed_{seed}")["config"]


def test_early_stopping_per_model_at_its_own_epoch(trees):
    (stacked_dir, _), (one_dir, _) = trees["stacked"], trees["one"]
    epochs = [_record(stacked_dir, f"t/a/seed_{s}")["epochs"] for s in SEEDS]
    assert epochs == [_record(one_dir, f"t/a/seed_{s}")["epochs"] for s in SEEDS]
    assert len(set(epochs)) > 1  # the stack went on after its first model stopped
    statuses = {_record(stacked_dir, f"t/a/seed_{s}")["status"] for s in SEEDS}
    assert "early_stopped" in statuses


def test_curves_match_one_by_one(trees):
    """The same tags; without dropout at the same steps with the same values to float32 rounding."""
    (stacked_dir, _), (one_dir, _) = trees["stacked"], trees["one"]
    for model in (*DETERMINISTIC, "d"):
        for seed in SEEDS:
            s = reader.run_scalars(os.path.join(stacked_dir, "t", model, f"seed_{seed}"))
            o = reader.run_scalars(os.path.join(one_dir, "t", model, f"seed_{seed}"))
            assert {k: sorted(v) for k, v in s.items()} == {k: sorted(v) for k, v in o.items()}
            if model == "d":  # its own dropout masks: its own stop epoch
                continue
            for split, tags in o.items():
                for tag, points in tags.items():
                    assert [p.step for p in s[split][tag]] == [p.step for p in points], (split, tag)
                    np.testing.assert_allclose(
                        [p.value for p in s[split][tag]], [p.value for p in points], rtol=CLOSE, err_msg=tag
                    )


def test_dropout_models_within_seed_noise(trees):
    (stacked_dir, _), (one_dir, _) = trees["stacked"], trees["one"]
    best = {
        name: [_record(d, f"t/d/seed_{s}")["best_value"] for s in SEEDS]
        for name, d in (("stacked", stacked_dir), ("one", one_dir))
    }
    assert best["stacked"] != best["one"]  # its own masks
    assert abs(np.mean(best["stacked"]) - np.mean(best["one"])) < SEED_NOISE


def test_mean_run_over_the_stacked_seeds(trees):
    (stacked_dir, stacked), (one_dir, _) = trees["stacked"], trees["one"]
    s, o = _record(stacked_dir, "t/a/mean"), _record(one_dir, "t/a/mean")
    assert s["status"] == o["status"] == "aggregate"
    assert s["members"] == o["members"] == [f"seed_{k}" for k in SEEDS]
    assert s["best_epoch"] == o["best_epoch"] and s["best_value"] == pytest.approx(o["best_value"], rel=CLOSE)
    assert any(r.run_dir.endswith("t/a/mean") and r.status == "aggregate" for r in stacked)


def test_script_stacks_seeds_and_says_why_not(tmp_path):
    """tbreg-train-sizes --seeds=2 on mnist1d (10 classes): stacked with --callbacks=none, the same numbers as
    --stack_seeds=false; with the default callbacks, one by one and a line says why."""
    common = ("--n_train=200", "--n_validation=100", "--max_epochs=3", "--models=tiny", "--seeds=2")
    runs = {
        "stacked": ("--callbacks=none",),
        "one": ("--callbacks=none", "--stack_seeds=false"),
        "callbacks": (),
    }
    for name, extra in runs.items():
        proc = run_script("tbreg.train_sizes", f"--logdir={tmp_path / name}", *common, *extra, check=True)
        assert ("cannot be stacked" in proc.stderr) == (name == "callbacks"), proc.stderr
        assert os.path.exists(os.path.join(tmp_path, name, "sizes", "tiny", "mean", logtree.RUN_JSON))
    for seed in (0, 1):
        stacked_run, one, with_callbacks = (_record(str(tmp_path / n), f"sizes/tiny/seed_{seed}") for n in runs)
        assert stacked_run["config"]["stacked"] == 2
        assert "stacked" not in one["config"] and "stacked" not in with_callbacks["config"]
        assert stacked_run["monitor"] == "val_sparse_categorical_crossentropy"
        assert (stacked_run["epochs"], stacked_run["best_epoch"]) == (one["epochs"], one["best_epoch"])
        assert stacked_run["best_value"] == pytest.approx(one["best_value"], rel=CLOSE)


def test_interrupt_marks_every_seed_interrupted(tmp_path):
    """Ctrl-C (a KeyboardInterrupt after epoch 1) stops the whole stack: every seed's run.json says so."""
    cfg = config.TrainConfig(dataset="synthetic", n_train=300, n_validation=100, batch_size=50, max_epochs=5, verbose=0)
    configs = [dataclasses.replace(cfg, seed=s) for s in SEEDS]
    run_dirs = [str(tmp_path / f"seed_{s}") for s in SEEDS]

    def ctrl_c(epoch):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(training.Interrupted) as e:
        stacked.train_seeds(models.ModelSpec("a", (8,)), _data(), configs, run_dirs, "t", on_epoch_end=ctrl_c)
    assert e.value.resumable is False
    for run_dir in run_dirs:
        record = logtree.read_run_json(run_dir)
        assert (record["status"], record["epochs"], record["resumable"]) == ("interrupted", 2, False)
        assert [p.step for p in reader.run_scalars(run_dir)["validation"]["epoch_loss"]] == [0, 1]


def test_what_cannot_be_stacked():
    cfg = config.TrainConfig(dataset="synthetic")
    spec = models.ModelSpec("a", (8,), l1=1e-3, dropout=0.5, max_norm=1.0)
    assert stacked.unstackable(spec, cfg) is None
    assert stacked.unstackable(spec, dataclasses.replace(cfg, engine="keras")) == "--engine=keras"
    assert "batch norm" in stacked.unstackable(dataclasses.replace(spec, batch_norm=True), cfg)
    assert "MC dropout" in stacked.unstackable(dataclasses.replace(spec, mc_samples=5), cfg)
    assert "--callbacks=none" in stacked.unstackable(spec, cfg, callbacks=[object()])
