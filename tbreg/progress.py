"""A family's training progress on stderr, and output streams that a closed pipe cannot break.

On a terminal, one live line per model (rich): `sizes 2/5 small`, a bar, epoch x/max, the best
validation data loss so far and its epoch, epochs/s, the time the model took, and the family's
ETA. On a pipe or in CI (stderr not a terminal), the same facts as plain lines: one every
`plain_secs` seconds per model, and one when a model ends.

    with progress.FamilyProgress("sizes", total=5):
        sweep.train_family(...)  # train_run adds progress.callbacks(...) to every run

train_run shows progress only inside a FamilyProgress (a `tbreg sweep` worker or a --jobs worker
has none: the driver prints its own start/done lines there). `guard_streams()` makes stdout and
stderr drop what they cannot write once their reader is gone (`… | head`), so training goes on.

rich, not tqdm: Keras 3 already depends on rich (no new package), and rich draws several live
lines with custom columns, knows when its stream is not a terminal, and moves lines printed while
it is live above the bars.
"""

import errno
import math
import os
import sys
import time

PLAIN_SECS = 10.0  # a plain line per model at most this often (pipes, CI logs)
_ACTIVE = None  # the FamilyProgress of this process, if one is open


def duration(seconds: float) -> str:
    """`42s`, `3m 05s`, `1h 02m`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


class ModelProgress:
    """One run's progress: its place in the family, epochs, best monitored value, speed."""

    def __init__(self, index: int, total: int, family: str, name: str, max_epochs: int):
        self.index, self.total, self.family, self.name, self.max_epochs = index, total, family, name, max_epochs
        self.epoch = None  # last epoch ended (0-based, as TensorBoard's step)
        self.epochs_here = 0  # epochs ended in this process (a resumed run started later)
        self.best_value, self.best_epoch = math.inf, None
        self.started = time.monotonic()
        self.ended = False

    @property
    def label(self) -> str:
        return f"{self.family} {self.index}/{self.total} {self.name}"

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float | None:
        """Epochs per second in this process; None before the first epoch."""
        return self.epochs_here / self.elapsed if self.epochs_here and self.elapsed > 0 else None

    def epoch_ended(self, epoch: int, value) -> None:
        self.epoch, self.epochs_here = epoch, self.epochs_here + 1
        if value is not None and math.isfinite(value) and value < self.best_value:
            self.best_value, self.best_epoch = float(value), epoch

    def best(self) -> str:
        return "best -" if self.best_epoch is None else f"best {self.best_value:.4f} (epoch {self.best_epoch})"

    def done_epochs(self) -> int:
        return 0 if self.epoch is None else self.epoch + 1


class FamilyProgress:
    """The progress display of a family of `total` runs, open as a context manager.

    `live`: draw live lines (default: when the stream is a terminal); `stream`: default stderr.
    """

    def __init__(self, family: str, total: int, stream=None, live: bool | None = None, plain_secs: float = PLAIN_SECS):
        self.family, self.total, self.plain_secs = family, max(1, total), plain_secs
        self._stream, self._live = stream, live
        self.started = 0
        self.durations = []  # seconds of the models that ended
        self.current = None
        self._bars = self._task = None
        self._last_line = 0.0

    def __enter__(self):
        global _ACTIVE
        from rich.console import Console

        self.console = Console(file=self._stream or sys.stderr, highlight=False)
        if self._live is None:
            self._live = self.console.is_terminal and not self.console.is_dumb_terminal
        if self._live:
            self._bars = _bars(self.console)
            self._bars.start()
        _ACTIVE = self
        return self

    def __exit__(self, *exc):
        global _ACTIVE
        _ACTIVE = None
        if self._bars is not None:
            self._bars.stop()

    def eta(self) -> str:
        """The family's time left: the current model's epochs left at its speed (at most; early
        stopping ends sooner) plus, per model not started, the mean time of those that ended."""
        model = self.current
        left_now = 0.0
        if model is not None and not model.ended:
            if model.rate is None:
                return "family ETA after the first epoch"
            left_now = (model.max_epochs - model.done_epochs()) / model.rate
        per_model = (
            sum(self.durations) / len(self.durations)
            if self.durations
            else model.max_epochs / model.rate
            if model is not None and model.rate
            else 0.0
        )
        left = left_now + (self.total - self.started) * per_model
        return (
            "family done"
            if model is not None and model.ended and self.started >= self.total
            else f"family ETA ≤{duration(left)}"
        )

    def _fields(self, model: ModelProgress) -> dict:
        rate = "-" if model.rate is None else f"{model.rate:.1f}"
        eta = "done" if model.ended and self.started < self.total else self.eta()
        return {"best": model.best(), "rate": f"{rate} epochs/s", "eta": eta}

    def plain_line(self, model: ModelProgress, end: bool = False) -> str:
        fields = self._fields(model)
        what = f"ended after {model.done_epochs()} epochs" if end else f"epoch {model.done_epochs()}/{model.max_epochs}"
        return (
            f"{model.label}: {what} · {fields['best']} · {fields['rate']} · {duration(model.elapsed)} · {fields['eta']}"
        )

    def begin(self, name: str, max_epochs: int) -> ModelProgress:
        self.started += 1
        self.current = model = ModelProgress(min(self.started, self.total), self.total, self.family, name, max_epochs)
        self._last_line = time.monotonic()
        if self._bars is not None:
            self._task = self._bars.add_task(model.label, total=max_epochs, completed=0, **self._fields(model))
        return model

    def update(self, model: ModelProgress) -> None:
        if self._bars is not None:
            self._bars.update(self._task, completed=model.done_epochs(), **self._fields(model))
        elif time.monotonic() - self._last_line >= self.plain_secs:
            self._last_line = time.monotonic()
            self._print(self.plain_line(model))

    def end(self, model: ModelProgress) -> None:
        if model.ended:
            return
        model.ended = True
        self.durations.append(model.elapsed)
        if self._bars is not None:
            self._bars.update(self._task, completed=model.done_epochs(), **self._fields(model))
            self._bars.stop_task(self._task)
        else:
            self._print(self.plain_line(model, end=True))

    def _print(self, line: str) -> None:
        stream = self._stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()


