"""tbreg vs the tutorial's own Keras code, measured side by side in one run; prints ratio tables.

    python benchmarks/speed.py                 # everything (~15 min on 2 cores)
    python benchmarks/speed.py --parts=csv     # only the CSV reader
    python benchmarks/speed.py --parts=epochs --models=tiny,large --repeats=3

Data: a synthetic file in the real HIGGS format (label + 28 features, "%.18e", gzip), made once
and kept in --data_dir. Reference: benchmarks/tutorial_port.py, a faithful Keras 3 port of the
tutorial (CsvDataset pipeline, compile_and_fit, TensorBoard callback). Every figure is the median
of --repeats runs; ratios are reference time / tbreg time (higher is better for tbreg). Per-epoch
times are steady-state: the median time between consecutive epoch ends (set-up and tf.function
tracing excluded, as they do not grow with the 10,000 epochs of a real run). In the per-epoch
table every repeat runs the tutorial and then each tbreg variant (--variants) in turn, so load
from other jobs on the machine hits both sides; each ratio is taken within a repeat and the table
shows min / median over repeats. The whole-tutorial table is end-to-end wall time, set-up included.

    python benchmarks/speed.py --parts=epochs --models=tiny,small,medium,large --variants=fast,callbacks,bf16
    python benchmarks/speed.py --parts=epochs --models=tiny,small,medium --variants=fast,blocks --rows=11000

With several epochs per compiled call (variants blocks, k8, …) a run's time per epoch is the
median over its compiled calls after the first of their time per epoch (EpochTimer).
"""

import gc
import gzip
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tutorial_port  # noqa: E402

from tbreg import config, datasets, families, logtree, training  # noqa: E402
from tbreg.datasets import higgs  # noqa: E402

_PARTS = flags.DEFINE_list("parts", ["csv", "epochs", "tutorial"], "Which parts: csv, epochs, tutorial.")
_MODELS = flags.DEFINE_list("models", list(tutorial_port.MODELS), "Models for the per-epoch table.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Runs per measurement (median).", lower_bound=1)
_ROWS = flags.DEFINE_integer("rows", 1_000_000, "Rows of the generated HIGGS-format file.", lower_bound=11_000)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", os.path.join(tempfile.gettempdir(), "tbreg-bench"), "Where the file is kept."
)
_SMALL_EPOCHS = flags.DEFINE_integer("small_epochs", 100, "Epochs timed for tiny/small/medium.", lower_bound=2)
_LARGE_EPOCHS = flags.DEFINE_integer("large_epochs", 10, "Epochs timed for the 512x4 models.", lower_bound=2)
_VARIANTS = flags.DEFINE_list(
    "variants",
    ["fast", "callbacks"],
    "tbreg variants per model: fast (the default engine), callbacks (with all of tbreg's callbacks), "
    "bf16 (--dtype_policy=mixed_bfloat16), seeds10 (--seeds=10 stacked; its time is per model-epoch).",
)
_TUTORIAL_EPOCHS = flags.DEFINE_integer(
    "tutorial_epochs", 20, "Epochs per model for the whole tutorial.", lower_bound=1
)

STEPS_PER_EPOCH = 20  # 10,000 rows / batch 500


def make_file(path: str, rows: int) -> str:
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(0)
    tmp = path + ".tmp"
    with gzip.open(tmp, "wt", compresslevel=6) as f:
        for start in range(0, rows, 100_000):
            n = min(100_000, rows - start)
            block = np.abs(rng.normal(size=(n, 29))).astype(np.float32)
            block[:, 0] = rng.integers(0, 2, n)
            np.savetxt(f, block, fmt="%.18e", delimiter=",")
    os.replace(tmp, path)
    return path


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def decompress_only(path: str, opener=gzip.open) -> int:
    n = 0
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 22):
            n += len(chunk)
    return n


def csv_table(path: str, rows: int, repeats: int) -> list[str]:
    t_ref, n_ref = median_time(lambda: tutorial_port.read_all(path), repeats)
    t_tbreg, arr = median_time(lambda: higgs.read_file(path, rows), repeats)
    t_gz, _ = median_time(lambda: decompress_only(path), repeats)
    from isal import igzip

    t_isal, _ = median_time(lambda: decompress_only(path, igzip.open), repeats)
    assert n_ref == len(arr) == rows, (n_ref, len(arr))
    return [
        f"| reader ({rows:,} rows, {os.path.getsize(path) / 1e6:.0f} MB gz) | seconds | vs tutorial CsvDataset | vs decompression only |",
        "|---|---|---|---|",
        f"| tutorial: tf.data CsvDataset + pack_row | {t_ref:.2f} | 1.0× | {t_ref / t_gz:.2f}× the time |",
        f"| tbreg: higgs.read_file | {t_tbreg:.2f} | **{t_ref / t_tbreg:.1f}× faster** | {t_tbreg / t_gz:.2f}× the time |",
        f"| decompression only (Python gzip, zlib) | {t_gz:.2f} | {t_ref / t_gz:.1f}× | 1.0× |",
        f"| decompression only (ISA-L igzip, what tbreg inflates with) | {t_isal:.2f} | {t_ref / t_isal:.1f}× | {t_isal / t_gz:.2f}× the time |",
    ]


