"""The overfitting plugin in process: real event files → EventMultiplexer → MultiplexerDataProvider →
TBContext → TensorBoardWSGI → werkzeug test Client, for every route.

Expected answers come from the log tree itself, read by `tbreg.reader` (TensorBoard's loader, not
the data provider) and from run.json, so every comparison is exact.
"""

import dataclasses
import gzip
import json
import math
import os
import pathlib
import shutil
from importlib import metadata as importlib_metadata

import numpy as np
import pytest
import tensorflow as tf
from conftest import run_script
from tb_server import PREFIX, Server, strict_json

from tbreg.plugin import metadata, summary
from tbreg.plugin.plugin import STATIC_DIR, OverfittingLoader, OverfittingPlugin, _static_file
from tbreg import analysis, logtree, reader

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def scripts(script_tree):
    return Server(script_tree["logdir"])


# ---------------------------------------------------------------------------------------------
# Oracle: what the routes must answer, from the event files (tbreg.reader) and run.json


def split_scalars(run_dir):
    return {split: reader.scalars(str(run_dir / split)) for split in reader.splits(str(run_dir))}


def series(points):
    return {
        "steps": [p.step for p in points],
        "values": [p.value if math.isfinite(p.value) else None for p in points],
    }


def run_dirs(logdir, family):
    return sorted((logdir / family).iterdir(), key=lambda d: (not is_baseline(d), d.name))


def is_baseline(run_dir):
    return logtree.read_run_json(str(run_dir))["family"] != run_dir.parent.name


def header(run_dir):
    return {
        "run": f"{run_dir.parent.name}/{run_dir.name}",
        "name": run_dir.name,
        "baseline": is_baseline(run_dir),
        "seeds": None,
    }


def data_loss_tag(run_dir):
    return "epoch_" + logtree.read_run_json(str(run_dir))["monitor"][len("val_") :]


def expected_row(run_dir):
    record = logtree.read_run_json(str(run_dir))
    scalars = split_scalars(run_dir)
    tag = data_loss_tag(run_dir)
    val = [(p.step, p.value) for p in scalars["validation"][tag]]
    best_epoch, best_value = record["best_epoch"], record["best_value"]  # a finished run: its record's
    assert (best_epoch, best_value) == min(val, key=lambda sv: (sv[1], sv[0]))  # = the curve's minimum
    train = {p.step: p.value for p in scalars["train"][tag]}[best_epoch]
    loss = {p.step: p.value for p in scalars["train"]["epoch_loss"]}[best_epoch]
    logged = {p.step: p.value for p in scalars["train"].get("epoch_regularization_loss", [])}
    penalty = logged[best_epoch] if best_epoch in logged else max(0.0, loss - train)
    # the gap is against the training data in inference mode (train_eval) where it was logged
    train = {p.step: p.value for p in scalars.get("train_eval", {}).get(tag, [])}.get(best_epoch, train)
    return {
        **header(run_dir),
        "params": record["params"],
        "data_loss": tag,
        "best_epoch": best_epoch,
        "best_value": best_value,
        "train_value": train,
        "gap": best_value - train,
        "stop_epoch": record["stopped_epoch"],
        "status": record["status"],
        "penalty_share": penalty / loss,
    }


def summary_fields(row: dict) -> dict:
    """A summary row's header and `analysis.Summary` fields (without verdicts and seed statistics)."""
    keep = {"run", "name", "baseline", "seeds", *(f.name for f in dataclasses.fields(analysis.Summary))}
    return {k: v for k, v in row.items() if k in keep}


# ---------------------------------------------------------------------------------------------
# Registration


def test_entry_point_registers_the_plugin():
    (entry,) = [e for e in importlib_metadata.entry_points(group="tensorboard_plugins") if e.name == "overfitting"]
    assert entry.load() is OverfittingLoader


def test_plugins_listing_enables_the_tab(scripts):
    listing = json.loads(scripts.client.get("/data/plugins_listing").get_data(as_text=True))["overfitting"]
    assert listing == {
        "disable_reload": True,
        "enabled": True,
        "remove_dom": False,
        "tab_name": "Overfitting",
        "loading_mechanism": {"type": "IFRAME", "module_path": "/data/plugin/overfitting/static/index.js"},
    }


def test_tab_is_active_on_a_plain_keras_log(tmp_path):
    """The README's callbacks example without tbreg's record: keras.callbacks.TensorBoard alone."""
    import keras

    logdir = tmp_path / "logs"
    keras.utils.set_random_seed(0)
    x, y = np.random.default_rng(0).normal(size=(64, 4)), np.arange(64) % 2
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, "relu"), keras.layers.Dense(1)])
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(
        x, y, validation_split=0.25, epochs=3, verbose=0, callbacks=[keras.callbacks.TensorBoard(str(logdir / "run1"))]
    )
    server = Server(logdir)
    listing = json.loads(server.client.get("/data/plugins_listing").get_data(as_text=True))["overfitting"]
    assert listing["enabled"] is True
    (family,) = server.json("families")["families"]
    assert family["runs"][0]["name"] == "run1" and "epoch_loss" in family["metrics"]
    (row,) = server.json("summary", family=family["family"])["rows"]
    assert row["best_epoch"] is not None and row["verdict"] and row["gap_split"] == "train"
    # a log dir with other scalars only (no Keras epoch curves) keeps the tab inactive
    other = tmp_path / "other"
    with tf.summary.create_file_writer(str(other / "a")).as_default():
        tf.summary.scalar("loss", 1.0, step=0)
    listing = json.loads(Server(other).client.get("/data/plugins_listing").get_data(as_text=True))["overfitting"]
    assert listing["enabled"] is False


def test_dropout_gap_is_against_the_inference_mode_training_loss(seeded):
    """A real dropout run with train_eval: the gap is validation − train_eval, positive, while the
    dropout-on training loss gives a smaller (here often negative) one."""
    logdir = pathlib.Path(seeded.logdir)
    tag = "epoch_sparse_categorical_crossentropy"
    (row,) = [r for r in seeded.json("summary", family="regularizers")["rows"] if r["name"] == "dropout"]
    mean = split_scalars(logdir / "regularizers" / "dropout" / "mean")
    at = lambda split: {p.step: p.value for p in mean[split][tag]}[row["best_epoch"]]  # noqa: E731
    assert row["gap_split"] == "train_eval" and row["gap_note"] is None
    assert row["gap"] == pytest.approx(row["best_value"] - at("train_eval"), rel=1e-6) and row["gap"] > 0
    assert at("train") > at("train_eval")  # dropout on: the training-mode loss is pessimistic
    assert row["gap"] > row["best_value"] - at("train")


# ---------------------------------------------------------------------------------------------
# Routes on the scripts' log tree


def test_families(scripts, script_tree):
    logdir = script_tree["logdir"]
    expected = []
    for family in ("regularizers", "sizes"):
        dirs = run_dirs(logdir, family)
        tags = {tag for d in dirs for by_tag in split_scalars(d).values() for tag in by_tag}
        expected.append(
            {
                "family": family,
                "runs": [header(d) for d in dirs],
                "metrics": sorted(t for t in tags if t.startswith("epoch_")),
                "data_loss": "epoch_sparse_categorical_crossentropy",
            }
        )
    assert scripts.json("families") == {"families": expected}
    assert [r["name"] for r in expected[0]["runs"]] == ["tiny", "l2"]  # the baseline copy first
    assert expected[0]["runs"][0]["baseline"] and not expected[0]["runs"][1]["baseline"]


@pytest.mark.parametrize("metric", ["epoch_sparse_categorical_crossentropy", "epoch_accuracy", "epoch_loss"])
def test_family_view(scripts, script_tree, metric):
    logdir = script_tree["logdir"]
    for family in ("sizes", "regularizers"):
        expected_runs = []
        for d in run_dirs(logdir, family):
            by_split = split_scalars(d)
            expected_runs.append(
                {
                    **header(d),
                    "series": {
                        s: series(by_split[s][metric])
                        for s in metadata.SPLITS
                        if s in by_split and metric in by_split[s]
                    },
                    "band": {},
                }
            )
        answer = scripts.json("family", family=family, metric=metric)
        view = {"families", "group", "filter", "points", "longest", "hparam_keys", "varying", "total", "shown"}
        assert {k: v for k, v in answer.items() if k not in view} == {
            "family": family,
            "metric": metric,
            "band": "ci",
            "runs": expected_runs,
        }
        assert answer["points"] is None and answer["filter"] == "" and answer["group"] is None  # every epoch
        assert answer["total"] == answer["shown"] == len(expected_runs)
        assert all(set(r["series"]) >= {"train", "validation"} for r in answer["runs"])
        assert all(r["series"]["train"]["steps"] == [0, 1, 2, 3] for r in answer["runs"])


