"""The Overfitting tab at scale: 1,000 runs × 1,000 epochs in one family, against TensorBoard's Scalars.

A benchmark, not a test. It writes (once; `--logdir` reuses it) a sweep family of `--runs` runs
(l2 × dropout × seed, each run's record and HParams like tbreg's scripts write them) of `--epochs`
epochs, train and validation, the data loss and Keras' loss per split, as real event files. Then a
real `tensorboard --logdir …` (its default loader, RustBoard, default flags) loads it, and once
TensorBoard's own Scalars route returns the last epoch of every tenth run this measures:

- the response size (raw JSON, and gzipped as a browser receives it) of every plugin route the tab
  asks for on first paint, of the family grouped by a hyperparameter, and of TensorBoard's own
  Scalars route for the same tag and runs (`scalars_multirun`, what its Scalars dashboard asks);
- the tab's first paint in headless Chromium (tests/test_plugin_browser.py's Browser): from the
  navigation to TensorBoard's `#overfitting` until the curves chart and the summary table are
  drawn — first after TensorBoard has loaded the tree and the plugin's warm-up has ended (default
  flags), then reloads; and again with `--overfitting_warm_up=false`, where the tab's first
  requests read and summarize every series (cold).

    python benchmarks/plugin_scale.py                       # 1,000 runs × 1,000 epochs
    python benchmarks/plugin_scale.py --runs 100 --epochs 200 --logdir /tmp/scale-small
"""

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: E402
from tensorboard.plugins.scalar import summary_v2 as scalar_summary  # noqa: E402
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

