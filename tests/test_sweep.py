"""`tbreg sweep` as users run it: real worker processes, a real local Ray cluster, real kills."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, assert_steps_once, own_lines, run_script

from tbreg import config, hparams, logtree, reader, resume, sweep

ray = pytest.importorskip("ray", reason="pip install -e '.[test]' installs Ray")

SMALL = [
    "--families=sizes",
    "--models=tiny",
    "--grid",
    "l2=0,1e-3",
    "--seeds=2",
    "--max_epochs=4",
    "--histogram_freq=2",
]


def run_sweep(logdir, *args, cache_dir, **kw):
    return run_script("tbreg.cli", "sweep", f"--logdir={logdir}", *args, cache_dir=cache_dir, **kw)


def start_sweep(logdir, *args, cache_dir) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TBREG_CACHE=str(cache_dir))
    return subprocess.Popen(
        [sys.executable, "-m", "tbreg.cli", "sweep", f"--logdir={logdir}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def runs(logdir) -> dict:
    """{run dir relative to logdir: run.json} for every run of the tree."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(logdir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if logtree.RUN_JSON in filenames:
            out[os.path.relpath(dirpath, logdir)] = logtree.read_run_json(dirpath)
    return out


def curves(run_dir) -> dict:
    """{split/tag: [(step, value)]} of a run's scalars."""
    return {
        f"{split}/{tag}": [(p.step, p.value) for p in points]
        for split, tags in reader.run_scalars(str(run_dir)).items()
        for tag, points in tags.items()
    }


def assert_same_curves(a, b, rtol=1e-5):
    assert a.keys() == b.keys()
    for tag in a:
        assert [s for s, _ in a[tag]] == [s for s, _ in b[tag]], tag
        assert [v for _, v in a[tag]] == pytest.approx([v for _, v in b[tag]], rel=rtol, abs=1e-7), tag


# ---------------------------------------------------------------------------------------------
# The grid and the trials (library level, no training)


def test_trials_are_named_by_model_grid_point_and_seed(tmp_path):
    s = sweep.Sweep(
        config.for_dataset("mnist1d"),
        families=("sizes", "regularizers"),
        models=("tiny", "l2"),
        grid=sweep.parse_grid(["l2=1e-4,1e-3 dropout=0.2", "units=16x16"]),
        seeds=(3,),
    )
    trials = sweep.expand(s, str(tmp_path))
    labels = [t.label for t in trials]
    assert labels[0] == "sizes/tiny,l2=0.0001,dropout=0.2,units=16x16/seed_3"
    assert "regularizers/l2,l2=0.001,dropout=0.2,units=16x16/seed_3" in labels
    assert len(labels) == len(set(labels)) == 2 * 2  # tiny is in sizes only, l2 in regularizers only
    t = trials[0]
    assert (t.spec.l2, t.spec.dropout, t.spec.units, t.config.seed) == (1e-4, 0.2, (16, 16), 3)
    assert t.run_dir == os.path.join(str(tmp_path), "sizes", "tiny,l2=0.0001,dropout=0.2,units=16x16", "seed_3")
    # the key changes with anything that changes the numbers, and only then
    again = sweep.expand(s, str(tmp_path))
    assert [t.key for t in again] == [t.key for t in trials]
    longer = sweep.expand(
        sweep.Sweep(config.for_dataset("mnist1d", max_epochs=9), s.families, s.models, s.grid, s.seeds), str(tmp_path)
    )
    assert not {t.key for t in longer} & {t.key for t in trials}


