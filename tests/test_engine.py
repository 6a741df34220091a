"""The fast engine gives the keras engine's results and writes the same log tree."""

import functools

import numpy as np
import pytest

from conftest import synthetic_data

from tbreg import config, logtree, models, reader, sweep, training


_data = functools.partial(synthetic_data, n_train=256, n_val=256, features=10, seed=1, noise=1.5)


def _train(tmp_path, engine, spec, data, **overrides):
    cfg = config.TrainConfig(
        dataset="synthetic",
        n_train=len(data.x_train),
        n_validation=len(data.x_val),
        verbose=0,
        engine=engine,
        **overrides,
    )
    run_dir = logtree.claim_run_dir(str(tmp_path), engine, spec.name)
    return training.train_run(spec, data, cfg, run_dir, engine)


def test_full_batch_training_agrees_exactly_with_keras_fit(tmp_path):
    """With one batch per epoch the shuffle order cannot matter: both engines do the same math."""
    data = _data()
    spec = models.ModelSpec("overfit", (128, 128), l2=1e-4, dropout=0.0)
    kw = dict(batch_size=256, max_epochs=200, patience=5, learning_rate=1e-2)
    fast, keras_ = (_train(tmp_path, e, spec, data, **kw) for e in ("fast", "keras"))
    assert fast.status == keras_.status == "early_stopped"
    assert fast.epochs == keras_.epochs and fast.best_epoch == keras_.best_epoch
    for key in ("loss", "binary_crossentropy", "val_loss", "val_binary_crossentropy", "val_accuracy"):
        np.testing.assert_allclose(fast.history[key], keras_.history[key], rtol=1e-3, atol=1e-5, err_msg=key)


def test_minibatch_training_agrees_within_tolerance(tmp_path):
    """Minibatches are shuffled differently (permutation vs tf.data buffer): same result within 3%."""
    data = _data(n_train=1000, n_val=500)
    spec = models.ModelSpec("m", (32, 32))
    kw = dict(batch_size=100, max_epochs=15, patience=100)
    fast, keras_ = (_train(tmp_path, e, spec, data, **kw) for e in ("fast", "keras"))
    assert fast.history["val_binary_crossentropy"][-1] == pytest.approx(
        keras_.history["val_binary_crossentropy"][-1], rel=0.03
    )
    assert fast.history["accuracy"][-1] == pytest.approx(keras_.history["accuracy"][-1], abs=0.03)


def test_both_engines_write_the_same_tags(tmp_path):
    data = _data()
    spec = models.ModelSpec("d", (16,), dropout=0.2)
    runs = {e: _train(tmp_path, e, spec, data, batch_size=64, max_epochs=3) for e in ("fast", "keras")}
    tags = {
        e: {(split, tag) for split, t in reader.run_scalars(r.run_dir).items() for tag in t} for e, r in runs.items()
    }
    assert tags["fast"] == tags["keras"]
    assert ("train", "epoch_learning_rate") in tags["fast"]
    steps = [p.step for p in reader.scalars(runs["fast"].run_dir + "/validation")["epoch_binary_crossentropy"]]
    assert steps == [0, 1, 2]


def test_fast_engine_is_reproducible_and_reshuffles_each_epoch(tmp_path):
    data = _data()
    spec = models.ModelSpec("r", (8,))
    a, b = (_train(tmp_path, "fast", spec, data, batch_size=32, max_epochs=3, seed=5) for _ in range(2))
    assert a.history == b.history
    c = _train(tmp_path, "fast", spec, data, batch_size=32, max_epochs=3, seed=6)
    assert c.history != a.history


def test_jobs_give_the_same_tree_as_a_sequential_run(tmp_path):
    from tbreg import families

    data = _data()
    fam = families.Family(
        "fam", (models.ModelSpec("a", (8,)), models.ModelSpec("b", (16, 16)), models.ModelSpec("c", (4,)))
    )
    cfg = config.TrainConfig(dataset="synthetic", n_train=256, n_validation=256, batch_size=64, max_epochs=4, verbose=0)
    seq = sweep.train_family(fam, fam.models, data, cfg, str(tmp_path / "seq"))
    par = sweep.train_family(fam, fam.models, data, cfg, str(tmp_path / "par"), jobs=2)
    assert [r.run_dir.replace("par", "seq") for r in par] == [r.run_dir for r in seq]
    for s, p in zip(seq, par):
        assert (s.status, s.epochs, s.best_epoch) == (p.status, p.epochs, p.best_epoch)
        a, b = reader.run_scalars(s.run_dir), reader.run_scalars(p.run_dir)
        assert {(k, t) for k in a for t in a[k]} == {(k, t) for k in b for t in b[k]}
        for split in a:
            for tag in a[split]:
                assert [x.step for x in a[split][tag]] == [x.step for x in b[split][tag]]
                np.testing.assert_allclose(
                    [x.value for x in a[split][tag]], [x.value for x in b[split][tag]], rtol=1e-5
                )
