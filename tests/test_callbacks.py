"""tbreg.callbacks: event files read back with TensorBoard's loader, checked against numpy and History."""

import json
import os
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_script
from tensorboard.plugins.histogram import summary_v2 as histogram_summary
from tensorboard.util import tensor_util

import tbreg.callbacks as cbs
from tbreg import logtree, models, reader
from tbreg.callbacks.weights import histogram_buckets

EPOCHS = 3


def data(n=200, features=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (x[:, :2].sum(axis=1) + rng.normal(size=n) > 0).astype("float32")[:, None]
    return x, y


def bce_metrics():
    return [keras.metrics.BinaryCrossentropy(from_logits=True), keras.metrics.BinaryAccuracy(threshold=0.0)]


class Cubic(keras.regularizers.Regularizer):
    """A custom regularizer: 1e-3 * sum |w|³."""

    def __call__(self, w):
        return 1e-3 * keras.ops.sum(keras.ops.abs(w) ** 3)


NUMPY_PENALTY = {  # layer -> penalty from its (kernel, bias) with numpy
    "hidden_1": lambda k, b: 1e-2 * np.sum(k**2) + 1e-3 * np.sum(np.abs(b)),
    "hidden_2": lambda k, b: 1e-3 * np.sum(np.abs(k)) + 2e-3 * np.sum(k**2) + 1e-3 * np.sum(np.abs(b) ** 3),
    "logits": lambda k, b: 0.0,
}


def regularized_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(
                16,
                "elu",
                kernel_regularizer=keras.regularizers.L2(1e-2),
                bias_regularizer=keras.regularizers.L1(1e-3),
                name="hidden_1",
            ),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(
                8,
                "elu",
                kernel_regularizer=keras.regularizers.L1L2(1e-3, 2e-3),
                bias_regularizer=Cubic(),
                bias_initializer="ones",
                name="hidden_2",
            ),
            keras.layers.Dense(1, name="logits"),
        ]
    )
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True), metrics=bce_metrics())
    return model


def numpy_penalties(model) -> dict[str, float]:
    return {
        layer.name: float(NUMPY_PENALTY[layer.name](*(w.numpy() for w in layer.weights)))
        for layer in model.layers
        if layer.weights
    }


class Recorder(keras.callbacks.Callback):
    """Independent record: numpy penalty before every step, and per-layer penalties at epoch end."""

    def __init__(self):
        super().__init__()
        self.steps, self.epoch_end, self.model_losses = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.steps.append([])

    def on_train_batch_begin(self, batch, logs=None):
        self.steps[-1].append(sum(numpy_penalties(self.model).values()))

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_end.append(numpy_penalties(self.model))
        self.model_losses.append(float(sum(v.numpy() for v in self.model.losses)))


def values(points):
    return [p.value for p in points]


def test_regularization_loss_matches_numpy_and_history(tmp_path):
    x, y = data()
    model, recorder, log_dir = regularized_model(), Recorder(), str(tmp_path / "run")
    history = model.fit(
        x[:150],
        y[:150],
        validation_data=(x[150:], y[150:]),
        epochs=EPOCHS,
        batch_size=64,
        verbose=0,
        callbacks=[recorder, keras.callbacks.TensorBoard(log_dir, write_graph=False), cbs.RegularizationLoss(log_dir)],
    ).history
    train = reader.scalars(os.path.join(log_dir, "train"))
    # (b) each layer's penalty = numpy from the weights; their sum = sum(model.losses)
    for name in ("hidden_1", "hidden_2", "logits"):
        expected = [r[name] for r in recorder.epoch_end]
        assert values(train[f"regularization/{name}"]) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    sums = [sum(values(train[f"regularization/{n}"])[e] for n in NUMPY_PENALTY) for e in range(EPOCHS)]
    assert sums == pytest.approx(recorder.model_losses, rel=1e-5)
    # ... and = val_loss - val data loss: validation adds the epoch-end penalty
    val_penalty = np.subtract(history["val_loss"], history["val_binary_crossentropy"])
    assert sums == pytest.approx(val_penalty, rel=1e-4)
    # (a) mean penalty over the steps = loss - data loss (with dropout), weighted by batch size
    sizes = [64, 64, 22]
    expected_mean = [np.dot(steps, sizes) / 150 for steps in recorder.steps]
    logged = values(train["epoch_regularization_loss"])
    assert logged == pytest.approx(np.subtract(history["loss"], history["binary_crossentropy"]), abs=1e-6)
    assert logged == pytest.approx(expected_mean, rel=1e-4)
    assert [p.step for p in train["epoch_regularization_loss"]] == list(range(EPOCHS))
    # (c) the validation data loss is Keras' (same log_dir): written once, not twice
    validation = reader.scalars(os.path.join(log_dir, "validation"))
    assert values(validation["epoch_binary_crossentropy"]) == pytest.approx(history["val_binary_crossentropy"])


