"""The overfitting plugin in process: real event files → EventMultiplexer → MultiplexerDataProvider →
TBContext → TensorBoardWSGI → werkzeug test Client, for every route.

Expected answers come from the log tree itself, read by `tbreg.reader` (TensorBoard's loader, not
the data provider) and from run.json, so every comparison is exact.
"""

import gzip
import json
import math
import os
from importlib import metadata as importlib_metadata

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_ingester, plugin_event_multiplexer
from tensorboard.backend.event_processing import data_provider as tb_data_provider
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import hparams_plugin
from tensorboard.plugins.scalar import scalars_plugin
from werkzeug.test import Client

from plugins.overfitting import metadata, summary
from plugins.overfitting.plugin import STATIC_DIR, OverfittingPlugin, _static_file
from tbreg import logtree, reader

PREFIX = "/data/plugin/overfitting/"
XSS = "<img src=x onerror=alert(1)>"


class Server:
    """TensorBoard's WSGI app over `logdir` with the overfitting, scalars and HParams plugins."""

    def __init__(self, logdir):
        self.logdir = str(logdir)
        self.multiplexer = plugin_event_multiplexer.EventMultiplexer(
            size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
            tensor_size_guidance=data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE,
        )
        self.reload()
        provider = tb_data_provider.MultiplexerDataProvider(self.multiplexer, self.logdir)
        instances = {}
        context = base_plugin.TBContext(
            data_provider=provider, logdir=self.logdir, multiplexer=self.multiplexer, plugin_name_to_instance=instances
        )
        plugins = [
            OverfittingPlugin(context),
            scalars_plugin.ScalarsPlugin(context),
            hparams_plugin.HParamsPlugin(context),
        ]
        instances.update({p.plugin_name: p for p in plugins})
        self.plugin = plugins[0]
        self.client = Client(application.TensorBoardWSGI(plugins, data_provider=provider))

    def reload(self):
        self.multiplexer.AddRunsFromDirectory(self.logdir)
        self.multiplexer.Reload()

    def get(self, route, **params):
        return self.client.get(PREFIX + route, query_string=params)

    def json(self, route, **params):
        response = self.get(route, **params)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
        return json.loads(response.get_data(as_text=True))


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
    return {"run": f"{run_dir.parent.name}/{run_dir.name}", "name": run_dir.name, "baseline": is_baseline(run_dir)}


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


# ---------------------------------------------------------------------------------------------
# Registration


def test_entry_point_registers_the_plugin():
    (entry,) = [e for e in importlib_metadata.entry_points(group="tensorboard_plugins") if e.name == "overfitting"]
    assert entry.load() is OverfittingPlugin


def test_plugins_listing_enables_the_tab(scripts):
    listing = json.loads(scripts.client.get("/data/plugins_listing").get_data(as_text=True))["overfitting"]
    assert listing == {
        "disable_reload": True,
        "enabled": True,
        "remove_dom": False,
        "tab_name": "Overfitting",
        "loading_mechanism": {"type": "IFRAME", "module_path": "/data/plugin/overfitting/static/index.js"},
    }


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
                }
            )
        answer = scripts.json("family", family=family, metric=metric)
        assert answer == {"family": family, "metric": metric, "runs": expected_runs}
        assert all(set(r["series"]) >= {"train", "validation"} for r in answer["runs"])
        assert all(r["series"]["train"]["steps"] == [0, 1, 2, 3] for r in answer["runs"])


def test_summary_table(scripts, script_tree):
    logdir = script_tree["logdir"]
    for family in ("sizes", "regularizers"):
        dirs = run_dirs(logdir, family)
        answer = scripts.json("summary", family=family)
        assert answer == {"family": family, "rows": [expected_row(d) for d in dirs]}
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
        data=json.dumps({"allowedStatuses": ["STATUS_UNKNOWN"], "colParams": [], "startIndex": 0, "sliceSize": 100}),
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
        "dataset",
        "params",
    }
    assert hparams["regularizers/l2"]["l2"] == 0.001 and hparams["regularizers/l2"]["family"] == "regularizers"
    assert hparams["regularizers/tiny"]["family"] == "sizes"  # the baseline copy keeps its own record
    assert hparams["sizes/small"]["units"] == "16,16" and hparams["sizes/small"]["depth"] == 2


# ---------------------------------------------------------------------------------------------
# A synthetic tree with every tag the callbacks write, an XSS-named run, NaN and a running run


def write_scalars(event_dir, values: dict):
    writer = tf.summary.create_file_writer(str(event_dir))
    with writer.as_default():
        for tag, ys in values.items():
            for step, y in enumerate(ys):
                tf.summary.scalar(tag, y, step=step)
    writer.close()


def write_run(run_dir, record, train: dict, validation: dict, weights=None, end=True):
    summary.write_run_start(str(run_dir), record)
    write_scalars(run_dir / "train", train)
    write_scalars(run_dir / "validation", validation)
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
    )
    write_run(
        fam / XSS,
        record("fam", XSS, status="running", epochs=0),
        train={"epoch_loss": [1.0, float("nan"), 0.5], "epoch_binary_crossentropy": [1.0, float("nan"), 0.5]},
        validation={"epoch_binary_crossentropy": [2.0, 1.0, 1.0]},
        end=False,  # still training: its record says running, its curves say how far it got
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
    return Server(logdir)


def test_synthetic_families(synthetic):
    assert synthetic.json("families") == {
        "families": [
            {
                "family": "fam",
                "runs": [
                    {"run": "fam/base", "name": "base", "baseline": True},
                    {"run": f"fam/{XSS}", "name": XSS, "baseline": False},
                    {"run": "fam/l2", "name": "l2", "baseline": False},
                    {"run": "fam/norecord", "name": "norecord", "baseline": False},
                ],
                "metrics": ["epoch_binary_crossentropy", "epoch_loss", "epoch_regularization_loss"],
                "data_loss": "epoch_binary_crossentropy",
            }
        ]
    }


def test_synthetic_summary(synthetic):
    rows = {r["name"]: r for r in synthetic.json("summary", family="fam")["rows"]}
    assert rows["l2"] == {
        "run": "fam/l2",
        "name": "l2",
        "baseline": False,
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
    # Running: the stop epoch is how far the curves got; NaN is null and never the best.
    assert rows[XSS] == {
        "run": f"fam/{XSS}",
        "name": XSS,
        "baseline": False,
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
                {"run": "fam/base", "name": "base", "baseline": True, "epoch": 0, "buckets": base[0].buckets.tolist()},
                {
                    "run": "fam/l2",
                    "name": "l2",
                    "baseline": False,
                    "epoch": l2_index,
                    "buckets": written[l2_index].buckets.tolist(),
                },
            ],
        }
    assert sum(b[2] for b in answer["runs"][1]["buckets"]) == 4


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