def _fresh():
    """Keras' global state cleared and garbage collected before every timed run, on both sides: left
    over from the runs before, it made later runs slower in one process (measured 5.7 → 8.8 ms/epoch
    for tiny over six runs)."""
    keras.backend.clear_session()
    gc.collect()


class EpochTimer(keras.callbacks.Callback):
    """Wall time between consecutive epoch ends: the steady per-epoch cost, without set-up and tracing.

    `median_epoch`: the median over compiled calls (fit: epochs) after the first of the time between
    the ends of their last epochs, divided by their epochs. With one epoch per call (the tutorial,
    `epochs_per_call=1`) that is the median gap between consecutive epoch ends; with blocks of
    several epochs per call (whose epochs end together, when the block is replayed to the callbacks)
    it is what a block costs per epoch. The History of tbreg's fast engine lists the epochs of each
    call (`epochs_per_call`)."""

    tbreg_model_freq = 0  # reads only the clock: any number of epochs per compiled call

    def on_train_begin(self, logs=None):
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append(time.perf_counter())

    def median_epoch(self) -> float:
        blocks = getattr(getattr(self.model, "history", None), "epochs_per_call", None) or [1] * len(self.ends)
        last = [sum(blocks[: i + 1]) - 1 for i in range(len(blocks))]  # index of each block's last epoch
        return statistics.median(
            (self.ends[b] - self.ends[a]) / (b - a) for a, b in zip(last, last[1:]) if b < len(self.ends)
        )


def _tbreg_spec(name):
    return next(m for f in families.FAMILIES.values() for m in f.models if m.name == name)


def run_tutorial(name, path, epochs, logdir, timer=None):
    validate_ds, train_ds = tutorial_port.datasets(path)
    model = tutorial_port.MODELS[name]()
    history = tutorial_port.compile_and_fit(
        model,
        train_ds,
        validate_ds,
        os.path.join(logdir, name),
        STEPS_PER_EPOCH,
        epochs,
        patience=10**6,
        extra_callbacks=[timer] if timer else (),
    )
    return history.history["val_binary_crossentropy"][-1]


def run_tbreg(
    name,
    data,
    epochs,
    logdir,
    with_callbacks,
    timer=None,
    dtype_policy="float32",
    epochs_per_call=1,
    callback_freq=1,
    seeds=1,
):
    """One tbreg training; with `seeds` > 1 the seeds 0 … seeds-1 stacked (tbreg.stacked, as --seeds=N
    trains them), and `timer` then times one epoch of the whole stack."""
    policy = {} if dtype_policy == "float32" else {"dtype_policy": dtype_policy}  # runs on older tbreg code too
    if hasattr(config.TrainConfig, "epochs_per_call"):  # tbreg code from before it: one epoch per call
        policy["epochs_per_call"] = epochs_per_call
    cfg = config.for_dataset("higgs", max_epochs=epochs, patience=10**6, verbose=0, **policy)
    run_dir = logtree.claim_run_dir(logdir, "bench", name)
    if seeds > 1:
        import dataclasses

        from tbreg import stacked

        configs = [dataclasses.replace(cfg, seed=s) for s in range(seeds)]
        run_dirs = [os.path.join(run_dir, f"seed_{s}") for s in range(seeds)]
        if timer:
            timer.on_train_begin()
        hook = (lambda epoch: timer.on_epoch_end(epoch)) if timer else None
        results = stacked.train_seeds(_tbreg_spec(name), data, configs, run_dirs, "bench", on_epoch_end=hook)
        return results[0].history["val_binary_crossentropy"][-1]
    extra = []
    if with_callbacks:
        from tbreg import callbacks

        extra = callbacks.make(
            run_dir,
            callbacks.NAMES,
            train_data=(data.x_train, data.y_train),
            histogram_freq=callback_freq,
            train_eval_freq=callback_freq,
        )
    result = training.train_run(_tbreg_spec(name), data, cfg, run_dir, "bench", [*extra, *([timer] if timer else [])])
    return result.history["val_binary_crossentropy"][-1]