def test_summary_table(scripts, script_tree):
    logdir = script_tree["logdir"]
    for family in ("sizes", "regularizers"):
        dirs = run_dirs(logdir, family)
        answer = scripts.json("summary", family=family)
        assert [{k: row[k] for k in expected_row(d)} for row, d in zip(answer["rows"], dirs)] == [
            expected_row(d) for d in dirs
        ]
        assert all(row["gap_split"] == "train_eval" and row["verdict"] for row in answer["rows"])
        for row, d in zip(answer["rows"], dirs):  # agrees with what training recorded
            record = logtree.read_run_json(str(d))
            assert row["best_epoch"] == record["best_epoch"]
            assert row["best_value"] == pytest.approx(record["best_value"], rel=1e-6)
    rows = {r["name"]: r for r in scripts.json("summary", family="regularizers")["rows"]}
    assert rows["tiny"]["penalty_share"] == pytest.approx(0.0, abs=1e-6)  # no regularizer
    assert 0.05 < rows["l2"]["penalty_share"] < 0.95  # L2 1e-3 on 512×4: a large share early on


def test_regularization_view(scripts, script_tree):
    logdir = script_tree["logdir"]
    answer = scripts.json("regularization", family="regularizers")
    assert [r["name"] for r in answer["runs"]] == ["tiny", "l2"]
    for run, d in zip(answer["runs"], run_dirs(logdir, "regularizers")):
        train = split_scalars(d)["train"]
        tag = data_loss_tag(d)
        assert run["data_loss"] == series(train[tag])
        if "epoch_regularization_loss" in train:
            assert run["penalty_source"] == "epoch_regularization_loss"
            assert run["penalty"] == series(train["epoch_regularization_loss"])
        else:
            assert run["penalty_source"] == f"epoch_loss - {tag}"
            loss = {p.step: p.value for p in train["epoch_loss"]}
            assert run["penalty"] == {
                "steps": [p.step for p in train[tag]],
                "values": [max(0.0, loss[p.step] - p.value) for p in train[tag]],
            }
        assert run["layers"] == {
            t[len("regularization/") :]: series(points)
            for t, points in sorted(train.items())
            if t.startswith("regularization/")
        }