def test_regularization_loss_alone_writes_the_data_losses_itself(tmp_path):
    x, y = data()
    model, log_dir = regularized_model(), str(tmp_path / "run")
    history = model.fit(
        x[:150],
        y[:150],
        validation_data=(x[150:], y[150:]),
        epochs=2,
        verbose=0,
        callbacks=[cbs.RegularizationLoss(log_dir)],
    ).history
    tags = {split: set(reader.scalars(os.path.join(log_dir, split))) for split in reader.splits(log_dir)}
    regs = {"regularization/hidden_1", "regularization/hidden_2", "regularization/logits"}
    assert tags == {
        "train": {"epoch_regularization_loss", "epoch_binary_crossentropy", *regs},
        "validation": {"epoch_binary_crossentropy"},
    }
    validation = reader.scalars(os.path.join(log_dir, "validation"))
    assert values(validation["epoch_binary_crossentropy"]) == pytest.approx(history["val_binary_crossentropy"])


def test_model_without_regularizers_logs_zeros_without_warning(tmp_path):
    keras.utils.set_random_seed(0)
    x, y = data()
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="h"), keras.layers.Dense(1, name="out")])
    model.compile(
        "adam", keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"]
    )  # no data-loss metric
    log_dir = str(tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(x, y, epochs=2, verbose=0, callbacks=[cbs.RegularizationLoss(log_dir)])
    train = reader.scalars(os.path.join(log_dir, "train"))
    assert set(train) == {"epoch_regularization_loss", "regularization/h", "regularization/out"}
    assert all(values(points) == [0.0, 0.0] for points in train.values())


def test_missing_data_loss_metric_warns_once_and_data_loss_override_works(tmp_path):
    x, y = data()
    model = regularized_model()
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    with pytest.warns(UserWarning, match="data_loss=") as caught:
        model.fit(x, y, epochs=2, verbose=0, callbacks=[cbs.RegularizationLoss(str(tmp_path / "a"))])
    assert len([w for w in caught if "data_loss=" in str(w.message)]) == 1
    assert "epoch_regularization_loss" not in reader.scalars(str(tmp_path / "a" / "train"))
    model.compile(
        "adam",
        keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryCrossentropy(from_logits=True, name="bce")],
    )
    history = model.fit(
        x, y, epochs=2, verbose=0, callbacks=[cbs.RegularizationLoss(str(tmp_path / "b"), data_loss="bce")]
    )
    logged = values(reader.scalars(str(tmp_path / "b" / "train"))["epoch_regularization_loss"])
    assert logged == pytest.approx(np.subtract(history.history["loss"], history.history["bce"]), abs=1e-6)
    with pytest.raises(ValueError, match="data_loss='nope'"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[cbs.RegularizationLoss(str(tmp_path / "c"), data_loss="nope")])


