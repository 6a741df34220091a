"""Reliability (issue 8): interrupt and resume, divergence, one training per run dir, storage faults,
damaged event files, hostile input. Real scripts in subprocesses where signals and limits matter."""

import io
import json
import os
import re
import pathlib
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings

import keras
import numpy as np
import pytest
from conftest import REPO, assert_steps_once, own_lines, run_script, synthetic_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tbreg import callbacks as callbacks_lib
from tbreg import config, datasets, families, logtree, models, reader, resume, share, sweep, training
from tbreg.errors import UserError
from tbreg.share import bundle as share_bundle
from test_logtree import BAD_RUN_JSON, check_bad_run_json_warnings, write_bad_run_json

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _env(cache):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TBREG_CACHE=str(cache))


def _start(module, *args, cache, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=_env(cache),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def _wait_for(condition, proc, timeout=120):
    end = time.time() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < end, "timed out"
        time.sleep(0.2)


def _has_events(d):
    return d.is_dir() and any(reader.is_event_file(f) for f in os.listdir(d))


# ---------------------------------------------------------------------------------------------
# 1 + 3: SIGTERM while a second training tries the same run dir and another family trains beside it


def test_sigterm_lock_side_by_side_then_resume(tmp_path, tbreg_cache):
    logdir = tmp_path / "runs"
    common = ["--logdir", str(logdir), "--quiet"]
    run = logdir / "sizes" / "tiny"
    first = _start(
        "tbreg.train_sizes", *common, "--models=tiny", "--max_epochs=100000", "--patience=100000", cache=tbreg_cache
    )
    try:
        _wait_for(lambda: _has_events(run / "validation"), first)
        second = _start(
            "tbreg.train_sizes", *common, "--models=tiny", "--max_epochs=1", "--if_exists=overwrite", cache=tbreg_cache
        )
        beside = _start(
            "tbreg.train_regularizers", *common, "--models=l2", "--max_epochs=3", "--baseline=", cache=tbreg_cache
        )
        _, err2 = second.communicate(timeout=120)
        out3, err3 = beside.communicate(timeout=120)
        assert first.poll() is None  # still training
        first.send_signal(signal.SIGTERM)
        _, err1 = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    # the second training of the same run dir: refused with one clear line, nothing touched
    assert second.returncode == 1
    assert f"is being written by another training (pid {first.pid} on {platform.node()})" in err2
    assert "Traceback" not in err2
    # another family on the same logdir: trained side by side
    assert beside.returncode == 0, err3
    assert logtree.read_run_json(str(logdir / "regularizers" / "l2"))["status"] == "completed"
    # the interrupted run: status, last epoch, message, every writer flushed, lock released
    assert first.returncode == 130
    record = logtree.read_run_json(str(run))
    last = record["stopped_epoch"]
    assert record["status"] == "interrupted" and record["resumable"] and record["epochs"] == last + 1
    assert f"interrupted after epoch {last} of tiny" in err1
    (hint,) = [line for line in err1.splitlines() if line.startswith("resume with: ")]
    assert hint.startswith("resume with: python -m tbreg.train_sizes --logdir") and hint.endswith(" --resume")
    assert "Traceback" not in err1 and not (run / logtree.LOCK).exists()
    assert_steps_once(run, last + 1)
    # --resume continues in place: one continuous curve, no new dir, the saved state removed
    epochs = last + 6
    proc = run_script(
        "tbreg.train_sizes",
        *common,
        "--models=tiny",
        f"--max_epochs={epochs}",
        "--patience=100000",
        "--resume",
        cache_dir=tbreg_cache,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"sizes/tiny: resuming after epoch {last}" in proc.stderr
    record = logtree.read_run_json(str(run))
    assert record["status"] == "completed" and record["epochs"] == epochs
    assert [r["after_epoch"] for r in record["resumed"]] == [last]
    assert not (run / resume.RESUME_DIR).exists() and not (logdir / "sizes" / "tiny.2").exists()
    assert_steps_once(run, epochs)


def test_sigkill_resumes_from_the_last_periodic_save(tmp_path, tbreg_cache):
    common = ["--models=tiny", "--max_epochs=25", "--patience=25", "--quiet", "--checkpoint_secs=0"]
    reference = run_script("tbreg.train_sizes", "--logdir", str(tmp_path / "ref"), *common, cache_dir=tbreg_cache)
    assert reference.returncode == 0, reference.stderr
    run = tmp_path / "runs" / "sizes" / "tiny"
    state = str(run / resume.RESUME_DIR)
    proc = _start("tbreg.train_sizes", "--logdir", str(tmp_path / "runs"), *common, cache=tbreg_cache)
    _wait_for(lambda: resume.exists(state) and resume.saved_epoch(state) >= 4, proc)
    proc.kill()  # SIGKILL: no handler runs, run.json stays "running", the lock stays behind
    proc.communicate(timeout=60)
    assert logtree.read_run_json(str(run))["status"] == "running"
    again = run_script(
        "tbreg.train_sizes", "--logdir", str(tmp_path / "runs"), *common, "--resume", cache_dir=tbreg_cache
    )
    assert again.returncode == 0, again.stderr
    assert "(its training stopped while running)" in again.stderr and "taking over the lock" in again.stderr
    record = logtree.read_run_json(str(run))
    assert record["status"] == "completed" and record["resumed"][0]["after_epoch"] >= 4
    assert_steps_once(run, 25)
    ours, theirs = reader.run_scalars(str(run)), reader.run_scalars(str(tmp_path / "ref" / "sizes" / "tiny"))
    for split in ("train", "validation"):
        for tag, points in theirs[split].items():
            assert [p.value for p in ours[split][tag]] == pytest.approx([p.value for p in points], rel=1e-4), tag


# ---------------------------------------------------------------------------------------------
# 1: in process — SIGINT at an epoch boundary, exact continuation, skipping finished runs


_data = synthetic_data


CFG = config.TrainConfig(
    dataset="synthetic", n_train=400, n_validation=200, batch_size=100, max_epochs=8, patience=100, verbose=0
)


class SendSignal(keras.callbacks.Callback):
    """Sends this process `times` SIGINTs at the end of epoch `epoch`, like a user pressing Ctrl-C."""

    def __init__(self, epoch, times=1):
        super().__init__()
        self.epoch, self.times = epoch, times

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


def _callbacks(interrupt_model=None, times=1):
    def make(run_dir):
        extra = [SendSignal(2, times)] if interrupt_model and run_dir.endswith(interrupt_model) else []
        return [*extra, *callbacks_lib.make(run_dir)]

    return make


def test_sigint_resume_continues_exactly_and_skips_finished_runs(tmp_path, capsys):
    data = _data()
    fam = families.Family("t", (models.ModelSpec("a", (16,), dropout=0.3), models.ModelSpec("b", (4,))))
    (reference,) = sweep.train_family(fam, fam.models[:1], data, CFG, str(tmp_path / "ref"), callbacks_for=_callbacks())
    logdir = str(tmp_path / "runs")
    with pytest.raises(training.Interrupted) as info:
        sweep.train_family(fam, fam.models, data, CFG, logdir, callbacks_for=_callbacks("a"))
    assert info.value.resumable and info.value.result.epochs == 3
    record = logtree.read_run_json(f"{logdir}/t/a")
    assert (record["status"], record["stopped_epoch"], record["resumable"]) == ("interrupted", 2, True)
    assert_steps_once(f"{logdir}/t/a", 3)
    results = sweep.train_family(fam, fam.models, data, CFG, logdir, callbacks_for=_callbacks(), resume=True)
    assert [(r.model, r.status, r.epochs, os.path.basename(r.run_dir)) for r in results] == [
        ("a", "completed", 8, "a"),
        ("b", "completed", 8, "b"),
    ]
    assert "t/a: resuming after epoch 2" in capsys.readouterr().err
    # the resumed run is the uninterrupted one: same values at the same steps, same onset
    assert results[0].history.keys() == reference.history.keys()
    for key, values in reference.history.items():
        np.testing.assert_allclose(results[0].history[key], values, rtol=1e-6, err_msg=key)
    got, want = reader.run_scalars(results[0].run_dir), reader.run_scalars(reference.run_dir)
    assert {(s, t) for s in got for t in got[s]} == {(s, t) for s in want for t in want[s]}
    for split in want:
        for tag in want[split]:
            assert [p.step for p in got[split][tag]] == [p.step for p in want[split][tag]]
            np.testing.assert_allclose(
                [p.value for p in got[split][tag]],
                [p.value for p in want[split][tag]],
                rtol=1e-5,
                err_msg=f"{split}/{tag}",
            )
    onset = logtree.read_run_json(results[0].run_dir)["overfitting_onset"]
    assert onset == logtree.read_run_json(reference.run_dir)["overfitting_onset"]
    again = sweep.train_family(fam, fam.models, data, CFG, logdir, resume=True)
    assert [r.status for r in again] == ["completed", "completed"]
    assert capsys.readouterr().err.count("already completed after 8 epochs; skipped") == 2
    assert sorted(os.listdir(f"{logdir}/t")) == ["a", "b"]


def test_second_interrupt_stops_at_once_and_is_not_resumable(tmp_path):
    data = _data()
    run_dir = logtree.claim_run_dir(str(tmp_path), "t", "a")
    with pytest.raises(training.Interrupted) as info:
        training.train_run(models.ModelSpec("a", (4,)), data, CFG, run_dir, "t", [SendSignal(2, times=2)])
    assert not info.value.resumable
    record = logtree.read_run_json(run_dir)
    assert record["status"] == "interrupted" and record["resumable"] is False
    assert not os.path.exists(os.path.join(run_dir, logtree.LOCK))
    # --resume then trains anew beside it
    fam = families.Family("t", (models.ModelSpec("a", (4,)),))
    (result,) = sweep.train_family(
        fam, fam.models, data, dataclasses_replace(CFG, max_epochs=2), str(tmp_path), resume=True
    )
    assert result.run_dir.endswith("a.2") and result.status == "completed"


def test_keras_engine_interrupt_is_recorded_and_flushed(tmp_path):
    run_dir = logtree.claim_run_dir(str(tmp_path), "t", "a")
    cfg = dataclasses_replace(CFG, engine="keras")
    with pytest.raises(training.Interrupted) as info:
        training.train_run(models.ModelSpec("a", (4,)), _data(), cfg, run_dir, "t", [SendSignal(2)])
    assert not info.value.resumable and info.value.result.epochs == 3  # Keras' own callbacks ran first
    record = logtree.read_run_json(run_dir)
    assert (record["status"], record["resumable"]) == ("interrupted", False)
    steps = [p.step for p in reader.scalars(os.path.join(run_dir, "validation"))["epoch_loss"]]
    assert steps == list(range(record["epochs"])) and not os.path.exists(os.path.join(run_dir, logtree.LOCK))


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


# ---------------------------------------------------------------------------------------------
# 2: divergence


def test_nan_loss_stops_the_run_and_the_family_goes_on(tmp_path):
    data = _data()
    data.x_train[0, 0] = np.nan  # a NaN input: the loss is NaN from the first step
    fam = families.Family("t", (models.ModelSpec("nan", (8,)), models.ModelSpec("ok", (4,))))
    cfg = dataclasses_replace(CFG, max_epochs=20)
    bad = sweep.train_family(fam, fam.models[:1], data, cfg, str(tmp_path))[0]
    assert bad.status == "diverged" and bad.epochs == 1
    record = logtree.read_run_json(bad.run_dir)
    assert (record["status"], record["diverged_epoch"], record["stopped_epoch"]) == ("diverged", 0, 0)
    assert not os.path.exists(os.path.join(bad.run_dir, resume.RESUME_DIR))


class NumpyWeightHistogram(keras.callbacks.Callback):
    """A user's callback that breaks on NaN weights, as np.histogram does."""

    def on_epoch_end(self, epoch, logs=None):
        np.histogram(self.model.get_weights()[0])


@pytest.mark.parametrize("engine", ["fast", "keras"])
def test_nan_weights_end_diverged_not_failed(tmp_path, capsys, engine):
    """Issue 6: a learning rate that turns the weights into NaN at once, with every tbreg callback on."""
    data = _data()
    cfg = dataclasses_replace(CFG, max_epochs=20, engine=engine, checkpoint_secs=0 if engine == "fast" else None)
    spec = models.ModelSpec("huge_lr", (16,), learning_rate=1e30, dropout=0.3, mc_samples=3)
    run_dir = logtree.claim_run_dir(str(tmp_path), "t", spec.name)
    callbacks = callbacks_lib.make(run_dir, train_data=(data.x_train, data.y_train))
    result = training.train_run(spec, data, cfg, run_dir, "t", callbacks)
    assert (result.status, result.epochs, result.error) == ("diverged", 1, None)
    record = logtree.read_run_json(run_dir)
    assert (record["status"], record["diverged_epoch"], record["error"]) == ("diverged", 0, None)
    assert not os.path.exists(os.path.join(run_dir, resume.RESUME_DIR))
    hists = reader.histograms(os.path.join(run_dir, "train"))
    assert hists["weights/hidden_1/kernel"][0].count == 0  # every weight NaN: nothing to count, no crash
    nonfinite = reader.scalars(os.path.join(run_dir, "train"))["weight_nonfinite/hidden_1"]
    assert [(p.step, p.value) for p in nonfinite] == [(0, 8 * 16 + 16)]
    # a callback of the user's that breaks on the NaN weights afterwards: still diverged, its error kept
    run_dir = logtree.claim_run_dir(str(tmp_path), "t", spec.name)
    capsys.readouterr()
    result = training.train_run(spec, data, cfg, run_dir, "t", [*callbacks_lib.make(run_dir), NumpyWeightHistogram()])
    assert result.status == "diverged" and result.error is None
    record = logtree.read_run_json(run_dir)
    assert record["status"] == "diverged" and record["error"].startswith("ValueError: autodetected range of [nan, nan]")
    assert f"{run_dir}: diverged at epoch 0, then ValueError: autodetected range" in capsys.readouterr().err


def test_script_with_a_huge_learning_rate_reports_diverged(tmp_path, tbreg_cache):
    args = ["--logdir", str(tmp_path), "--models=tiny", "--max_epochs=5", "--learning_rate=1e30", "--quiet"]
    proc = run_script("tbreg.train_sizes", *args, cache_dir=tbreg_cache)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert own_lines(proc.stderr) == [
        "tiny diverged (see its run.json: diverged_epoch); the family went on",
        "train_sizes.py: 1 of 1 runs did not end well: tiny diverged",
    ]
    record = logtree.read_run_json(str(tmp_path / "sizes" / "tiny"))
    assert (record["status"], record["diverged_epoch"], record["error"]) == ("diverged", 0, None)
    assert "weight_nonfinite/hidden_1" in reader.scalars(str(tmp_path / "sizes" / "tiny" / "train"))


# ---------------------------------------------------------------------------------------------
# Issue 7: a bad run.json or a damaged save and --resume


@pytest.fixture(scope="module")
def interrupted_tree(tmp_path_factory):
    """`<logdir>/t/a`: interrupted after epoch 2 with a save to resume from (module-wide, copy it)."""
    logdir = str(tmp_path_factory.mktemp("interrupted") / "runs")
    fam = families.Family("t", (models.ModelSpec("a", (16,), dropout=0.3),))
    with pytest.raises(training.Interrupted):
        sweep.train_family(fam, fam.models, _data(), CFG, logdir, callbacks_for=_callbacks("a"))
    return logdir


def _tree_snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = open(path, "rb").read()
        out.update({os.path.relpath(os.path.join(dirpath, d), root) + "/": None for d in dirnames})
    return out


@pytest.mark.parametrize("kind", BAD_RUN_JSON)
def test_resume_with_a_bad_run_json_warns_continues_and_keeps_the_old_file(interrupted_tree, tmp_path, capsys, kind):
    logdir = str(tmp_path / "runs")
    shutil.copytree(interrupted_tree, logdir)
    run = os.path.join(logdir, "t", "a")
    path = write_bad_run_json(run, kind)
    capsys.readouterr()
    fam = families.Family("t", (models.ModelSpec("a", (16,), dropout=0.3),))
    (result,) = sweep.train_family(fam, fam.models, _data(), CFG, logdir, callbacks_for=_callbacks(), resume=True)
    assert (result.run_dir, result.status, result.epochs) == (run, "completed", 8)
    record = logtree.read_run_json(run)
    assert record["status"] == "completed" and [r["after_epoch"] for r in record["resumed"]] == [2]
    assert_steps_once(run, 8)
    err = capsys.readouterr().err.splitlines()
    warnings_ = [line for line in err if line.startswith("tbreg: warning:")]
    check_bad_run_json_warnings("\n".join(warnings_), path, kind)
    (aside,) = [line.split(" is kept as ")[1] for line in err if " is kept as " in line]
    assert aside.startswith(os.path.join(run, resume.ATTEMPTS_DIR)) and aside.endswith("run.json.damaged")
    if BAD_RUN_JSON[kind] is None:
        assert os.path.isdir(aside)
    else:
        assert open(aside, "rb").read() == BAD_RUN_JSON[kind]  # nothing lost
    assert "t/a: resuming after epoch 2" in err


def _damage_save(run_dir, kind):
    state = os.path.join(run_dir, resume.RESUME_DIR, resume.STATE_FILE)
    blob = open(state, "rb").read()
    os.remove(state)
    if kind == "directory":
        os.mkdir(state)
        return state
    damaged = {
        "truncated": blob[: len(blob) // 2],
        "garbage": os.urandom(len(blob)),
        "empty": b"",
        "flipped": blob[:100] + bytes([blob[100] ^ 0xFF]) + blob[101:],  # inside the first array: its CRC fails
    }
    if kind == "no state":
        buffer = io.BytesIO()
        np.savez(buffer, model_0=np.zeros(3))
        damaged[kind] = buffer.getvalue()
    open(state, "wb").write(damaged[kind])
    return state


SAVE_DAMAGE = ["truncated", "garbage", "empty", "flipped", "no state", "directory"]


@pytest.mark.parametrize("kind", SAVE_DAMAGE)
def test_resume_from_a_damaged_save_is_one_line_naming_it_before_any_training(interrupted_tree, tmp_path, kind):
    logdir = str(tmp_path / "runs")
    shutil.copytree(interrupted_tree, logdir)
    shutil.copytree(os.path.join(logdir, "t", "a"), os.path.join(logdir, "t", "b"))  # b: same model, same save
    state = _damage_save(os.path.join(logdir, "t", "b"), kind)
    before = _tree_snapshot(logdir)
    spec = models.ModelSpec("a", (16,), dropout=0.3)
    fam = families.Family("t", (spec, dataclasses_replace(spec, name="b")))
    with pytest.raises(UserError) as info:
        sweep.train_family(fam, fam.models, _data(), CFG, logdir, callbacks_for=_callbacks(), resume=True)
    message = str(info.value)
    assert message.startswith(f"{state}: damaged save, cannot resume from it (") and "\n" not in message
    assert f"(mv {logdir}/t/b/.resume {logdir}/t/b/.resume-damaged)" in message
    assert _tree_snapshot(logdir) == before  # a (listed first) was not resumed either: nothing changed
    # the fix the message gives: a new run of b, the old one kept
    os.rename(os.path.join(logdir, "t", "b", ".resume"), os.path.join(logdir, "t", "b", ".resume-damaged"))
    results = sweep.train_family(fam, fam.models, _data(), dataclasses_replace(CFG, max_epochs=4), logdir, resume=True)
    assert [(os.path.basename(r.run_dir), r.status) for r in results] == [("a", "completed"), ("b.2", "completed")]
    assert os.path.exists(state.replace(".resume", ".resume-damaged"))


@pytest.fixture
def script_run(script_tree, tmp_path):
    """A copy of the script tree's sizes/tiny, marked interrupted with a save beside it."""
    logdir = tmp_path / "runs"
    shutil.copytree(script_tree["logdir"] / "sizes" / "tiny", logdir / "sizes" / "tiny")
    run = logdir / "sizes" / "tiny"
    record = logtree.read_run_json(str(run))
    logtree.write_run_json(str(run), {**record, "status": "interrupted", "resumable": True})
    (run / resume.RESUME_DIR).mkdir()
    return logdir


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_script_resume_from_a_damaged_save_is_one_line(script_run, tbreg_cache, kind):
    run = script_run / "sizes" / "tiny"
    buffer = io.BytesIO()
    np.savez(buffer, **{f"model_{i}": np.ones((40, 40)) for i in range(4)})
    blob = buffer.getvalue()
    state = run / resume.RESUME_DIR / resume.STATE_FILE
    state.write_bytes(blob[: len(blob) // 3] if kind == "truncated" else os.urandom(4000))
    before = _tree_snapshot(script_run)
    proc = run_script(
        "tbreg.train_sizes",
        "--logdir",
        str(script_run),
        "--models=tiny",
        "--max_epochs=3",
        "--quiet",
        "--resume",
        cache_dir=tbreg_cache,
    )
    assert proc.returncode == 1
    (line,) = own_lines(proc.stderr)
    assert line.startswith(f"train_sizes.py: error: {state}: damaged save, cannot resume from it (")
    assert _tree_snapshot(script_run) == before


def test_script_resume_with_a_bad_run_json_trains_anew_beside_it(script_run, tbreg_cache):
    run = script_run / "sizes" / "tiny"
    shutil.rmtree(run / resume.RESUME_DIR)
    path = write_bad_run_json(run, "invalid json")
    proc = run_script(
        "tbreg.train_sizes",
        "--logdir",
        str(script_run),
        "--models=tiny",
        "--max_epochs=2",
        "--quiet",
        "--resume",
        cache_dir=tbreg_cache,
    )
    assert proc.returncode == 0, proc.stderr
    lines = own_lines(proc.stderr)
    assert lines[0].startswith(f"tbreg: warning: {path}: not valid JSON") and len(lines) == 2
    assert lines[1] == f"sizes/tiny: nothing to resume; training {run}.2"
    assert open(path, "rb").read() == BAD_RUN_JSON["invalid json"]
    assert logtree.read_run_json(f"{run}.2")["status"] == "completed"


# ---------------------------------------------------------------------------------------------
# 3: locks


def test_stale_lock_is_taken_over_and_a_live_one_refused(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    os.mkdir(run_dir)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = os.path.join(run_dir, logtree.LOCK)
    with open(lock, "w") as f:
        json.dump({"pid": int(dead.stdout), "host": platform.node()}, f)
    logtree.lock_run(run_dir)
    assert "taking over the lock of a training that is gone" in capsys.readouterr().err
    assert json.load(open(lock))["pid"] == os.getpid()
    logtree.unlock_run(run_dir)
    assert not os.path.exists(lock)
    with open(lock, "w") as f:  # another machine's training: cannot tell it is gone, so refused
        json.dump({"pid": 1, "host": "elsewhere"}, f)
    with pytest.raises(UserError, match=r"being written by another training \(pid 1 on elsewhere\)"):
        training.train_run(models.ModelSpec("a", (4,)), _data(), CFG, run_dir, "t")
    with pytest.raises(UserError, match="being written by another training"):
        logtree.claim_run_dir(str(tmp_path), "", "run", if_exists="overwrite")
    assert os.path.exists(lock) and sorted(os.listdir(run_dir)) == [logtree.LOCK]


# ---------------------------------------------------------------------------------------------
# 4: storage faults


def test_unwritable_logdir_is_reported_before_training(tmp_path):
    with pytest.raises(UserError, match=r"--logdir=/proc/tbreg-runs is not writable"):
        logtree.check_logdir("/proc/tbreg-runs")  # not even root can create it
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="not writable"):
        logtree.check_logdir(str(blocker / "runs"))
    logtree.check_logdir(str(tmp_path / "new" / "parents" / "runs"))  # missing parents are created
    assert os.listdir(tmp_path / "new" / "parents" / "runs") == []


def _file_size_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_mid_run_fails_the_run_and_keeps_what_was_written(tmp_path, tbreg_cache):
    datasets.load(config.for_dataset("mnist1d", cache_dir=str(tbreg_cache)))  # cached before the limit
    logdir = tmp_path / "runs"
    args = ["--logdir", str(logdir), "--models=tiny,small", "--max_epochs=400", "--quiet"]
    proc = subprocess.run(
        [sys.executable, "-m", "tbreg.train_sizes", *args],
        cwd=REPO,
        env=_env(tbreg_cache),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit(60_000),
    )
    assert proc.returncode == 1
    assert "tiny failed: OutOfRangeError" in proc.stderr and "File too large" in proc.stderr
    for model in ("tiny", "small"):
        run = logdir / "sizes" / model
        record = logtree.read_run_json(str(run))
        assert record["status"] == "failed" and "File too large" in record["error"]
        assert not (run / logtree.LOCK).exists()
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            scalars = reader.run_scalars(str(run))
        steps = [p.step for p in scalars["validation"]["epoch_loss"]]
        assert steps == list(range(len(steps))) and len(steps) >= record["epochs"] - 1 > 0


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 200 kB tmpfs (root only): a real 'No space left on device'."""
    mount = tmp_path / "full"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_no_space_left_fails_runs_and_the_family_goes_on(tiny_tmpfs, capsys):
    fam = families.Family("t", tuple(models.ModelSpec(name, (8,)) for name in ("a", "b", "c")))
    cfg = dataclasses_replace(CFG, max_epochs=2000, patience=2000)
    results = sweep.train_family(fam, fam.models, _data(), cfg, str(tiny_tmpfs), callbacks_for=_callbacks())
    assert [r.status for r in results] == ["failed"] * 3
    assert all("No space left on device" in r.error for r in results)
    assert results[0].epochs > 0
    err = capsys.readouterr().err
    assert f"{tiny_tmpfs}/t/b: cannot write there" in err and "not trained" in err
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        steps = [p.step for p in reader.scalars(f"{tiny_tmpfs}/t/a/validation")["epoch_loss"]]
    assert steps == list(range(len(steps))) and len(steps) >= results[0].epochs - 1
    assert training._default_summary_writer() is None  # a failed flush leaks no default writer
    for run in ("a", "b", "c"):  # no lock and no temporary file left behind
        assert not [f for f in os.listdir(f"{tiny_tmpfs}/t/{run}") if f.startswith(".lock") or ".tmp-" in f]


# ---------------------------------------------------------------------------------------------
# 5: damaged event files


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("damage") / "t" / "m")
    os.makedirs(run_dir)
    training.train_run(
        models.ModelSpec("m", (8,)),
        _data(),
        dataclasses_replace(CFG, max_epochs=6),
        run_dir,
        "t",
        callbacks_lib.make(run_dir),
    )
    return run_dir


def _event_file(run_dir, split):
    d = os.path.join(run_dir, split)
    return os.path.join(d, next(f for f in sorted(os.listdir(d)) if reader.is_event_file(f)))


@FUZZ
@given(data=st.data())
def test_reader_keeps_the_good_part_of_damaged_files(small_run, data):
    src = _event_file(small_run, "validation")
    original = reader.scalars(os.path.dirname(src))
    blob = bytearray(open(src, "rb").read())
    if data.draw(st.booleans(), label="truncate"):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1), label="cut")]
    else:
        at = data.draw(st.integers(0, len(blob) - 1), label="at")
        blob[at] ^= data.draw(st.integers(1, 255), label="xor")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, os.path.basename(src))
        open(path, "wb").write(bytes(blob))
        check = reader.inspect_event_file(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = reader.scalars(tmp)
    messages = [str(w.message) for w in caught if issubclass(w.category, reader.DamagedEventFileWarning)]
    if check.ok:
        assert not messages
    else:
        assert len(messages) == 1 and path in messages[0] and f"at byte {check.offset}" in messages[0]
    for tag, points in got.items():  # the good part: a prefix of each curve, values unchanged
        assert tag in original and points == original[tag][: len(points)]


def test_plugin_plot_and_share_survive_damaged_files(small_run, tmp_path):
    from tb_server import Server

    from tbreg import plot

    logdir = tmp_path / "runs"
    shutil.copytree(os.path.dirname(os.path.dirname(small_run)), logdir)
    path = _event_file(str(logdir / "t" / "m"), "validation")
    os.truncate(path, os.path.getsize(path) * 2 // 3)
    server = Server(logdir)
    for route, params in [
        ("families", {}),
        ("summary", {"family": "t"}),
        ("family", {"family": "t", "metric": "epoch_loss"}),
        ("regularization", {"family": "t"}),
    ]:
        assert server.get(route, **params).status_code == 200, route
    points = server.json("family", family="t", metric="epoch_loss")
    assert points  # TensorBoard keeps the good part
    for call in (
        lambda: share.write_report(str(logdir), str(tmp_path / "r.html")),
        lambda: share.export_scalars(str(logdir), str(tmp_path / "s.csv")),
        lambda: plot.plot_family(str(logdir / "t"), str(tmp_path / "p.png")),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                call()
            except UserError as e:  # share refuses damaged trees with one line naming file and byte
                assert path in str(e) and "at byte" in str(e)
            else:
                assert any(path in str(w.message) for w in caught)


# ---------------------------------------------------------------------------------------------
# 6: hostile input


@FUZZ
@given(
    text=st.binary(max_size=400)
    | st.lists(
        st.lists(
            st.sampled_from(["0", "1", "-1.5", "1e40", "nan", "", " ", "x", "1,2", '"3"', "\t", "\x00"]),
            min_size=1,
            max_size=31,
        ).map(",".join),
        max_size=4,
    ).map(lambda rows: "\n".join(rows).encode())
)
def test_csv_loader_parses_or_names_the_problem(text):
    from tbreg.datasets import higgs

    try:
        rows = higgs.parse(text, "data.csv")
    except UserError as e:
        message = str(e)
        assert message.startswith("data.csv") and "\n" not in message
    else:
        assert rows.dtype == np.float32 and rows.shape[1] == higgs.N_COLUMNS and np.isfinite(rows).all()


NAMES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=20)


def _report_markup(family, run, tag) -> dict:
    points = [reader.Point(s, 0.0, 1.0 / (s + 1)) for s in range(3)]
    scalars = {"train": {f"epoch_{tag}": points, "epoch_loss": points}, "validation": {"epoch_loss": points}}
    html, _ = share.render_report(
        [reader.Run(family, run, "/x", f"{family}/{run}", {"status": "completed"}, scalars)], "t"
    )
    html = html.lower()
    return {marker: html.count(marker) for marker in ("<script", "<img", "<svg", "<iframe", "onerror=", "javascript:")}


@settings(FUZZ, max_examples=12)  # each report embeds plotly.js: ~1 s per example
@given(family=NAMES, run=NAMES, tag=NAMES)
def test_report_never_lets_a_name_become_markup(family, run, tag):
    assert _report_markup(family, run, tag) == _report_markup("f", "r", "loss")


@FUZZ
@given(
    path=st.lists(
        st.sampled_from(
            [
                "..",
                ".",
                "",
                "%2e%2e",
                "%2f",
                "%5c",
                "\\",
                "etc",
                "passwd",
                "plugin.py",
                "index.js",
                "static",
                "%00",
                ";",
                "~",
                "..%2f",
                "%252e",
            ]
        ),
        min_size=1,
        max_size=6,
    )
)
def test_plugin_static_route_never_leaves_its_dir(plugin_server, path):
    from tbreg.plugin.plugin import STATIC_DIR

    response = plugin_server.get("static/" + "/".join(path))
    if response.status_code == 200:
        body = response.get_data()
        assert any(body == open(os.path.join(STATIC_DIR, f), "rb").read() for f in os.listdir(STATIC_DIR))


@pytest.fixture(scope="module")
def plugin_server(tmp_path_factory):
    from tb_server import Server

    return Server(tmp_path_factory.mktemp("empty"))


@FUZZ
@given(
    name=st.text(st.sampled_from("ab./\\:~\x00"), max_size=12)
    | st.sampled_from(["/etc/passwd", "../x", "a/../../x", "a/./b", "C:\\x", "a//b", ".", "..", "a/.."])
)
def test_bundle_member_names_stay_inside_the_destination(name):
    if share_bundle._safe_rel(name):
        dest = "/dest"
        target = os.path.normpath(os.path.join(dest, name))
        assert target.startswith(dest + "/")


# A run dir named like a split (train, validation, train_eval) reads as a split of its parent: the
# log tree's contract, not the plugin's, and no family has such a model.
DIR_NAMES = NAMES.filter(  # not the names the layout gives a meaning: splits, seed runs, a group's mean
    lambda n: (
        n not in (".", "..", "train", "validation", "train_eval", "validation_mc", "mean")
        and not re.fullmatch(r"seed_-?\d+", n)
        and len(n.encode()) < 200
    )
)


@settings(FUZZ, max_examples=10)  # each example writes a log tree and loads it into TensorBoard
@given(family=DIR_NAMES, run=DIR_NAMES, tag=NAMES)
def test_plugin_answers_any_run_and_tag_name_as_data(family, run, tag):
    from tb_server import Server
    from test_plugin import record, write_run

    with tempfile.TemporaryDirectory() as logdir:
        run_dir = os.path.join(logdir, family, run)
        write_run(
            pathlib.Path(run_dir),
            record(family, run),
            train={f"epoch_{tag}": [1.0, 0.5]},
            validation={f"epoch_{tag}": [2.0, 1.5]},
        )
        server = Server(logdir)
        listing = server.json("families")
        assert [(f["family"], [r["name"] for r in f["runs"]]) for f in listing["families"]] == [(family, [run])]
        answer = server.json("family", family=family, metric=f"epoch_{tag}")
        assert [r["run"] for r in answer["runs"]] == [f"{family}/{run}"]
        for route in ("summary", "regularization"):
            response = server.get(route, family=family)
            assert response.status_code == 200 and response.mimetype == "application/json"