@pytest.mark.parametrize(
    "items, fragment",
    [
        (["lr=0.1"], "unknown hyperparameter 'lr'"),
        (["dropout=0.2,1.5"], "dropout=1.5: not in [0, 1)"),
        (["l2"], "'l2' is not name=v1,v2"),
        (["l2=1e-4", "l2=1e-3"], "l2 is given twice"),
        (["units=16xa"], "units=16xa"),
        (["optimizer=adamw"], "not one of adam, rmsprop, sgd"),
        (["l2="], "l2 needs a comma list of values"),
        (["learning_rate=1e-3,inf"], "learning_rate=inf: not a finite number >= 0"),
        (["l2=nan"], "l2=nan: not a finite number >= 0"),
        (["decay_epochs=0,10"], "decay_epochs=0: 0; give a number > 0"),
    ],
)
def test_bad_grid_is_one_line_error(items, fragment):
    with pytest.raises(sweep.UserError, match=None) as e:
        sweep.parse_grid(items)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_serial_pool_runs_a_sweep_in_this_process_and_a_rerun_skips_it(tmp_path, tbreg_cache):
    s = sweep.Sweep(
        config.for_dataset("mnist1d", cache_dir=str(tbreg_cache), max_epochs=2),
        models=("tiny",),
        grid=sweep.parse_grid(["l2=0,1e-3"]),
        callbacks={"names": ()},
    )
    lines = []
    with sweep.SerialPool(safe=True) as pool:
        result = sweep.run_sweep(s, str(tmp_path), pool, log=lines.append)
    assert [(r.trial.label, r.status, r.epochs) for r in result.results] == [
        ("sizes/tiny,l2=0", "completed", 2),
        ("sizes/tiny,l2=0.001", "completed", 2),
    ]
    record = logtree.read_run_json(str(tmp_path / "sizes" / "tiny,l2=0.001"))
    assert record["sweep"]["key"] == result.results[1].trial.key and record["hparams"]["l2"] == 0.001
    assert "on this process" in lines[0] and "[2/2 done" in lines[-1]
    with sweep.SerialPool(safe=True) as pool:
        again = sweep.run_sweep(s, str(tmp_path), pool, log=lines.append)
    assert all(r.skipped for r in again.results)


# ---------------------------------------------------------------------------------------------
# Local workers and Ray: the same tree; re-runs skip finished trials


@pytest.fixture(scope="module")
def local_and_ray(tmp_path_factory, tbreg_cache):
    root = tmp_path_factory.mktemp("sweeps")
    local = run_sweep(root / "local", *SMALL, "--jobs=2", cache_dir=tbreg_cache, check=True)
    on_ray = run_sweep(root / "ray", *SMALL, "--jobs=2", "--engine=ray", cache_dir=tbreg_cache, check=True)
    return root, local, on_ray


def test_local_and_ray_write_the_same_tree(local_and_ray):
    root, local, on_ray = local_and_ray
    a, b = runs(root / "local"), runs(root / "ray")
    assert (
        sorted(a)
        == sorted(b)
        == [
            "sizes/tiny,l2=0.001/mean",
            "sizes/tiny,l2=0.001/seed_0",
            "sizes/tiny,l2=0.001/seed_1",
            "sizes/tiny,l2=0/mean",
            "sizes/tiny,l2=0/seed_0",
            "sizes/tiny,l2=0/seed_1",
        ]
    )
    for run in a:
        assert a[run]["hparams"] == b[run]["hparams"]
        assert a[run]["status"] == b[run]["status"] == ("aggregate" if run.endswith("mean") else "completed")
        if not run.endswith("mean"):
            assert a[run]["sweep"]["key"] == b[run]["sweep"]["key"] and a[run]["sweep"]["attempt"] == 1
            assert a[run]["best_value"] == pytest.approx(b[run]["best_value"], rel=1e-5)
        assert_same_curves(curves(root / "local" / run), curves(root / "ray" / run))
    assert a["sizes/tiny,l2=0.001/seed_1"]["hparams"]["l2"] == 0.001
    assert a["sizes/tiny,l2=0.001/seed_1"]["config"]["seed"] == 1
    assert "4 trials into" in local.stderr and "2 local worker processes" in local.stderr
    assert "local Ray instance" in on_ray.stderr
    assert "ETA" in local.stderr and "[4/4 done" in local.stderr
    for tree in ("local", "ray"):
        record = json.loads((root / tree / "sweep.json").read_text())
        assert record["hparams_config"] and [t["status"] for t in record["runs"][0]["trials"]] == ["completed"] * 4


