"""The fast engine gives the keras engine's results and writes the same log tree."""

import dataclasses
import functools
import os
import signal

import keras
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


# ---------------------------------------------------------------------------------------------
# Several epochs per compiled call (issue 20, item 2): the same training as one epoch per call


def _scalars(run_dir):
    return {
        (split, tag): ([p.step for p in points], [p.value for p in points])
        for split, tags in reader.run_scalars(run_dir).items()
        for tag, points in tags.items()
    }


def _assert_same_training(a, b):
    assert (a.status, a.epochs, a.best_epoch, a.best_value) == (b.status, b.epochs, b.best_epoch, b.best_value)
    assert a.history.keys() == b.history.keys()
    for key in a.history:
        np.testing.assert_array_equal(a.history[key], b.history[key], err_msg=key)
    sa, sb = _scalars(a.run_dir), _scalars(b.run_dir)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert sa[key][0] == sb[key][0], key  # the same steps
        np.testing.assert_array_equal(sa[key][1], sb[key][1], err_msg=str(key))
    for field in ("status", "epochs", "stopped_epoch", "best_epoch", "best_value", "overfitting_onset"):
        assert logtree.read_run_json(a.run_dir).get(field) == logtree.read_run_json(b.run_dir).get(field), field


@pytest.mark.parametrize("callbacks", ["none", "all_every_3"])
def test_blocks_of_epochs_train_exactly_as_one_epoch_per_call(tmp_path, callbacks):
    """K=7 and auto give the same stop epoch, best epoch, logged values and event files as K=1."""
    from tbreg import callbacks as callbacks_lib

    data = _data()
    spec = models.ModelSpec("es", (32, 32), dropout=0.1)
    kw = {"batch_size": 64, "max_epochs": 60, "patience": 4, "min_delta": 1e-3, "learning_rate": 1e-2, "seed": 3}
    runs = {}
    for k in (1, 7, 0):
        cfg = config.TrainConfig(dataset="synthetic", n_train=256, n_validation=256, verbose=0, epochs_per_call=k, **kw)
        run_dir = logtree.claim_run_dir(str(tmp_path), f"k{k}", spec.name)
        extra = []
        if callbacks != "none":
            extra = callbacks_lib.make(
                run_dir, histogram_freq=3, train_eval_freq=3, train_data=(data.x_train, data.y_train)
            )
        runs[k] = training.train_run(spec, data, cfg, run_dir, f"k{k}", extra)
    assert runs[1].status == "early_stopped" and runs[1].epochs < 60
    _assert_same_training(runs[1], runs[7])
    _assert_same_training(runs[1], runs[0])
    if callbacks != "none":  # every callback's events, weight histograms included
        for k in (7, 0):
            ha = reader.histograms(runs[1].run_dir + "/train")
            hb = reader.histograms(runs[k].run_dir + "/train")
            assert ha.keys() == hb.keys() and ha
            for tag in ha:
                assert [p.step for p in ha[tag]] == [p.step for p in hb[tag]] == list(range(0, runs[1].epochs, 3))


def _fit(data, epochs_per_call, restore_best_weights, tmp_path=None, **kw):
    import keras

    from tbreg import engine
    from tbreg.callbacks import EpochTensorBoard

    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(32, "elu"), keras.layers.Dropout(0.2)])
    model.add(keras.layers.Dense(1))
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.InverseTimeDecay(0.02, 4, 1)),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryCrossentropy(from_logits=True, name="bce")],
    )
    stop = keras.callbacks.EarlyStopping("val_bce", patience=3, restore_best_weights=restore_best_weights, **kw)
    callbacks = [stop, EpochTensorBoard(str(tmp_path))] if tmp_path else [stop]
    history = engine.fast_fit(
        model,
        data.x_train,
        data.y_train,
        (data.x_val, data.y_val),
        80,
        32,
        callbacks,
        seed=2,
        epochs_per_call=epochs_per_call,
    )
    state = {name: getattr(stop, name) for name in ("stopped_epoch", "best", "best_epoch", "wait")}
    return model.get_weights(), history, state


@pytest.mark.parametrize("restore_best_weights", [False, True])
def test_blocks_give_the_same_weights_and_early_stopping_state(tmp_path, restore_best_weights):
    data = _data()
    w1, h1, s1 = _fit(data, 1, restore_best_weights, tmp_path / "k1")
    w7, h7, s7 = _fit(data, 7, restore_best_weights, tmp_path / "k7")
    assert h1.epochs_per_call == [1] * len(h1.epoch)
    assert max(h7.epochs_per_call) == 7 and sum(h7.epochs_per_call) == len(h7.epoch)
    assert 0 < s1["stopped_epoch"] < 79 and s1 == s7
    assert h1.history == h7.history
    for a, b in zip(w1, w7):
        np.testing.assert_array_equal(a, b)
    if restore_best_weights:  # the best epoch's weights, not the last epoch's
        w_last, *_ = _fit(data, 7, False)
        assert not all(np.array_equal(a, b) for a, b in zip(w7, w_last))
    s1, s7 = _scalars(str(tmp_path / "k1")), _scalars(str(tmp_path / "k7"))
    assert s1.keys() == s7.keys() and ("train", "epoch_learning_rate") in s1
    assert ("validation", "evaluation_bce_vs_iterations") in s1
    for key in s1:
        assert s1[key][0] == s7[key][0], key
        np.testing.assert_array_equal(s1[key][1], s7[key][1], err_msg=str(key))