def test_hparams_dashboard_lists_every_run(scripts):
    response = scripts.client.post(
        "/data/plugin/hparams/session_groups",
        data=json.dumps({"allowedStatuses": ["STATUS_SUCCESS"], "colParams": [], "startIndex": 0, "sliceSize": 100}),
        headers={"X-XSRF-Protected": "1", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    groups = json.loads(response.get_data(as_text=True))["sessionGroups"]
    assert sorted(s["name"] for g in groups for s in g["sessions"]) == [
        "regularizers/l2",
        "regularizers/tiny",
        "sizes/small",
        "sizes/tiny",
    ]
    hparams = {g["sessions"][0]["name"]: g["hparams"] for g in groups}
    assert set(hparams["sizes/small"]) == {
        "family",
        "model",
        "units",
        "depth",
        "activation",
        "l1",
        "l2",
        "dropout",
        "max_norm",
        "batch_norm",
        "optimizer",
        "schedule",
        "learning_rate",
        "batch_size",
        "patience",
        "max_epochs",
        "decay_epochs",
        "n_train",
        "seed",
        "dtype_policy",
        "dataset",
        "params",
    }
    assert hparams["regularizers/l2"]["l2"] == 0.001 and hparams["regularizers/l2"]["family"] == "regularizers"
    assert hparams["regularizers/tiny"]["family"] == "sizes"  # the baseline copy keeps its own record
    assert hparams["sizes/small"]["units"] == "16,16" and hparams["sizes/small"]["depth"] == 2


# ---------------------------------------------------------------------------------------------
# A synthetic tree with every tag the callbacks write, an XSS-named run, NaN and a running run


def write_scalars(event_dir, values: dict, steps=None):
    """Each tag's values at steps 0, 1, … (epochs), or at `steps` (e.g. optimizer iterations)."""
    writer = tf.summary.create_file_writer(str(event_dir))
    with writer.as_default():
        for tag, ys in values.items():
            for step, y in zip(steps or range(len(ys)), ys):
                tf.summary.scalar(tag, y, step=step)
    writer.close()


# Keras' TensorBoard callback logs these in validation/ at the optimizer's step, not the epoch.
ITERATION_TAGS = ("evaluation_loss_vs_iterations", "evaluation_binary_crossentropy_vs_iterations")


def write_run(run_dir, record, train: dict, validation: dict, weights=None, end=True, mc=None, iterations=None):
    """A run as tbreg writes it: record, train/ and validation/ (plus validation_mc/ with `mc`, and
    Keras' per-iteration evaluation tags at the steps `iterations`)."""
    summary.write_run_start(str(run_dir), record)
    write_scalars(run_dir / "train", train)
    write_scalars(run_dir / "validation", validation)
    if mc:
        write_scalars(run_dir / "validation_mc", mc)
    if iterations:
        write_scalars(run_dir / "validation", {t: [1.0] * len(iterations) for t in ITERATION_TAGS}, iterations)
    if weights:
        writer = tf.summary.create_file_writer(str(run_dir / "train"))
        with writer.as_default():
            for step, data in enumerate(weights):
                tf.summary.histogram("weights/hidden_1/kernel", data, step=step, buckets=4)
        writer.close()
    if end:
        summary.write_run_end(str(run_dir), record)


def record(family, model, status="completed", epochs=4):
    return {
        "family": family,
        "model": model,
        "params": 10,
        "monitor": "val_binary_crossentropy",
        "status": status,
        "epochs": epochs,
        "stopped_epoch": epochs - 1,
        "hparams": {"model": model, "units": "4", "depth": 1},
        "config": {"learning_rate": 0.001, "batch_size": 500},
        "dataset": "higgs",
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("synthetic")
    fam = logdir / "fam"
    write_run(
        fam / "l2",
        record("fam", "l2"),
        train={
            "epoch_loss": [3.0, 2.0, 1.5, 1.25],
            "epoch_binary_crossentropy": [2.5, 1.5, 1.0, 0.75],
            "epoch_regularization_loss": [0.5, 0.5, 0.5, 0.5],
            "regularization/hidden_1": [0.25, 0.25, 0.25, 0.25],
            "regularization/logits": [0.25, 0.25, 0.25, 0.25],
        },
        validation={"epoch_loss": [3.0, 2.5, 2.0, 2.5], "epoch_binary_crossentropy": [2.5, 2.0, 1.5, 2.0]},
        weights=[np.array([-1.0, 0.0, 1.0, 3.0]), np.array([-0.5, 0.0, 0.5, 1.0])],
        mc={"epoch_binary_crossentropy": [2.25, 1.75, 1.25, 1.5]},  # MC dropout: tbreg.callbacks.MCDropout
        iterations=[8, 16, 24, 32],
    )
    write_run(
        fam / XSS,
        record("fam", XSS, status="running", epochs=0),
        train={"epoch_loss": [1.0, float("nan"), 0.5], "epoch_binary_crossentropy": [1.0, float("nan"), 0.5]},
        validation={"epoch_binary_crossentropy": [2.0, 1.0, 1.0]},
        end=False,  # still training: its record says running, its curves say how far it got
        iterations=[10, 20, 30],
    )
    write_run(
        fam / "base",
        record("other", "base"),
        train={"epoch_binary_crossentropy": [1.0]},
        validation={"epoch_binary_crossentropy": [1.5]},
        weights=[np.array([-2.0, 2.0])],
    )
    write_scalars(fam / "norecord" / "train", {"epoch_binary_crossentropy": [0.5, 0.25]})
    write_scalars(fam / "norecord" / "validation", {"epoch_binary_crossentropy": [0.75, 0.5]})
    write_scalars(fam / "norecord" / "validation", {t: [0.5, 0.25] for t in ITERATION_TAGS}, [40, 80])
    return Server(logdir)


def test_synthetic_families(synthetic):
    assert synthetic.json("families") == {
        "families": [
            {
                "family": "fam",
                "runs": [
                    {"run": "fam/base", "name": "base", "baseline": True, "seeds": None},
                    {"run": f"fam/{XSS}", "name": XSS, "baseline": False, "seeds": None},
                    {"run": "fam/l2", "name": "l2", "baseline": False, "seeds": None},
                    {"run": "fam/norecord", "name": "norecord", "baseline": False, "seeds": None},
                ],
                "metrics": ["epoch_binary_crossentropy", "epoch_loss", "epoch_regularization_loss"],
                "data_loss": "epoch_binary_crossentropy",
            }
        ]
    }


def test_synthetic_summary(synthetic):
    rows = {r["name"]: summary_fields(r) for r in synthetic.json("summary", family="fam")["rows"]}
    assert rows["l2"] == {
        "run": "fam/l2",
        "name": "l2",
        "baseline": False,
        "seeds": None,
        "params": 10,
        "data_loss": "epoch_binary_crossentropy",
        "best_epoch": 2,
        "best_value": 1.5,
        "train_value": 1.0,
        "gap": 0.5,
        "stop_epoch": 3,
        "status": "completed",
        "penalty_share": 0.5 / 1.5,
    }
    # Running: the stop epoch is how far the curves got (in epochs: Keras' evaluation_*_vs_iterations
    # tags go to step 30); NaN is null and never the best.
    assert rows[XSS] == {
        "run": f"fam/{XSS}",
        "name": XSS,
        "baseline": False,
        "seeds": None,
        "params": 10,
        "data_loss": "epoch_binary_crossentropy",
        "best_epoch": 1,
        "best_value": 1.0,
        "train_value": None,
        "gap": None,
        "stop_epoch": 2,
        "status": "running",
        "penalty_share": None,
    }
    assert rows["norecord"] == {
        "run": "fam/norecord",
        "name": "norecord",
        "baseline": False,
        "seeds": None,
        "params": None,
        "data_loss": "epoch_binary_crossentropy",
        "best_epoch": 1,
        "best_value": 0.5,
        "train_value": 0.25,
        "gap": 0.25,
        "stop_epoch": 1,
        "status": None,
        "penalty_share": None,
    }
    assert rows["base"]["baseline"] is True and rows["base"]["best_epoch"] == 0


def test_large_answers_are_gzipped_for_browsers(scripts):
    params = {"family": "sizes", "metric": "epoch_loss"}
    plain = scripts.get("family", **params)
    zipped = scripts.client.get(PREFIX + "family", query_string=params, headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.mimetype == "application/json"
    assert gzip.decompress(zipped.get_data()) == plain.get_data()


def test_synthetic_family_view_nan_is_null(synthetic):
    runs = {r["name"]: r for r in synthetic.json("family", family="fam", metric="epoch_loss")["runs"]}
    assert runs[XSS]["series"] == {"train": {"steps": [0, 1, 2], "values": [1.0, None, 0.5]}}
    assert runs["base"]["series"] == {}  # no epoch_loss logged: listed, without curves
    assert runs["l2"]["series"]["validation"] == {"steps": [0, 1, 2, 3], "values": [3.0, 2.5, 2.0, 2.5]}
    assert all(r["band"] == {} for r in runs.values())  # no seed groups here


def test_synthetic_mc_dropout_line(synthetic):
    """validation_mc (tbreg's MCDropout) is a split of its own, drawn after train and validation."""
    runs = {r["name"]: r for r in synthetic.json("family", family="fam", metric="epoch_binary_crossentropy")["runs"]}
    assert list(runs["l2"]["series"]) == ["train", "validation", "validation_mc"]
    assert runs["l2"]["series"]["validation_mc"] == {"steps": [0, 1, 2, 3], "values": [2.25, 1.75, 1.25, 1.5]}
    assert list(runs["norecord"]["series"]) == ["train", "validation"]
    assert metadata.SPLITS == ("train", "validation", "train_eval", "validation_mc")


def test_synthetic_regularization(synthetic):
    answer = synthetic.json("regularization", family="fam")
    runs = {r["name"]: r for r in answer["runs"]}
    assert runs["l2"]["penalty_source"] == "epoch_regularization_loss"
    assert runs["l2"]["penalty"] == {"steps": [0, 1, 2, 3], "values": [0.5] * 4}
    assert runs["l2"]["layers"] == {
        "hidden_1": {"steps": [0, 1, 2, 3], "values": [0.25] * 4},
        "logits": {"steps": [0, 1, 2, 3], "values": [0.25] * 4},
    }
    assert runs["base"]["penalty"] is None and runs["base"]["layers"] == {}
    assert answer["weights"] == {"weights/hidden_1/kernel": 1}


def test_synthetic_weights(synthetic):
    written = reader.histograms(str(synthetic.logdir) + "/fam/l2/train")["weights/hidden_1/kernel"]
    base = reader.histograms(str(synthetic.logdir) + "/fam/base/train")["weights/hidden_1/kernel"]
    for epoch, l2_index in ((0, 0), (1, 1), (7, 1)):  # the latest histogram at or before the epoch
        answer = synthetic.json("weights", family="fam", tag="weights/hidden_1/kernel", epoch=str(epoch))
        assert answer == {
            "family": "fam",
            "tag": "weights/hidden_1/kernel",
            "epoch": epoch,
            "runs": [
                {
                    "run": "fam/base",
                    "name": "base",
                    "baseline": True,
                    "seeds": None,
                    "seed_run": None,
                    "epoch": 0,
                    "buckets": base[0].buckets.tolist(),
                },
                {
                    "run": "fam/l2",
                    "name": "l2",
                    "baseline": False,
                    "seeds": None,
                    "seed_run": None,
                    "epoch": l2_index,
                    "buckets": written[l2_index].buckets.tolist(),
                },
            ],
        }
    assert sum(b[2] for b in answer["runs"][1]["buckets"]) == 4
    # the view's filter: the overlay and the history show only the runs it keeps
    kept = synthetic.json("weights", family="fam", tag="weights/hidden_1/kernel", epoch="1", filter="name ~ ^l2$")
    assert [r["run"] for r in kept["runs"]] == ["fam/l2"]
    history = synthetic.json("weight_history", family="fam", tag="weights/hidden_1/kernel", filter="name ~ ^l2$")
    assert history["run"] == "fam/l2"  # the view's first run, not the family's (base)
    missing = synthetic.get("weight_history", family="fam", tag="weights/hidden_1/kernel", run="fam/base", filter="l2$")
    assert missing.status_code == 404
    assert missing.get_data(as_text=True).strip() == "Not found: no run 'fam/base' in family 'fam' (filter 'l2$')"


def test_finished_run_best_epoch_comes_from_its_record(tmp_path):
    """TensorBoard keeps a sample of long series: a finished run's best epoch is the record's."""
    done = record("fam", "a", epochs=4)
    done.update(best_epoch=2, best_value=0.5, overfitting_onset={"epoch": 2, "train": 0.25, "val": 0.5})
    train = {"epoch_binary_crossentropy": [1.0, 0.75, 0.25, 0.125]}
    write_run(tmp_path / "fam" / "a", done, train, {"epoch_binary_crossentropy": [1.5, 1.0, 0.5, 0.75]})
    sampled = dict(done, best_epoch=5, best_value=0.375, overfitting_onset={"epoch": 5, "train": 0.0625})
    write_run(tmp_path / "fam" / "b", sampled, train, {"epoch_binary_crossentropy": [1.5, 1.0, 0.5, 0.75]})
    rows = Server(tmp_path).json("summary", family="fam")["rows"]
    picked = [(r["best_epoch"], r["best_value"], r["train_value"], r["gap"]) for r in rows]
    assert picked == [(2, 0.5, 0.25, 0.25), (5, 0.375, 0.0625, 0.3125)]


def test_live_new_epochs_appear(tmp_path):
    run_dir = tmp_path / "fam" / "a"
    write_run(
        run_dir,
        record("fam", "a", status="running"),
        {"epoch_binary_crossentropy": [1.0]},
        {"epoch_binary_crossentropy": [2.0]},
        end=False,
    )
    server = Server(tmp_path)
    first = server.json("summary", family="fam")["rows"][0]
    assert (first["status"], first["stop_epoch"]) == ("running", 0)
    assert server.json("family", family="fam", metric="epoch_binary_crossentropy")["runs"][0]["series"]["train"] == {
        "steps": [0],
        "values": [1.0],
    }
    writer = tf.summary.create_file_writer(str(run_dir / "train"))  # training goes on: epochs 1, 2
    with writer.as_default():
        for step, y in ((1, 0.5), (2, 0.25)):
            tf.summary.scalar("epoch_binary_crossentropy", y, step=step)
    writer.close()
    summary.write_run_end(str(run_dir), record("fam", "a", status="early_stopped", epochs=3))
    server.reload()
    assert server.json("family", family="fam", metric="epoch_binary_crossentropy")["runs"][0]["series"]["train"] == {
        "steps": [0, 1, 2],
        "values": [1.0, 0.5, 0.25],
    }
    row = server.json("summary", family="fam")["rows"][0]
    assert (row["status"], row["stop_epoch"]) == ("early_stopped", 2)


# ---------------------------------------------------------------------------------------------
# Seed groups (the scripts' --seeds), MC dropout, stop epochs of runs without a record


def train_seeded(logdir, cache_dir):
    """A log tree of seed groups made by the scripts (mnist1d, 3 epochs, seeds 0 and 1):

    - sizes/tiny/{seed_0,seed_1,mean};
    - regularizers/dropout/{seed_0,seed_1,mean}, with MC dropout (validation_mc), and the
      baseline group regularizers/tiny/{seed_0,seed_1,mean} the script copies in from sizes;
    - sizes/pending/{seed_0,seed_1}: sizes/tiny's seed runs without a mean, as while training.
    """
    common = ["--logdir", str(logdir), "--max_epochs", "3", "--quiet", "--seeds", "2"]
    run_script("tbreg.train_sizes", *common, "--models", "tiny", cache_dir=cache_dir, check=True)
    run_script(
        "tbreg.train_regularizers", *common, "--models", "dropout", "--mc_samples", "2", cache_dir=cache_dir, check=True
    )
    shutil.copytree(logdir / "sizes" / "tiny", logdir / "sizes" / "pending", ignore=shutil.ignore_patterns("mean"))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, tbreg_cache):
    """train_seeded's tree, plus norecord/tiny: a trained run's train/ and validation/ without its record."""
    logdir = tmp_path_factory.mktemp("seeded") / "runs"
    train_seeded(logdir, tbreg_cache)
    for split in ("train", "validation"):
        shutil.copytree(logdir / "sizes" / "tiny" / "seed_0" / split, logdir / "norecord" / "tiny" / split)
    return Server(logdir)


def group(family, model, baseline=False):
    return {"run": f"{family}/{model}/mean", "name": model, "baseline": baseline, "seeds": 2}


def seed_run(family, model, k):
    return {"run": f"{family}/{model}/seed_{k}", "name": f"{model}/seed_{k}", "baseline": False, "seeds": None}


def test_seed_groups_are_members_of_their_family(seeded):
    logdir = pathlib.Path(seeded.logdir)
    families = {f["family"]: f for f in seeded.json("families")["families"]}
    assert list(families) == ["norecord", "regularizers", "sizes"]  # no family "sizes/tiny"
    assert families["sizes"]["runs"] == [
        seed_run("sizes", "pending", 0),
        seed_run("sizes", "pending", 1),
        group("sizes", "tiny"),
    ]
    # The copied group's record names its own family (sizes): the baseline, first. The sizes
    # family's own group is not a baseline.
    assert families["regularizers"]["runs"] == [
        group("regularizers", "tiny", baseline=True),
        group("regularizers", "dropout"),
    ]
    for family in ("sizes", "regularizers"):
        shown = [split_scalars(logdir / r["run"]) for r in families[family]["runs"]]
        tags = {t for run in shown for by_tag in run.values() for t in by_tag}
        assert "epoch_loss/std" in tags  # in the mean runs, but never a metric
        metrics = sorted(t for t in tags if t.startswith("epoch_") and not t.endswith("/std"))
        assert families[family]["metrics"] == metrics
    assert "epoch_accuracy" in families["regularizers"]["metrics"]


def test_seed_group_curves_are_the_mean_with_a_confidence_band(seeded):
    from scipy import stats

    logdir = pathlib.Path(seeded.logdir)
    tag = "epoch_sparse_categorical_crossentropy"
    runs = {r["name"]: r for r in seeded.json("family", family="regularizers", metric=tag)["runs"]}
    for name in ("tiny", "dropout"):
        mean = split_scalars(logdir / "regularizers" / name / "mean")
        assert runs[name]["series"] == {s: series(mean[s][tag]) for s in metadata.SPLITS if s in mean}
        assert set(runs[name]["band"]) == set(runs[name]["series"])
    # The dropout model's MC-dropout line, mean and band like the others.
    assert (
        list(runs["dropout"]["series"])
        == list(runs["dropout"]["band"])
        == [
            "train",
            "validation",
            "train_eval",
            "validation_mc",
        ]
    )
    assert list(runs["tiny"]["series"]) == ["train", "validation", "train_eval"]
    # The band is computed from the seed runs: the 95 % t CI of the mean (ddof=1), n per step;
    # with band=std, ± their std (ddof=1), not the mean run's ddof=0 `/std`.
    seeds = [split_scalars(logdir / "regularizers" / "dropout" / f"seed_{k}") for k in (0, 1)]
    as_std = {r["name"]: r for r in seeded.json("family", family="regularizers", metric=tag, band="std")["runs"]}
    for split in ("validation", "validation_mc"):
        values = np.array([[p.value for p in run[split][tag]] for run in seeds])
        band = runs["dropout"]["band"][split]
        assert runs["dropout"]["series"][split]["steps"] == band["steps"] == [0, 1, 2] and band["n"] == [2, 2, 2]
        assert runs["dropout"]["series"][split]["values"] == pytest.approx(values.mean(axis=0).tolist(), rel=1e-6)
        assert band["kind"] == "ci" and band["half"] == pytest.approx(
            (stats.t.ppf(0.975, 1) * stats.sem(values, axis=0)).tolist(), rel=1e-6
        )
        assert as_std["dropout"]["band"][split]["half"] == pytest.approx(values.std(axis=0, ddof=1).tolist(), rel=1e-6)
        assert min(band["half"]) > 0  # two seeds, two different runs
    assert seeded.get("family", family="regularizers", metric=tag, band="sem").status_code == 400
    # A group without a mean yet: its seed runs as plain runs, without a band.
    pending = {r["name"]: r for r in seeded.json("family", family="sizes", metric=tag)["runs"]}
    for k in (0, 1):
        own = split_scalars(logdir / "sizes" / "pending" / f"seed_{k}")
        assert pending[f"pending/seed_{k}"]["series"] == {s: series(own[s][tag]) for s in metadata.SPLITS if s in own}
        assert pending[f"pending/seed_{k}"]["band"] == {}


def test_std_tags_are_no_metric(seeded):
    response = seeded.get("family", family="sizes", metric="epoch_loss/std")
    assert response.status_code == 404
    assert "no metric 'epoch_loss/std' in family 'sizes'" in response.get_data(as_text=True)


def test_seed_group_summary_row_is_its_means(seeded):
    logdir = pathlib.Path(seeded.logdir)
    tag = "epoch_sparse_categorical_crossentropy"
    rows = {r["run"]: r for r in seeded.json("summary", family="sizes")["rows"]}
    assert list(rows) == ["sizes/pending/seed_0", "sizes/pending/seed_1", "sizes/tiny/mean"]
    record = logtree.read_run_json(str(logdir / "sizes" / "tiny" / "mean"))
    train = {p.step: p.value for p in split_scalars(logdir / "sizes" / "tiny" / "mean")["train_eval"][tag]}
    row = rows["sizes/tiny/mean"]
    assert {
        k: row[k]
        for k in (
            *group("sizes", "tiny"),
            "params",
            "data_loss",
            "best_epoch",
            "best_value",
            "train_value",
            "gap",
            "stop_epoch",
            "status",
            "penalty_share",
        )
    } == {
        **group("sizes", "tiny"),
        "params": record["params"],
        "data_loss": tag,
        "best_epoch": record["best_epoch"],
        "best_value": record["best_value"],
        "train_value": train[record["best_epoch"]],
        "gap": record["best_value"] - train[record["best_epoch"]],
        "stop_epoch": record["stopped_epoch"],
        "status": "aggregate",
        "penalty_share": row["penalty_share"],
    }
    assert record["members"] == ["seed_0", "seed_1"] and row["penalty_share"] == pytest.approx(0.0, abs=1e-6)
    for k in (0, 1):
        seed_record = logtree.read_run_json(str(logdir / "sizes" / "pending" / f"seed_{k}"))
        row = rows[f"sizes/pending/seed_{k}"]
        assert (row["name"], row["seeds"], row["baseline"]) == (f"pending/seed_{k}", None, False)
        assert (row["status"], row["best_epoch"], row["best_value"], row["stop_epoch"]) == (
            seed_record["status"],
            seed_record["best_epoch"],
            seed_record["best_value"],
            seed_record["stopped_epoch"],
        )
    rows = seeded.json("summary", family="regularizers")["rows"]
    assert [(r["name"], r["baseline"], r["seeds"], r["status"]) for r in rows] == [
        ("tiny", True, 2, "aggregate"),
        ("dropout", False, 2, "aggregate"),
    ]


def test_seed_group_regularization_and_weights(seeded):
    logdir = pathlib.Path(seeded.logdir)
    answer = seeded.json("regularization", family="regularizers")
    runs = {r["name"]: r for r in answer["runs"]}
    train = split_scalars(logdir / "regularizers" / "dropout" / "mean")["train"]
    assert runs["dropout"]["penalty"] == series(train["epoch_regularization_loss"])
    assert runs["dropout"]["layers"] == {
        t[len("regularization/") :]: series(points)
        for t, points in sorted(train.items())
        if t.startswith("regularization/") and not t.endswith("/std")
    }
    assert list(runs["dropout"]["layers"]) == ["hidden_1", "hidden_2", "hidden_3", "hidden_4", "logits"]
    # The means log no histograms: a group's weights are its first seed run's.
    first = {name: reader.histograms(str(logdir / "regularizers" / name / "seed_0" / "train")) for name in runs}
    expected = {}
    for by_tag in first.values():
        for t, points in by_tag.items():
            expected[t] = max(expected.get(t, 0), points[-1].step)
    assert answer["weights"] == dict(sorted(expected.items())) and "weights/hidden_4/kernel" in expected
    weights = seeded.json("weights", family="regularizers", tag="weights/hidden_1/kernel", epoch="1")
    assert [(r["name"], r["seeds"], r["seed_run"], r["epoch"]) for r in weights["runs"]] == [
        ("tiny", 2, "seed_0", 1),
        ("dropout", 2, "seed_0", 1),
    ]
    for r in weights["runs"]:
        assert r["buckets"] == first[r["name"]]["weights/hidden_1/kernel"][1].buckets.tolist()


def test_stop_epoch_counts_epochs_not_optimizer_steps(seeded):
    """Keras logs evaluation_*_vs_iterations at the optimizer's step: not an epoch."""
    validation = split_scalars(pathlib.Path(seeded.logdir) / "norecord" / "tiny")["validation"]
    iterations = max(p.step for t, points in validation.items() if t.endswith("_vs_iterations") for p in points)
    assert iterations > 2 and [p.step for p in validation["epoch_loss"]] == [0, 1, 2]
    (row,) = seeded.json("summary", family="norecord")["rows"]
    assert (row["name"], row["status"], row["stop_epoch"]) == ("tiny", None, 2)


# ---------------------------------------------------------------------------------------------
# Bad records: wrong types and non-finite numbers are ignored, every route still answers

NAN, INF = float("nan"), float("inf")
BAD_RECORDS = {
    "nan": {
        "params": NAN,
        "best_epoch": 2,
        "best_value": NAN,
        "epochs": NAN,
        "stopped_epoch": INF,
        "overfitting_onset": {"epoch": 1, "train": NAN},
        "hparams": {"l2": NAN, "units": INF},
        "config": {"learning_rate": -INF},
    },
    "types": {
        "params": "10",
        "best_epoch": "2",
        "best_value": "0.5",
        "epochs": "3",
        "stopped_epoch": [2],
        "status": ["completed"],
        "family": ["bad"],
        "monitor": 7,
        "hparams": [1],
        "config": "lr=1",
        "overfitting_onset": [1, 0.5],
        "started": 5,
    },
    "bools": {
        "params": True,
        "best_epoch": True,
        "best_value": 0.5,
        "epochs": True,
        "stopped_epoch": False,
        "family": {"name": "other"},
    },
    "huge": {
        "params": 10**400,
        "best_epoch": 2**60,
        "best_value": 1e308,
        "epochs": 10**400,
        "stopped_epoch": -1,
        "status": "early_stopped",
        "overfitting_onset": {"epoch": 2**60, "train": -1e308},
    },
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    """Runs of family `bad` whose records (written by summary.py's writer) hold bad values; each has
    the same curves: best validation data loss 1.0 at epoch 1, training 0.5 there, 3 epochs."""
    logdir = tmp_path_factory.mktemp("bad")
    curves = {
        "train": {"epoch_binary_crossentropy": [1.0, 0.5, 0.25], "epoch_loss": [1.0, 0.5, 0.25]},
        "validation": {"epoch_binary_crossentropy": [1.5, 1.0, 1.25]},
    }
    for name, bad_values in BAD_RECORDS.items():
        write_run(logdir / "bad" / name, {**record("bad", name), **bad_values}, **curves)
    # A seed group whose mean's record lists its members as a string, not a list.
    write_run(logdir / "bad" / "grp" / "seed_0", record("bad", "grp"), **curves)
    mean = {
        **record("bad", "grp", status="aggregate"),
        "members": "seed_0",
        "best_epoch": None,
        "params": [10],
        "stopped_epoch": NAN,
    }
    write_run(logdir / "bad" / "grp" / "mean", mean, **curves)
    return Server(logdir)


def test_bad_record_values_are_ignored(bad):
    answer = bad.json("summary", family="bad")["rows"]
    assert all(isinstance(r["verdict"], str) for r in answer)  # bad records still get a verdict
    for r in answer:  # hyperparameter columns keep only plain values (no dicts, NaN or huge ints)
        assert all(
            isinstance(v, (str, bool)) or (isinstance(v, (int, float)) and math.isfinite(v) and abs(v) < 2**53)
            for v in r["hparams"].values()
        )
    rows = {r["name"]: summary_fields(r) for r in answer}
    from_curves = {
        "params": None,
        "data_loss": "epoch_binary_crossentropy",
        "best_epoch": 1,
        "best_value": 1.0,
        "train_value": 0.5,
        "gap": 0.5,
        "stop_epoch": 2,
        "penalty_share": 0.0,
    }
    plain = {"baseline": False, "seeds": None, **from_curves}
    assert rows == {
        "bools": {"run": "bad/bools", "name": "bools", **plain, "status": "completed"},
        "grp": {"run": "bad/grp/mean", "name": "grp", **plain, "seeds": 1, "status": "aggregate"},
        "huge": {"run": "bad/huge", "name": "huge", **plain, "status": "early_stopped"},
        "nan": {"run": "bad/nan", "name": "nan", **plain, "status": "completed"},
        "types": {"run": "bad/types", "name": "types", **plain, "status": None},
    }
    assert [r["name"] for r in bad.json("families")["families"][0]["runs"]] == ["bools", "grp", "huge", "nan", "types"]
    for metric in ("epoch_binary_crossentropy", "epoch_loss"):
        answer = bad.json("family", family="bad", metric=metric)
        assert [r["series"]["train"]["values"][1] for r in answer["runs"]] == [0.5] * 5
    assert [r["penalty_source"] for r in bad.json("regularization", family="bad")["runs"]] == [
        "epoch_loss - epoch_binary_crossentropy"
    ] * 5
    assert bad.get("weights", family="bad", tag="weights/x", epoch="0").status_code == 404


def test_bad_record_values_stay_out_of_hparams():
    assert summary.hparams_of(BAD_RECORDS["nan"]) == {"l1": 0.0}
    # wrong containers are skipped; a string is a value the dashboard shows as it is
    types = {**BAD_RECORDS["types"], "dataset": "higgs"}
    assert summary.hparams_of(types) == {"l1": 0.0, "dataset": "higgs", "params": "10"}
    assert summary.hparams_of(BAD_RECORDS["huge"]) == {"l1": 0.0}
    assert summary.hparams_of(record("fam", "a")) == {
        "family": "fam",
        "model": "a",
        "units": "4",
        "depth": 1,
        "l1": 0.0,
        "learning_rate": 0.001,
        "batch_size": 500,
        "dataset": "higgs",
        "params": 10,
    }


def test_dollar_names_are_plain_json_strings(tmp_path):
    """Sweep points like `lr=$1`: plain strings in every answer (the tab escapes `$` for Plotly)."""
    names = ["a$b$c", "tiny,lr=$1", "$x$"]
    for name in names:
        curve = {"epoch_binary_crossentropy": [1.0]}
        write_run(tmp_path / "fam" / name, record("fam", name), train=curve, validation=curve)
    server = Server(tmp_path)
    assert [r["name"] for r in server.json("families")["families"][0]["runs"]] == sorted(names)
    assert [r["run"] for r in server.json("summary", family="fam")["rows"]] == [f"fam/{n}" for n in sorted(names)]


# ---------------------------------------------------------------------------------------------
# Bad requests, untrusted names, static files


@pytest.mark.parametrize(
    "route, params, code, message",
    [
        ("family", {"metric": "epoch_loss"}, 400, "missing query parameter 'family'"),
        ("family", {"family": "fam"}, 400, "missing query parameter 'metric'"),
        ("family", {"family": "nope", "metric": "epoch_loss"}, 404, "no family 'nope' in this log dir"),
        ("family", {"family": "fam", "metric": "epoch_nope"}, 404, "no metric 'epoch_nope' in family 'fam'"),
        ("summary", {}, 400, "missing query parameter 'family'"),
        ("summary", {"family": XSS}, 404, f"no family {XSS!r} in this log dir"),
        ("regularization", {"family": "fa"}, 404, "no family 'fa' in this log dir"),
        ("weights", {"family": "fam", "tag": "weights/hidden_1/kernel"}, 400, "missing query parameter 'epoch'"),
        (
            "weights",
            {"family": "fam", "tag": "weights/hidden_1/kernel", "epoch": "-1"},
            400,
            "epoch must be a non-negative integer, not '-1'",
        ),
        (
            "weights",
            {"family": "fam", "tag": "weights/hidden_1/kernel", "epoch": "1e3"},
            400,
            "epoch must be a non-negative integer, not '1e3'",
        ),
        (
            "weights",
            {"family": "fam", "tag": "epoch_loss", "epoch": "1"},
            404,
            "no weights histogram 'epoch_loss' in family 'fam'",
        ),
        (
            "weights",
            {"family": "fam", "tag": "weights/nope/kernel", "epoch": "1"},
            404,
            "no weights histogram 'weights/nope/kernel' in family 'fam'",
        ),
    ],
)
def test_bad_requests(synthetic, route, params, code, message):
    response = synthetic.get(route, **params)
    assert response.status_code == code
    assert response.mimetype == "text/plain"  # echoed names are never HTML
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert message in response.get_data(as_text=True)


def test_untrusted_run_name_is_plain_json_string(synthetic):
    response = synthetic.get("families")
    assert response.mimetype == "application/json" and response.headers["X-Content-Type-Options"] == "nosniff"
    names = [r["name"] for r in json.loads(response.get_data(as_text=True))["families"][0]["runs"]]
    assert XSS in names
    answer = synthetic.json("family", family="fam", metric="epoch_binary_crossentropy")
    assert f"fam/{XSS}" in [r["run"] for r in answer["runs"]]


@pytest.mark.parametrize(
    "name, mimetype",
    [
        ("index.js", "text/javascript"),
        ("model.js", "text/javascript"),
        ("views.js", "text/javascript"),
        ("style.css", "text/css"),
    ],
)
def test_static_files(synthetic, name, mimetype):
    response = synthetic.get(f"static/{name}")
    assert response.status_code == 200 and response.mimetype == mimetype
    with open(os.path.join(STATIC_DIR, name), "rb") as f:
        assert response.get_data() == f.read()


@pytest.mark.parametrize(
    "path",
    [
        "static/../plugin.py",
        "static/../../overfitting/plugin.py",
        "static/%2e%2e/plugin.py",
        "static/%2E%2E%2Fplugin.py",
        "static/..%2fplugin.py",
        "static/..%5cplugin.py",
        "static/%252e%252e/plugin.py",
        "static/..;/plugin.py",
        "static/.%2e/plugin.py",
        "static/%2fetc%2fpasswd",
        "static//etc/passwd",
        "static/../../../../../../etc/passwd",
        "static/index.js%00.css",
        "static/.",
        "static/",
        "static/nope.js",
        "static/index.py",
        "static/__init__.py",
    ],
)
def test_static_traversal_is_refused(synthetic, path):
    response = synthetic.client.get(PREFIX + path)
    assert response.status_code == 404, path
    body = response.get_data(as_text=True)
    assert "import" not in body and "root:" not in body


@pytest.mark.parametrize(
    "relative",
    [
        "../plugin.py",
        "..",
        "./index.js",
        "a/../index.js",
        "/etc/passwd",
        "..\\plugin.py",
        "index.js/..",
        "",
        ".index.js",
        "index.js\x00",
    ],
)
def test_static_file_names_are_checked(relative):
    from tensorboard import errors

    with pytest.raises(errors.NotFoundError):
        _static_file(relative)
    assert _static_file("index.js") == os.path.join(os.path.realpath(STATIC_DIR), "index.js")


def test_plotly_is_served_from_the_plotly_package(synthetic):
    import plotly

    zipped = synthetic.client.get(PREFIX + "vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.status_code == 200 and zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.mimetype == "text/javascript"
    text = gzip.decompress(zipped.get_data()).decode()
    assert text.startswith("/**\n* plotly.js v") and "window.Plotly = Plotly" in text
    plain = synthetic.client.get(PREFIX + "vendor/plotly.min.js")
    assert plain.get_data(as_text=True) == text and "Content-Encoding" not in plain.headers
    assert plotly.__version__


# ---------------------------------------------------------------------------------------------
# Comparing runs: hyperparameter columns, filters, group-by, several families, downsampling


SWEEP_EPOCHS = 300


def sweep_curve(l2, dropout, seed, epochs=SWEEP_EPOCHS):
    """A validation curve with one clear minimum (where depends on the hyperparameters) and noise."""
    rng = np.random.default_rng(int(seed + 10 * dropout + 1e4 * l2))
    e = np.arange(epochs)
    turn = 60 + 200 * dropout + 30000 * l2 + 7 * seed
    return 1.0 / (1 + e / 20) + 0.002 * np.maximum(e - turn, 0) + 0.3 + rng.normal(0, 0.01, epochs)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """`sweep/`: l2 × dropout × 2 seeds, 300 epochs each (event files from tbreg.events), plus a run
    whose record has no dropout; `other/`: one run (for comparisons across families)."""
    from tbreg.events import EventWriter

    logdir = tmp_path_factory.mktemp("sweep")

    def write(run_dir, family, hparams, seed, validation):
        rec = {
            "family": family,
            "model": run_dir.name,
            "params": 10,
            "monitor": "val_binary_crossentropy",
            "status": "completed",
            "epochs": len(validation),
            "stopped_epoch": len(validation) - 1,
            "seed": seed,
            "hparams": hparams,
        }
        run_dir.mkdir(parents=True)
        logtree.write_record(str(run_dir), rec)  # run.json: what the oracle reads
        summary.write_run_end(str(run_dir), rec)  # the record as the plugin reads it
        for split, curve in (("train", validation - 0.2), ("validation", validation)):
            writer = EventWriter(str(run_dir / split))
            for step, v in enumerate(curve):
                writer._write_event(_scalar_event("epoch_binary_crossentropy", v, step))
                writer._write_event(_scalar_event("epoch_loss", v + l2_of(hparams), step))
            writer.close()

    for l2 in (0.0, 1e-3):
        for dropout in (0.0, 0.5):
            for seed in (0, 1):
                hp = {"model": "m", "l2": l2, "dropout": dropout}
                write(
                    logdir / "sweep" / f"l2_{l2:g}_do_{dropout:g}_s{seed}",
                    "sweep",
                    hp,
                    seed,
                    sweep_curve(l2, dropout, seed),
                )
    write(logdir / "sweep" / "nodropout", "sweep", {"model": "m", "l2": 1e-4}, 0, sweep_curve(1e-4, 0.2, 3))
    write(
        logdir / "other" / "big", "other", {"model": "big", "l2": 0.0, "dropout": 0.0}, 0, sweep_curve(0, 0.1, 4, 120)
    )
    return Server(logdir)


def l2_of(hparams):
    return hparams.get("l2", 0.0)


def _scalar_event(tag, value, step):
    from tensorboard.compat.proto import event_pb2

    from tbreg import events

    event = event_pb2.Event(wall_time=1.7e9 + step, step=step)
    event.summary.value.add(tag=tag, tensor=events.scalar_tensor(value), metadata=events._SCALAR)
    return event


def sweep_records(server, family="sweep"):
    root = pathlib.Path(server.logdir) / family
    return {f"{family}/{d.name}": logtree.read_run_json(str(d)) for d in sorted(root.iterdir())}


def validation_curve(server, run):
    points = reader.scalars(str(pathlib.Path(server.logdir) / run / "validation"))["epoch_binary_crossentropy"]
    return {p.step: p.value for p in points}


def test_summary_has_every_runs_hyperparameters(sweep):
    answer = sweep.json("summary", family="sweep")
    records = sweep_records(sweep)
    assert {r["run"]: r["hparams"] for r in answer["rows"]} == {
        run: analysis.run_hparams(rec) for run, rec in records.items()
    }
    assert set(answer["hparam_keys"]) == {"model", "l2", "dropout", "seed"}
    # a key missing in one run is a column of its own (shown missing there), and it differs
    assert "dropout" not in next(r["hparams"] for r in answer["rows"] if r["run"] == "sweep/nodropout")
    assert set(answer["varying"]) == {"l2", "dropout", "seed"}  # model is the same everywhere
    assert answer["total"] == answer["shown"] == len(records)


@pytest.mark.parametrize(
    "text, keep",
    [
        ("l2 > 1e-4", lambda name, hp: hp.get("l2", 0) > 1e-4),
        ("dropout = 0.5", lambda name, hp: hp.get("dropout") == 0.5),
        ("dropout != 0.5", lambda name, hp: "dropout" in hp and hp["dropout"] != 0.5),
        ("_s1$", lambda name, hp: name.endswith("_s1")),
        ("l2 >= 1e-3, dropout = 0", lambda name, hp: hp.get("l2", 0) >= 1e-3 and hp.get("dropout") == 0),
        ("name ~ ^nodrop and seed = 0", lambda name, hp: name.startswith("nodrop") and hp.get("seed") == 0),
        ("seed = 1", lambda name, hp: hp.get("seed") == 1),  # the record's seed is a column too
    ],
)
def test_filter_narrows_table_and_curves(sweep, text, keep):
    expected = {run for run, rec in sweep_records(sweep).items() if keep(run.split("/")[1], analysis.run_hparams(rec))}
    assert expected  # the filter has something to keep …
    assert expected != set(sweep_records(sweep))  # … and something to drop
    table = sweep.json("summary", family="sweep", filter=text)
    curves = sweep.json("family", family="sweep", metric="epoch_binary_crossentropy", filter=text)
    assert {r["run"] for r in table["rows"]} == expected
    assert {r["run"] for r in curves["runs"]} == expected
    assert table["shown"] == len(expected) and table["total"] == len(sweep_records(sweep))
    # and the sections below the table: the same runs
    for route in ("regularization", "diagnostics"):
        assert {r["run"] for r in sweep.json(route, family="sweep", filter=text)["runs"]} == expected, route
    # the filtered rows are the unfiltered ones: a run's numbers do not depend on the filter
    everything = {r["run"]: r for r in sweep.json("summary", family="sweep")["rows"]}
    for row in table["rows"]:
        assert row["best_epoch"] == everything[row["run"]]["best_epoch"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("nope > 1", "no hyperparameter 'nope' in these runs (they have: dropout, l2, model, seed"),
        ("l2 > abc", "filter 'l2 > abc': > needs a number (e.g. l2 > 1e-4)"),
        ("(unclosed", "filter '(unclosed': not a valid regex"),
        ("l2 >", "a value is missing after '>'"),
    ],
)
def test_bad_filter_is_a_one_line_message(sweep, text, message):
    routes = [("summary", {}), ("family", {"metric": "epoch_binary_crossentropy"}), ("regularization", {})]
    for route, params in routes:
        response = sweep.get(route, family="sweep", filter=text, **params)
        assert response.status_code == 400
        body = response.get_data(as_text=True).strip()
        assert message in body and "\n" not in body


def group_label(hparams, key="dropout"):
    return f"{key}={hparams[key]:g}" if key in hparams else f"{key}={analysis.MISSING}"


def test_group_by_a_hyperparameter_is_the_seed_band_of_its_runs(sweep):
    records = sweep_records(sweep)
    curves = sweep.json("family", family="sweep", metric="epoch_binary_crossentropy", group="dropout", points=0)
    table = sweep.json("summary", family="sweep", group="dropout")
    assert [r["name"] for r in curves["runs"]] == ["dropout=0", "dropout=0.5", "dropout=–"]  # by value, missing last
    assert {r["name"] for r in curves["runs"]} == {group_label(analysis.run_hparams(r)) for r in records.values()}
    assert [r["name"] for r in curves["runs"]] == [r["name"] for r in table["rows"]]
    for line, row in zip(curves["runs"], table["rows"]):
        members = sorted(line["members"])
        assert members == sorted(
            run for run, rec in records.items() if group_label(analysis.run_hparams(rec)) == line["name"]
        )
        member_curves = [validation_curve(sweep, m) for m in members]
        band = analysis.seed_band(member_curves, "ci")
        got = line["series"]["validation"]
        assert got["steps"] == band.steps
        assert np.allclose(got["values"], band.mean)
        assert line["band"]["validation"]["n"] == [len(members)] * len(band.steps)
        mean = dict(zip(band.steps, band.mean))
        best_epoch, best_value = analysis.lowest(mean)
        assert row["best_epoch"] == best_epoch and row["best_value"] == pytest.approx(best_value)
        ci = analysis.interval([c[best_epoch] for c in member_curves])
        assert row["best_ci"] == (pytest.approx(ci.half) if ci and ci.half is not None else None)
        assert row["seeds"] == len(members)
    # a downsampled answer in between leaves the kept groups whole (they are reused while no curve changed)
    small = sweep.json("family", family="sweep", metric="epoch_binary_crossentropy", group="dropout", points=20)
    assert all(len(s["steps"]) <= 26 for r in small["runs"] for s in r["series"].values())
    again = sweep.json("family", family="sweep", metric="epoch_binary_crossentropy", group="dropout", points=0)
    assert again == curves
    # grouping by a key no run has is an error naming the keys
    response = sweep.get("summary", family="sweep", group="nope")
    assert response.status_code == 400 and "cannot group by 'nope'" in response.get_data(as_text=True)


def test_several_families_in_one_comparison(sweep):
    answer = sweep.json("family", family=["sweep", "other"], metric="epoch_binary_crossentropy", filter="dropout = 0")
    table = sweep.json("summary", family=["sweep", "other"], filter="dropout = 0")
    expected = {
        run
        for family in ("sweep", "other")
        for run, rec in sweep_records(sweep, family).items()
        if analysis.run_hparams(rec).get("dropout") == 0
    }
    assert {r["run"] for r in answer["runs"]} == {r["run"] for r in table["rows"]} == expected
    assert "other/big" in expected
    names = {r["run"]: r["name"] for r in answer["runs"]}
    assert names["other/big"] == "other/big" and names["sweep/l2_0_do_0_s0"] == "sweep/l2_0_do_0_s0"
    assert answer["families"] == ["sweep", "other"]
    # the sections below the table show the same runs, named the same way
    for route in ("regularization", "diagnostics"):
        section = sweep.json(route, family=["sweep", "other"], filter="dropout = 0")
        assert {r["run"]: r["name"] for r in section["runs"]} == names, route


def test_long_curves_are_downsampled_keeping_each_minimum(sweep):
    full = sweep.json("family", family="sweep", metric="epoch_binary_crossentropy", points=0)
    for points in (40, 100):
        small = sweep.json("family", family="sweep", metric="epoch_binary_crossentropy", points=points)
        assert small["points"] == points and small["longest"] == SWEEP_EPOCHS
        by_run = {r["run"]: r for r in full["runs"]}
        for run in small["runs"]:
            for split, got in run["series"].items():
                whole = by_run[run["run"]]["series"][split]
                assert len(whole["steps"]) == SWEEP_EPOCHS
                assert len(got["steps"]) <= points + 6
                assert set(got["steps"]) <= set(whole["steps"])  # real points, not averages
                at = dict(zip(whole["steps"], whole["values"]))
                assert all(at[s] == v for s, v in zip(got["steps"], got["values"]))
                low = min(whole["values"])
                assert whole["steps"][whole["values"].index(low)] in got["steps"]  # the minimum and its epoch
                assert min(got["values"]) == low and max(got["values"]) == max(whole["values"])
                assert got["steps"][0] == 0 and got["steps"][-1] == SWEEP_EPOCHS - 1
    # the table's best epoch is the full curve's (the summary never sees downsampled curves)
    rows = {r["run"]: r for r in sweep.json("summary", family="sweep")["rows"]}
    for run in full["runs"]:
        best_epoch, _ = analysis.lowest(validation_curve(sweep, run["run"]))
        assert rows[run["run"]]["best_epoch"] == best_epoch
    # by default an answer stays within the point budget
    default = sweep.json("family", family="sweep", metric="epoch_binary_crossentropy")
    assert default["points"] is None  # 18 curves × 300 epochs is within the budget: every point


def test_downsample_rule():
    rng = np.random.default_rng(3)
    values = list(rng.normal(size=1000))
    values[500] = None
    steps = list(range(1000))
    idx = analysis.downsample(steps, values, 50, keep=[777])
    finite = [i for i, v in enumerate(values) if v is not None]
    assert {0, 999, 500, 777} <= set(idx)
    assert min(finite, key=lambda i: values[i]) in idx and max(finite, key=lambda i: values[i]) in idx
    assert len(idx) <= 56 and idx == sorted(set(idx))
    assert analysis.downsample(steps[:30], values[:30], 50) == list(range(30))


def test_weight_history_is_a_runs_histograms_over_its_epochs(synthetic):
    answer = synthetic.json("weight_history", family="fam", tag="weights/hidden_1/kernel", run="fam/l2")
    assert answer["run"] == "fam/l2" and answer["epochs"] == [0, 1]
    assert len(answer["centers"]) == len(answer["shares"][0])
    for shares in answer["shares"]:
        assert sum(shares) == pytest.approx(1.0, abs=1e-4)
    # the weights of epoch 0 span -1 … 3, those of epoch 1 only -0.5 … 1: no share above 1 then
    above = [j for j, c in enumerate(answer["centers"]) if c > 1.1]
    assert sum(answer["shares"][0][j] for j in above) > 0
    assert sum(answer["shares"][1][j] for j in above) == 0
    response = synthetic.get("weight_history", family="fam", tag="weights/hidden_1/kernel", run="fam/nope")
    assert response.status_code == 404


@pytest.fixture()
def rustboard(synthetic):
    """TensorBoard's default loader (RustBoard's data server) over the synthetic tree, and the
    plugin reading through its gRPC data provider, as `tensorboard --logdir` runs it."""
    import subprocess
    import time

    import grpc
    import tensorboard_data_server
    from tensorboard import context
    from tensorboard.data import grpc_provider
    from tensorboard.plugins import base_plugin

    port_file = pathlib.Path(synthetic.logdir).parent / "rustboard.port"
    port_file.unlink(missing_ok=True)
    server = subprocess.Popen(
        [tensorboard_data_server.server_binary(), "--logdir", synthetic.logdir, "--host", "127.0.0.1"]
        + ["--port", "0", "--port-file", str(port_file), "--reload", "once", "--die-after-stdin"],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().endswith("\n")):
            assert time.monotonic() < deadline and server.poll() is None, "RustBoard did not start"
            time.sleep(0.05)
        address = f"127.0.0.1:{port_file.read_text().strip()}"
        channel = grpc.insecure_channel(address)
        data = grpc_provider.GrpcDataProvider(address, grpc_provider.make_stub(channel))
        ctx = context.RequestContext()

        def last_steps(data_provider):
            last = data_provider.read_last_scalars(ctx, experiment_id="", plugin_name="scalars")
            return {run: {tag: d.step for tag, d in tags.items()} for run, tags in last.items()}

        while last_steps(data) != last_steps(synthetic.plugin._provider):  # RustBoard loads in the background
            assert time.monotonic() < deadline, "RustBoard did not load the tree"
            time.sleep(0.05)
        yield OverfittingPlugin(base_plugin.TBContext(data_provider=data)), ctx
        channel.close()
    finally:
        server.stdin.close()
        server.terminate()
        server.wait()


def test_reading_through_rustboard_equals_the_multiplexer(synthetic, rustboard):
    """The plugin reads RustBoard's gRPC answer as columns (plugin._read_scalars: no object per
    point); every route answers the same as through the in-process multiplexer, NaN included."""
    from tensorboard import context
    from tensorboard.data import provider

    from tbreg.plugin.plugin import _encode, _read_scalars

    plugin, ctx = rustboard
    assert plugin._provider._stub is not None  # the columns path (TensorBoard renamed it otherwise)
    everything = provider.RunTagFilter()
    got = _read_scalars(plugin._provider, ctx, "", everything)
    want = _read_scalars(synthetic.plugin._provider, context.RequestContext(), "", everything)

    def as_text(read):  # NaN == NaN as text; steps as lists (consecutive ones are a range)
        return json.dumps(
            {r: {t: (list(s), v) for t, (s, v) in tags.items()} for r, tags in read.items()}, sort_keys=True
        )

    assert as_text(got) == as_text(want) and "NaN" in as_text(got)
    assert got["fam/l2/train"]["epoch_binary_crossentropy"] == (range(4), [2.5, 1.5, 1.0, 0.75])
    for impl, args in [
        ("families_impl", ()),
        ("family_impl", ("fam", "epoch_binary_crossentropy")),
        ("family_impl", ("fam", "epoch_loss")),
        ("summary_impl", ("fam",)),
        ("regularization_impl", ("fam",)),
    ]:
        through_grpc = _encode(getattr(plugin, impl)(ctx, "", *args))
        assert through_grpc == _encode(getattr(synthetic.plugin, impl)(context.RequestContext(), "", *args)), impl


def test_warm_up_summarizes_every_family_once_the_tree_is_loaded(synthetic, rustboard):
    """With `warm_up` (TensorBoard's default, `--overfitting_warm_up`), the plugin waits until
    RustBoard has loaded the tree, then answers each family's default view once: the tab's first
    /summary finds its rows computed (the same object, not computed again) and equal to a cold read."""
    import argparse

    from tensorboard import context
    from tensorboard.plugins import base_plugin

    cold, ctx = rustboard
    warm = OverfittingPlugin(base_plugin.TBContext(data_provider=cold._provider), warm_up=True)
    assert warm.warmed.wait(60), "the warm-up did not end"
    (key,) = [k for k in warm._summaries if k[:2] == ("summary", ("fam",))]
    rows = warm._summaries[key][1]
    answer = warm.summary_impl(context.RequestContext(), "", "fam")
    assert answer["rows"] is rows and len(rows) == 4
    assert json.dumps(answer, sort_keys=True) == json.dumps(cold.summary_impl(ctx, "", "fam"), sort_keys=True)
    # TensorBoard's flag, through the loader it loads: on by default, `false` turns it off
    parser = argparse.ArgumentParser()
    OverfittingLoader().define_flags(parser)
    assert parser.parse_args([]).overfitting_warm_up == "true"
    off = base_plugin.TBContext(data_provider=cold._provider, flags=parser.parse_args(["--overfitting_warm_up=false"]))
    plugin = OverfittingLoader().load(off)
    assert plugin.warmed.is_set() and not plugin._summaries


def test_consecutive_epochs_are_kept_as_a_range():
    """A cached curve of epochs 0…n−1 keeps its steps as a range (no object per point); its JSON
    and its points are those of the list; other steps stay as they are."""
    from tbreg.plugin.plugin import Series, _compact

    assert _compact(list(range(1000))) == range(1000) and isinstance(_compact(list(range(5, 9))), range)
    for steps in ([0, 2, 3], [3, 2, 1], [0, 0, 1]):
        assert _compact(steps) is steps
    values = [float(v) for v in range(1000)]
    compact, plain = Series(_compact(list(range(1000))), values), Series(list(range(1000)), values)
    assert compact.json_text == plain.json_text and compact.by_step == plain.by_step
    assert compact.downsampled(40).json_text == plain.downsampled(40).json_text
