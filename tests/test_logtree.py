"""Run dirs and baseline copies: never a second training in a dir, copies all-or-nothing."""

import json
import os
import platform
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from conftest import run_script

from tbreg import logtree
from tbreg.errors import UserError


def _make_run(root, files=None):
    files = files or {
        "run.json": b'{"status": "completed"}',
        "train/events.out.tfevents.1": b"\x00" * 100 + b"abc",
        "validation/events.out.tfevents.2": b"xyz" * 50,
        "train_eval/events.out.tfevents.3": b"e",
    }
    for rel, data in files.items():
        path = os.path.join(root, rel)
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(data)
    return files


def _snapshot(root):
    out = {}
    for rel in logtree.list_files(root):
        with tf.io.gfile.GFile(os.path.join(root, rel), "rb") as f:
            out[rel] = f.read()
    return out


def test_claim_run_dir_never_reuses_a_run(tmp_path):
    first = logtree.claim_run_dir(str(tmp_path), "sizes", "tiny")
    _make_run(first)
    second = logtree.claim_run_dir(str(tmp_path), "sizes", "tiny")
    assert (first, second) == (str(tmp_path / "sizes" / "tiny"), str(tmp_path / "sizes" / "tiny.2"))
    _make_run(second)
    assert logtree.runs_of(str(tmp_path / "sizes"), "tiny") == [first, second]
    with pytest.raises(UserError, match="--if_exists=overwrite"):
        logtree.claim_run_dir(str(tmp_path), "sizes", "tiny", "error")
    assert logtree.claim_run_dir(str(tmp_path), "sizes", "tiny", "overwrite") == first
    assert os.listdir(first) == [logtree.CLAIM] and os.path.exists(second)


def test_an_empty_leftover_dir_is_reused(tmp_path):
    os.makedirs(tmp_path / "sizes" / "tiny")
    assert logtree.claim_run_dir(str(tmp_path), "sizes", "tiny") == str(tmp_path / "sizes" / "tiny")


def test_a_claimed_dir_is_taken_until_its_claimant_is_gone(tmp_path):
    # A script claims every model's dir before it trains the first: a second script on the same log
    # dir must not take the first's still-empty `small` (it used to: an empty dir counted as free).
    first = [logtree.claim_run_dir(str(tmp_path), "sizes", m) for m in ("tiny", "small")]
    second = [_claim_from_another_process(tmp_path, "new", m) for m in ("tiny", "small")]
    assert [os.path.basename(d) for d in first + second] == ["tiny", "small", "tiny.2", "small.2"]
    assert logtree.claim_run_dir(str(tmp_path), "sizes", "small") == first[1]  # this process's own, never trained
    with pytest.raises(UserError, match="claimed by another training"):  # --if_exists=overwrite, while it lives
        _claim_from_another_process(tmp_path, "overwrite")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claim = tmp_path / "sizes" / "small.2" / logtree.CLAIM
    claim.write_text(json.dumps({"pid": int(gone.stdout), "host": platform.node()}))  # its process has ended
    _make_run(first[1])  # this process's small has started training: taken
    assert logtree.claim_run_dir(str(tmp_path), "sizes", "small") == str(tmp_path / "sizes" / "small.2")


