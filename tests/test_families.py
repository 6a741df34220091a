"""The families of every dataset: architectures (parameter counts), optimizers and schedules, a
couple of epochs of training on fixture data, the diverging learning rate, MC dropout, --list."""

import dataclasses
import functools
import math

import keras
import numpy as np
import pytest
from conftest import run_script
from keras_data import write_imdb, write_mnist

from tbreg import callbacks as callbacks_lib
from tbreg import config as config_lib
from tbreg import datasets, families, logtree, models, reader, sweep, training

IMDB_WORDS, MNIST_PIXELS, MNIST1D_FEATURES = 10_000, 784, 40


def dense_params(inputs, *units):
    sizes = (inputs, *units)
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


EXPECTED_PARAMS = {
    # Chollet's IMDB models (1e 4.4, 2e ch. 5): multi-hot 10,000 -> hidden -> 1 logit
    ("imdb", "sizes", "smaller"): dense_params(IMDB_WORDS, 4, 4, 1),  # 40,029
    ("imdb", "sizes", "original"): dense_params(IMDB_WORDS, 16, 16, 1),  # 160,305
    ("imdb", "sizes", "bigger"): dense_params(IMDB_WORDS, 512, 512, 1),  # 5,383,681
    ("imdb", "regularizers", "l2"): 160_305,
    ("imdb", "regularizers", "dropout"): 160_305,
    ("imdb", "regularizers", "batch_norm"): 160_305 + 4 * (16 + 16),  # gamma, beta, moving mean and variance
    # Chollet 2e ch. 5 on MNIST: 784 pixels -> 10 logits
    ("mnist", "learning_rate", "lr_1"): dense_params(MNIST_PIXELS, 512, 10),  # 407,050
    ("mnist", "learning_rate", "lr_1e-2"): 407_050,
    ("mnist", "capacity", "small"): dense_params(MNIST_PIXELS, 10),  # 7,850: logistic regression
    ("mnist", "capacity", "large"): dense_params(MNIST_PIXELS, 96, 96, 10),  # 85,642
    ("mnist", "regularizers", "max_norm"): 85_642,
    ("mnist", "schedules", "one_cycle"): 85_642,
    ("mnist1d", "regularizers", "l1"): dense_params(MNIST1D_FEATURES, 512, 512, 512, 512, 10),
    ("mnist1d", "schedules", "exponential"): dense_params(MNIST1D_FEATURES, 512, 512, 512, 512, 10),
}
SHAPES = {"imdb": (IMDB_WORDS, 2), "mnist": (MNIST_PIXELS, 10), "mnist1d": (MNIST1D_FEATURES, 10), "higgs": (28, 2)}


@pytest.mark.parametrize("dataset, family, model", sorted(EXPECTED_PARAMS))
def test_parameter_counts(dataset, family, model):
    (spec,) = families.get(family, dataset).select([model])
    assert models.build_model(spec, *SHAPES[dataset]).count_params() == EXPECTED_PARAMS[dataset, family, model]


def test_every_family_of_every_dataset_builds():
    for dataset, fams in families.REGISTRY.items():
        for family in fams.values():
            for spec in family.models:
                model = models.build_model(spec, *SHAPES[dataset], seed=0)
                assert model.layers[-1].name == "logits" and model.layers[-1].activation.__name__ == "linear"
                optimizer = models.make_optimizer(spec, 1e-3, 100, steps_per_epoch=10, epochs=20)
                assert math.isfinite(float(optimizer.learning_rate))