def test_activity_regularizer_per_layer_on_activity_data(tmp_path):
    keras.utils.set_random_seed(0)
    x, y = data()
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(
                5,
                "elu",
                kernel_regularizer=keras.regularizers.L2(1e-2),
                activity_regularizer=keras.regularizers.L1(1e-2),
                name="h",
            ),
            keras.layers.Dense(1, name="out"),
        ]
    )
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True), metrics=bce_metrics())
    probe = x[:32]
    reg = cbs.RegularizationLoss(str(tmp_path), activity_data=probe)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[reg])
    kernel, bias = model.get_layer("h").get_weights()
    z = probe @ kernel + bias
    h = np.where(z > 0, z, np.expm1(z))  # elu
    expected = 1e-2 * np.sum(kernel**2) + 1e-2 * np.abs(h).sum() / len(probe)  # Keras divides by the batch size
    logged = reader.scalars(str(tmp_path / "train"))["regularization/h"][-1].value
    assert logged == pytest.approx(expected, rel=1e-5)
    assert logged == pytest.approx(float(sum(v.numpy() for v in model.losses)), rel=1e-6)


def test_histogram_buckets_match_tensorboard_for_edge_cases():
    for data in (
        np.full(7, 0.5, "float32"),
        np.array([0.0, 1.0, 1.0, 2.0, 3.0], "float32"),
        np.arange(1000, dtype="float32") ** 0.5,
    ):
        reference = tensor_util.make_ndarray(histogram_summary.histogram_pb("t", data).value[0].tensor)
        ours = histogram_buckets(tf.constant(data)).numpy()
        assert ours[:, 2].tolist() == reference[:, 2].tolist()
        assert ours[:, :2] == pytest.approx(reference[:, :2], rel=1e-12)


def test_weight_histograms_counts_norms_sparsity_and_layer_selection(tmp_path):
    x, y = data()
    model = regularized_model()
    log_dir = str(tmp_path)
    model.fit(
        x,
        y,
        epochs=EPOCHS,
        verbose=0,
        callbacks=[cbs.WeightHistograms(log_dir, freq=2, layers=[r"hidden_\d"], sparsity_threshold=0.05)],
    )
    hists = reader.histograms(os.path.join(log_dir, "train"))
    assert set(hists) == {
        "weights/hidden_1/kernel",
        "weights/hidden_1/bias",
        "weights/hidden_2/kernel",
        "weights/hidden_2/bias",
    }
    for tag, points in hists.items():
        layer, weight = tag.split("/")[1:]
        size = {"kernel": model.get_layer(layer).kernel, "bias": model.get_layer(layer).bias}[weight].numpy().size
        assert [p.step for p in points] == [0, 2]
        assert [p.count for p in points] == [size, size]
    # bucket for bucket what tf.summary.histogram writes (TensorBoard's numpy reference)
    kernel = model.get_layer("hidden_1").kernel.numpy()
    reference = tensor_util.make_ndarray(histogram_summary.histogram_pb("k", kernel).value[0].tensor)
    buckets = hists["weights/hidden_1/kernel"][-1].buckets
    assert buckets[:, 2].tolist() == reference[:, 2].tolist()
    assert buckets[:, :2] == pytest.approx(reference[:, :2], rel=1e-12)
    scalars = reader.scalars(os.path.join(log_dir, "train"))
    assert set(scalars) == {
        "weight_norm/hidden_1",
        "weight_norm/hidden_2",
        "weight_sparsity/hidden_1",
        "weight_sparsity/hidden_2",
    }
    for name in ("hidden_1", "hidden_2"):
        w = np.concatenate(
            [v.ravel() for v in model.get_layer(name).get_weights()]
        )  # epoch 2 = the last: final weights
        assert scalars[f"weight_norm/{name}"][-1].value == pytest.approx(np.linalg.norm(w), rel=1e-5)
        assert scalars[f"weight_sparsity/{name}"][-1].value == pytest.approx(np.mean(np.abs(w) < 0.05), abs=1e-6)
    with pytest.raises(ValueError, match=r"match no layer.*hidden_1, hidden_2, logits"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[cbs.WeightHistograms(str(tmp_path / "x"), layers="dense")])


