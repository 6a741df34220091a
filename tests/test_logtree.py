"""Run dirs and baseline copies: never a second training in a dir, copies all-or-nothing."""

import os

import pytest
import tensorflow as tf
from conftest import run_script

from tbreg import logtree
from tbreg.errors import UserError


def _make_run(root, files=None):
    files = files or {"run.json": b'{"status": "completed"}', "train/events.out.tfevents.1": b"\x00" * 100 + b"abc",
                      "validation/events.out.tfevents.2": b"xyz" * 50, "train_eval/events.out.tfevents.3": b"e"}
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
    assert os.listdir(first) == [] and os.path.exists(second)


def test_an_empty_leftover_dir_is_reused(tmp_path):
    os.makedirs(tmp_path / "sizes" / "tiny")
    assert logtree.claim_run_dir(str(tmp_path), "sizes", "tiny") == str(tmp_path / "sizes" / "tiny")


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
    with pytest.raises(UserError, match=r"no such run dir; train it first: tbreg-train-sizes --logdir=.* --models=tiny"):
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


def test_cli_baseline_copy(tmp_path):
    src, dst = tmp_path / "sizes" / "tiny", tmp_path / "regularizers" / "tiny"
    _make_run(str(src))
    proc = run_script("tbreg.cli", "baseline", "copy", str(src), str(dst))
    assert proc.returncode == 0, proc.stderr
    assert "verified" in proc.stdout and _snapshot(str(dst)) == _snapshot(str(src))
    proc = run_script("tbreg.cli", "baseline", "copy", str(src), str(dst))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert [l for l in proc.stderr.splitlines() if l.startswith("tbreg: error:")][0].endswith("--overwrite to replace it")
    proc = run_script("tbreg.cli", "baseline", "copy", str(tmp_path / "nope"), str(tmp_path / "x"))
    assert proc.returncode == 1 and "no such run dir" in proc.stderr
    proc = run_script("tbreg.cli", "baseline", "move", "a", "b")
    assert proc.returncode != 0 and "usage: tbreg baseline copy" in proc.stderr