def test_the_books_architectures_and_optimizers():
    lr1, lr2 = families.get("learning_rate", "mnist").models
    for spec, rate in ((lr1, 1.0), (lr2, 1e-2)):
        optimizer = models.make_optimizer(spec, 1e-3, 100)
        assert isinstance(optimizer, keras.optimizers.RMSprop) and float(optimizer.learning_rate) == pytest.approx(rate)
    small = models.build_model(families.get("capacity", "mnist").select(["small"])[0], 784, 10)
    assert [layer.name for layer in small.layers] == ["logits"]  # logistic regression
    imdb_regs = {s.name: s for s in families.get("regularizers", "imdb").models}
    l2 = models.build_model(imdb_regs["l2"], IMDB_WORDS, 2)
    hidden = [layer for layer in l2.layers if layer.name.startswith("hidden_")]
    assert [h.units for h in hidden] == [16, 16] and all(h.activation.__name__ == "relu" for h in hidden)
    assert all(float(h.kernel_regularizer.l2) == pytest.approx(0.002) for h in hidden)
    dropout = models.build_model(imdb_regs["dropout"], IMDB_WORDS, 2)
    assert [layer.rate for layer in dropout.layers if isinstance(layer, keras.layers.Dropout)] == [0.5, 0.5]
    assert imdb_regs["dropout"].mc_samples == families.MC_SAMPLES
    for dataset in families.REGISTRY:  # the baseline every regularizers family is compared with exists
        regs = families.get("regularizers", dataset)
        assert regs.default_baseline in families.get(regs.baseline_family, dataset).model_names()


def test_geron_regularizers():
    specs = {s.name: s for s in families.get("regularizers", "mnist1d").models}
    assert list(specs) == ["l2", "dropout", "combined", "l1", "l1_l2", "max_norm", "batch_norm"]
    build = {name: models.build_model(spec, MNIST1D_FEATURES, 10) for name, spec in specs.items()}
    hidden = {name: [layer for layer in m.layers if layer.name.startswith("hidden_")] for name, m in build.items()}
    assert all(isinstance(h.kernel_regularizer, keras.regularizers.L1) for h in hidden["l1"])
    assert all(float(h.kernel_regularizer.l1) == pytest.approx(1e-3) for h in hidden["l1"])
    assert all(isinstance(h.kernel_regularizer, keras.regularizers.L1L2) for h in hidden["l1_l2"])
    assert all(isinstance(h.kernel_constraint, keras.constraints.MaxNorm) for h in hidden["max_norm"])
    assert all(h.kernel_constraint.max_value == 1.0 for h in hidden["max_norm"])
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in build["batch_norm"].layers) == 4
    # the tutorial's three are unchanged, and families.REGULARIZERS is still just them
    assert [s.name for s in families.REGULARIZERS.models] == ["l2", "dropout", "combined"]
    assert dataclasses.replace(specs["l2"]) == families.REGULARIZERS.models[0]
    assert families.get("regularizers") is families.REGULARIZERS and families.get("sizes", "higgs") is families.SIZES


def test_schedules():
    fam = families.get("schedules", "imdb")
    steps, epochs = 30, 20
    rates = {}
    for spec in fam.models:
        schedule = models.make_optimizer(
            spec, 1e-3, decay_steps=2 * steps, steps_per_epoch=steps, epochs=epochs
        )._learning_rate
        rates[spec.name] = [float(schedule(s)) for s in range(steps * epochs + 1)]
    assert rates["inverse_time"][0] == pytest.approx(1e-3) and rates["inverse_time"][2 * steps] == pytest.approx(5e-4)
    # Géron's exponential decay: 10x lower after s = 0.8 x the run's epochs
    assert rates["exponential"][round(0.8 * epochs * steps)] == pytest.approx(1e-4, rel=1e-3)
    # 1cycle: up from lr to 10 x lr over the first half of the cycle, back down, then far lower
    one = np.array(rates["one_cycle"])
    peak = int(np.argmax(one))
    assert one[0] == pytest.approx(1e-3) and one[peak] == pytest.approx(1e-2, rel=1e-3)
    assert np.all(np.diff(one[: peak + 1]) > 0) and np.all(np.diff(one[peak:]) <= 1e-12)
    assert one[-1] == pytest.approx(1e-6, rel=1e-3)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(models.OneCycle(0.05, 1000)))
    assert isinstance(restored, models.OneCycle) and float(restored(500)) == pytest.approx(
        float(models.OneCycle(0.05, 1000)(500))
    )


# ---------------------------------------------------------------------------------------------
# Training on fixture files in Keras' format


