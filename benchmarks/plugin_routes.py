"""How fast the overfitting plugin's family and summary routes answer once TensorBoard has loaded a log dir.

A benchmark, not a test. It writes one family of `--runs` runs × `--epochs` epochs (train and
validation, the tags Keras and tbreg log, each run's record), then times every route, asking like
a browser does (`Accept-Encoding: gzip`), in two set-ups:

- `tensorboard`: a real `tensorboard --logdir … --samples_per_plugin=scalars=100000` process (its
  default fast loader, RustBoard; every epoch kept), over HTTP on 127.0.0.1, after it has loaded
  every run;
- `in-process`: TensorBoard's Python loader (`--load_fast=false`: EventMultiplexer →
  MultiplexerDataProvider) and its WSGI app, without HTTP.

"first" is the first request after loading (the plugin reads every series then), "warm" the
median of the next `--repeat` (series unchanged since are not read again).

    python benchmarks/plugin_routes.py                        # 50 runs × 2,000 epochs
    python benchmarks/plugin_routes.py --runs 10 --epochs 500 --setup tensorboard
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from tensorboard.backend import application  # noqa: E402
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer  # noqa: E402
from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: E402
from tensorboard.plugins import base_plugin  # noqa: E402
from tensorboard.plugins.scalar import summary_v2 as scalar_summary  # noqa: E402
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # noqa: E402
from werkzeug.test import Client  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tbreg.plugin import summary  # noqa: E402
from tbreg.plugin.plugin import OverfittingPlugin  # noqa: E402

FAMILY = "bench"
TRAIN_TAGS = ("epoch_loss", "epoch_binary_crossentropy", "epoch_accuracy", "epoch_regularization_loss")
VALIDATION_TAGS = ("epoch_loss", "epoch_binary_crossentropy", "epoch_accuracy")


def curves(rng, epochs: int, run: int) -> dict:
    """Plausible overfitting curves: training keeps falling, validation turns up after a while."""
    t = np.arange(epochs, dtype=np.float64)
    train = 0.7 * np.exp(-t / (50 + 10 * run)) + 0.1 + rng.normal(0, 0.005, epochs)
    val = train + 0.002 * np.maximum(t - 100 - 5 * run, 0) ** 0.8 + rng.normal(0, 0.01, epochs)
    penalty = np.full(epochs, 0.01 * (run % 5))
    return {
        ("train", "epoch_binary_crossentropy"): train,
        ("train", "epoch_loss"): train + penalty,
        ("train", "epoch_regularization_loss"): penalty,
        ("train", "epoch_accuracy"): 1 - train / 2,
        ("validation", "epoch_binary_crossentropy"): val,
        ("validation", "epoch_loss"): val + penalty,
        ("validation", "epoch_accuracy"): 1 - val / 2,
    }


def write_family(logdir: str, runs: int, epochs: int) -> None:
    rng = np.random.default_rng(0)
    for i in range(runs):
        run_dir = os.path.join(logdir, FAMILY, f"run{i:02d}")
        record = {
            "family": FAMILY,
            "model": f"run{i:02d}",
            "params": 1000 * (i + 1),
            "monitor": "val_binary_crossentropy",
            "status": "completed",
            "epochs": epochs,
            "stopped_epoch": epochs - 1,
            "dataset": "synthetic",
            "hparams": {"model": f"run{i:02d}", "units": "16", "depth": 1},
        }
        summary.write_run_start(run_dir, record)
        values = curves(rng, epochs, i)
        for split in ("train", "validation"):
            writer = EventFileWriter(os.path.join(run_dir, split))
            tags = [tag for s, tag in values if s == split]
            for step in range(epochs):
                event = event_pb2.Event(wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary())
                for tag in tags:
                    event.summary.value.extend(scalar_summary.scalar_pb(tag, values[(split, tag)][step]).value)
                writer.add_event(event)
            writer.close()
        best = int(np.argmin(values[("validation", "epoch_binary_crossentropy")]))
        record.update(
            best_epoch=best, best_value=float(np.float32(values[("validation", "epoch_binary_crossentropy")][best]))
        )
        summary.write_run_end(run_dir, record)


def routes(runs: int) -> dict:
    return {
        "families": "families",
        "family (data loss)": f"family?family={FAMILY}&metric=epoch_binary_crossentropy",
        "summary": f"summary?family={FAMILY}",
    }


def time_routes(get, runs: int, repeat: int) -> None:
    """Prints first and warm times of every route; `get(route)` returns the response body."""
    print(f"  {'route':<20} {'first (ms)':>10} {'warm (ms)':>10} {'warm max':>9} {'gzip bytes':>11}")
    for name, route in routes(runs).items():
        times = []
        for _ in range(1 + repeat):
            start = time.perf_counter()
            body = get(route)
            times.append(1000 * (time.perf_counter() - start))
        warm = times[1:]
        print(f"  {name:<20} {times[0]:>10.0f} {statistics.median(warm):>10.0f} {max(warm):>9.0f} {len(body):>11,}")


def in_process(logdir: str, runs: int, repeat: int) -> None:
    start = time.perf_counter()
    multiplexer = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"scalars": 0})
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    context = base_plugin.TBContext(data_provider=provider, logdir=logdir, multiplexer=multiplexer)
    client = Client(application.TensorBoardWSGI([OverfittingPlugin(context)], data_provider=provider))
    print(f"in-process (Python loader; loading took {time.perf_counter() - start:.1f} s):")

    def get(route):
        response = client.get("/data/plugin/overfitting/" + route, headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200, response.get_data()[:200]
        return response.get_data()

    time_routes(get, runs, repeat)


def with_tensorboard(logdir: str, runs: int, epochs: int, repeat: int) -> None:
    from plugin_scale import start_tensorboard  # this directory's: the same `tensorboard` command

    start = time.perf_counter()
    proc, url = start_tensorboard(
        logdir,
        "--samples_per_plugin",
        "scalars=100000",  # keep every epoch (0 also keeps all, but then TensorBoard's own scalars routes return no points)
        "--overfitting_warm_up=false",  # "first" is the plugin's first read, not its warm-up's
    )
    try:
        base = url + "data/plugin/overfitting/"

        def get(route):
            request = urllib.request.Request(base + route, headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.read()

        def loaded(run):  # asked to TensorBoard's own scalars plugin, so ours has read nothing yet
            query = f"tag=epoch_binary_crossentropy&run={FAMILY}/run{run:02d}/validation"
            try:
                with urllib.request.urlopen(f"{url}data/plugin/scalars/scalars?{query}", timeout=60) as response:
                    return json.loads(response.read())[-1][1] == epochs - 1
            except (OSError, ValueError, IndexError):
                return False

        deadline = time.monotonic() + 600
        for run in range(runs):
            while not loaded(run):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"tensorboard did not load {FAMILY}/run{run:02d} within 10 minutes")
                time.sleep(0.5)
        print(f"tensorboard (RustBoard, every epoch kept; loaded in {time.perf_counter() - start:.1f} s):")
        time_routes(get, runs, repeat)
    finally:
        proc.terminate()
        proc.wait()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=10, help="warm requests per route")
    parser.add_argument("--setup", choices=("both", "tensorboard", "in-process"), default="both")
    parser.add_argument("--logdir", help="reuse or create this log dir (default: a temporary one)")
    args = parser.parse_args(argv)
    logdir = args.logdir or tempfile.mkdtemp(prefix="tbreg-bench-")
    if not os.path.isdir(os.path.join(logdir, FAMILY)):
        start = time.perf_counter()
        write_family(logdir, args.runs, args.epochs)
        print(f"wrote {args.runs} runs × {args.epochs:,} epochs to {logdir} in {time.perf_counter() - start:.0f} s")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    if args.setup in ("both", "tensorboard"):
        with_tensorboard(logdir, args.runs, args.epochs, args.repeat)
    if args.setup in ("both", "in-process"):
        in_process(logdir, args.runs, args.repeat)


if __name__ == "__main__":
    main()
