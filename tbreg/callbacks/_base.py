"""What every tbreg callback shares: lazy summary writers per split, the "is it time?" rule,
the data-loss metric lookup, and finding Keras' own TensorBoard callback in the same fit."""

import inspect
import os
import warnings

import keras
import tensorflow as tf

from tbreg import analysis
from tbreg.events import EventWriter

# Metrics that are a data loss (the loss without the penalty), in the order they are looked for
# after the compiled loss' own name.
KNOWN_DATA_LOSSES = analysis.DATA_LOSSES


def due(epoch: int, freq: int) -> bool:
    """True when a periodic action with period `freq` epochs runs at `epoch` (0 = never)."""
    return bool(freq) and epoch % freq == 0


def same_dir(a: str, b: str) -> bool:
    a, b = str(a), str(b)
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return os.path.abspath(a) == os.path.abspath(b)


def fit_callbacks(callback: keras.callbacks.Callback) -> list | None:
    """The callbacks of the `fit` that is calling `callback` right now, or None if unknown.

    Keras calls each callback's hooks from its `CallbackList`; this finds that list among the
    calling frames. Call it from a hook (e.g. `on_train_begin`).
    """
    frame = inspect.currentframe()
    try:
        for _ in range(8):
            frame = frame.f_back
            if frame is None:
                return None
            owner = frame.f_locals.get("self")
            if isinstance(owner, keras.callbacks.CallbackList) and any(c is callback for c in owner.callbacks):
                return list(owner.callbacks)
    finally:
        del frame
    return None


def keras_tensorboard_in_fit(callback, log_dir: str) -> bool:
    """True when a `keras.callbacks.TensorBoard` writing to `log_dir` is in the same fit."""
    siblings = fit_callbacks(callback) or []
    return any(isinstance(c, keras.callbacks.TensorBoard) and same_dir(c.log_dir, log_dir) for c in siblings)


def data_loss_in_logs(model, logs: dict, override: str | None = None) -> str | None:
    """The key of `logs` that holds the data loss: `override`, else the compiled loss' name or a
    known cross-entropy metric that was compiled as a metric. None when there is none."""
    if override:
        if override not in logs:
            raise ValueError(
                f"data_loss={override!r} is not in the epoch logs ({', '.join(sorted(logs))}); "
                "compile it as a metric or pass one of these names"
            )
        return override
    loss = getattr(model, "loss", None)
    own = loss if isinstance(loss, str) else getattr(loss, "name", None)
    for name in (own, *KNOWN_DATA_LOSSES):
        if name and name != "loss" and name in logs:
            return name
    return None


def to_float(value) -> float:
    if hasattr(value, "numpy"):  # eager tensors and variables
        return float(value.numpy())
    return float(keras.ops.convert_to_numpy(value))


class SummaryCallback(keras.callbacks.Callback):
    """A callback that writes summaries under `log_dir/<split>`, created on first use and closed in
    `on_train_end` (like Keras' TensorBoard callback): per-epoch scalars and histograms through an
    `EventWriter` per split (`events`), anything else through a `tf.summary` writer (`writer`)."""

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = str(log_dir)
        self._writers = {}
        self._warned = set()

    def writer(self, split: str):
        if split not in self._writers:
            self._writers[split] = tf.summary.create_file_writer(os.path.join(self.log_dir, split))
        return self._writers[split]

    def events(self, split: str) -> EventWriter:
        """The split's event writer for per-epoch values: protobuf from Python, no eager op per value."""
        key = f"{split}:events"
        if key not in self._writers:
            self._writers[key] = EventWriter(os.path.join(self.log_dir, split))
        return self._writers[key]

    def write_scalars(self, split: str, values: dict, step: int) -> None:
        """Writes {tag: number} at `step` as `tf.summary.scalar` would (the same events, byte for byte)."""
        if values:
            self.events(split).scalars(values, step)

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"{type(self).__name__}: {message}", stacklevel=3)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def on_train_end(self, logs=None):
        self.close()