@pytest.fixture(scope="module")
def fixture_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keras_files")
    write_mnist(tmp / "mnist.npz", n_train=600)
    write_imdb(tmp / "imdb.npz", n_train=300)
    sizes = {"mnist": (500, 100), "imdb": (200, 100)}
    out = {}
    for dataset, (n_train, n_val) in sizes.items():
        cfg = config_lib.for_dataset(
            dataset, data_path=str(tmp / f"{dataset}.npz"), n_train=n_train, n_validation=n_val, max_epochs=2, verbose=0
        )
        out[dataset] = (datasets.load(cfg), cfg)
    return out


@pytest.mark.parametrize("dataset", ["imdb", "mnist"])
def test_every_family_trains_a_couple_of_epochs(dataset, fixture_data, tmp_path):
    data, cfg = fixture_data[dataset]
    for name, fam in families.REGISTRY[dataset].items():
        results = sweep.train_family(fam, fam.models, data, cfg, str(tmp_path))
        assert [r.model for r in results] == fam.model_names()
        for r, spec in zip(results, fam.models):
            record = logtree.read_run_json(r.run_dir)
            assert r.run_dir == str(tmp_path / name / spec.name) and record["family"] == name
            assert record["params"] == models.build_model(spec, data.num_features, data.num_classes).count_params()
            assert r.epochs == 2 and (r.status == "completed" or r.model == "lr_1"), (name, r.model, r.status)
            train = reader.scalars(str(tmp_path / name / spec.name / "train"))
            assert [p.step for p in train["epoch_learning_rate"]] == [0, 1]  # logged per epoch, for every schedule
        if name == "schedules":
            lr = {
                r.model: [p.value for p in reader.scalars(r.run_dir + "/train")["epoch_learning_rate"]] for r in results
            }
            assert lr["one_cycle"][0] > lr["one_cycle"][1]  # a 2-epoch cycle peaks within the first epoch
            assert lr["exponential"][0] > lr["exponential"][1]


