"""`tbreg share …` on a tree made by the scripts: report, export, bundle/open, upload, bad inputs."""

import csv
import html
import html.parser
import io
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import time

import pytest
import tensorflow as tf

from tbreg import logtree, reader, share
from tbreg.share import report as share_report
from tbreg.errors import UserError

from conftest import REPO, assert_one_line_error, own_lines, tbreg
from test_logtree import BAD_RUN_JSON, check_bad_run_json_warnings, write_bad_run_json


@pytest.fixture
def tree(script_tree, tmp_path):
    """A private copy of the script-made tree, safe to damage."""
    dst = tmp_path / "runs"
    shutil.copytree(script_tree["logdir"], dst)
    return dst


def event_file(run_dir, split="train"):
    d = os.path.join(run_dir, split)
    return os.path.join(d, next(f for f in sorted(os.listdir(d)) if reader.is_event_file(f)))


def flip_byte(path, offset=None):
    data = bytearray(open(path, "rb").read())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x40
    open(path, "wb").write(bytes(data))


def scalar_rows_from_event_files(logdir):
    """Every scalar below `logdir` decoded straight from the event protos (not through tbreg.reader)."""
    rows = set()
    for dirpath, _, files in os.walk(logdir):
        for name in files:
            if "tfevents" not in name:
                continue
            run_dir, split = os.path.split(dirpath)
            family_dir, run = os.path.split(run_dir)
            plugin = {}
            for event in tf.compat.v1.train.summary_iterator(os.path.join(dirpath, name)):
                for v in event.summary.value:
                    plugin.setdefault(v.tag, v.metadata.plugin_data.plugin_name)
                    if plugin[v.tag] == "scalars":
                        value = float(tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
                        rows.add((os.path.basename(family_dir), run, split, v.tag, event.step, event.wall_time, value))
    return rows


# ---------------------------------------------------------------------------------------------
# export


def test_export_csv_matches_event_files(script_tree, tmp_path, capsys):
    out = tmp_path / "scalars.csv"
    code, stdout, err = tbreg(capsys, "share", "export", script_tree["logdir"], "-o", out)
    assert code == 0, err
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == share.EXPORT_COLUMNS
    got = {(r[0], r[1], r[2], r[3], int(r[4]), float(r[5]), float(r[6])) for r in rows[1:]}
    assert len(got) == len(rows) - 1  # no duplicates
    assert got == scalar_rows_from_event_files(script_tree["logdir"])
    assert {(r[0], r[1]) for r in got} == {
        ("sizes", "tiny"),
        ("sizes", "small"),
        ("regularizers", "tiny"),
        ("regularizers", "l2"),
    }
    assert {r[2] for r in got} >= {"train", "validation"}
    assert f"{len(got):,} rows" in stdout


def test_export_json_has_the_same_rows(script_tree, tmp_path, capsys):
    code, _, err = tbreg(capsys, "share", "export", script_tree["logdir"], "-o", tmp_path / "s.json")
    assert code == 0, err
    records = json.loads((tmp_path / "s.json").read_text())
    assert set(records[0]) == set(share.EXPORT_COLUMNS)
    got = {tuple(r[c] for c in share.EXPORT_COLUMNS) for r in records}
    assert got == scalar_rows_from_event_files(script_tree["logdir"])


def test_export_keeps_every_point_beyond_default_size_guidance(tmp_path):
    run = tmp_path / "runs" / "fam" / "long"
    with tf.summary.create_file_writer(str(run / "train")).as_default():
        for step in range(1200):  # EventAccumulator keeps 10 tensors (or 1,000 scalars) per tag by default
            tf.summary.scalar("epoch_loss", 1.0 / (step + 1), step=step)
    result = share.export_scalars(str(tmp_path / "runs"), str(tmp_path / "s.csv"))
    assert result.rows == 1200
    json_out = share.export_scalars(str(tmp_path / "runs"), str(tmp_path / "s.json"))
    assert json_out.rows == 1200


def test_export_writes_nonfinite_values_as_null_in_json(tmp_path):
    run = tmp_path / "runs" / "fam" / "diverged"
    with tf.summary.create_file_writer(str(run / "train")).as_default():
        for step, value in enumerate([1.0, float("nan"), float("inf")]):
            tf.summary.scalar("epoch_loss", value, step=step)
    share.export_scalars(str(tmp_path / "runs"), str(tmp_path / "s.json"))
    assert [r["value"] for r in json.loads((tmp_path / "s.json").read_text())] == [1.0, None, None]
    share.export_scalars(str(tmp_path / "runs"), str(tmp_path / "s.csv"))
    values = [row["value"] for row in csv.DictReader(open(tmp_path / "s.csv"))]
    assert values[0] == "1.0" and math.isnan(float(values[1])) and float(values[2]) == math.inf


# ---------------------------------------------------------------------------------------------
# report


class _Page(html.parser.HTMLParser):
    """Collects what a test checks in the report: tags, attributes, text per section, tables, scripts."""

    def __init__(self):
        super().__init__()
        self.start_tags, self.scripts, self.tables, self.text = [], [], [], []
        self._in = []
        self._script = None

    def handle_starttag(self, tag, attrs):
        self.start_tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = [dict(attrs), ""]
        elif tag == "table":
            self.tables.append({"class": dict(attrs).get("class"), "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        self._in.append(tag)

    def handle_endtag(self, tag):
        if tag == "script" and self._script:
            self.scripts.append(self._script)
            self._script = None
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        if self._script is not None:
            self._script[1] += data
            return
        self.text.append(data)
        if self._in and self._in[-1] in ("td", "th") and self.tables and self.tables[-1]["rows"]:
            self.tables[-1]["rows"][-1].append(data)


def parse_report(path):
    page = _Page()
    page.feed(open(path, encoding="utf-8").read())
    data = next(json.loads(body) for attrs, body in page.scripts if attrs.get("id") == "tbreg-data")
    return page, data


def test_report_contents(script_tree, tmp_path, capsys):
    out = tmp_path / "report.html"
    code, stdout, err = tbreg(capsys, "share", "report", script_tree["logdir"], "-o", out)
    assert code == 0, err
    assert "2 families, 4 runs" in stdout
    page, data = parse_report(out)
    text = " ".join(page.text)
    assert [t for t, _ in page.start_tags].count("h2") == 2 and "sizes" in text and "regularizers" in text
    # Self-contained: scripts inline, nothing fetched from anywhere.
    assert all("src" not in attrs for attrs, _ in page.scripts)
    assert not [(t, a) for t, a in page.start_tags if t in ("link", "img", "iframe") or "src" in a]
    assert any("Plotly" in body and len(body) > 1_000_000 for _, body in page.scripts)
    # Summary tables: one row per run, with run.json's status and best epoch.
    summaries = [t["rows"] for t in page.tables if t["class"] == "summary"]
    assert [[row[0] for row in rows[1:]] for rows in summaries] == [["tiny (baseline)", "l2"], ["tiny", "small"]]
    header = summaries[0][0]
    assert {"verdict", "gap vs"} <= set(header) and summaries[0][1][header.index("gap vs")] == "train_eval"
    assert all(row[header.index("verdict")] not in ("", "–") for row in summaries[0][1:])
    info = logtree.read_run_json(os.path.join(script_tree["logdir"], "sizes", "small"))
    small = summaries[1][2]
    assert small[1] == info["status"] and small[4] == str(info["best_epoch"])
    hparams = [t["rows"] for t in page.tables if t["class"] == "hparams"]
    assert hparams[0][0][:4] == ["run", "dataset", "seed", "model"] and hparams[0][2][3] == "l2"
    # Charts: train solid, validation dashed; the points are the event files' points.
    by_tag = {}
    for chart in data["charts"]:
        by_tag.setdefault(chart["layout"]["title"]["text"], []).append(chart)
    assert "epoch_loss" in by_tag and "epoch_accuracy" in by_tag
    loss = by_tag["epoch_loss"][1]  # sizes
    trace = next(t for t in loss["traces"] if t["name"] == "small validation")
    assert trace["line"]["dash"] == "dash"
    assert next(t for t in loss["traces"] if t["name"] == "small train")["line"]["dash"] == "solid"
    points = reader.scalars(os.path.join(script_tree["logdir"], "sizes", "small", "validation"))["epoch_loss"]
    assert trace["x"] == [p.step for p in points]
    assert trace["y"] == pytest.approx([p.value for p in points], rel=1e-5)
    # Regularization components: charts when a family's runs logged them, else an empty state.
    runs = reader.load_runs(str(script_tree["logdir"]))
    without = {r.family for r in runs} - {
        r.family for r in runs for s in r.scalars.values() for t in s if share_report._is_regularization(t)
    }
    assert text.count("No regularization components were logged") == len(without)


def test_report_shows_regularization_components(tmp_path):
    """A family whose runs logged the callbacks' tags gets their charts; one without, the empty state."""
    for family, tags in [("plain", ["epoch_loss"]), ("regular", ["epoch_loss", *REG_TAGS])]:
        for split in ("train", "validation"):
            with tf.summary.create_file_writer(str(tmp_path / "runs" / family / "m" / split)).as_default():
                for step in range(4):
                    for tag in tags if split == "train" else ["epoch_loss"]:
                        tf.summary.scalar(tag, 0.1 * step, step=step)
    share.write_report(str(tmp_path / "runs"), str(tmp_path / "r.html"))
    page, data = parse_report(tmp_path / "r.html")
    charts = lambda i, group: {
        a["data-tag"] for t, a in page.start_tags if t == "div" and a.get("id", "").startswith(f"chart-{i}-{group}-")
    }  # noqa: E731
    assert charts(0, "main") == charts(1, "main") == {"epoch_loss"}
    assert charts(0, "reg") == set() and charts(1, "reg") == set(REG_TAGS)
    assert " ".join(page.text).count("No regularization components were logged") == 1
    chart = next(c for c in data["charts"] if c["layout"]["title"]["text"] == "regularization/dense_1")
    assert [t["name"] for t in chart["traces"]] == ["m train"]
    assert chart["traces"][0]["y"] == pytest.approx([0.0, 0.1, 0.2, 0.3])


REG_TAGS = ["epoch_regularization_loss", "regularization/dense_1", "gap/sparse_categorical_crossentropy"]


def test_report_escapes_every_name(tree, tmp_path):
    evil = '<img src=x onerror=alert(1)> & "q"'
    os.rename(tree / "sizes" / "small", tree / "sizes" / evil)
    with tf.summary.create_file_writer(str(tree / "sizes" / "tiny" / "train")).as_default():
        tf.summary.scalar("<b>tag</b>", 1.0, step=0)
    share.write_report(str(tree), str(tmp_path / "r.html"))
    raw = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<img" not in raw.replace("&lt;img", "") and "<b>tag" not in raw
    page, data = parse_report(tmp_path / "r.html")
    assert not [t for t, _ in page.start_tags if t in ("img", "b")]
    assert evil in [row[0] for t in page.tables for row in t["rows"]]
    names = [t["name"] for c in data["charts"] for t in c["traces"]]
    assert html.escape(f"{evil} train") in names  # plotly renders names as HTML: escaped, shown as typed
    assert html.escape("<b>tag</b>") in [c["layout"]["title"]["text"] for c in data["charts"]]


def test_report_fits_50_runs_of_10000_epochs_under_10_mb():
    import numpy as np

    rng = np.random.default_rng(0)
    # 16 distinct random curves of 10,000 epochs, shared round-robin (building 4M points costs seconds)
    curves = [[reader.Point(s, 0.0, float(v)) for s, v in enumerate(rng.random(10_000) + k)] for k in range(16)]
    tags = ["epoch_loss", "epoch_sparse_categorical_crossentropy", "epoch_accuracy"]
    runs = []
    for k in range(50):
        pick = lambda j: curves[(k + j) % len(curves)]  # noqa: E731
        scalars = {
            "train": {
                **{t: pick(j) for j, t in enumerate(tags)},
                "epoch_learning_rate": pick(3),
                "epoch_regularization_loss": pick(4),
            },
            "validation": {t: pick(5 + j) for j, t in enumerate(tags)},
        }
        info = {"status": "completed", "monitor": "val_sparse_categorical_crossentropy", "hparams": {"model": f"m{k}"}}
        runs.append(reader.Run("sizes" if k < 25 else "regularizers", f"m{k}", "", f"x/m{k}", info, scalars))
    text, per_curve = share.render_report(runs, "big")
    size = len(text.encode("utf-8"))
    assert size < 10_000_000, size
    assert per_curve >= share.MIN_POINTS and "downsampled" in text


def test_downsample_keeps_ends_and_extremes():
    values = [1.0] * 10_000
    values[1234], values[8765] = -5.0, 9.0
    xs, ys = share.downsample(list(range(10_000)), values, 200)
    assert len(xs) <= 202 and xs[0] == 0 and xs[-1] == 9999
    assert -5.0 in ys and 9.0 in ys and xs == sorted(xs)
    assert share.downsample([0, 1], [float("nan"), 2.0], 100) == ([0, 1], [None, 2.0])


# ---------------------------------------------------------------------------------------------
# bundle / open


def test_bundle_and_open_round_trip(script_tree, tmp_path, capsys):
    bundle = tmp_path / "runs.tar.gz"
    code, stdout, err = tbreg(capsys, "share", "bundle", script_tree["logdir"], "-o", bundle)
    assert code == 0, err
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile(share.MANIFEST))
    assert names[0] == share.MANIFEST
    files = reader.tree_files(str(script_tree["logdir"]))
    assert [e["path"] for e in manifest["files"]] == files
    for entry in manifest["files"]:
        path = os.path.join(script_tree["logdir"], entry["path"])
        assert entry["size"] == os.path.getsize(path) and entry["sha256"] == logtree.sha256(path)
        assert entry["events"] == (reader.count_events(path) if reader.is_event_file(path) else None)
    assert all(e["events"] > 1 for e in manifest["files"] if reader.is_event_file(e["path"]))
    code, stdout, err = tbreg(capsys, "share", "open", bundle, "--dest", tmp_path / "opened")
    assert code == 0, err
    opened = tmp_path / "opened" / "runs"
    assert logtree.same_tree(str(script_tree["logdir"]), str(opened))
    assert stdout.strip().splitlines()[-1] == f"See them in TensorBoard: tensorboard --logdir {opened}"
    code, _, err = tbreg(capsys, "share", "open", bundle, "--dest", tmp_path / "opened")
    assert_one_line_error(code, err, "already exists")


def _repack(src_bundle, dst_bundle, edit):
    """Copies a bundle member by member; `edit(info, data)` returns the (info, data) to write, or None."""
    with tarfile.open(src_bundle) as src, tarfile.open(dst_bundle, "w:gz") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isfile() else None
            new = edit(info, data)
            if new:
                info, data = new
                dst.addfile(info, io.BytesIO(data) if data is not None else None)


@pytest.fixture(scope="module")
def good_bundle(script_tree, tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle") / "runs.tar.gz"
    share.make_bundle(str(script_tree["logdir"]), str(path))
    return path


def _evil_member(kind):
    """(TarInfo, data, manifest path) of a member that must never be extracted."""
    if kind == "symlink":
        info = tarfile.TarInfo("runs/sizes/tiny/escape")
        info.type, info.linkname = tarfile.SYMTYPE, "../../../../../../etc"
        return info, None, "sizes/tiny/escape"
    name = {"dotdot": "runs/../../x", "absolute": "/tmp/tbreg-evil-x"}[kind]
    info = tarfile.TarInfo(name)
    info.size = 4
    return info, b"evil", name.removeprefix("runs/")


def _add_listed(good_bundle, bad_bundle, info, data, listed_path):
    """`good_bundle` plus the member `info`, listed in the manifest so only the path checks can stop it."""
    with tarfile.open(good_bundle) as src, tarfile.open(bad_bundle, "w:gz") as dst:
        for member in src.getmembers():
            blob = src.extractfile(member).read()
            if member.name == share.MANIFEST:
                manifest = json.loads(blob)
                manifest["files"].append({"path": listed_path, "size": info.size, "sha256": "0" * 64, "events": None})
                blob = json.dumps(manifest).encode()
                member.size = len(blob)
            dst.addfile(member, io.BytesIO(blob))
        dst.addfile(info, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_open_refuses_members_leaving_the_destination(good_bundle, tmp_path, capsys, kind):
    bad = tmp_path / "bad.tar.gz"
    info, data, listed = _evil_member(kind)
    _add_listed(good_bundle, bad, info, data, listed)
    dest = tmp_path / "dest"
    code, _, err = tbreg(capsys, "share", "open", bad, "--dest", dest)
    assert_one_line_error(code, err, "refusing")
    assert not dest.exists() and not os.path.exists("/tmp/tbreg-evil-x") and not (tmp_path / "x").exists()


def test_open_refuses_a_tampered_event_file(good_bundle, tmp_path, capsys):
    bad = tmp_path / "tampered.tar.gz"

    def edit(info, data):
        if reader.is_event_file(info.name) and "sizes/tiny/train" in info.name:
            data = bytearray(data)
            data[len(data) // 2] ^= 1
            data = bytes(data)
        return info, data

    _repack(good_bundle, bad, edit)
    code, _, err = tbreg(capsys, "share", "open", bad, "--dest", tmp_path / "dest")
    assert_one_line_error(code, err, "sizes/tiny/train", "sha256")
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "dropped member", "not a bundle"])
def test_open_refuses_damaged_bundles(good_bundle, tmp_path, capsys, damage):
    bad = tmp_path / "bad.tar.gz"
    data = bytearray(good_bundle.read_bytes())
    if damage == "truncated":
        bad.write_bytes(bytes(data[: len(data) * 2 // 3]))
    elif damage == "flipped":
        data[len(data) // 2] ^= 0xFF
        bad.write_bytes(bytes(data))
    elif damage == "dropped member":
        _repack(
            good_bundle,
            bad,
            lambda info, blob: None if info.name.endswith("run.json") and "small" in info.name else (info, blob),
        )
    else:
        bad.write_bytes(b"hello, not a tar")
    dest = tmp_path / "dest"
    dest.mkdir()
    code, _, err = tbreg(capsys, "share", "open", bad, "--dest", dest)
    assert_one_line_error(code, err, str(bad))
    assert os.listdir(dest) == []


# ---------------------------------------------------------------------------------------------
# upload


def _dest_files(uri):
    return sorted(logtree.list_files(uri))


def test_upload_local_is_incremental_and_verified(tree, tmp_path, capsys):
    dest = tmp_path / "remote"
    code, stdout, err = tbreg(capsys, "share", "upload", tree, dest)
    assert code == 0, err
    assert logtree.same_tree(str(tree), str(dest))
    assert f"tensorboard --logdir {dest}" in stdout
    again = share.upload(str(tree), str(dest), log=lambda line: None)
    assert again.copied == 0 and again.unchanged == len(reader.tree_files(str(tree)))
    grown = event_file(tree / "sizes" / "tiny")
    with open(grown, "ab") as f:  # event files only grow
        f.write(b"more")
    run_json = tree / "sizes" / "small" / "run.json"
    run_json.write_text(run_json.read_text().replace("0", "1"))  # same size, new content
    result = share.upload(str(tree), str(dest), log=lambda line: None)
    assert result.copied == 2 and logtree.same_tree(str(tree), str(dest))
    assert not [f for f in os.listdir(os.path.dirname(grown.replace(str(tree), str(dest)))) if f.startswith(".")]


def test_upload_to_ram_and_watch_bounded(tree, capsys):
    uri = "ram://tbreg-upload-test/runs"
    code, stdout, err = tbreg(capsys, "share", "upload", tree, uri, "--watch", "--interval", "0", "--max_cycles", "2")
    assert code == 0, err
    assert "in 2 syncs" in stdout and stdout.count("sync 1:") == 1 and "sync 2:" not in stdout
    for rel in reader.tree_files(str(tree)):
        assert logtree.sha256(os.path.join(uri, rel)) == logtree.sha256(os.path.join(tree, rel))
    # (TF's ram:// lists "train_eval/x" under "train" as "_eval": keep only names that exist.)
    listed = [rel for rel in _dest_files(uri) if tf.io.gfile.exists(os.path.join(uri, rel))]
    assert listed == reader.tree_files(str(tree))


def test_upload_refuses_a_copy_that_does_not_verify(tree, tmp_path, monkeypatch):
    real = logtree.sha256
    temp = lambda p: os.path.basename(p).startswith(".") and ".tmp-" in p  # noqa: E731  (the copy, before its rename)
    monkeypatch.setattr(logtree, "sha256", lambda p: "bad" if temp(p) else real(p))
    with pytest.raises(UserError, match="did not verify"):
        share.upload(str(tree), str(tmp_path / "dest"), log=lambda line: None)
    assert [f for f in logtree.list_files(str(tmp_path / "dest"))] == []


def test_upload_watch_stops_cleanly_on_ctrl_c(tree, tmp_path):
    dest = tmp_path / "remote"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tbreg.cli", "share", "upload", str(tree), str(dest), "--watch", "--interval", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        assert "syncing" in proc.stdout.readline()
        assert proc.stdout.readline().startswith("sync 1: copied")
        with open(event_file(tree / "sizes" / "small", "validation"), "ab") as f:
            f.write(b"grown while watching")
        assert proc.stdout.readline().startswith("sync 2: copied 1 ")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "stopped by Ctrl-C" in out and "Traceback" not in err
    assert logtree.same_tree(str(tree), str(dest))
    assert not [p for p in logtree.list_files(str(dest)) if ".tmp" in p]


# ---------------------------------------------------------------------------------------------
# bad inputs: one line, exit 1, nothing written


COMMANDS = {
    "report": ["share", "report", "{logdir}", "-o", "{out}/report.html"],
    "export": ["share", "export", "{logdir}", "-o", "{out}/scalars.csv"],
    "bundle": ["share", "bundle", "{logdir}", "-o", "{out}/runs.tar.gz"],
    "upload": ["share", "upload", "{logdir}", "{out}/remote"],
}


def _run(capsys, name, logdir, out):
    return tbreg(capsys, *(a.format(logdir=logdir, out=out) for a in COMMANDS[name]))


@pytest.mark.parametrize("name", COMMANDS)
def test_missing_and_empty_logdir(tmp_path, capsys, name):
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _run(capsys, name, tmp_path / "nope", out)
    assert_one_line_error(code, err, "nope", "no such log dir")
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, name, tmp_path / "empty", out)
    assert_one_line_error(code, err, "empty")
    assert os.listdir(out) == []


@pytest.mark.parametrize("name", ["report", "export", "bundle"])
@pytest.mark.parametrize("damage", ["corrupted", "truncated"])
def test_damaged_event_file(tree, tmp_path, capsys, name, damage):
    path = event_file(tree / "sizes" / "small", "validation")
    if damage == "corrupted":
        flip_byte(path)
    else:
        os.truncate(path, os.path.getsize(path) - 7)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = _run(capsys, name, tree, out)
    what = "corrupted record at byte" if damage == "corrupted" else "incomplete record at byte"
    assert_one_line_error(code, err, path, what, "TensorBoard silently ignores")
    assert os.listdir(out) == []


def test_inspect_event_file_finds_the_offset(script_tree, tmp_path):
    src = event_file(script_tree["logdir"] / "sizes" / "tiny")
    check = reader.inspect_event_file(src)
    assert check.ok and check.events == reader.count_events(src) and check.size == os.path.getsize(src)
    damaged = tmp_path / "events.out.tfevents.x"
    shutil.copy(src, damaged)
    flip_byte(str(damaged), check.size - 3)  # inside the last record's data checksum
    bad = reader.inspect_event_file(str(damaged))
    assert bad.problem == "corrupted" and bad.events == check.events - 1 and bad.offset < check.size
    live = reader.inspect_event_file(src, size=check.size - 5)  # a live file, judged as it was
    assert live.problem == "truncated" and live.offset == bad.offset


@pytest.mark.parametrize("name", COMMANDS)
def test_unwritable_destination(tree, tmp_path, capsys, name):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a dir")
    code, _, err = _run(capsys, name, tree, blocker)
    assert_one_line_error(code, err, str(blocker))
    assert blocker.read_text() == "not a dir"


def test_unknown_uri_scheme(tree, capsys):
    code, _, err = tbreg(capsys, "share", "upload", tree, "s3://bucket/runs")
    assert_one_line_error(code, err, "unknown URI scheme 's3'")


def test_wrong_output_names_and_stray_flags(tree, tmp_path, capsys):
    code, _, err = tbreg(capsys, "share", "export", tree, "-o", tmp_path / "s.parquet")
    assert_one_line_error(code, err, ".csv or .json")
    code, _, err = tbreg(capsys, "share", "bundle", tree, "-o", tmp_path / "runs.zip")
    assert_one_line_error(code, err, ".tar.gz")
    code, _, err = tbreg(capsys, "share", "report", tree)
    assert_one_line_error(code, err, "missing -o")
    code, _, err = tbreg(capsys, "share", "report", tree, "-o", tmp_path / "r.html", "--watch")
    assert_one_line_error(code, err, "does not take --watch")
    code, _, err = tbreg(capsys, "share", "upload", tree, tmp_path / "d", "--max_cycles", "2")
    assert_one_line_error(code, err, "only apply with --watch")
    assert os.listdir(tmp_path) == ["runs"]


def test_console_error_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "tbreg.cli", "share", "report", str(tmp_path / "nope"), "-o", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=120,
    )
    assert proc.returncode == 1
    assert [l for l in proc.stderr.splitlines() if l.startswith("tbreg")] == [
        f"tbreg: error: {tmp_path / 'nope'}: no such log dir; train one first: tbreg-train-sizes --logdir={tmp_path / 'nope'}"
    ]


@pytest.mark.parametrize("name", ["report", "export"])
def test_keep_damaged_warns_with_file_and_offset_and_uses_the_good_part(tree, tmp_path, capsys, name):
    path = event_file(tree / "sizes" / "small", "validation")
    good = reader.inspect_event_file(path)
    flip_byte(path, good.size - 3)  # inside the last record: every event before it is good
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = tbreg(capsys, *(a.format(logdir=tree, out=out) for a in COMMANDS[name]), "--keep_damaged")
    assert code == 0, err
    (warning,) = [line for line in err.splitlines() if line.startswith("tbreg: warning:")]
    assert (
        path in warning and "corrupted record at byte" in warning and f"using the {good.events - 1} events" in warning
    )
    assert len(os.listdir(out)) == 1
    if name == "export":
        rows = list(csv.DictReader(open(out / "scalars.csv")))
        steps = [
            int(r["step"]) for r in rows if (r["run"], r["split"], r["tag"]) == ("small", "validation", "epoch_loss")
        ]
        assert steps and steps == list(range(len(steps)))  # the good part, from the first epoch on


# ---------------------------------------------------------------------------------------------
# a bad run.json (issue 7): one-line warnings naming the file (and field), the command goes on

READERS = {
    "report": ["share", "report", "{logdir}", "-o", "{out}/report.html"],
    "export": ["share", "export", "{logdir}", "-o", "{out}/scalars.csv"],
    "bundle": ["share", "bundle", "{logdir}", "-o", "{out}/runs.tar.gz"],
    "plot": ["plot", "{logdir}/sizes", "-o", "{out}/sizes.png"],
}


@pytest.mark.parametrize("kind", BAD_RUN_JSON)
@pytest.mark.parametrize("name", READERS)
def test_bad_run_json_is_a_warning_and_the_run_is_still_read(tree, tmp_path, capsys, name, kind):
    path = write_bad_run_json(tree / "sizes" / "small", kind)
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = tbreg(capsys, *(a.format(logdir=tree, out=out) for a in READERS[name]))
    assert code == 0, err
    check_bad_run_json_warnings(err, path, kind)
    (written,) = os.listdir(out)
    if name == "report":
        text = (out / written).read_text()
        assert ">small</td>" in text and ">tiny</td>" in text
    elif name == "export":
        runs = {(r["family"], r["run"]) for r in csv.DictReader(open(out / written))}
        assert ("sizes", "small") in runs and len(runs) == 4
    elif name == "plot":
        assert "(tiny, small)" in stdout or "(small, tiny)" in stdout
    else:  # the bundle carries the bad run.json byte for byte, like any file of the tree
        code, _, err = tbreg(capsys, "share", "open", out / written, "--dest", tmp_path / "opened")
        assert code == 0, err
        assert logtree.same_tree(str(tree), str(tmp_path / "opened" / "runs"))


# ---------------------------------------------------------------------------------------------
# issue 8: disk full while opening or uploading, dangling --dest, foreign manifests, backslashes, `$`

KEEP = b"the user's own file: never touched"


@pytest.fixture
def full_disk(tmp_path):
    """A 96 kB tmpfs (root only) holding a file of the user's: a real 'No space left on device'."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    mounted = (
        os.geteuid() == 0
        and not subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True
        ).returncode
    )
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (needs root); the RLIMIT_FSIZE variant covers it")
    (mount / "keep.txt").write_bytes(KEEP)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def _leftovers(root):
    return [os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files if ".tbreg-" in n]


def _complete_copies(tree, dest):
    """Every file at `dest` is a whole, verified copy of its source; returns how many there are."""
    files = logtree.list_files(str(dest)) if os.path.isdir(dest) else []
    for rel in files:
        assert logtree.sha256(os.path.join(dest, rel)) == logtree.sha256(os.path.join(tree, rel)), rel
    return len(files)


@pytest.mark.parametrize("command", ["open", "upload"])
def test_disk_full_is_one_line_and_removes_only_our_partial_output(good_bundle, tree, full_disk, capsys, command):
    if command == "open":
        code, _, err = tbreg(capsys, "share", "open", good_bundle, "--dest", full_disk)
        assert_one_line_error(
            code,
            err,
            f"extracting {good_bundle} into {full_disk} failed (No space left on device)",
            f"nothing was added to {full_disk}",
        )
        assert sorted(os.listdir(full_disk)) == ["keep.txt"]
    else:
        dest = full_disk / "remote"
        code, _, err = tbreg(capsys, "share", "upload", tree, dest)
        assert_one_line_error(code, err, "failed (No space left on device)", "complete and verified")
        copied = _complete_copies(tree, dest)
        assert 0 < copied < len(reader.tree_files(str(tree)))
        assert f"the {copied} files copied before it" in err
        subprocess.run(["mount", "-o", "remount,size=1m", str(full_disk)], check=True)  # space freed: run again
        code, stdout, err = tbreg(capsys, "share", "upload", tree, dest)
        assert code == 0, err
        assert logtree.same_tree(str(tree), str(dest)) and f"{copied} already up to date" in stdout
    assert (full_disk / "keep.txt").read_bytes() == KEEP and not _leftovers(full_disk)


def _file_size_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize("command", ["open", "upload"])
def test_file_too_large_is_one_line_from_the_console_command(good_bundle, tree, tmp_path, command):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_bytes(KEEP)
    remote = dest / "remote"
    args = ["open", str(good_bundle), "--dest", str(dest)] if command == "open" else ["upload", str(tree), str(remote)]
    proc = subprocess.run(
        [sys.executable, "-m", "tbreg.cli", "share", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
        preexec_fn=_file_size_limit(16_000),
    )
    assert proc.returncode == 1
    (line,) = own_lines(proc.stderr)
    assert line.startswith("tbreg: error: ") and "File too large" in line, line
    assert (dest / "keep.txt").read_bytes() == KEEP and not _leftovers(dest)
    if command == "open":
        assert os.listdir(dest) == ["keep.txt"]
    else:
        assert _complete_copies(tree, remote) > 1
        assert all(os.path.getsize(os.path.join(tree, f)) < 16_000 for f in logtree.list_files(str(remote)))


@pytest.mark.parametrize("where", ["dest", "parent"])
@pytest.mark.parametrize("command", ["open", "upload"])
def test_dangling_symlink_destination_is_one_line(good_bundle, tree, tmp_path, capsys, command, where):
    link = tmp_path / "link"
    os.symlink(tmp_path / "gone", link)
    dest = link if where == "dest" else link / "sub"
    args = ["open", good_bundle, "--dest", dest] if command == "open" else ["upload", tree, dest]
    code, _, err = tbreg(capsys, "share", *args)
    named = f"{dest} is" if where == "dest" else f"{dest}: {link} is"
    assert_one_line_error(code, err, f"{named} a symlink to {tmp_path / 'gone'}, which does not exist")
    assert os.path.islink(link) and not (tmp_path / "gone").exists()


def _edit_manifest(good_bundle, bad_bundle, edit_manifest=None, rename=None):
    """A copy of `good_bundle` with its manifest edited and its members renamed."""

    def edit(info, data):
        if info.name == share.MANIFEST and edit_manifest:
            manifest = json.loads(data)
            edit_manifest(manifest)
            data = json.dumps(manifest).encode()
            info.size = len(data)
        elif rename:
            info.name = rename(info.name)
        return info, data

    _repack(good_bundle, bad_bundle, edit)


def _drop(*fields, value=None):
    def edit(manifest):
        entry = next(e for e in manifest["files"] if e["path"] == "sizes/tiny/run.json")
        for field in fields:
            entry.pop(field) if value is None else entry.__setitem__(field, value)

    return edit


@pytest.mark.parametrize(
    "edit, field",
    [
        (_drop("size"), "size"),
        (_drop("sha256"), "sha256"),
        (_drop("size", "sha256", "events"), "size"),
        (_drop("size", value="12"), "size"),
        (_drop("sha256", value="abc"), "sha256"),
        (_drop("events", value=-1), "events"),
    ],
    ids=["no size", "no sha256", "path only", "size a string", "short sha256", "negative events"],
)
def test_open_refuses_a_foreign_manifest_entry_in_one_line(good_bundle, tmp_path, capsys, edit, field):
    bad = tmp_path / "foreign.tar.gz"
    _edit_manifest(good_bundle, bad, edit)
    code, _, err = tbreg(capsys, "share", "open", bad, "--dest", tmp_path / "dest")
    assert_one_line_error(
        code,
        err,
        f"{bad}: its manifest has no valid {field} for sizes/tiny/run.json",
        "hand-edited or foreign manifest",
    )
    assert not (tmp_path / "dest").exists()


def _backslashes(manifest):
    for entry in manifest["files"]:
        entry["path"] = entry["path"].replace("/", "\\")


@pytest.mark.parametrize("how", ["members and manifest", "members only", "root"])
def test_open_refuses_backslash_names_in_one_line(good_bundle, tmp_path, capsys, how):
    bad = tmp_path / "windows.tar.gz"
    if how == "members and manifest":  # what tbreg made on Windows with os.sep paths
        windows = lambda name: name.replace("/", "\\").replace("runs\\", "runs/", 1)  # noqa: E731
        _edit_manifest(good_bundle, bad, _backslashes, windows)
    elif how == "members only":
        _edit_manifest(good_bundle, bad, None, lambda name: name.replace("/", "\\"))
    else:
        _edit_manifest(good_bundle, bad, lambda m: m.__setitem__("root", "C:\\runs"))
    code, _, err = tbreg(capsys, "share", "open", bad, "--dest", tmp_path / "dest")
    assert_one_line_error(code, err, str(bad), "has a backslash in its name", "refusing it")
    assert not (tmp_path / "dest").exists()


def test_bundle_refuses_a_file_name_with_a_backslash(tree, tmp_path, capsys):
    odd = tree / "sizes" / "tiny" / "notes\\today.txt"
    odd.write_text("a file name Linux allows")
    code, _, err = tbreg(capsys, "share", "bundle", tree, "-o", tmp_path / "runs.tar.gz")
    assert_one_line_error(code, err, f"{odd}: a backslash in a file name cannot go into a bundle", "rename it")
    assert not (tmp_path / "runs.tar.gz").exists()


def test_dollar_in_names_is_kept_and_printed_literally(script_tree, tmp_path, capsys):
    """Sweeps make run dirs like `tiny$1` from grid values: every command copies and names them as they are."""
    logdir = tmp_path / "runs$1"
    shutil.copytree(script_tree["logdir"] / "sizes", logdir / "sizes$HOME")
    os.rename(logdir / "sizes$HOME" / "tiny", logdir / "sizes$HOME" / "tiny$1")
    code, stdout, err = tbreg(capsys, "share", "export", logdir, "-o", tmp_path / "s$x.csv")
    assert code == 0, err
    assert f"wrote {tmp_path / 's$x.csv'} (" in stdout
    assert {(r["family"], r["run"]) for r in csv.DictReader(open(tmp_path / "s$x.csv"))} == {
        ("sizes$HOME", "tiny$1"),
        ("sizes$HOME", "small"),
    }
    bundle = tmp_path / "b$1.tar.gz"
    code, stdout, err = tbreg(capsys, "share", "bundle", logdir, "-o", bundle)
    assert code == 0, err
    assert f"files of runs$1/" in stdout and f"Open it with: tbreg share open '{bundle}' --dest=DIR" in stdout
    code, stdout, err = tbreg(capsys, "share", "open", bundle, "--dest", tmp_path / "d$2")
    assert code == 0, err
    opened = tmp_path / "d$2" / "runs$1"
    assert logtree.same_tree(str(logdir), str(opened))
    assert f"extracted them to {opened}\n" in stdout and f"tensorboard --logdir '{opened}'" in stdout
    code, stdout, err = tbreg(capsys, "share", "upload", logdir, tmp_path / "up$3")
    assert code == 0, err
    assert logtree.same_tree(str(logdir), str(tmp_path / "up$3"))
    assert f"tensorboard --logdir '{tmp_path / 'up$3'}'" in stdout
    src, dst = logdir / "sizes$HOME" / "tiny$1", logdir / "regularizers" / "tiny$1"
    code, stdout, err = tbreg(capsys, "baseline", "copy", src, dst)
    assert code == 0, err
    assert stdout.startswith(f"copied {src} -> {dst} (")
    assert logtree.same_tree(str(src), str(dst))
    again = logtree.copy_baseline(str(logdir), "sizes$HOME", "regularizers", "tiny$1")  # an identical copy is there
    assert again is None and os.listdir(logdir / "regularizers") == ["tiny$1"]
    with pytest.raises(UserError, match=r"--logdir='/.*/runs\$1' --models='tiny\$2'"):
        logtree.copy_run(str(logdir / "sizes" / "tiny$2"), str(tmp_path / "x"))


# ---------------------------------------------------------------------------------------------
# what readers open: links stay in the tree, only regular files, outputs outside the tree (issue 18)

SECRET = b"-----BEGIN OPENSSH PRIVATE KEY----- not for sharing"


def _bundle_bytes(bundle):
    with tarfile.open(bundle) as tar:
        return b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())


def test_bundle_and_upload_never_follow_links_out_of_the_tree(tree, tmp_path, capsys):
    outside = tmp_path / "home"
    (outside / ".ssh").mkdir(parents=True)
    (outside / ".ssh" / "id_rsa").write_bytes(SECRET)
    run = tree / "sizes" / "tiny"
    os.symlink(outside / ".ssh" / "id_rsa", run / "notes.txt")
    os.symlink(outside / ".ssh", run / "keys")
    os.symlink("loop", run / "loop")  # a symlink loop
    os.symlink(run / "run.json", run / "record.json")  # a link inside the tree: kept
    code, _, err = tbreg(capsys, "share", "bundle", tree, "-o", tmp_path / "runs.tar.gz")
    assert code == 0, err
    assert SECRET not in _bundle_bytes(tmp_path / "runs.tar.gz")
    with tarfile.open(tmp_path / "runs.tar.gz") as tar:
        assert "runs/sizes/tiny/record.json" in tar.getnames()
        assert not [n for n in tar.getnames() if n.endswith(("notes.txt", "id_rsa", "loop"))]
    warnings = own_lines(err)
    assert any(str(run / "notes.txt") in w and "outside the tree; not followed" in w for w in warnings), err
    assert any(str(run / "keys") in w and "outside the tree; not followed" in w for w in warnings), err
    assert any(str(run / "loop") in w and "symlink loop" in w for w in warnings), err
    assert all(w.startswith("tbreg: warning: ") for w in warnings), err
    code, _, err = tbreg(capsys, "share", "upload", tree, tmp_path / "remote")
    assert code == 0, err
    uploaded = b"".join(
        open(os.path.join(tmp_path / "remote", f), "rb").read() for f in logtree.list_files(str(tmp_path / "remote"))
    )
    assert SECRET not in uploaded and not (tmp_path / "remote" / "sizes" / "tiny" / "notes.txt").exists()


def _tbreg_process(*args, timeout=180):
    """`python -m tbreg.cli args…` as a real process; a hang fails the test after `timeout` s."""
    return subprocess.run(
        [sys.executable, "-m", "tbreg.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO),
        timeout=timeout,
    )


@pytest.mark.parametrize("command", ["report", "export", "bundle", "upload", "plot"])
def test_fifos_named_like_run_files_are_skipped_with_a_warning(tree, tmp_path, command):
    run = tree / "sizes" / "tiny"
    os.remove(run / "run.json")
    os.mkfifo(run / "run.json")
    os.mkfifo(run / "train" / "events.out.tfevents.0.fifo")
    args = {
        "report": ["share", "report", tree, "-o", tmp_path / "r.html"],
        "export": ["share", "export", tree, "-o", tmp_path / "s.csv"],
        "bundle": ["share", "bundle", tree, "-o", tmp_path / "b.tar.gz"],
        "upload": ["share", "upload", tree, tmp_path / "remote"],
        "plot": ["plot", tree / "sizes", "-o", tmp_path / "p.png"],
    }[command]
    proc = _tbreg_process(*args)
    assert proc.returncode == 0, proc.stderr
    warnings = own_lines(proc.stderr)
    assert any(f"{run / 'run.json'}: not a regular file (a FIFO)" in w for w in warnings), proc.stderr
    assert all(w.startswith("tbreg: warning: ") for w in warnings), proc.stderr
    if command == "export":
        assert ("sizes", "tiny") in {(r["family"], r["run"]) for r in csv.DictReader(open(tmp_path / "s.csv"))}


@pytest.mark.parametrize(
    "command, out",
    [
        ("report", "sizes/tiny/run.json"),
        ("export", "sizes/tiny/run.json"),
        ("export", "new-scalars.csv"),
        ("bundle", "sizes/runs.tar.gz"),
        ("plot", "tiny/figure.png"),
    ],
)
def test_outputs_inside_the_source_tree_are_refused(tree, capsys, command, out):
    source = tree / "sizes" if command == "plot" else tree
    args = ["plot"] if command == "plot" else ["share", command]
    before = {rel: logtree.sha256(os.path.join(tree, rel)) for rel in logtree.list_files(str(tree))}
    code, _, err = tbreg(capsys, *args, source, "-o", source / out)
    assert_one_line_error(code, err, f"-o {source / out} is inside {source}", "write it outside that tree")
    assert {rel: logtree.sha256(os.path.join(tree, rel)) for rel in logtree.list_files(str(tree))} == before


@pytest.mark.parametrize("bad", ["run.json", "manifest"])
def test_deeply_nested_json_is_one_line_not_a_recursion_error(tree, good_bundle, tmp_path, capsys, bad):
    deep = "[" * 100_000 + "]" * 100_000
    if bad == "run.json":
        (tree / "sizes" / "tiny" / "run.json").write_text(deep)
        code, _, err = tbreg(capsys, "share", "export", tree, "-o", tmp_path / "s.csv")
        assert code == 0, err
        assert own_lines(err) == [
            f"tbreg: warning: {tree / 'sizes' / 'tiny' / 'run.json'}: nested too deeply to "
            "read (not a run record); using the run without its record (restore run.json "
            "from a copy to get it back)"
        ]
        return
    bad_bundle = tmp_path / "deep.tar.gz"
    _repack(
        good_bundle,
        bad_bundle,
        lambda info, data: (
            (info, data) if info.name != share.MANIFEST else (_sized(info, deep.encode()), deep.encode())
        ),
    )
    code, _, err = tbreg(capsys, "share", "open", bad_bundle, "--dest", tmp_path / "d")
    assert_one_line_error(code, err, "unreadable (RecursionError)")


def _sized(info, data):
    info.size = len(data)
    return info


def test_open_refuses_a_bundle_larger_than_the_cap_unless_raised(good_bundle, tmp_path, capsys):
    with tarfile.open(good_bundle) as tar:
        total = sum(e["size"] for e in json.load(tar.extractfile(share.MANIFEST))["files"])
    cap = total / 2e6
    code, _, err = tbreg(capsys, "share", "open", good_bundle, "--dest", tmp_path / "d", f"--max_mb={cap}")
    assert_one_line_error(code, err, f"add up to {total / 1e6:,.1f} MB", f"--max_mb={math.ceil(total / 1e6)}")
    assert not (tmp_path / "d").exists()
    assert share.MAX_OPEN_MB == 1000  # the documented default (docs/sharing.md, docs/reliability.md)
    code, _, err = tbreg(capsys, "share", "open", good_bundle, "--dest", tmp_path / "d", f"--max_mb={total / 1e6}")
    assert code == 0, err


def test_run_dirs_named_with_dots_or_tmp_are_exported_and_bundled(tree, tmp_path, capsys):
    os.rename(tree / "sizes" / "small", tree / "sizes" / "...dots")
    os.rename(tree / "sizes" / "tiny", tree / "sizes" / "my.tmp-run")
    code, _, err = tbreg(capsys, "share", "export", tree, "-o", tmp_path / "s.csv")
    assert code == 0, err
    runs = {(r["family"], r["run"]) for r in csv.DictReader(open(tmp_path / "s.csv"))}
    assert {("sizes", "...dots"), ("sizes", "my.tmp-run")} <= runs
    code, _, err = tbreg(capsys, "share", "bundle", tree, "-o", tmp_path / "b.tar.gz")
    assert code == 0, err
    with tarfile.open(tmp_path / "b.tar.gz") as tar:
        names = tar.getnames()
    for run in ("...dots", "my.tmp-run"):
        assert f"runs/sizes/{run}/run.json" in names and any(n.startswith(f"runs/sizes/{run}/train/") for n in names)