def _claim_from_another_process(tmp_path, if_exists, model="tiny"):
    code = (
        f"from tbreg import logtree; from tbreg.errors import UserError\n"
        f"try: print(logtree.claim_run_dir({str(tmp_path)!r}, 'sizes', {model!r}, {if_exists!r}))\n"
        f"except UserError as e: print('UserError', e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    if out.startswith("UserError"):
        raise UserError(out.removeprefix("UserError "))
    return out.strip()


def test_two_processes_racing_for_run_dirs_never_share_one(tmp_path):
    code = (
        "import os, sys; from tbreg import logtree\n"
        "for _ in range(25):\n"
        "    run = logtree.claim_run_dir(sys.argv[1], 'sizes', 'tiny')\n"
        "    open(os.path.join(run, 'run.json'), 'w').close()  # as a training starts writing\n"
        "    print(run)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    claimed = [line for p in procs for line in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert len(claimed) == 50 and len(set(claimed)) == 50


@pytest.mark.parametrize("root", ["local", "ram"])
def test_copy_run_is_byte_exact(tmp_path, root):
    base = str(tmp_path) if root == "local" else f"ram://copy-{os.getpid()}"
    src, dst = f"{base}/sizes/tiny", f"{base}/regularizers/tiny"
    files = _make_run(src)
    assert logtree.copy_run(src, dst) == dst
    assert _snapshot(dst) == files
    assert sorted(tf.io.gfile.listdir(f"{base}/regularizers")) == ["tiny"]  # no temp dir left


def test_copy_between_two_trees_and_overwrite(tmp_path):
    src, dst = str(tmp_path / "a" / "sizes" / "tiny"), str(tmp_path / "b" / "regularizers" / "tiny")
    _make_run(src)
    _make_run(dst, {"run.json": b"old"})
    with pytest.raises(UserError, match="already exists.*--overwrite"):
        logtree.copy_run(src, dst)
    assert _snapshot(dst) == {"run.json": b"old"}
    logtree.copy_run(src, dst, overwrite=True)
    assert _snapshot(dst) == _snapshot(src)
    assert os.listdir(tmp_path / "b" / "regularizers") == ["tiny"]


def test_missing_or_empty_source_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(
        UserError, match=r"no such run dir; train it first: tbreg-train-sizes --logdir=.* --models=tiny"
    ):
        logtree.copy_run(str(tmp_path / "sizes" / "tiny"), str(tmp_path / "regularizers" / "tiny"))
    os.makedirs(tmp_path / "sizes" / "tiny" / "train")
    with pytest.raises(UserError, match="run dir is empty; train it first"):
        logtree.copy_run(str(tmp_path / "sizes" / "tiny"), str(tmp_path / "regularizers" / "tiny"))
    assert not (tmp_path / "regularizers").exists()


def test_failure_mid_copy_leaves_destination_as_it_was(tmp_path):
    src, dst = tmp_path / "sizes" / "tiny", tmp_path / "regularizers" / "tiny"
    _make_run(str(src))
    os.symlink(tmp_path / "gone", src / "validation" / "zz-dangling")  # unreadable: copy fails midway
    _make_run(str(dst), {"run.json": b"keep me"})
    with pytest.raises(UserError, match="zz-dangling.*was left as it was"):
        logtree.copy_run(str(src), str(dst), overwrite=True)
    assert _snapshot(str(dst)) == {"run.json": b"keep me"}
    assert os.listdir(tmp_path / "regularizers") == ["tiny"]  # the temp dir is gone too
    with pytest.raises(UserError):
        logtree.copy_run(str(src), str(tmp_path / "regularizers" / "new"))
    assert os.listdir(tmp_path / "regularizers") == ["tiny"]


def test_write_run_json_replaces_atomically(tmp_path):
    logtree.write_run_json(str(tmp_path), {"status": "running"})
    logtree.write_run_json(str(tmp_path), {"status": "completed", "best_value": 0.5})
    assert logtree.read_run_json(str(tmp_path)) == {"schema_version": 1, "status": "completed", "best_value": 0.5}
    assert os.listdir(tmp_path) == ["run.json"]


@pytest.mark.parametrize("root", ["local", "ram"])
def test_atomic_write_replaces_or_leaves_the_old_file(tmp_path, root):
    folder = str(tmp_path) if root == "local" else f"ram://{tmp_path.name}"
    tf.io.gfile.makedirs(folder)
    path = os.path.join(folder, "events.out.tfevents.1")
    with logtree.atomic_write(path) as f:
        f.write(b"old")
        temps = tf.io.gfile.listdir(folder)
    assert len(temps) == 1 and temps[0].startswith(".") and ".tmp-" in temps[0] and "tfevents" not in temps[0]

    def refuse(tmp):
        raise KeyboardInterrupt

    for fail_in_body in (True, False):  # an error while writing, or a check that refuses the file
        with pytest.raises(KeyboardInterrupt), logtree.atomic_write(path, "w", check=refuse) as f:
            f.write("new")
            if fail_in_body:
                raise KeyboardInterrupt
        assert _snapshot(folder) == {"events.out.tfevents.1": b"old"}
    with logtree.atomic_write(path, "w", check=lambda tmp: None) as f:
        f.write("new")
    assert _snapshot(folder) == {"events.out.tfevents.1": b"new"}


# ---------------------------------------------------------------------------------------------
# run.json as readers get it: checked, never a traceback (issue 7). Also used by test_share and
# test_reliability to damage the run.json of real runs.

WRONG_TYPES = (
    b'{"model": "tiny", "dataset": "mnist1d", "best_epoch": "x", "params": "many", "status": 3, '
    b'"epochs": NaN, "hparams": [1], "started": 5, "monitor": null, "best_value": Infinity}'
)
BAD_RUN_JSON = {  # kind: bytes of run.json, or None for a directory named run.json
    "invalid json": b'{"status": "completed", "epochs": 4',
    "empty": b"",
    "not text": b"\xff\xfe\x00garbage\x9c",
    "list": b'[{"status": "completed"}]',
    "wrong types": WRONG_TYPES,
    "directory": None,
}
BAD_FIELDS = ("best_epoch", "params", "status", "epochs", "hparams", "started", "monitor", "best_value")


def write_bad_run_json(run_dir, kind) -> str:
    """Replaces `run_dir`'s run.json by the bad one of `kind`; returns its path."""
    path = os.path.join(str(run_dir), logtree.RUN_JSON)
    if os.path.isdir(path):
        os.rmdir(path)
    elif os.path.exists(path):
        os.remove(path)
    if BAD_RUN_JSON[kind] is None:
        os.mkdir(path)
    else:
        with open(path, "wb") as f:
            f.write(BAD_RUN_JSON[kind])
    return path


def check_bad_run_json_warnings(err: str, path: str, kind: str) -> None:
    """stderr holds only one-line warnings naming `path`: one per bad field, or one for the file."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(line.startswith(f"tbreg: warning: {path}: ") for line in lines), err
    if kind == "wrong types":
        assert [line.split("field ")[1].split(" ")[0].strip("'") for line in lines] == list(BAD_FIELDS)
        assert all(line.endswith("ignoring that field") for line in lines)
    else:
        assert len(lines) == 1 and "using the run without its record" in lines[0]


@pytest.mark.parametrize("kind", BAD_RUN_JSON)
def test_read_run_json_checks_the_record(tmp_path, capsys, kind):
    path = write_bad_run_json(tmp_path, kind)
    record = logtree.read_run_json(str(tmp_path))
    assert record == ({"model": "tiny", "dataset": "mnist1d"} if kind == "wrong types" else None)
    check_bad_run_json_warnings(capsys.readouterr().err, path, kind)
    assert logtree.read_run_json(str(tmp_path)) == record
    assert capsys.readouterr().err == ""  # read twice, warned once
    reason = {
        "invalid json": "not valid JSON (Expecting ',' delimiter at line 1 column 36)",
        "empty": "empty file",
        "not text": "not text",
        "list": "holds a JSON list, not an object",
        "directory": "is a directory",
    }
    problems = logtree.load_run_json(str(tmp_path))[1]
    if kind in reason:
        assert problems[0].startswith(reason[kind])
    else:
        assert problems[:2] == [
            "field 'best_epoch' is \"x\", not a whole number >= 0 or null; ignoring that field",
            "field 'params' is \"many\", not a whole number >= 0; ignoring that field",
        ]
        assert "field 'epochs' is nan" in problems[3]


def test_read_run_json_keeps_good_records_and_unknown_fields(tmp_path, capsys):
    record = {
        "status": "aggregate",
        "seed": None,
        "best_epoch": 0,
        "best_value": 0.25,
        "resumable": False,
        "members": ["seed_1"],
        "overfitting_onset": None,
        "something_new": [1, {"a": 2}],
    }
    logtree.write_run_json(str(tmp_path), record)
    assert logtree.read_run_json(str(tmp_path)) == {"schema_version": 1, **record}
    assert capsys.readouterr().err == ""
    assert logtree.read_run_json(str(tmp_path / "nope")) is None


# ---------------------------------------------------------------------------------------------
# baseline copy never replaces more than one run (issue 18, item 2)


def _family(root):
    """`root/sizes/{tiny,small}` and `root/regularizers/l2`: three runs of two families."""
    for rel in ("sizes/tiny", "sizes/small", "regularizers/l2"):
        _make_run(os.path.join(root, rel))
    return _snapshot(root)


@pytest.mark.parametrize(
    "dst, message",
    [
        ("runs/sizes", "contains the source run"),
        ("runs", "contains the source run"),
        ("runs/sizes/tiny", "is the source itself"),
        ("runs/sizes/tiny/nested", "lies inside the source"),
        ("other/sizes", "is not one run dir"),
        ("other", "is not one run dir"),
    ],
)
def test_copy_refuses_a_destination_holding_or_inside_the_source_or_more_than_one_run(tmp_path, capsys, dst, message):
    from conftest import assert_one_line_error, tbreg

    before = _family(str(tmp_path / "runs"))
    other = _family(str(tmp_path / "other"))
    src = tmp_path / "runs" / "sizes" / "tiny"
    code, out, err = tbreg(capsys, "baseline", "copy", src, tmp_path / dst, "--overwrite")
    assert_one_line_error(code, err, str(tmp_path / dst), message)
    assert _snapshot(str(tmp_path / "runs")) == before and _snapshot(str(tmp_path / "other")) == other
    assert sorted(os.listdir(tmp_path / "runs" / "sizes")) == ["small", "tiny"]  # no temp dir either


def test_overwrite_replaces_one_run_or_one_seed_group(tmp_path):
    src = str(tmp_path / "sizes" / "tiny")
    _make_run(src)
    group = tmp_path / "regularizers" / "tiny"
    for member in ("seed_0", "seed_1", "mean"):
        _make_run(str(group / member), {"run.json": b"{}"})
    logtree.copy_run(src, str(group), overwrite=True)
    assert _snapshot(str(group)) == _snapshot(src)
    os.makedirs(tmp_path / "empty")
    logtree.copy_run(src, str(tmp_path / "empty"), overwrite=True)  # an empty dir holds nothing to lose
    assert _snapshot(str(tmp_path / "empty")) == _snapshot(src)


def _tensorboard_runs(logdir):
    """The dirs TensorBoard's loader lists as runs (those holding an event file), relative."""
    from tensorboard.backend.event_processing import io_wrapper

    return sorted(os.path.relpath(d, logdir) for d in io_wrapper.GetLogdirSubdirectories(str(logdir)))


def test_a_copy_killed_midway_is_invisible_to_tensorboard_and_removed_by_the_next_copy(tmp_path):
    import signal
    import subprocess
    import sys

    from conftest import REPO

    src, dst = tmp_path / "sizes" / "tiny", tmp_path / "regularizers" / "tiny"
    _make_run(str(src), {f"train/events.out.tfevents.{i}": os.urandom(1 << 16) for i in range(400)})
    os.makedirs(dst.parent)
    code = f"from tbreg import logtree; logtree.copy_run({str(src)!r}, {str(dst)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO))
    try:
        temp = None
        while proc.poll() is None and temp is None:
            for name in os.listdir(dst.parent):
                if ".tmp-copy-" in name and logtree.list_files(str(dst.parent / name)):
                    temp = dst.parent / name
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert temp is not None and temp.name.startswith(".tiny.tmp-copy-"), "the copy ended before it could be killed"
    assert logtree.list_files(str(temp)) and not any("tfevents" in f for f in logtree.list_files(str(temp)))
    assert _tensorboard_runs(tmp_path) == ["sizes/tiny/train"]
    logtree.copy_run(str(src), str(dst))
    assert os.listdir(dst.parent) == ["tiny"] and logtree.same_tree(str(src), str(dst))
    assert _tensorboard_runs(tmp_path) == ["regularizers/tiny/train", "sizes/tiny/train"]


def test_a_killed_process_not_reaped_yet_holds_no_lock(tmp_path):
    # A SIGKILLed worker whose parent has not waited for it yet is a zombie: signal 0 still reaches
    # it, but its lock is stale (a Ray retry once found "being written by" the worker it had lost).
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (tmp_path / logtree.LOCK).write_text(json.dumps({"pid": child.pid, "host": platform.node()}))
    assert logtree.lock_holder(str(tmp_path)) == {"pid": child.pid, "host": platform.node()}
    child.kill()
    deadline = time.monotonic() + 10
    while open(f"/proc/{child.pid}/stat").read().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert logtree.lock_holder(str(tmp_path)) is None  # a zombie, not reaped: gone all the same
    child.wait()