# tbreg variants timed against the tutorial: name -> (column header, run_tbreg keyword arguments)
VARIANTS = {
    "fast": ("tbreg", {"with_callbacks": False}),
    "callbacks": ("tbreg + all callbacks", {"with_callbacks": True}),
    "bf16": ("tbreg mixed_bfloat16", {"with_callbacks": False, "dtype_policy": "mixed_bfloat16"}),
    "blocks": ("tbreg epochs_per_call=auto", {"with_callbacks": False, "epochs_per_call": 0}),
    "blocks_callbacks10": (
        "tbreg auto + all callbacks every 10 epochs",
        {"with_callbacks": True, "epochs_per_call": 0, "callback_freq": 10},
    ),
    "k8": ("tbreg epochs_per_call=8", {"with_callbacks": False, "epochs_per_call": 8}),
    "k16": ("tbreg epochs_per_call=16", {"with_callbacks": False, "epochs_per_call": 16}),
    "k32": ("tbreg epochs_per_call=32", {"with_callbacks": False, "epochs_per_call": 32}),
    "k64": ("tbreg epochs_per_call=64", {"with_callbacks": False, "epochs_per_call": 64}),
    # --seeds=10 stacked: the time shown is per MODEL-epoch (one stack epoch / 10)
    "seeds10": ("tbreg --seeds=10 stacked, per model-epoch", {"with_callbacks": False, "seeds": 10}),
}


def _spread(values) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f}"


def epochs_table(path, models, repeats, logdir, variants) -> list[str]:
    """Per model: each repeat runs the tutorial and then every tbreg variant, one after the other (so
    load from other jobs hits both sides); a run's time is its median steady epoch (EpochTimer).
    Ratios are per repeat (tutorial / variant of the same repeat), shown as min / median."""
    data = datasets.load(config.for_dataset("higgs", data_path=path))
    heads = [VARIANTS[v][0] for v in variants]
    lines = [
        "| model | epochs per run | tutorial ms/epoch (min / median) | "
        + " | ".join(f"{h} ms/epoch (min / median) | {h} speed-up (min / median)" for h in heads)
        + " | final val BCE tutorial / "
        + " / ".join(heads)
        + " |",
        "|---|---|---|" + "---|---|" * len(variants) + "---|",
    ]
    print("\n".join(lines), flush=True)
    for name in models:
        epochs = _LARGE_EPOCHS.value if 512 in _tbreg_spec(name).units else _SMALL_EPOCHS.value
        ref, times, losses = [], {v: [] for v in variants}, {}
        for _ in range(repeats):
            _fresh()
            timer = EpochTimer()
            losses["tutorial"] = run_tutorial(name, path, epochs, logdir, timer)
            ref.append(timer.median_epoch())
            for v in variants:
                _fresh()
                timer = EpochTimer()
                losses[v] = run_tbreg(name, data, epochs, logdir, timer=timer, **VARIANTS[v][1])
                times[v].append(timer.median_epoch() / VARIANTS[v][1].get("seeds", 1))  # per model-epoch
        ms = [1000 * t for t in ref]
        cells = [f"{min(ms):.1f} / {statistics.median(ms):.1f}"]
        for v in variants:
            ratios = [r / t for r, t in zip(ref, times[v])]
            cells.append(f"{1000 * min(times[v]):.1f} / {1000 * statistics.median(times[v]):.1f}")
            cells.append(f"**{_spread(ratios)}×**")
        loss_cells = " / ".join(f"{losses[k]:.4f}" for k in ("tutorial", *variants))
        lines.append(f"| {name} | {epochs} | " + " | ".join(cells) + f" | {loss_cells} |")
        print(lines[-1], flush=True)
    return lines


def tutorial_table(path, epochs, logdir) -> list[str]:
    data = datasets.load(config.for_dataset("higgs", data_path=path))
    names = list(tutorial_port.MODELS)
    start = time.perf_counter()
    for name in names:
        run_tutorial(name, path, epochs, logdir)
    t_ref = time.perf_counter() - start
    start = time.perf_counter()
    for name in names:
        run_tbreg(name, data, epochs, logdir, False)
    t_tbreg = time.perf_counter() - start
    return [
        f"| whole tutorial: {', '.join(names)} × {epochs} epochs | seconds |",
        "|---|---|",
        f"| tutorial code | {t_ref:.1f} |",
        f"| tbreg (fast engine) | {t_tbreg:.1f} (**{t_ref / t_tbreg:.1f}×**) |",
    ]


def main(argv):
    del argv
    import tensorflow as tf

    path = make_file(os.path.join(_DATA_DIR.value, f"higgs-format-{_ROWS.value}.csv.gz"), _ROWS.value)
    print(
        f"# tbreg speed benchmark — {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, TF {tf.__version__}, Python {platform.python_version()}\n",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as logdir:
        if "csv" in _PARTS.value:
            print("\n".join(csv_table(path, _ROWS.value, _REPEATS.value)) + "\n", flush=True)
        if "epochs" in _PARTS.value:
            epochs_table(path, _MODELS.value, _REPEATS.value, logdir, _VARIANTS.value)
            print(flush=True)
            print(flush=True)
        if "tutorial" in _PARTS.value:
            print("\n".join(tutorial_table(path, _TUTORIAL_EPOCHS.value, logdir)), flush=True)


if __name__ == "__main__":
    app.run(main)
