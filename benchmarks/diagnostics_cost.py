"""What WeightDiagnostics adds to an epoch: the sizes family's models on mnist1d, with and without it.

    python benchmarks/diagnostics_cost.py                       # freq 5, 3 repetitions x 16 epochs
    python benchmarks/diagnostics_cost.py --models=large --freq=1 --reps=2
    python benchmarks/diagnostics_cost.py --sharpness=1000   # one sharpness estimate per model instead

For each model the scripts' fit (tbreg.training.compile_model, the fast engine, batch 500) runs
alternating without (A) and with (B) `WeightDiagnostics(freq)` in one process (A B B A …), so drift
in machine load hits both alike. An epoch's time runs from one `on_epoch_begin` to the next (epoch 0,
tracing, dropped). Reported per model: the mean epoch time of each side (the logged epochs included), and the callback's own
median time per logged epoch, amortized over `freq` (steadier than the difference of two noisy means
on a shared machine).
A measurement, never a timed test.
"""

import argparse
import os
import statistics
import tempfile
import time

import keras

from tbreg import config as config_lib
from tbreg import datasets, families, training
from tbreg.callbacks import WeightDiagnostics


class EpochClock(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.starts = []

    def on_epoch_begin(self, epoch, logs=None):
        self.starts.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.starts.append(time.perf_counter())

    def epochs(self):
        return [b - a for a, b in zip(self.starts[1:], self.starts[2:])]  # epoch 0 (tracing) dropped


class Timed(WeightDiagnostics):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.logged = []

    def _log(self, epoch):
        start = time.perf_counter()
        super()._log(epoch)
        self.logged.append(time.perf_counter() - start)


def one_fit(spec, data, config, freq):
    keras.utils.set_random_seed(0)
    model = training.compile_model(spec, data, config)
    clock, extra = EpochClock(), []
    if freq:
        extra = [Timed(tempfile.mkdtemp(prefix="tbreg-diag-bench-"), freq)]
    training.fit(model, data, config, [*extra, clock])  # the scripts' fit (config.engine, its seed)
    return clock.epochs(), (extra[0].logged if extra else [])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,small,medium,large,paper")
    parser.add_argument("--freq", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--sharpness", type=int, default=0, help="time sharpness estimates on this many examples")
    args = parser.parse_args()
    config = config_lib.for_dataset("mnist1d", max_epochs=args.epochs, patience=10_000, verbose=0)
    data = datasets.load(config)
    specs = {s.name: s for s in families.SIZES.models}
    if args.sharpness:
        return time_sharpness([specs[n] for n in args.models.split(",")], data, config, args.sharpness, args.reps)
    print(f"freq={args.freq}, {args.reps} repetitions x {args.epochs} epochs, mnist1d ({len(data.x_train)} train)")
    for name in args.models.split(","):
        without, with_, logged = [], [], []
        for rep in range(args.reps):
            for freq in (0, args.freq) if rep % 2 == 0 else (args.freq, 0):
                epochs, calls = one_fit(specs[name], data, config, freq)
                (with_ if freq else without).extend(epochs)
                logged.extend(calls)
        a, b = statistics.mean(without), statistics.mean(with_)
        per_logged = statistics.median(logged)
        print(
            f"{name:7s} mean epoch without {1000 * a:7.1f} ms  with {1000 * b:7.1f} ms ({100 * (b / a - 1):+.0f} %); "
            f"the callback per logged epoch {1000 * per_logged:7.1f} ms = {1000 * per_logged / args.freq:6.1f} ms "
            f"per epoch ({100 * per_logged / args.freq / a:.0f} % of an epoch without it)"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def time_sharpness(specs, data, config, examples, reps):
    """The median time of one sharpness estimate (6 inference passes over `examples`) per model."""
    sharp = (data.x_train[:examples], data.y_train[:examples])
    for spec in specs:
        model = training.compile_model(spec, data, config)
        callback = WeightDiagnostics(tempfile.mkdtemp(prefix="tbreg-diag-bench-"), 0, sharpness_data=sharp)
        callback.set_model(model)
        callback.on_train_begin()
        name = "sparse_categorical_crossentropy"
        callback.sharpness(name)  # traced
        times = []
        for _ in range(max(reps, 3)):
            start = time.perf_counter()
            callback.sharpness(name)
            times.append(time.perf_counter() - start)
        print(f"{spec.name:7s} one sharpness estimate on {examples} examples: {1000 * statistics.median(times):.0f} ms")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