def test_hparams_dashboard_shows_the_sweep(local_and_ray):
    from tb_server import Server

    server = Server(local_and_ray[0] / "local")
    response = server.client.post(
        "/data/plugin/hparams/experiment",
        data=json.dumps({"experimentName": ""}),
        headers={"X-XSRF-Protected": "1", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    experiment = json.loads(response.get_data(as_text=True))
    names = [h["name"] for h in experiment["hparamInfos"]]
    assert {"family", "model", "l2", "dropout", "seed", "units"} <= set(names)
    differs = {h["name"] for h in experiment["hparamInfos"] if h.get("differs")}
    assert {"l2", "seed"} <= differs and "dropout" not in differs  # the grid's axis is a column shown by default
    metrics = [(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]]
    assert metrics == [("validation", tag) for tag, _, _ in hparams.METRICS]  # the scripts' curated metrics
    response = server.client.post(
        "/data/plugin/hparams/session_groups",
        data=json.dumps(
            {
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            }
        ),
        headers={"X-XSRF-Protected": "1", "Content-Type": "application/json"},
    )
    groups = json.loads(response.get_data(as_text=True))["sessionGroups"]
    sessions = {s["name"]: (g["hparams"], s["metricValues"]) for g in groups for s in g["sessions"]}
    values_of, metric_values = sessions["sizes/tiny,l2=0.001/seed_1"]
    assert values_of["l2"] == 0.001 and values_of["seed"] == 1
    values = {m["name"]["tag"]: m["value"] for m in metric_values}
    record = json.loads((local_and_ray[0] / "local" / "sizes" / "tiny,l2=0.001" / "seed_1" / "run.json").read_text())
    assert values["end/best_data_loss"] == pytest.approx(record["best_value"], rel=1e-6)
    mean = {m["name"]["tag"]: m["value"] for m in sessions["sizes/tiny,l2=0.001/mean"][1]}
    assert mean["end/status"] == hparams.STATUS_CODES["aggregate"] and mean["end/best_data_loss"] > 0


def test_rerun_skips_finished_trials(local_and_ray, tbreg_cache):
    root = local_and_ray[0]
    before = {p: os.path.getsize(p) for p in _event_files(root / "local")}
    again = run_sweep(root / "local", *SMALL, "--jobs=2", cache_dir=tbreg_cache, check=True)
    assert "(4 already finished, skipped)" in again.stderr and "start" not in again.stderr
    assert {p: os.path.getsize(p) for p in _event_files(root / "local")} == before  # nothing trained or rewritten
    assert again.stdout.count("completed (earlier)") == 4
    other = run_sweep(root / "local", *SMALL[:-2], "--max_epochs=5", cache_dir=tbreg_cache)
    lines = own_lines(other.stderr)
    assert other.returncode == 1 and lines[-1].startswith("tbreg sweep: error: ")
    assert "holds a run of a different trial" in lines[-1] and "another --logdir" in lines[-1]


def test_readme_python_example_runs(tmp_path, tbreg_cache):
    text = open(os.path.join(REPO, "docs", "sweeps.md")).read()
    (tmp_path / "example.py").write_text(re.search(r"```python\n(.*?)```", text, re.S).group(1))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TBREG_CACHE=str(tbreg_cache))
    proc = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "('regularizers/l2,l2=0.001/seed_1', 'completed'" in proc.stdout
    assert sorted(runs(tmp_path / "runs" / "sweep")) == [
        f"regularizers/l2,l2={v}/{run}" for v in ("0.0001", "0.001") for run in ("mean", "seed_0", "seed_1")
    ]


def _event_files(logdir):
    return [os.path.join(d, f) for d, _, fs in os.walk(logdir) for f in fs if "tfevents" in f]


# ---------------------------------------------------------------------------------------------
# Killed workers, failed trials, interrupts


def _wait_for_save(run_dir, epoch: int, proc, timeout=180) -> int:
    """Waits until `run_dir` has a saved state after at least `epoch`; returns the pid holding its lock."""
    deadline = time.monotonic() + timeout
    state = os.path.join(run_dir, resume.RESUME_DIR)
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        saved = resume.saved_epoch(state)
        holder = logtree.lock_holder(run_dir)
        if saved is not None and saved >= epoch and holder:
            return holder["pid"]
        time.sleep(0.05)
    raise AssertionError(f"no saved state in {run_dir} after {timeout} s")


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_killed_worker_is_retried_and_continues(tmp_path, tbreg_cache, engine):
    args = [
        "--families=sizes",
        "--models=tiny",
        "--grid",
        "l2=0,1e-3",
        "--max_epochs=30",
        "--patience=30",
        "--checkpoint_secs=0",
        f"--engine={engine}",
        "--jobs=2",
    ]
    reference = run_sweep(tmp_path / "reference", *args, cache_dir=tbreg_cache, check=True)
    assert "retry" not in reference.stderr
    proc = start_sweep(tmp_path / "killed", *args, cache_dir=tbreg_cache)
    victim = tmp_path / "killed" / "sizes" / "tiny,l2=0.001"
    os.kill(_wait_for_save(victim, 5, proc), signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "retry  sizes/tiny,l2=0.001: attempt 1 failed" in err and "(attempt 2 of 3)" in err
    record = logtree.read_run_json(str(victim))
    assert record["status"] == "completed" and record["epochs"] == 30
    assert record["sweep"]["attempt"] == 2 and len(record["sweep"]["errors"]) == 1
    assert ("SIGKILL" in record["sweep"]["errors"][0]) if engine == "local" else "Ray" in record["sweep"]["errors"][0]
    assert record["resumed"] and record["resumed"][0]["after_epoch"] >= 5  # continued, not started over
    assert_steps_once(victim, 30)
    assert_same_curves(curves(victim), curves(tmp_path / "reference" / "sizes" / "tiny,l2=0.001"), rtol=1e-4)
    other = logtree.read_run_json(str(tmp_path / "killed" / "sizes" / "tiny,l2=0"))
    assert other["status"] == "completed" and other["sweep"]["attempt"] == 1  # the other trial never noticed
    trials = json.loads((tmp_path / "killed" / "sweep.json").read_text())["runs"][-1]["trials"]
    assert [t["attempts"] for t in trials] == [1, 2]


def test_trial_whose_worker_dies_on_every_attempt_is_failed_in_every_view(tmp_path, tbreg_cache):
    # The driver records the failure after the last attempt (the worker could not): run.json, the
    # report and the Overfitting tab's /summary must all say failed, not the `running` it died with.
    from tb_server import Server

    from tbreg import share

    args = [
        "--families=sizes",
        "--models=tiny",
        "--max_epochs=200",
        "--patience=200",
        "--checkpoint_secs=0",
        "--retries=1",
        "--jobs=1",
    ]
    logdir = tmp_path / "logs"
    proc = start_sweep(logdir, *args, cache_dir=tbreg_cache)
    run_dir = logdir / "sizes" / "tiny"
    killed = set()
    for _ in range(2):  # both attempts: a worker that holds the run's lock, killed after a save
        deadline = time.monotonic() + 180
        while (pid := (logtree.lock_holder(str(run_dir)) or {}).get("pid")) in killed | {None}:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        _wait_for_save(run_dir, 1 + 2 * len(killed), proc)
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "FAILED sizes/tiny" in err and "after 2 attempts" in err
    record = logtree.read_run_json(str(run_dir))
    assert record["status"] == "failed" and "SIGKILL" in record["error"]
    (run,) = reader.load_runs(str(logdir))
    assert share.summary_row(run)["status"] == "failed"
    share.write_report(str(logdir), str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text()
    assert "<td>failed</td>" in html and "<td>running</td>" not in html
    (tab_row,) = Server(logdir).json("summary", family="sizes")["rows"]
    assert tab_row["status"] == "failed"


def test_events_after_the_last_save_are_set_aside_and_trained_again(tmp_path, tbreg_cache):
    # A worker killed after its save at epoch 4 but after writing epochs 5..11: the state of such a
    # kill, made exactly — the save copied mid-run, put back after the run ended, run.json "running".
    args = ["--families=sizes", "--models=tiny", "--max_epochs=12", "--patience=12", "--checkpoint_secs=0"]
    proc = start_sweep(tmp_path, *args, cache_dir=tbreg_cache)
    run_dir = tmp_path / "sizes" / "tiny"
    _wait_for_save(run_dir, 4, proc)
    saved = (run_dir / resume.RESUME_DIR / resume.STATE_FILE).read_bytes()
    assert proc.wait(timeout=300) == 0
    reference = curves(run_dir)
    assert not resume.exists(str(run_dir / resume.RESUME_DIR))  # a finished run leaves no state behind
    (run_dir / resume.RESUME_DIR).mkdir()
    (run_dir / resume.RESUME_DIR / resume.STATE_FILE).write_bytes(saved)
    after = resume.saved_epoch(str(run_dir / resume.RESUME_DIR))
    record = logtree.read_run_json(str(run_dir))
    logtree.write_run_json(str(run_dir), {**record, "status": "running"})
    again = run_sweep(tmp_path, *args, cache_dir=tbreg_cache, check=True)
    assert "start  sizes/tiny" in again.stderr
    record = logtree.read_run_json(str(run_dir))
    assert record["status"] == "completed" and record["resumed"][-1]["after_epoch"] == after >= 4
    assert_steps_once(run_dir, 12)
    assert_same_curves(curves(run_dir), reference)
    aside = [p for p in (run_dir / resume.ATTEMPTS_DIR).rglob("*") if p.is_file()]
    assert aside and all("tfevents" not in p.name for p in aside)  # kept, but not read by TensorBoard
    assert sum(p.stat().st_size for p in aside) > 0


def test_failed_trial_is_retried_recorded_and_alone(tmp_path, tbreg_cache):
    # n_train=100000 asks mnist1d for more examples than it has: that trial fails in its worker.
    config_file = tmp_path / "sweep.toml"
    config_file.write_text(
        'families = ["sizes"]\nmodels = ["tiny"]\nmax_epochs = 3\n[grid]\nn_train = [1000, 100000]\n'
    )
    proc = run_sweep(tmp_path / "logs", f"--config={config_file}", "--retries=1", "--jobs=2", cache_dir=tbreg_cache)
    assert proc.returncode == 1
    assert "retry  sizes/tiny,n_train=100000: attempt 1 failed (mnist1d has 4000 examples" in proc.stderr
    assert "FAILED sizes/tiny,n_train=100000" in proc.stderr and "after 2 attempts" in proc.stderr
    assert "1 of 2 trials failed after every attempt" in proc.stderr
    good = logtree.read_run_json(str(tmp_path / "logs" / "sizes" / "tiny,n_train=1000"))
    assert good["status"] == "completed" and good["epochs"] == 3 and good["config"]["n_train"] == 1000
    trials = json.loads((tmp_path / "logs" / "sweep.json").read_text())["runs"][-1]["trials"]
    bad = [t for t in trials if t["status"] == "failed"]
    assert len(bad) == 1 and bad[0]["attempts"] == 2 and len(bad[0]["errors"]) == 2
    assert all("mnist1d has 4000 examples" in e for e in bad[0]["errors"])
    # flags on the command line win over the file
    again = run_sweep(
        tmp_path / "logs2",
        f"--config={config_file}",
        "--grid=n_train=1000",
        "--max_epochs=2",
        cache_dir=tbreg_cache,
        check=True,
    )
    assert "1 trials into" in again.stderr
    assert logtree.read_run_json(str(tmp_path / "logs2" / "sizes" / "tiny,n_train=1000"))["epochs"] == 2


def test_interrupted_sweep_continues_on_rerun(tmp_path, tbreg_cache):
    args = ["--families=sizes", "--models=tiny,small", "--max_epochs=40", "--patience=40", "--checkpoint_secs=0"]
    proc = start_sweep(tmp_path, *args, cache_dir=tbreg_cache)
    _wait_for_save(tmp_path / "sizes" / "small", 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "run the same command again to continue" in err
    record = logtree.read_run_json(str(tmp_path / "sizes" / "small"))
    assert record["status"] == "interrupted" and record["resumable"]
    stopped = record["epochs"]
    assert logtree.read_run_json(str(tmp_path / "sizes" / "tiny"))["status"] == "completed"
    again = run_sweep(tmp_path, *args, cache_dir=tbreg_cache, check=True)
    assert "(1 already finished, skipped)" in again.stderr and "start  sizes/small" in again.stderr
    record = logtree.read_run_json(str(tmp_path / "sizes" / "small"))
    assert record["status"] == "completed" and record["resumed"][0]["after_epoch"] == stopped - 1
    assert_steps_once(tmp_path / "sizes" / "small", 40)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--grid=lr=0.1"], "unknown hyperparameter 'lr'"),
        (["--families=nope"], "mnist1d has no family 'nope'"),
        (["--models=huge"], "--models: huge not in sizes on mnist1d"),
        (["--address=auto"], "--address is for --engine=ray"),
        (["--config=/nonexistent.toml"], "--config=/nonexistent.toml: cannot read it"),
        (["--mc_samples=3"], "does not take --mc_samples"),
        (["stray"], "unexpected argument 'stray'"),
        (["--dataset=higgs", "--data_path=/nonexistent/HIGGS.csv.gz"], "/nonexistent/HIGGS.csv.gz"),
    ],
)
def test_bad_sweep_input_is_one_line_error(tmp_path, tbreg_cache, args, fragment):
    proc = run_sweep(tmp_path / "logs", *args, cache_dir=tbreg_cache)
    lines = own_lines(proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("tbreg sweep: error: ") and fragment in lines[0], lines[0]
    assert not (tmp_path / "logs").exists()  # nothing written


# ---------------------------------------------------------------------------------------------
# hostile sweep input (issue 18, items 6 and 7)

_DEEP_TOML = "a = " + "[" * 50_000 + "]" * 50_000 + "\n"


@pytest.mark.parametrize(
    "content, fragment",
    [
        (_DEEP_TOML.encode(), "nested too deeply to read"),
        (b'families = ["sizes"]\nmodels = ["tiny\xff"]\n', "not UTF-8 text"),
        (b"seeds = [1, 1180591620717411303424]\n", "from 0 to 4294967295"),
        (b"seeds = [-1, 2]\n", "from 0 to 4294967295"),
        (b"seed = 4294967295\nseeds = 3\n", "goes past 4294967295"),
        (b"models = []\n", "--models is empty"),
        (b"[grid]\nl2 = [" + b",".join(b"%d" % i for i in range(2001)) + b"]\n", "more than --max_trials=10,000"),
    ],
    ids=[
        "deeply nested",
        "not UTF-8",
        "seed 2**70",
        "seed -1",
        "seeds past the largest",
        "empty models",
        "10,005 trials",
    ],
)
def test_hostile_sweep_file_is_one_line_error(tmp_path, tbreg_cache, content, fragment):
    (tmp_path / "sweep.toml").write_bytes(content)
    proc = run_sweep(tmp_path / "logs", f"--config={tmp_path / 'sweep.toml'}", cache_dir=tbreg_cache)
    lines = own_lines(proc.stderr)
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("tbreg sweep: error: ") and fragment in lines[0], lines[0]
    assert not (tmp_path / "logs").exists()


def test_a_sweep_above_the_trial_cap_is_refused_before_planning_and_the_flag_raises_it(tmp_path, tbreg_cache):
    l2 = ",".join(f"{i * 1e-6:g}" for i in range(1, 5001))
    dropout = ",".join(f"{i / 3001:.6f}" for i in range(1, 3001))
    start = time.monotonic()
    proc = run_sweep(tmp_path / "logs", "--grid", f"l2={l2}", f"dropout={dropout}", cache_dir=tbreg_cache)
    assert (
        own_lines(proc.stderr)
        == [
            "tbreg sweep: error: the sweep has 75,000,000 trials, more than --max_trials=10,000; use fewer grid values, "
            "models or seeds, or pass --max_trials=75000000 if you mean it"
        ]
        and proc.returncode == 1
    )
    assert time.monotonic() - start < 120  # it was minutes of planning
    assert (
        sweep.count_trials(
            sweep.Sweep(
                config.for_dataset("mnist1d"), models=("tiny",), seeds=(1, 2), grid=sweep.parse_grid(["l2=0,1e-4,1e-3"])
            )
        )
        == 6
    )
    proc = run_sweep(tmp_path / "logs", "--models=tiny", "--seeds=10001", cache_dir=tbreg_cache)
    assert "the sweep has 10,001 trials, more than --max_trials=10,000" in proc.stderr and proc.returncode == 1


def test_sigterm_stops_a_sweep_while_it_plans(tmp_path, tbreg_cache):
    l2 = ",".join(f"{i * 1e-6:g}" for i in range(1, 5001))
    dropout = ",".join(f"{i / 3001:.6f}" for i in range(1, 3001))
    proc = start_sweep(
        tmp_path / "logs", "--grid", f"l2={l2}", f"dropout={dropout}", "--max_trials=100000000", cache_dir=tbreg_cache
    )
    time.sleep(25)  # TensorFlow's import, then planning 75 M trials (minutes)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert own_lines(err) == ["tbreg sweep: interrupted before any trial started; nothing was trained"]
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "flag, fragment",
    [
        ("--seed=-1", "-1 is not an integer in the range [0, 4294967295]"),
        (f"--seed={2**70}", f"{2**70} is not an integer in the range [0, 4294967295]"),
        ("--flagfile=/dev/zero", "--flagfile=/dev/zero: not a regular file"),
    ],
)
@pytest.mark.parametrize("command", ["tbreg.train_sizes", "sweep"])
def test_bad_seed_and_flagfile_are_one_line_and_leave_no_run_dir(tmp_path, tbreg_cache, command, flag, fragment):
    if command == "sweep":
        proc = run_sweep(tmp_path / "logs", "--models=tiny", flag, cache_dir=tbreg_cache, timeout=120)
    else:
        proc = run_script(
            command, f"--logdir={tmp_path / 'logs'}", "--models=tiny", flag, cache_dir=tbreg_cache, timeout=120
        )
    lines = own_lines(proc.stderr)
    assert proc.returncode == 2 and len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not (tmp_path / "logs").exists()


def test_empty_models_flag_is_refused_not_the_whole_family(tmp_path, tbreg_cache):
    for proc in (
        run_script("tbreg.train_sizes", f"--logdir={tmp_path / 'logs'}", "--models=", cache_dir=tbreg_cache),
        run_sweep(tmp_path / "logs", "--models=", cache_dir=tbreg_cache),
    ):
        lines = own_lines(proc.stderr)
        assert proc.returncode == 1 and len(lines) == 1 and "--models is empty" in lines[0], proc.stderr
    assert not (tmp_path / "logs").exists()


def test_an_event_file_that_shrank_below_its_save_is_said_and_its_run_trained_again(tmp_path, tbreg_cache):
    args = ["--families=sizes", "--models=tiny", "--max_epochs=12", "--patience=12", "--checkpoint_secs=0"]
    proc = start_sweep(tmp_path, *args, cache_dir=tbreg_cache)
    run_dir = tmp_path / "sizes" / "tiny"
    _wait_for_save(run_dir, 6, proc)
    saved = (run_dir / resume.RESUME_DIR / resume.STATE_FILE).read_bytes()
    assert proc.wait(timeout=300) == 0
    (run_dir / resume.RESUME_DIR).mkdir()
    (run_dir / resume.RESUME_DIR / resume.STATE_FILE).write_bytes(saved)
    logtree.write_run_json(str(run_dir), {**logtree.read_run_json(str(run_dir)), "status": "running"})
    validation = max((run_dir / "validation").glob("*tfevents*"), key=lambda p: p.stat().st_size)  # the epochs'
    os.truncate(validation, 200)  # far below its size at the save: steps gone that the save cannot restore
    again = run_sweep(tmp_path, *args, cache_dir=tbreg_cache, check=True)
    said = [line for line in own_lines(again.stderr) if "smaller than the" in line]
    assert len(said) == 1 and said[0].startswith(f"{validation}: 200 bytes, smaller than the "), again.stderr
    assert "training" in said[0] and "again from its first epoch" in said[0]
    assert logtree.read_run_json(str(run_dir))["status"] == "completed"
    assert_steps_once(run_dir, 12)  # every step is there once: none missing
    aside = [p for p in (run_dir / resume.ATTEMPTS_DIR).rglob("*") if p.is_file()]
    assert aside and all("tfevents" not in p.name for p in aside)