def test_weight_histograms_count_finite_weights_and_log_how_many_are_not(tmp_path):
    """A diverged training's NaN/inf weights: histograms of the finite ones, their number logged, no crash."""
    x, y = data()
    model = regularized_model()
    model.fit(x, y, epochs=1, verbose=0)
    kernel = model.get_layer("hidden_1").kernel
    values = kernel.numpy()
    values[0, :3] = [np.nan, np.inf, -np.inf]
    kernel.assign(values)
    callback = cbs.WeightHistograms(str(tmp_path))
    callback.set_model(model)  # the hooks as fit calls them, on real weights
    callback.on_train_begin()
    callback.on_epoch_end(0)
    for w in model.get_layer("hidden_2").trainable_weights:  # every weight of a layer gone
        w.assign(np.full(w.shape, np.nan, "float32"))
    callback.on_epoch_end(1)
    callback.on_train_end()
    hists = reader.histograms(str(tmp_path / "train"))
    finite = values[np.isfinite(values)]
    reference = tensor_util.make_ndarray(histogram_summary.histogram_pb("k", finite).value[0].tensor)
    first = hists["weights/hidden_1/kernel"][0]
    assert first.count == values.size - 3
    assert first.buckets[:, 2].tolist() == reference[:, 2].tolist()
    assert first.buckets[:, :2] == pytest.approx(reference[:, :2], rel=1e-12)
    assert [p.count for p in hists["weights/hidden_2/kernel"]] == [8 * 16, 0]
    assert [p.count for p in hists["weights/hidden_2/bias"]] == [8, 0]
    scalars = reader.scalars(str(tmp_path / "train"))
    nonfinite = {tag: [(p.step, p.value) for p in points] for tag, points in scalars.items() if "nonfinite" in tag}
    assert nonfinite == {
        "weight_nonfinite/hidden_1": [(0, 3.0), (1, 3.0)],
        "weight_nonfinite/hidden_2": [(1, 8 * 16 + 8.0)],
    }
    assert np.isnan(scalars["weight_norm/hidden_1"][0].value)
    assert np.isfinite(scalars["weight_norm/logits"][1].value)
    assert histogram_buckets(tf.constant([np.nan, np.inf], tf.float32)).numpy().tolist() == [[0.0, 0.0, 0.0]] * 30


def test_generalization_gap_equals_history_and_onset_is_argmin(tmp_path):
    keras.utils.set_random_seed(1)
    x, y = data(n=120, features=20)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(64, "elu", name="h"), keras.layers.Dense(1, name="out")]
    )
    model.compile(keras.optimizers.Adam(0.01), keras.losses.BinaryCrossentropy(from_logits=True), metrics=bce_metrics())
    gap = cbs.GeneralizationGap(str(tmp_path))
    history = model.fit(x[:60], y[:60], validation_data=(x[60:], y[60:]), epochs=8, verbose=0, callbacks=[gap]).history
    train = reader.scalars(str(tmp_path / "train"))
    assert set(train) == {"gap/binary_crossentropy", "gap/binary_accuracy"}  # no gap/loss: it holds the penalty
    for metric in ("binary_crossentropy", "binary_accuracy"):
        assert values(train[f"gap/{metric}"]) == pytest.approx(
            np.subtract(history[f"val_{metric}"], history[metric]), abs=1e-6
        )
    onset = int(np.argmin(history["val_binary_crossentropy"]))
    assert 0 < onset < 7  # this small net overfits within the run
    assert gap.onset["epoch"] == onset and gap.onset["monitor"] == "val_binary_crossentropy"
    assert gap.onset["gap"]["binary_crossentropy"] == pytest.approx(
        history["val_binary_crossentropy"][onset] - history["binary_crossentropy"][onset], abs=1e-6
    )
    (text,) = reader.texts(str(tmp_path / "train"))["gap/onset"]
    assert text.step == 7 and f"at epoch {onset} of 8" in text.text
    assert gap.run_json_fields() == {"overfitting_onset": gap.onset}


