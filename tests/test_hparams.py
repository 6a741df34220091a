"""TensorBoard's own HParams plugin on a script-made tree: the curated experiment config (the
hyperparameters that differ ticked first, only tbreg's end-of-run metrics) and each run's best values."""

import json

import pytest
from test_plugin import Server

from tbreg import hparams, logtree, reader

STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
HEADERS = {"X-XSRF-Protected": "1", "Content-Type": "application/json"}


def _post(server, route, body):
    response = server.client.post(f"/data/plugin/hparams/{route}", data=json.dumps(body), headers=HEADERS)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.get_data(as_text=True))


@pytest.fixture(scope="module")
def server(script_tree):
    return Server(script_tree["logdir"])


def test_experiment_lists_the_curated_metrics_and_differing_hparams_first(server, script_tree):
    experiment = _post(server, "experiment", {"experimentName": ""})
    metrics = [(m["name"]["group"], m["name"]["tag"], m["displayName"]) for m in experiment["metricInfos"]]
    assert metrics == [("validation", tag, display) for tag, display, _ in hparams.METRICS]
    infos = experiment["hparamInfos"]
    differs = [h["name"] for h in infos if h.get("differs")]
    # sizes/{tiny,small}, regularizers/l2 and the tiny baseline: model, family, l2, units, depth, params differ
    assert {"family", "model", "l2", "units", "depth", "params"} == set(differs)
    assert [h["name"] for h in infos[: len(differs)]] == differs  # shown first: the dashboard ticks the first 5
    assert {"dataset", "batch_size", "activation"} <= {h["name"] for h in infos[len(differs) :]}
    l2 = next(h for h in infos if h["name"] == "l2")
    assert l2["type"] == "DATA_TYPE_FLOAT64" and sorted(l2["domainDiscrete"]) == [0.0, 0.001]
    assert sum(p.name.endswith(hparams.SUFFIX) for p in script_tree["logdir"].iterdir()) == 1  # replaced, not added


def test_sessions_carry_the_best_values_not_the_last(server, script_tree):
    groups = _post(
        server, "session_groups", {"allowedStatuses": STATUSES, "colParams": [], "startIndex": 0, "sliceSize": 100}
    )["sessionGroups"]
    sessions = {s["name"]: (g["hparams"], s) for g in groups for s in g["sessions"]}
    assert sorted(sessions) == ["regularizers/l2", "regularizers/tiny", "sizes/small", "sizes/tiny"]
    for name, (hp, session) in sessions.items():
        values = {m["name"]["tag"]: m["value"] for m in session["metricValues"]}
        assert set(values) == {tag for tag, _, _ in hparams.METRICS}, name
        record = logtree.read_run_json(str(script_tree["logdir"] / name))
        curves = reader.run_scalars(str(script_tree["logdir"] / name))
        val = {p.step: p.value for p in curves["validation"]["epoch_sparse_categorical_crossentropy"]}
        # the gap is against the training data in inference mode (the scripts log train_eval)
        train = {p.step: p.value for p in curves["train_eval"]["epoch_sparse_categorical_crossentropy"]}
        best = min(val, key=val.get)
        assert values["end/best_data_loss"] == pytest.approx(min(val.values()), rel=1e-6)
        assert values["end/best_data_loss"] == pytest.approx(record["best_value"], rel=1e-6)
        assert values["end/best_epoch"] == best == record["best_epoch"]
        assert values["end/best_gap"] == pytest.approx(val[best] - train[best], rel=1e-5, abs=1e-6)
        assert values["end/stop_epoch"] == 3 and values["end/status"] == hparams.STATUS_CODES["completed"]
        assert session["status"] == "STATUS_SUCCESS"
    # the baseline copied into regularizers keeps its own family's values, hparams and metrics alike
    assert sessions["regularizers/tiny"][0]["family"] == "sizes" == sessions["sizes/tiny"][0]["family"]
    assert sessions["regularizers/tiny"][1]["metricValues"] == sessions["sizes/tiny"][1]["metricValues"]


def test_run_metrics_take_the_best_epoch_of_an_early_stopped_run():
    record = {"status": "early_stopped", "best_epoch": 1, "best_value": 0.5, "stopped_epoch": 4}
    train = {"data_loss": {0: 0.9, 1: 0.4, 2: 0.2, 3: 0.1, 4: 0.05}}
    validation = {"data_loss": {0: 0.8, 1: 0.5, 2: 0.7, 3: 0.9, 4: 1.2}, "accuracy": {1: 0.75, 4: 0.6}}
    assert hparams.run_metrics(record, train, validation) == pytest.approx(
        {
            "end/best_data_loss": 0.5,
            "end/best_epoch": 1,
            "end/best_gap": 0.1,
            "end/best_accuracy": 0.75,
            "end/stop_epoch": 4,
            "end/status": 1,
        }
    )
    assert hparams.run_metrics({"status": "failed"}, {}, {}) == {"end/status": 4}  # nothing else known
    # with an inference-mode training curve, or the onset GeneralizationGap measured against it
    evaluated = {**train, "eval_data_loss": {1: 0.3}}
    assert hparams.run_metrics(record, evaluated, validation)["end/best_gap"] == pytest.approx(0.2)
    onset = {**record, "overfitting_onset": {"epoch": 1, "train": 0.25, "train_split": "train_eval"}}
    assert hparams.run_metrics(onset, train, validation)["end/best_gap"] == pytest.approx(0.25)