FAMILY = "sweep"
TAG = "epoch_binary_crossentropy"
L2 = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def run_hparams(i: int) -> dict:
    return {"model": "medium", "l2": L2[(i // 10) % 10], "dropout": DROPOUT[(i // 100) % 10]}


def write_tree(logdir: str, runs: int, epochs: int) -> None:
    from tbreg.plugin import summary

    rng = np.random.default_rng(0)
    t = np.arange(epochs, dtype=np.float64)
    for i in range(runs):
        hp = run_hparams(i)
        seed = i % 10
        run_dir = os.path.join(logdir, FAMILY, f"run{i:04d}")
        turn = 80 + 400 * hp["dropout"] + 2000 * hp["l2"] + 5 * seed
        train = 0.6 * np.exp(-t / 60) + 0.1 + 0.5 * hp["l2"] + rng.normal(0, 0.004, epochs)
        val = train + 0.0015 * np.maximum(t - turn, 0) ** 0.9 + 0.02 + rng.normal(0, 0.006, epochs)
        values = {"train": {TAG: train, "epoch_loss": train + hp["l2"]}, "validation": {TAG: val, "epoch_loss": val}}
        best = int(np.argmin(np.float32(val)))
        record = {
            "family": FAMILY,
            "model": "medium",
            "params": 5000,
            "monitor": "val_binary_crossentropy",
            "status": "completed",
            "epochs": epochs,
            "stopped_epoch": epochs - 1,
            "dataset": "synthetic",
            "seed": seed,
            "hparams": hp,
        }
        summary.write_run_start(run_dir, record)
        for split, tags in values.items():
            writer = EventFileWriter(os.path.join(run_dir, split))
            for step in range(epochs):
                event = event_pb2.Event(wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary())
                for tag, curve in tags.items():
                    event.summary.value.extend(scalar_summary.scalar_pb(tag, curve[step]).value)
                writer.add_event(event)
            writer.close()
        record.update(best_epoch=best, best_value=float(np.float32(val[best])))
        summary.write_run_end(run_dir, record)


def start_tensorboard(logdir: str, *flags: str):
    command = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        logdir,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *flags,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    found = []

    def scan():
        for line in proc.stdout:
            match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if match and not found:
                found.append(match.group(1))

    threading.Thread(target=scan, daemon=True).start()
    while not found:
        if proc.poll() is not None:
            raise RuntimeError("tensorboard exited")
        time.sleep(0.1)
    return proc, found[0]


def fetch(url: str, body: bytes | None = None, content_type: str | None = None) -> tuple[bytes, int]:
    """(raw body, bytes on the wire with Accept-Encoding: gzip)."""
    headers = {"Accept-Encoding": "gzip"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=600) as response:
        wire = response.read()
        raw = gzip.decompress(wire) if response.headers.get("Content-Encoding") == "gzip" else wire
    return raw, len(wire)


def wait_loaded(base: str, runs: int, epochs: int) -> float:
    start = time.perf_counter()
    for i in sorted({*range(0, runs, 10), runs - 1}):  # every tenth run and the last
        query = urllib.parse.urlencode({"tag": TAG, "run": f"{FAMILY}/run{i:04d}/validation"})
        while True:
            try:
                points = json.loads(fetch(f"{base}data/plugin/scalars/scalars?{query}")[0])
                if points and points[-1][1] == epochs - 1:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(1)
    # every run of the family listed by our plugin too
    while True:
        families = json.loads(fetch(base + "data/plugin/overfitting/families")[0])["families"]
        if any(f["family"] == FAMILY and len(f["runs"]) == runs for f in families):
            return time.perf_counter() - start
        time.sleep(1)


def sizes(base: str, runs: int) -> None:
    plugin = base + "data/plugin/overfitting/"
    q = urllib.parse.urlencode
    routes = {
        "families": "families",
        "family (tab default)": "family?" + q({"family": FAMILY, "metric": TAG}),
        "summary": "summary?" + q({"family": FAMILY}),
        "regularization": "regularization?" + q({"family": FAMILY}),
        "family, group=dropout": "family?" + q({"family": FAMILY, "metric": TAG, "group": "dropout"}),
        "summary, group=dropout": "summary?" + q({"family": FAMILY, "group": "dropout"}),
        "family, filter l2 > 1e-3": "family?" + q({"family": FAMILY, "metric": TAG, "filter": "l2 > 1e-3"}),
        "family, points=0 (every epoch)": "family?" + q({"family": FAMILY, "metric": TAG, "points": 0}),
    }
    print(f"  {'route':<44} {'ms':>7} {'JSON bytes':>12} {'gzipped':>11}")
    for name, route in routes.items():
        start = time.perf_counter()
        raw, wire = fetch(plugin + route)
        ms = 1000 * (time.perf_counter() - start)
        print(f"  overfitting {name:<32} {ms:>7.0f} {len(raw):>12,} {wire:>11,}")
    # TensorBoard's own Scalars dashboard: the tag list, then one POST per tag card for its runs
    start = time.perf_counter()
    raw, wire = fetch(base + "data/plugin/scalars/tags")
    print(f"  {'scalars tags':<44} {1000 * (time.perf_counter() - start):>7.0f} {len(raw):>12,} {wire:>11,}")
    names = [f"{FAMILY}/run{i:04d}/{split}" for i in range(runs) for split in ("train", "validation")]
    body = urllib.parse.urlencode([("tag", TAG), *(("runs", n) for n in names)]).encode()
    start = time.perf_counter()
    raw, wire = fetch(base + "data/plugin/scalars/scalars_multirun", body, "application/x-www-form-urlencoded")
    label = f"scalars scalars_multirun ({TAG}, {len(names)} runs)"
    print(f"  {label:<44} {1000 * (time.perf_counter() - start):>7.0f} {len(raw):>12,} {wire:>11,}")


# the bodies run in the tab's iframe document (`doc`) by test_plugin_browser.in_frame
PAINTED = """
  const plot = doc.querySelector("#curves .js-plotly-plot");
  const rows = doc.querySelectorAll("#summary tbody tr").length;
  if (!plot || !plot.data || !rows) return null;
  return {traces: plot.data.length, rows};
"""
# ms from the page's navigation until TensorBoard created the tab's iframe (its document's time origin)
FRAME_START = "return doc.defaultView.performance.timeOrigin - performance.timeOrigin;"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def wait_idle(pid: int, quiet: float = 0.05, span: float = 2.0, timeout: float = 600.0) -> float:
    """Seconds until process `pid` used under `quiet` of a core over `span` s (Linux /proc): the
    plugin's warm-up has ended (it logs nothing at TensorBoard's default verbosity)."""

    def cpu() -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        before = cpu()
        time.sleep(span)
        if cpu() - before < quiet * span:
            return time.perf_counter() - start - span
    raise RuntimeError(f"tensorboard still busy after {timeout:.0f} s")


def first_paint(base: str, attempts=("first", "reload", "reload")) -> None:
    from test_plugin_browser import Browser, in_frame

    browser = Browser(height=1200)
    try:
        for attempt in attempts:
            browser.goto("about:blank")
            # the page before asked for its below-the-fold sections (regularization, diagnostics)
            # after its paint: let the server finish them, or they compete with this paint's requests
            time.sleep(5)
            start = time.perf_counter()
            browser.goto(base + "#overfitting")
            got = None
            while got is None:
                got = browser.evaluate(in_frame(PAINTED))
                if got is None:
                    time.sleep(0.05)
            seconds = time.perf_counter() - start
            frame = browser.evaluate(in_frame(FRAME_START)) / 1000
            print(
                f"  {attempt}: {seconds:.2f} s from navigation to curves + table ({got['traces']} traces, "
                f"{got['rows']} rows): TensorBoard's page {frame:.2f} s until it opens the tab's frame, "
                f"the tab {seconds - frame:.2f} s"
            )
        browser.screenshot(os.path.join(tempfile.gettempdir(), "tbreg-screens", "scale_tab.png"))
        if browser.errors:
            print("  page errors:", browser.errors[:3])
    finally:
        browser.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--logdir", help="reuse or create this log dir (default: a temporary one)")
    parser.add_argument("--write-only", action="store_true")
    args = parser.parse_args(argv)
    logdir = args.logdir or tempfile.mkdtemp(prefix="tbreg-scale-")
    if not os.path.isdir(os.path.join(logdir, FAMILY)):
        start = time.perf_counter()
        write_tree(logdir, args.runs, args.epochs)
        print(f"wrote {args.runs} runs × {args.epochs:,} epochs to {logdir} in {time.perf_counter() - start:.0f} s")
    if args.write_only:
        return
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    # 1. TensorBoard as users start it: the plugin warms up once the tree is loaded
    proc, base = start_tensorboard(logdir)
    try:
        loaded = wait_loaded(base, args.runs, args.epochs)
        print(f"tensorboard loaded the tree {loaded:.1f} s after start-up; ", end="", flush=True)
        print(f"the plugin's warm-up ended {loaded + wait_idle(proc.pid):.1f} s after start-up (its process idle)")
        print(f"tensorboard's Python process (the plugin's cache included): {rss_mb(proc.pid):.0f} MB resident")
        print("first paint after TensorBoard has loaded the tree (default flags):")
        first_paint(base)
        print(f"  after them: {rss_mb(proc.pid):.0f} MB resident")
        sizes(base, args.runs)
    finally:
        proc.terminate()
        proc.wait()
    # 2. without the warm-up: the tab's first requests read and summarize everything
    proc, base = start_tensorboard(logdir, "--overfitting_warm_up=false")
    try:
        wait_loaded(base, args.runs, args.epochs)
        wait_idle(proc.pid)
        print(f"with --overfitting_warm_up=false, loaded: {rss_mb(proc.pid):.0f} MB resident")
        print("first paint with --overfitting_warm_up=false (the tab's requests read every series):")
        first_paint(base, ("cold", "reload"))
        print(f"  after them: {rss_mb(proc.pid):.0f} MB resident")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
