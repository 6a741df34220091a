"""TensorBoard's own tabs on a big tree: its Scalars and Histograms tabs select no run above 40, so
tbreg names a link per family whose run filter brings them back (checked in real TensorBoard and
headless Chromium, see test_plugin_browser)."""

import json
import shutil
import subprocess
import sys
import time

import pytest
from conftest import run_script

from tbreg import analysis, logtree
from test_plugin_browser import CHROMIUM, Browser, start_tensorboard

_WRITE = """
import os, sys
import tensorflow as tf
root = sys.argv[1]
for family, models in (("sizes", 10), ("regularizers", 6)):
    for i in range(models):
        for split in ("train", "validation", "train_eval"):
            with tf.summary.create_file_writer(os.path.join(root, family, f"m{i}", split)).as_default():
                for step in range(3):
                    tf.summary.scalar("epoch_loss", 1.0 / (step + 1 + i), step=step)
"""

# (checked, label) of every run checkbox in the page, through the Polymer dashboards' shadow roots.
_RUN_BOXES = r"""
(() => {
  const out = [];
  (function walk(node) {
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.children || []) walk(child);
    if (node.tagName === 'PAPER-CHECKBOX' && node.id.startsWith('checkbox-')) {
      out.push([node.checked, node.id.slice('checkbox-'.length)]);  // tf-multi-checkbox's run boxes
    }
  })(document.documentElement);
  return JSON.stringify(out);
})()
"""


def test_note_names_no_link_below_the_limit_and_one_per_family_above():
    small = [f"sizes/m{i}/train" for i in range(40)]
    assert analysis.tensorboard_note(small) is None
    runs = small + ["regularizers/l2/train", "regularizers/l2/validation"]
    note = analysis.tensorboard_note(runs)
    assert note.startswith("42 TensorBoard runs: its Scalars and Histograms tabs select none above 40")
    assert "#scalars&regexInput=%5Eregularizers%2F" in note and "%5Esizes%2F" in note  # 40 fit
    assert "%5Esizes" not in analysis.tensorboard_note(runs + ["sizes/m40/train"])  # 41 don't
    # no address is assumed: fragments to append, or whole links under the address given (a port, a proxy)
    assert " #scalars&regexInput=%5Esizes%2F" in note and "localhost:6006/#" not in note
    assert "append one to the address TensorBoard serves" in note
    proxied = analysis.tensorboard_note(runs, url="https://host.example/tb/proxy/7007")
    assert " https://host.example/tb/proxy/7007/#scalars&regexInput=%5Esizes%2F" in proxied and "append" not in proxied
    files = ["sizes/a/train/events.out.tfevents.1", "sizes/a/events.out.tfevents.2", "sizes/a/run.json"]
    assert analysis.tensorboard_runs(files) == ["sizes/a/train"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install -y chromium")
def test_family_link_selects_the_runs_the_plain_scalars_tab_leaves_empty(tmp_path):
    logdir = tmp_path / "runs"
    subprocess.run([sys.executable, "-c", _WRITE, str(logdir)], check=True, capture_output=True)
    runs = analysis.tensorboard_runs(logtree.list_files(str(logdir)))
    assert len(runs) == 48
    note = analysis.tensorboard_note(runs, url="BASE/")
    links = [word for word in note.split() if word.startswith("BASE/")]
    assert [link.split("regexInput=")[1] for link in links] == ["%5Eregularizers%2F", "%5Esizes%2F"]
    proc, url = start_tensorboard(logdir)
    try:
        seen = {}
        for name, link in (("plain", "BASE/#scalars"), ("sizes", links[1]), ("histograms", "BASE/#histograms")):
            browser = Browser()  # a fresh profile each: TensorBoard remembers run selections in the browser
            browser.goto(link.replace("BASE/", url))
            deadline = time.monotonic() + 45
            boxes = []
            want = 30 if name == "sizes" else 48
            while time.monotonic() < deadline and not (  # TensorBoard lists the runs, then ticks them
                len(boxes) >= want and (name != "sizes" or all(checked for checked, _ in boxes))
            ):
                time.sleep(0.5)
                boxes = json.loads(browser.evaluate(_RUN_BOXES))
            seen[name] = boxes
            browser.close()
    finally:
        proc.kill()
    assert len(seen["plain"]) == 48 and not any(checked for checked, _ in seen["plain"])  # TensorBoard's limit
    assert len(seen["sizes"]) == 30 and all(checked for checked, _ in seen["sizes"])
    assert {label.split("/")[0] for _, label in seen["sizes"]} == {"sizes"}


def test_script_ends_with_the_note_when_the_tree_goes_over_40_runs(script_tree, tbreg_cache, tmp_path):
    logdir = tmp_path / "runs"
    for copy in range(4):  # 4 x 12 runs of an earlier tree, then one more model trained beside them
        shutil.copytree(script_tree["logdir"], logdir / f"old{copy}")
    proc = run_script(
        "tbreg.train_sizes",
        "--logdir",
        str(logdir),
        "--models",
        "tiny",
        "--max_epochs",
        "1",
        "--quiet",
        "--tensorboard_url=http://tb.example:7007/",
        cache_dir=tbreg_cache,
        check=True,
    )
    [note] = [line for line in proc.stdout.splitlines() if "TensorBoard runs" in line]
    assert note.startswith("51 TensorBoard runs: its Scalars and Histograms tabs select none above 40")
    assert " http://tb.example:7007/#scalars&regexInput=%5Esizes%2F" in note
    assert " http://tb.example:7007/#scalars&regexInput=%5Eold0%2Fsizes%2F" in note
    small = run_script(
        "tbreg.train_sizes",
        "--logdir",
        str(tmp_path / "small"),
        "--models",
        "tiny",
        "--max_epochs",
        "1",
        "--quiet",
        cache_dir=tbreg_cache,
        check=True,
    )
    assert "TensorBoard runs" not in small.stdout
    bad = run_script("tbreg.train_sizes", "--logdir", str(tmp_path / "bad"), "--tensorboard_url=localhost:6006")
    assert bad.returncode != 0 and "--tensorboard_url" in bad.stderr and "http://" in bad.stderr
    assert "Traceback" not in bad.stderr
