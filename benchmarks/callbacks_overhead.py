"""Epoch time of the large model with all tbreg callbacks vs Keras' TensorBoard(histogram_freq=1).

    python benchmarks/callbacks_overhead.py                 # 5 repetitions x 8 epochs, ~4 min on 2 cores
    python benchmarks/callbacks_overhead.py --reps=3 --epochs=6

The fit is the scripts' own (tbreg.training: Adam + InverseTimeDecay, batch 500, tf.data pipelines)
on Higgs-shaped synthetic data (10,000 train / 1,000 validation rows, 28 features, binary), model
`large` (Dense 512x4 elu). Both configurations run in the same process, alternating
(A B B A A B …) so drift in machine load hits both alike:

  keras  Keras' TensorBoard(histogram_freq=1)                  <- the reference
  tbreg  Keras' TensorBoard(histogram_freq=0) + every tbreg callback at every epoch:
         WeightHistograms(freq=1), RegularizationLoss, GeneralizationGap, LearningRate,
         TrainEval(freq=1, max_examples=1000)
  plain  Keras' TensorBoard(histogram_freq=0) alone (context: a fit without any histograms)

An epoch's time runs from one `on_epoch_begin` to the next (or to `on_train_end`), so it includes
every callback's `on_epoch_end`; epoch 0 (tracing) is dropped. Reported: the median epoch time of
each configuration over all repetitions, wall and process CPU time (CPU time is steadier on a
shared machine), the callbacks' own on_epoch_end time, and the ratio tbreg/keras (target: at
most 1.05) with the median of the per-repetition ratios. A ratio, never a timed test.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tbreg import callbacks as tbreg_callbacks  # noqa: E402
from tbreg import config as config_lib  # noqa: E402
from tbreg import families, training  # noqa: E402
from tbreg.models import ModelSpec  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Per epoch: wall and process CPU seconds, and the wall seconds of the callbacks' on_epoch_end.

    Put it first in the list and its `end_marker()` last.
    """

    def __init__(self):
        super().__init__()
        self.wall, self.cpu, self.callbacks_start, self.callbacks_end = [], [], [], []
        timer = self

        class EndMarker(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                timer.callbacks_end.append(time.perf_counter())

        self.end_marker = EndMarker

    def on_epoch_begin(self, epoch, logs=None):
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def on_epoch_end(self, epoch, logs=None):
        self.callbacks_start.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.on_epoch_begin(-1)

    def results(self) -> dict[str, list[float]]:
        """Seconds per epoch; epoch 0 (tracing) is dropped."""
        diff = lambda xs: [b - a for a, b in zip(xs, xs[1:])][1:]  # noqa: E731
        callbacks = [b - a for a, b in zip(self.callbacks_start, self.callbacks_end)][1:]
        return {"wall": diff(self.wall), "cpu": diff(self.cpu), "callbacks": callbacks}


def higgs_like(n_train: int, n_validation: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_train + n_validation
    x = rng.normal(size=(n, features)).astype("float32")
    y = ((x @ rng.normal(size=features) + rng.normal(scale=2.0, size=n)) > 0).astype("float32")[:, None]
    return types.SimpleNamespace(
        name="higgs-like",
        x_train=x[n_validation:],
        y_train=y[n_validation:],
        x_val=x[:n_validation],
        y_val=y[:n_validation],
        num_features=features,
        num_classes=2,
    )


def fit_once(which: str, data, config, log_dir: str) -> dict[str, list[float]]:
    keras.utils.set_random_seed(config.seed)
    model = training.compile_model(ModelSpec("large", families.LARGE), data, config)
    timer = EpochTimer()
    if which == "keras":
        callbacks = [keras.callbacks.TensorBoard(log_dir, histogram_freq=1, write_graph=False)]
    elif which == "plain":
        callbacks = [keras.callbacks.TensorBoard(log_dir, write_graph=False)]
    else:
        callbacks = [
            keras.callbacks.TensorBoard(log_dir, write_graph=False),
            *tbreg_callbacks.make(
                log_dir,
                tbreg_callbacks.NAMES,
                histogram_freq=1,
                train_data=(data.x_train, data.y_train),
                train_eval_freq=1,
                train_eval_examples=1000,
            ),
        ]
    train_ds, val_ds = training.make_datasets(data, config)
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=config.max_epochs,
        verbose=0,
        callbacks=[timer, *callbacks, timer.end_marker()],
    )
    return timer.results()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="fits per configuration")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per fit (the first is dropped)")
    parser.add_argument("--features", type=int, default=28, help="28 (Higgs) or 40 (MNIST-1D)")
    parser.add_argument("--n_train", type=int, default=10_000)
    parser.add_argument("--n_validation", type=int, default=1_000)
    args = parser.parse_args(argv)

    data = higgs_like(args.n_train, args.n_validation, args.features)
    config = config_lib.for_dataset(
        "higgs", max_epochs=args.epochs, n_train=args.n_train, n_validation=args.n_validation, verbose=0
    )
    kinds = ("wall", "cpu", "callbacks")
    configs = ("keras", "tbreg", "plain")
    times = {which: {kind: [] for kind in kinds} for which in configs}
    ratios = {"wall": [], "cpu": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            order = configs if rep % 2 == 0 else configs[::-1]
            medians = {}
            for which in order:
                result = fit_once(which, data, config, os.path.join(tmp, f"{which}-{rep}"))
                for kind in kinds:
                    times[which][kind] += result[kind]
                medians[which] = {kind: statistics.median(result[kind]) for kind in kinds}
            for kind in ratios:
                ratios[kind].append(medians["tbreg"][kind] / medians["keras"][kind])
            print(
                f"rep {rep + 1}/{args.reps}: "
                + ", ".join(
                    f"{w} {medians[w]['wall'] * 1000:.0f} ms/epoch ({medians[w]['cpu'] * 1000:.0f} ms CPU, "
                    f"callbacks {medians[w]['callbacks'] * 1000:.1f} ms)"
                    for w in configs
                )
                + f"; ratio wall {ratios['wall'][-1]:.3f}, CPU {ratios['cpu'][-1]:.3f}",
                file=sys.stderr,
            )
    ms = {w: {k: statistics.median(times[w][k]) * 1000 for k in kinds} for w in times}
    print(
        f"large (512x4 elu), {args.features} features, {args.n_train} train / {args.n_validation} validation, "
        f"batch {config.batch_size}; {args.reps} reps x {args.epochs - 1} timed epochs, os.getloadavg()="
        f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}"
    )
    print(
        "| configuration | median epoch, wall ms | median epoch, CPU ms | of which callbacks' on_epoch_end, wall ms |"
    )
    print("|---|---|---|---|")
    for which, label in (
        ("keras", "Keras TensorBoard(histogram_freq=1)"),
        ("tbreg", "Keras TensorBoard + all tbreg callbacks, every epoch"),
        ("plain", "Keras TensorBoard(histogram_freq=0), for context"),
    ):
        print(f"| {label} | {ms[which]['wall']:.0f} | {ms[which]['cpu']:.0f} | {ms[which]['callbacks']:.1f} |")
    for kind in ("wall", "cpu"):
        print(
            f"ratio tbreg/keras, {kind}: {ms['tbreg'][kind] / ms['keras'][kind]:.3f} "
            f"(median of per-rep ratios {statistics.median(ratios[kind]):.3f}; "
            f"per rep {', '.join(f'{r:.3f}' for r in ratios[kind])})"
        )
    for ref in ("keras", "plain"):
        extra = ms["tbreg"]["callbacks"] - ms[ref]["callbacks"]
        print(f"tbreg callbacks' time over {ref}: {extra:+.1f} ms/epoch = {extra / ms[ref]['wall']:+.1%} of its epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