def _bars(console):
    from rich import progress as rp

    return rp.Progress(
        rp.TextColumn("{task.description}"),
        rp.BarColumn(bar_width=20),
        rp.MofNCompleteColumn(),  # epochs done / max
        rp.TextColumn("epochs · {task.fields[best]} · {task.fields[rate]} ·"),
        rp.TimeElapsedColumn(),
        rp.TextColumn("· {task.fields[eta]}"),
        console=console,
        refresh_per_second=4,
    )


def active() -> FamilyProgress | None:
    return _ACTIVE


def run_label(run_dir: str) -> str:
    """A run's name in its family: `tiny`, `tiny.2`, `tiny/seed_1`."""
    base = os.path.basename(run_dir.rstrip("/"))
    return f"{os.path.basename(os.path.dirname(run_dir.rstrip('/')))}/{base}" if base.startswith("seed_") else base


def callbacks(run_dir: str, max_epochs: int, monitor: str) -> list:
    """[a Keras callback that reports the run's epochs and best `monitor` to the open
    FamilyProgress], or [] when none is open (e.g. in a worker process)."""
    if _ACTIVE is None:
        return []
    return [_callback_class()(_ACTIVE, run_label(run_dir), max_epochs, monitor)]


_CLASS = None


def _callback_class():
    """EpochProgress, defined on first use so that importing this module does not import Keras."""
    global _CLASS
    if _CLASS is None:
        import keras

        class EpochProgress(keras.callbacks.Callback):
            """Reports each epoch's end and the best `monitor` to a FamilyProgress."""

            tbreg_model_freq = 0  # the epoch's logs only: any number of epochs per compiled call

            def __init__(self, display: FamilyProgress, name: str, max_epochs: int, monitor: str):
                super().__init__()
                self.display, self.name, self.max_epochs, self.monitor = display, name, max_epochs, monitor
                self.model_progress = None

            def on_train_begin(self, logs=None):
                self.model_progress = self.display.begin(self.name, self.max_epochs)

            def on_epoch_end(self, epoch, logs=None):
                self.model_progress.epoch_ended(epoch, (logs or {}).get(self.monitor))
                self.display.update(self.model_progress)

            def on_train_end(self, logs=None):
                self.display.end(self.model_progress)

        _CLASS = EpochProgress
    return _CLASS


class _PipeSafe:
    """A text stream whose writes stop failing once its reader is gone (EPIPE): the file
    descriptor is pointed at /dev/null, so later writes and Python's flush at exit are dropped."""

    def __init__(self, stream, on_close=None):
        self._stream, self._on_close, self.reader_gone = stream, on_close, False

    def _closed_pipe(self) -> None:
        self.reader_gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        if self._on_close:
            self._on_close()

    def _call(self, method, *args):
        try:
            return getattr(self._stream, method)(*args)
        except OSError as e:
            if self.reader_gone:
                return None
            if e.errno != errno.EPIPE:
                raise
            self._closed_pipe()
            try:  # what was buffered now goes to /dev/null
                return getattr(self._stream, method)(*args)
            except OSError:
                return None

    def write(self, text):
        return self._call("write", text)

    def flush(self):
        return self._call("flush")

    def __getattr__(self, name):
        return getattr(self._stream, name)


def guard_streams(prog: str | None = None) -> None:
    """Makes sys.stdout and sys.stderr drop output once their reader is gone (`… | head`), so a
    closed pipe never fails a training; says so once on stderr when stdout is the one closed."""
    if not isinstance(sys.stderr, _PipeSafe) and sys.stderr is not None:
        sys.stderr = _PipeSafe(sys.stderr)
    if not isinstance(sys.stdout, _PipeSafe) and sys.stdout is not None:

        def note():
            name = prog or os.path.basename(sys.argv[0])
            print(
                f"{name}: stdout was closed (its reader stopped); training goes on, that output is dropped",
                file=sys.stderr,
                flush=True,
            )

        sys.stdout = _PipeSafe(sys.stdout, note)
