"""Both training scripts end to end, as a user runs them: tree, tags, run.json, re-runs, baseline."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import own_lines, run_script

from tbreg import logtree, reader

KERAS_TAGS = {"epoch_loss", "epoch_sparse_categorical_crossentropy", "epoch_accuracy"}


def test_tree_has_each_run_with_train_and_validation(script_tree):
    logdir = script_tree["logdir"]
    assert logtree.find_runs(str(logdir)) == ["regularizers/l2", "regularizers/tiny", "sizes/small", "sizes/tiny"]
    for run in ("sizes/tiny", "sizes/small", "regularizers/l2"):
        assert {"train", "validation"} <= set(reader.splits(str(logdir / run)))


def test_train_and_validation_share_tags_so_tensorboard_overlays_them(script_tree):
    scalars = reader.run_scalars(str(script_tree["logdir"] / "sizes" / "tiny"))
    assert KERAS_TAGS | {"epoch_learning_rate"} <= set(scalars["train"])
    assert KERAS_TAGS <= set(scalars["validation"])
    for split in ("train", "validation"):
        assert [p.step for p in scalars[split]["epoch_loss"]] == [0, 1, 2, 3]


def test_run_json_records_the_run(script_tree):
    record = logtree.read_run_json(str(script_tree["logdir"] / "sizes" / "small"))
    assert record["schema_version"] == 1
    assert (record["family"], record["model"], record["dataset"]) == ("sizes", "small", "mnist1d")
    assert record["params"] == 40 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10
    assert record["status"] == "completed" and record["epochs"] == 4 and record["stopped_epoch"] == 3
    assert record["monitor"] == "val_sparse_categorical_crossentropy"
    assert record["flags"]["max_epochs"] == 4 and record["flags"]["models"] == ["tiny", "small"]
    assert record["config"]["max_epochs"] == 4 and record["seed"] == 0
    assert record["config"]["dtype_policy"] == record["flags"]["dtype_policy"] == "float32"
    assert {"tensorflow", "keras", "tensorboard", "tbreg"} <= set(record["versions"])
    assert record["started"] <= record["finished"]
    val = reader.scalars(str(script_tree["logdir"] / "sizes" / "small" / "validation"))
    values = [p.value for p in val["epoch_sparse_categorical_crossentropy"]]
    assert record["best_epoch"] == values.index(min(values))
    assert record["best_value"] == pytest.approx(min(values), rel=1e-6)


def test_scripts_print_a_table_and_the_tensorboard_line(script_tree):
    out = script_tree["sizes"].stdout
    assert "best val data loss" in out and "tiny" in out and "small" in out
    assert out.rstrip().endswith(f"tensorboard --logdir {script_tree['logdir']}")
    # each run's verdict, as the tab and the report say it (tbreg.analysis.summarize_family)
    from tb_server import Server

    lines = script_tree["regularizers"].stdout.split("):\n", 1)[1].splitlines()
    assert lines[0].split()[-1] == "verdict"
    tab = {
        r["name"]: r["verdict"] for r in Server(script_tree["logdir"]).json("summary", family="regularizers")["rows"]
    }
    (l2,) = [line for line in lines if line.startswith("l2 ")]
    assert l2.endswith(tab["l2"]) and tab["l2"]
    assert (
        "INFO" not in script_tree["regularizers"].stderr
        and "directory_watcher" not in script_tree["regularizers"].stderr
    )


def test_regularizers_copies_the_tiny_baseline_byte_exact(script_tree):
    logdir = script_tree["logdir"]
    assert logtree.same_tree(str(logdir / "sizes" / "tiny"), str(logdir / "regularizers" / "tiny"))
    assert "baseline: sizes/tiny" in script_tree["regularizers"].stderr


def test_rerun_trains_into_a_new_dir_and_keeps_the_old_one(script_tree, tmp_path, tbreg_cache):
    logdir = tmp_path / "runs"
    shutil.copytree(script_tree["logdir"], logdir)
    before = {
        f: open(logdir / "sizes" / "tiny" / f, "rb").read() for f in logtree.list_files(str(logdir / "sizes" / "tiny"))
    }
    args = ["--logdir", str(logdir), "--models", "tiny", "--max_epochs", "2", "--quiet"]
    run_script("tbreg.train_sizes", *args, cache_dir=tbreg_cache, check=True)
    after = {
        f: open(logdir / "sizes" / "tiny" / f, "rb").read() for f in logtree.list_files(str(logdir / "sizes" / "tiny"))
    }
    assert after == before
    assert logtree.read_run_json(str(logdir / "sizes" / "tiny.2"))["epochs"] == 2
    # A re-run of the regularizers script makes no second copy of an unchanged baseline,
    # but copies the newer sizes/tiny.2 in as a new run.
    run_script(
        "tbreg.train_regularizers",
        *args[:2],
        "--models",
        "l2",
        "--max_epochs",
        "1",
        "--quiet",
        cache_dir=tbreg_cache,
        check=True,
    )
    assert logtree.same_tree(str(logdir / "sizes" / "tiny.2"), str(logdir / "regularizers" / "tiny.2"))
    assert logtree.same_tree(str(logdir / "sizes" / "tiny"), str(logdir / "regularizers" / "tiny"))


def test_if_exists_error_and_overwrite(script_tree, tmp_path, tbreg_cache):
    logdir = tmp_path / "runs"
    shutil.copytree(script_tree["logdir"], logdir)
    args = ["--logdir", str(logdir), "--models", "tiny", "--max_epochs", "1", "--quiet"]
    proc = run_script("tbreg.train_sizes", *args, "--if_exists", "error", cache_dir=tbreg_cache)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].endswith("or --if_exists=overwrite to replace it")
    assert "Traceback" not in proc.stderr
    run_script("tbreg.train_sizes", *args, "--if_exists", "overwrite", cache_dir=tbreg_cache, check=True)
    assert logtree.read_run_json(str(logdir / "sizes" / "tiny"))["epochs"] == 1
    assert len(reader.scalars(str(logdir / "sizes" / "tiny" / "train"))["epoch_loss"]) == 1
    assert not (logdir / "sizes" / "tiny.2").exists()


def test_missing_baseline_says_which_command_makes_it(tmp_path, tbreg_cache):
    proc = run_script("tbreg.train_regularizers", "--logdir", str(tmp_path), "--max_epochs", "1", cache_dir=tbreg_cache)
    assert proc.returncode == 1
    (line,) = [l for l in proc.stderr.splitlines() if ": error:" in l]
    assert "no such run dir" in line and "tbreg-train-sizes" in line and "--models=tiny" in line
    assert not (tmp_path / "regularizers" / "l2").exists()


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--models=tiny,huge", "--models"),
        ("--max_epochs=0", "--max_epochs"),
        ("--dataset=cifar", "--dataset"),
        ("--if_exists=append", "--if_exists"),
    ],
)
def test_bad_flag_values_name_the_flag(flag, message, tmp_path):
    proc = run_script("tbreg.train_sizes", "--logdir", str(tmp_path), flag)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "sizes").exists()


def test_unwritable_logdir_fails_before_training(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    proc = run_script("tbreg.train_sizes", "--logdir", str(blocker / "runs"), "--max_epochs", "1")
    assert proc.returncode == 1
    assert "--logdir" in proc.stderr and "not writable" in proc.stderr and "Traceback" not in proc.stderr


def test_run_json_is_valid_json_for_every_run(script_tree):
    for run in logtree.find_runs(str(script_tree["logdir"])):
        with open(os.path.join(script_tree["logdir"], run, "run.json")) as f:
            assert json.load(f)["status"] == "completed"


def test_a_diverged_run_makes_the_exit_status_1(tmp_path, tbreg_cache):
    proc = run_script(
        "tbreg.train_sizes",
        "--logdir",
        str(tmp_path),
        "--models",
        "tiny,small",
        "--max_epochs",
        "3",
        "--learning_rate",
        "1e9",
        "--callbacks",
        "none",
        "--quiet",
        cache_dir=tbreg_cache,
    )
    assert proc.returncode == 1, proc.stderr
    assert "runs did not end well: tiny diverged" in proc.stderr and "Traceback" not in proc.stderr
    assert logtree.read_run_json(str(tmp_path / "sizes" / "small"))["status"] == "diverged"  # the family went on


def test_dtype_policy_flag_trains_in_bfloat16_or_says_why_not_in_one_line(tmp_path, tbreg_cache):
    from tbreg import config

    proc = run_script(
        "tbreg.train_sizes",
        "--logdir",
        str(tmp_path),
        "--models",
        "tiny",
        "--max_epochs",
        "2",
        "--quiet",
        "--dtype_policy=mixed_bfloat16",
        cache_dir=tbreg_cache,
    )
    if not config.cpu_bf16():
        lines = own_lines(proc.stderr)
        assert proc.returncode == 1 and len(lines) == 1 and "no bfloat16 instructions" in lines[0], proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    record = logtree.read_run_json(str(tmp_path / "sizes" / "tiny"))
    assert record["config"]["dtype_policy"] == record["flags"]["dtype_policy"] == "mixed_bfloat16"
    assert record["status"] == "completed" and record["epochs"] == 2


def test_two_scripts_on_one_logdir_keep_every_run_visible(tmp_path, tbreg_cache):
    # The first script claims tiny and small, then trains tiny for a while; the second, started
    # meanwhile, must train into tiny.2 and small.2 — never into the first's still-empty small,
    # whose completed run the first would then have set aside where no view shows it.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TBREG_CACHE=str(tbreg_cache))
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tbreg.train_sizes",
            "--models=tiny,small",
            "--max_epochs=400",
            "--patience=400",
            "--quiet",
            f"--logdir={tmp_path}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "sizes" / "tiny" / logtree.RUN_JSON).exists():  # the first trains tiny now
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = run_script(
            "tbreg.train_sizes",
            "--models=tiny,small",
            "--max_epochs=15",
            "--quiet",
            f"--logdir={tmp_path}",
            cache_dir=tbreg_cache,
        )
        out, err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0 and second.returncode == 0, err + second.stderr
    runs = {run: logtree.read_run_json(str(tmp_path / run)) for run in logtree.find_runs(str(tmp_path))}
    assert sorted(runs) == ["sizes/small", "sizes/small.2", "sizes/tiny", "sizes/tiny.2"]
    assert all(r["status"] in ("completed", "early_stopped") for r in runs.values())
    assert {r["config"]["max_epochs"] for r in runs.values()} == {15, 400}
    assert not list(tmp_path.rglob(".attempts"))  # nothing set aside