def lr_model(optimizer):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1, name="out")])
    model.compile(optimizer, keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def test_learning_rate_for_the_paper_schedule_once_per_epoch(tmp_path):
    x, y = data()
    schedule = models.PaperSchedule(factor=1.01)  # decays visibly in a few steps
    steps = [4 * (e + 1) for e in range(EPOCHS)]  # 200 examples, batch 50
    expected = [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]
    # alone, it logs the schedule's value after each epoch's steps
    alone = str(tmp_path / "alone")
    lr_model(keras.optimizers.SGD(schedule)).fit(
        x, y, batch_size=50, epochs=EPOCHS, verbose=0, callbacks=[cbs.LearningRate(alone)]
    )
    logged = values(reader.scalars(os.path.join(alone, "train"))["epoch_learning_rate"])
    assert logged == pytest.approx(expected, rel=1e-5) and expected[0] > expected[-1]
    # beside Keras' TensorBoard (which logs it for any schedule) it writes nothing: no duplicate tag
    both, lr = str(tmp_path / "both"), cbs.LearningRate(str(tmp_path / "both"))
    lr_model(keras.optimizers.SGD(models.PaperSchedule(factor=1.01))).fit(
        x,
        y,
        batch_size=50,
        epochs=EPOCHS,
        verbose=0,
        callbacks=[lr, keras.callbacks.TensorBoard(both, write_graph=False)],
    )
    assert not lr.active and len(os.listdir(os.path.join(both, "train"))) == 1
    assert values(reader.scalars(os.path.join(both, "train"))["epoch_learning_rate"]) == pytest.approx(
        expected, rel=1e-5
    )


def test_train_eval_is_an_inference_mode_evaluate_on_the_first_examples(tmp_path):
    x, y = data()
    model = regularized_model()  # with dropout: training-mode loss differs
    train_eval = cbs.TrainEval(str(tmp_path), freq=2, max_examples=100, x=x, y=y)
    model.fit(x, y, epochs=EPOCHS, batch_size=64, verbose=0, callbacks=[train_eval])
    logged = reader.scalars(str(tmp_path / "train_eval"))
    assert set(logged) == {"epoch_loss", "epoch_binary_crossentropy", "epoch_binary_accuracy"}
    assert [p.step for p in logged["epoch_loss"]] == [0, 2]
    expected = model.evaluate(x[:100], y[:100], verbose=0, return_dict=True)  # epoch 2 = the last
    for name, value in expected.items():
        assert logged[f"epoch_{name}"][-1].value == pytest.approx(value, rel=1e-5)
    # a batched tf.data.Dataset works too, and is cut at max_examples
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    from_ds = cbs.TrainEval(str(tmp_path / "ds"), max_examples=100, x=ds)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[from_ds])
    expected = model.evaluate(x[:100], y[:100], verbose=0, return_dict=True)["loss"]
    assert from_ds.evaluate()["loss"] == pytest.approx(expected, rel=1e-5)


