"""What WeightDiagnostics adds to an epoch: the sizes family's models on mnist1d, with and without it.

    python benchmarks/diagnostics_cost.py                       # freq 5, 3 repetitions x 16 epochs
    python benchmarks/diagnostics_cost.py --models=large --freq=1 --reps=2

For each model the scripts' fit (tbreg.training.compile_model, the fast engine, batch 500) runs
alternating without (A) and with (B) `WeightDiagnostics(freq)` in one process (A B B A …), so drift
in machine load hits both alike. An epoch's time runs from one `on_epoch_begin` to the next (epoch 0,
tracing, dropped). Reported per model: the median epoch time of each side, the difference (what the
callback adds per epoch, amortized over `freq`), and the callback's own median time per logged epoch.
A measurement, never a timed test.
"""

import argparse
import statistics
import tempfile
import time

import keras

from tbreg import config as config_lib
from tbreg import datasets, engine, families, training
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
    callbacks = keras.callbacks.CallbackList([*extra, clock], model=model)
    engine.fast_fit(
        model,
        data.x_train,
        data.y_train,
        (data.x_val, data.y_val),
        config.max_epochs,
        config.batch_size,
        callbacks.callbacks,
        seed=0,
    )
    return clock.epochs(), (extra[0].logged if extra else [])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,small,medium,large,paper")
    parser.add_argument("--freq", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=16)
    args = parser.parse_args()
    config = config_lib.for_dataset("mnist1d", max_epochs=args.epochs, patience=10_000, verbose=0)
    data = datasets.load(config)
    specs = {s.name: s for s in families.SIZES.models}
    print(f"freq={args.freq}, {args.reps} repetitions x {args.epochs} epochs, mnist1d ({len(data.x_train)} train)")
    for name in args.models.split(","):
        without, with_, logged = [], [], []
        for rep in range(args.reps):
            for freq in (0, args.freq) if rep % 2 == 0 else (args.freq, 0):
                epochs, calls = one_fit(specs[name], data, config, freq)
                (with_ if freq else without).extend(epochs)
                logged.extend(calls)
        a, b = statistics.median(without), statistics.median(with_)
        print(
            f"{name:7s} epoch without {1000 * a:7.1f} ms  with {1000 * b:7.1f} ms  adds {1000 * (b - a):+7.1f} ms "
            f"({100 * (b / a - 1):+.0f} %)  per logged epoch {1000 * statistics.median(logged):7.1f} ms"
        )


if __name__ == "__main__":
    main()