def test_the_tutorial_datasets_new_models_train_with_every_callback(tmp_path):
    """Géron's regularizers and the schedules with Adam on an mnist1d-shaped sample, with all of tbreg's
    callbacks (l1, l1_l2 and inverse_time train the same way as on imdb and mnist above)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, MNIST1D_FEATURES)).astype(np.float32)
    y = (x[:, :10].argmax(axis=1)).astype(np.int32)
    data = datasets.Data("mnist1d", x[:200], y[:200], x[200:], y[200:], num_classes=10)
    cfg = config_lib.for_dataset("mnist1d", n_train=200, n_validation=40, batch_size=50, max_epochs=2, verbose=0)
    make = functools.partial(callbacks_lib.make, train_data=(data.x_train, data.y_train))
    regs = families.get("regularizers", "mnist1d")
    schedules = families.get("schedules", "mnist1d")
    for fam, specs, callbacks_for in (
        (regs, regs.select(["combined", "batch_norm"]), make),
        (regs, regs.select(["max_norm"]), None),
        (schedules, schedules.select(["exponential", "one_cycle"]), None),
    ):
        results = sweep.train_family(fam, specs, data, cfg, str(tmp_path), callbacks_for=callbacks_for)
        assert all(r.status == "completed" and r.epochs == 2 for r in results), [
            (r.model, r.status, r.error) for r in results
        ]
    splits = reader.run_scalars(str(tmp_path / "regularizers" / "combined"))
    assert {"train", "validation", "train_eval", "validation_mc"} <= set(splits)
    assert "regularization/hidden_1" in splits["train"]
    bn = reader.histograms(str(tmp_path / "regularizers" / "batch_norm" / "train"))
    assert "weights/hidden_1/kernel" in bn


def test_max_norm_keeps_every_unit_s_incoming_weights_within_the_norm(fixture_data, tmp_path):
    data, cfg = fixture_data["mnist"]
    (spec,) = families.get("regularizers", "mnist").select(["max_norm"])
    model = training.compile_model(spec, data, cfg)
    model.fit(data.x_train, data.y_train, epochs=1, batch_size=128, verbose=0)
    for layer in model.layers:
        if layer.name.startswith("hidden_"):
            assert np.linalg.norm(layer.kernel.numpy(), axis=0).max() <= 1.0 + 1e-5


def test_diverging_learning_rate_is_recorded_and_the_family_completes(fixture_data, tmp_path):
    """RMSprop at 1.0 (Chollet) blows the loss up to ~1e5 in the first epoch; 1e-2 trains."""
    data, cfg = fixture_data["mnist"]
    fam = families.get("learning_rate", "mnist")
    results = sweep.train_family(fam, fam.models, data, dataclasses.replace(cfg, max_epochs=3), str(tmp_path))
    assert [(r.model, r.status) for r in results] == [("lr_1", "diverged"), ("lr_1e-2", "completed")]
    diverged = logtree.read_run_json(results[0].run_dir)
    assert diverged["status"] == "diverged" and diverged["diverged_epoch"] == 0 and diverged["epochs"] == 3
    assert diverged["config"]["learning_rate"] == 1.0  # the spec's own rate, recorded
    assert results[0].history["sparse_categorical_crossentropy"][0] > training.DIVERGENCE_FACTOR * math.log(10)
    assert logtree.read_run_json(results[1].run_dir)["diverged_epoch"] is None


def test_mc_dropout_line_beside_validation(fixture_data, tmp_path):
    data, cfg = fixture_data["imdb"]
    (spec,) = families.get("regularizers", "imdb").select(["dropout"])
    run_dir = logtree.claim_run_dir(str(tmp_path), "regularizers", "dropout")
    result = training.train_run(
        spec, data, cfg, run_dir, "regularizers", callbacks_lib.make(run_dir, train_data=(data.x_train, data.y_train))
    )
    scalars = reader.run_scalars(result.run_dir)
    assert set(scalars["validation_mc"]) == {"epoch_binary_crossentropy", "epoch_accuracy"}
    assert [p.step for p in scalars["validation_mc"]["epoch_accuracy"]] == [0, 1]
    mc = [p.value for p in scalars["validation_mc"]["epoch_binary_crossentropy"]]
    assert all(0.0 < v < 5.0 for v in mc) and mc != result.history["val_binary_crossentropy"]


def _dropout_model(rate, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(rate),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalCrossentropy(from_logits=True), "accuracy"],
    )
    return model


def test_mc_dropout_is_keras_evaluation_when_nothing_is_dropped_and_leaves_training_alone(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20)).astype("float32")
    y = rng.integers(0, 3, 300)
    model = _dropout_model(1e-9)  # keeps (almost surely) every unit: MC mean = the deterministic prediction
    mc = callbacks_lib.MCDropout(str(tmp_path / "a"), x[200:], y[200:], samples=5, batch_size=64)
    model.fit(x[:200], y[:200], epochs=2, batch_size=50, verbose=0, callbacks=[mc])
    evaluated = model.evaluate(x[200:], y[200:], verbose=0, return_dict=True)
    assert mc.last["epoch_sparse_categorical_crossentropy"] == pytest.approx(
        evaluated["sparse_categorical_crossentropy"], rel=1e-5
    )
    assert mc.last["epoch_accuracy"] == pytest.approx(evaluated["accuracy"])
    # With real dropout: stochastic, but training draws the same masks with or without the callback.
    histories = []
    for callbacks in ([], [callbacks_lib.MCDropout(str(tmp_path / "b"), x[200:], y[200:], samples=3)]):
        model = _dropout_model(0.5)
        histories.append(model.fit(x[:200], y[:200], epochs=3, batch_size=50, verbose=0, callbacks=callbacks).history)
    assert histories[0] == histories[1]
    mc = callbacks[0]
    assert mc.evaluate() != mc.evaluate()


def test_list_prints_the_registry():
    proc = run_script("tbreg.train", "--list", check=True)
    rows = [line.split(None, 3) for line in proc.stdout.strip().splitlines()[1:]]
    listed = {(fam, model, ds) for fam, model, dss, _ in rows for ds in dss.split(",")}
    registry = {(f.name, m.name, ds) for ds, fams in families.REGISTRY.items() for f in fams.values() for m in f.models}
    assert listed == registry
    assert len(rows) == len({(fam, model, dss) for fam, model, dss, _ in rows})
    descriptions = {(fam, model): desc for fam, model, _, desc in rows}
    assert descriptions["learning_rate", "lr_1"] == "Dense 512 relu; rmsprop 1, constant"
    assert descriptions["sizes", "bigger"].startswith("Dense 512-512 relu")