def readme_example() -> str:
    text = open(os.path.join(REPO, "README.md")).read()
    section = text.split("## Callbacks for your own model.fit", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_in_a_plain_fit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    run = str(tmp_path / "logs" / "run1")
    tags = {split: set(reader.scalars(os.path.join(run, split))) for split in reader.splits(run)}
    assert {
        "epoch_regularization_loss",
        "regularization/hidden_1",
        "weight_norm/hidden_1",
        "gap/binary_crossentropy",
        "epoch_learning_rate",
        "epoch_loss",
    } <= tags["train"]
    assert {"epoch_loss", "epoch_binary_crossentropy"} <= tags["validation"] & tags["train_eval"]
    assert "weights/hidden_1/kernel" in reader.histograms(os.path.join(run, "train"))
    assert "'epoch':" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# The scripts log all of it (conftest's script_tree: sizes/{tiny,small}, regularizers/{tiny,l2})

DATA_LOSS = "sparse_categorical_crossentropy"
DIAGNOSTICS = ("frobenius", "spectral", "stable_rank", "alpha", "alpha_unreliable")  # every 5 epochs and the last


def tbreg_train_tags(layers):
    """Our non-`epoch_` tags in a script run's train dir."""
    return {
        *(f"{kind}/{layer}" for layer in layers for kind in ("regularization", "weight_norm", "weight_sparsity")),
        *(f"diagnostics/{m}/{layer}" for layer in layers for m in DIAGNOSTICS),
        f"gap/{DATA_LOSS}",
        "gap/accuracy",
    }


@pytest.mark.parametrize(
    "run, layers",
    [
        ("sizes/tiny", ["hidden_1", "logits"]),
        ("sizes/small", ["hidden_1", "hidden_2", "logits"]),
        ("regularizers/l2", ["hidden_1", "hidden_2", "hidden_3", "hidden_4", "logits"]),
    ],
)
def test_script_runs_have_every_callback_tag(script_tree, run, layers):
    run_dir = str(script_tree["logdir"] / run)
    scalars = reader.run_scalars(run_dir)
    keras_tags = {"epoch_loss", f"epoch_{DATA_LOSS}", "epoch_accuracy"}
    assert {tag for tag in scalars["train"] if not tag.startswith("epoch_")} == tbreg_train_tags(layers)
    assert keras_tags | {"epoch_learning_rate", "epoch_regularization_loss"} <= set(scalars["train"])
    assert set(scalars["train_eval"]) == keras_tags
    for split in ("train", "train_eval"):
        every = {t: ps for t, ps in scalars[split].items() if not t.startswith("diagnostics/")}
        assert all([p.step for p in points] == [0, 1, 2, 3] for points in every.values()), split
    diagnostics = [points for t, points in scalars["train"].items() if t.startswith("diagnostics/")]
    assert diagnostics and all([p.step for p in points] == [0, 3] for points in diagnostics)
    # the learning rate is logged once per epoch (by Keras' callback only)
    assert len(scalars["train"]["epoch_learning_rate"]) == 4
    hists = reader.histograms(os.path.join(run_dir, "train"))
    assert set(hists) == {f"weights/{layer}/{w}" for layer in layers for w in ("kernel", "bias")}
    regs = [scalars["train"][f"regularization/{layer}"][-1].value for layer in layers]
    if run == "regularizers/l2":
        assert all(r > 0 for r in regs[:4]) and regs[4] == 0.0
        total = scalars["train"]["epoch_regularization_loss"]
        train = scalars["train"]
        assert values(total) == pytest.approx(
            np.subtract(values(train["epoch_loss"]), values(train[f"epoch_{DATA_LOSS}"])), abs=1e-5
        )
    else:
        assert regs == [0.0] * len(layers) and values(scalars["train"]["epoch_regularization_loss"]) == [0.0] * 4


def test_script_runs_record_the_overfitting_onset_in_run_json(script_tree):
    run_dir = str(script_tree["logdir"] / "sizes" / "small")
    record = logtree.read_run_json(run_dir)
    val = values(reader.scalars(os.path.join(run_dir, "validation"))[f"epoch_{DATA_LOSS}"])
    # the scripts run TrainEval: the gap is against the training data in inference mode
    train = values(reader.scalars(os.path.join(run_dir, "train_eval"))[f"epoch_{DATA_LOSS}"])
    onset = record["overfitting_onset"]
    assert onset["epoch"] == int(np.argmin(val)) == record["best_epoch"] and onset["train_split"] == "train_eval"
    assert onset["gap"][DATA_LOSS] == pytest.approx(val[onset["epoch"]] - train[onset["epoch"]], abs=1e-6)
    assert "gap/onset" in reader.texts(os.path.join(run_dir, "train"))
    assert record["flags"]["callbacks"] == ["all"] and record["flags"]["histogram_freq"] == 1


def test_script_flags_pick_callbacks_and_reject_unknown_ones(tmp_path, tbreg_cache):
    logdir = tmp_path / "runs"
    common = ["--logdir", str(logdir), "--models", "tiny", "--max_epochs", "2", "--quiet"]
    run_script(
        "tbreg.train_sizes",
        *common,
        "--callbacks",
        "gap,weights",
        "--histogram_freq",
        "0",
        cache_dir=tbreg_cache,
        check=True,
    )
    run_dir = str(logdir / "sizes" / "tiny")
    assert reader.splits(run_dir) == ["train", "validation"]  # no train_eval
    assert not reader.histograms(os.path.join(run_dir, "train"))  # --histogram_freq=0 turns weights off
    assert {t for t in reader.scalars(os.path.join(run_dir, "train")) if not t.startswith("epoch_")} == {
        f"gap/{DATA_LOSS}",
        "gap/accuracy",
    }
    assert "overfitting_onset" in logtree.read_run_json(run_dir)
    bad = run_script("tbreg.train_sizes", *common, "--callbacks", "weights,nope", cache_dir=tbreg_cache)
    assert bad.returncode != 0 and "--callbacks" in bad.stderr and "train_eval" in bad.stderr


def test_make_builds_the_named_callbacks():
    x, y = data()
    made = cbs.make("logs", cbs.NAMES, train_data=(x, y))
    assert [type(c).__name__ for c in made] == [
        "WeightHistograms",
        "RegularizationLoss",
        "TrainEval",  # before the gap, which is measured against it
        "GeneralizationGap",
        "LearningRate",
        "WeightDiagnostics",
    ]
    assert made[3].train_eval is made[2]
    assert [type(c).__name__ for c in cbs.make("logs", ["gap", "train_eval"], train_eval_freq=0)] == [
        "GeneralizationGap"
    ]
    assert cbs.resolve_names(["all"]) == cbs.NAMES and cbs.resolve_names(["none"]) == ()
    assert cbs.resolve_names("gap,weights") == ("gap", "weights")
    assert cbs.make("logs", ["none"]) == []
    with pytest.raises(ValueError, match="unknown callback"):
        cbs.make("logs", ["nope"])
    assert json.dumps(cbs.GeneralizationGap("logs").run_json_fields()) == "{}"


def test_gap_and_onset_are_against_train_eval_for_a_dropout_model(tmp_path):
    """With TrainEval the gap is validation − training data in inference mode (dropout off)."""
    keras.utils.set_random_seed(2)
    x, y = data(n=160, features=20)
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(128, "elu"), keras.layers.Dropout(0.5), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.Adam(0.01), keras.losses.BinaryCrossentropy(from_logits=True), metrics=bce_metrics())
    made = cbs.make(str(tmp_path), ["gap", "train_eval"], train_data=(x[:80], y[:80]), train_eval_examples=None)
    gap = made[1]
    history = model.fit(x[:80], y[:80], validation_data=(x[80:], y[80:]), epochs=6, verbose=0, callbacks=made).history
    evaluated = reader.scalars(str(tmp_path / "train_eval"))
    logged = reader.scalars(str(tmp_path / "train"))
    expected = np.subtract(history["val_binary_crossentropy"], values(evaluated["epoch_binary_crossentropy"]))
    assert values(logged["gap/binary_crossentropy"]) == pytest.approx(expected, abs=1e-5)
    best = int(np.argmin(history["val_binary_crossentropy"]))
    o = gap.onset
    assert o["epoch"] == best and o["train_split"] == "train_eval" and o["criterion"] == "GL5"
    assert o["train"] == pytest.approx(values(evaluated["epoch_binary_crossentropy"])[best], abs=1e-6)
    assert "overfits_from" in o
    # Keras' dropout-on training loss is higher: against it the gap would be smaller
    assert history["binary_crossentropy"][best] > o["train"]
