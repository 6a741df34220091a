"""train_run / train_family in-process: early stopping on the data loss, statuses, seeds."""

import math

import numpy as np
import pytest

from conftest import synthetic_data

from tbreg import config, datasets, families, logtree, models, reader, sweep, training


_data = synthetic_data


def _expected_stop(values, patience, min_delta):
    """Keras EarlyStopping (mode=min) on `values`: epochs it lets run."""
    best, wait = math.inf, 0
    for epoch, value in enumerate(values):
        if value < best - min_delta:
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience:
                return epoch + 1
    return len(values)


def test_early_stopping_watches_the_validation_data_loss_not_val_loss(tmp_path):
    data = _data(n_train=200)
    spec = models.ModelSpec("big_l2", (256, 256), l2=1e-2)
    cfg = config.TrainConfig(
        dataset="synthetic",
        n_train=200,
        n_validation=200,
        batch_size=50,
        max_epochs=60,
        patience=3,
        learning_rate=1e-2,
        verbose=0,
    )
    run_dir = logtree.claim_run_dir(str(tmp_path), "t", "big_l2")
    result = training.train_run(spec, data, cfg, run_dir, "t")
    data_loss = result.history["val_binary_crossentropy"]
    assert result.status == "early_stopped"
    assert result.epochs == _expected_stop(data_loss, 3, cfg.min_delta)
    # the penalty makes val_loss differ from the data loss; the monitor is the data loss
    assert result.history["val_loss"][0] > data_loss[0] + 1e-3
    assert logtree.read_run_json(run_dir)["monitor"] == "val_binary_crossentropy"
    assert result.best_epoch == int(np.argmin(data_loss))


def test_same_seed_same_run(tmp_path):
    data = _data()
    cfg = config.TrainConfig(
        dataset="synthetic", n_train=400, n_validation=200, batch_size=100, max_epochs=3, seed=7, verbose=0
    )
    spec = models.ModelSpec("d", (16,), dropout=0.3)
    runs = [training.train_run(spec, data, cfg, logtree.claim_run_dir(str(tmp_path), "t", "d"), "t") for _ in range(2)]
    assert runs[0].history == runs[1].history
    assert runs[1].run_dir.endswith("d.2")


def test_diverging_run_is_recorded_and_the_family_goes_on(tmp_path):
    data = _data()
    cfg = config.TrainConfig(
        dataset="synthetic", n_train=400, n_validation=200, batch_size=100, max_epochs=5, learning_rate=1e12, verbose=0
    )
    fam = families.Family("t", (models.ModelSpec("boom", (64, 64), activation="relu"), models.ModelSpec("tiny", (4,))))
    results = sweep.train_family(fam, fam.models, data, cfg, str(tmp_path))
    assert [r.model for r in results] == ["boom", "tiny"]
    assert results[0].status == "diverged"
    assert logtree.read_run_json(results[0].run_dir)["status"] == "diverged"


def test_mnist1d_is_generated_offline_and_cached(tmp_path):
    cfg = config.for_dataset("mnist1d", cache_dir=str(tmp_path))
    data = datasets.load(cfg)
    assert (data.x_train.shape, data.x_val.shape, data.num_classes) == ((4000, 40), (1000, 40), 10)
    assert data.y_train.dtype == np.int32 and set(np.unique(data.y_train)) == set(range(10))
    assert (tmp_path / "mnist1d" / "mnist1d_canonical.npz").exists()
    again = datasets.load(cfg)
    np.testing.assert_array_equal(again.x_train, data.x_train)


def test_mnist1d_refuses_more_examples_than_it_has(tmp_path):
    from tbreg.errors import UserError

    with pytest.raises(UserError, match="--n_train"):
        datasets.load(config.for_dataset("mnist1d", cache_dir=str(tmp_path), n_train=5000))


def test_events_match_history(tmp_path):
    data = _data()
    cfg = config.TrainConfig(
        dataset="synthetic", n_train=400, n_validation=200, batch_size=100, max_epochs=3, verbose=0
    )
    run_dir = logtree.claim_run_dir(str(tmp_path), "t", "m")
    result = training.train_run(models.ModelSpec("m", (8,)), data, cfg, run_dir, "t")
    scalars = reader.run_scalars(run_dir)
    np.testing.assert_allclose(
        [p.value for p in scalars["validation"]["epoch_binary_crossentropy"]],
        result.history["val_binary_crossentropy"],
        rtol=1e-6,
    )
    np.testing.assert_allclose([p.value for p in scalars["train"]["epoch_loss"]], result.history["loss"], rtol=1e-6)


def test_dtype_policy_is_checked_in_one_line(monkeypatch):
    from tbreg.errors import UserError

    with pytest.raises(UserError, match="choose one of float32, mixed_bfloat16"):
        config.TrainConfig(dtype_policy="float16")
    monkeypatch.setattr(config, "cpu_bf16", lambda: None)
    with pytest.raises(UserError) as e:
        config.TrainConfig(dtype_policy="mixed_bfloat16")
    assert "no bfloat16 instructions" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UserError, match="no bfloat16 instructions"):
        sweep.parse_grid(["dtype_policy=float32,mixed_bfloat16"])
    assert sweep.parse_grid(["dtype_policy=float32"]) == (("dtype_policy", ("float32",)),)


@pytest.mark.skipif(not config.cpu_bf16(), reason="this CPU has no bfloat16 instructions")
def test_mixed_bfloat16_trains_in_bfloat16_and_is_recorded(tmp_path):
    from tbreg.plugin import summary

    data = _data()
    cfg = config.TrainConfig(
        dataset="synthetic",
        n_train=400,
        n_validation=200,
        batch_size=100,
        max_epochs=3,
        verbose=0,
        dtype_policy="mixed_bfloat16",
    )
    model = training.compile_model(models.ModelSpec("m", (16, 16), dropout=0.1, batch_norm=True), data, cfg)
    assert {layer.compute_dtype for layer in model.layers if layer.name != "logits"} == {"bfloat16"}
    assert model.get_layer("logits").compute_dtype == "float32"
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    run_dir = logtree.claim_run_dir(str(tmp_path), "t", "m")
    result = training.train_run(models.ModelSpec("m", (16, 16)), data, cfg, run_dir, "t")
    assert result.status == "completed" and all(math.isfinite(v) for v in result.history["val_loss"])
    record = logtree.read_run_json(run_dir)
    assert record["config"]["dtype_policy"] == "mixed_bfloat16"
    assert summary.hparams_of(record)["dtype_policy"] == "mixed_bfloat16"
    assert "dtype_policy" in summary.HPARAM_NAMES