def test_min_delta_baseline_and_start_from_epoch_stop_where_keras_does():
    data = _data()
    kw = {"min_delta": 0.01, "baseline": 0.6, "start_from_epoch": 3}
    w1, h1, s1 = _fit(data, 1, False, **kw)
    w7, h7, s7 = _fit(data, 7, False, **kw)
    assert s1 == s7 and h1.history == h7.history and max(h7.epochs_per_call) > 1
    for a, b in zip(w1, w7):
        np.testing.assert_array_equal(a, b)


class _InterruptAt(keras.callbacks.Callback):
    """Sends this process SIGINT at the end of `epoch` (as its block is replayed), like a user pressing
    Ctrl-C, or `delay` s later (while the next block trains); it reads no model, so blocks of several
    epochs go on."""

    tbreg_model_freq = 0

    def __init__(self, epoch, delay=None):
        super().__init__()
        self.epoch, self.delay = epoch, delay

    def on_epoch_end(self, epoch, logs=None):
        if epoch != self.epoch:
            return
        if self.delay is None:
            os.kill(os.getpid(), signal.SIGINT)
        else:
            import threading

            threading.Timer(self.delay, os.kill, (os.getpid(), signal.SIGINT)).start()


def _assert_resumed_exactly(result, reference):
    """The resumed run logged what the uninterrupted `reference` did: history and every scalar."""
    assert result.history == reference.history
    got, want = _scalars(result.run_dir), _scalars(reference.run_dir)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key][0] == want[key][0], key
        np.testing.assert_array_equal(got[key][1], want[key][1], err_msg=str(key))


def test_interrupt_inside_a_block_saves_at_its_end_and_resumes_exactly(tmp_path):
    from tbreg import families

    data = _data()
    cfg = config.TrainConfig(
        dataset="synthetic", n_train=256, n_validation=256, batch_size=64, max_epochs=12, patience=100, verbose=0
    )
    fam = families.Family("t", (models.ModelSpec("a", (16,), dropout=0.3),))
    one = dataclasses.replace(cfg, epochs_per_call=1)
    (reference,) = sweep.train_family(fam, fam.models, data, one, str(tmp_path / "ref"))
    logdir = str(tmp_path / "runs")
    blocks = dataclasses.replace(cfg, epochs_per_call=4)
    with pytest.raises(training.Interrupted) as info:
        sweep.train_family(fam, fam.models, data, blocks, logdir, callbacks_for=lambda run_dir: [_InterruptAt(5)])
    # the signal came while epoch 5 of the block 4..7 was replayed: the state is saved after epoch 7
    assert info.value.resumable and info.value.result.epochs == 8
    assert logtree.read_run_json(f"{logdir}/t/a")["stopped_epoch"] == 7
    (result,) = sweep.train_family(fam, fam.models, data, blocks, logdir, resume=True)
    assert (result.status, result.epochs) == ("completed", 12)
    _assert_resumed_exactly(result, reference)


def test_interrupt_during_a_block_ends_it_after_the_current_epoch_and_resumes_exactly(tmp_path):
    from tbreg import families

    data = _data(n_train=128, n_val=64)
    cfg = config.TrainConfig(
        dataset="synthetic",
        n_train=128,
        n_validation=64,
        batch_size=64,
        max_epochs=400,
        patience=1000,
        verbose=0,
        epochs_per_call=200,
    )
    fam = families.Family("t", (models.ModelSpec("a", (8,)),))
    (reference,) = sweep.train_family(fam, fam.models, data, cfg, str(tmp_path / "ref"))
    logdir = str(tmp_path / "runs")
    with pytest.raises(training.Interrupted) as info:
        sweep.train_family(fam, fam.models, data, cfg, logdir, callbacks_for=lambda _: [_InterruptAt(199, delay=0.05)])
    # the second block (epochs 200..399) ended soon after the signal, not at its last epoch
    assert info.value.resumable and 200 < info.value.result.epochs < 400
    (result,) = sweep.train_family(fam, fam.models, data, cfg, logdir, resume=True)
    assert (result.status, result.epochs) == ("completed", 400)
    _assert_resumed_exactly(result, reference)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "8"])
def test_epochs_per_call_must_be_a_whole_number(bad):
    from tbreg.errors import UserError

    with pytest.raises(UserError, match="epochs_per_call=.*give a whole number of epochs >= 1, or 0"):
        config.TrainConfig(epochs_per_call=bad)
    assert config.TrainConfig().epochs_per_call == 0  # auto
