"""`TrainEval`: the training data's loss and metrics in inference mode, as a third line."""

import keras
import numpy as np
import tensorflow as tf

from tbreg.callbacks._base import SummaryCallback, due, to_float


def _take(x, y, max_examples):
    """The first `max_examples` (x, y) examples as tensors; `x` may be a batched tf.data.Dataset."""
    if isinstance(x, tf.data.Dataset):
        if y is not None:
            raise ValueError("TrainEval: pass y=None when x is a tf.data.Dataset of (x, y) batches")
        xs, ys, n = [], [], 0
        for batch in x:
            bx, by = batch[0], batch[1]
            xs.append(bx)
            ys.append(by)
            n += int(tf.shape(bx)[0])
            if max_examples and n >= max_examples:
                break
        if not xs:
            raise ValueError("TrainEval: the dataset is empty")
        x, y = tf.concat(xs, 0), tf.concat(ys, 0)
    elif y is None:
        raise ValueError("TrainEval: pass the training targets as y= (or a tf.data.Dataset as x=)")
    if max_examples:
        x, y = x[:max_examples], y[:max_examples]
    return tf.convert_to_tensor(x), tf.convert_to_tensor(y)


class TrainEval(SummaryCallback):
    """Evaluates the training data in inference mode every `freq` epochs (Géron's advice).

    The training loss Keras reports is the mean over the epoch while the weights still change,
    and with dropout it is computed on the thinned network: it is pessimistic. This callback
    evaluates (the first `max_examples` of) the training data with `training=False` at the end of
    the epoch — the same way validation is evaluated — and writes the results under
    `log_dir/train_eval`, so TensorBoard draws a third line beside train and validation:

    | dir | tag | value |
    |---|---|---|
    | train_eval | `epoch_<name>` | every result of `model.test_step`: `epoch_loss`, `epoch_<data loss>`, `epoch_accuracy`, … |

    The examples are taken once, at the start of training, and kept as tensors; evaluation is
    one compiled `model.test_step` per chunk of `batch_size` (no Keras `evaluate` loop).

    Args:
        log_dir: the run's log dir, as for `keras.callbacks.TensorBoard`.
        freq: evaluate every `freq` epochs (epochs 0, freq, 2·freq, …); 0 never.
        max_examples: evaluate the first this many training examples; None for all.
        x: training inputs (array or tensor), or a batched `tf.data.Dataset` of (x, y).
        y: training targets, when `x` is an array.
        batch_size: examples per compiled call; None = all `max_examples` at once (at most 4096).

    Example:
        ```python
        model.fit(x, y, validation_split=0.2, epochs=50, callbacks=[
            keras.callbacks.TensorBoard("logs/run1"),
            tbreg.callbacks.TrainEval("logs/run1", freq=1, max_examples=1000, x=x, y=y),
        ])
        ```
    """

    @property
    def tbreg_model_freq(self) -> int:
        """It reads the model at the epochs it is due: tbreg's fast engine ends a block of epochs there."""
        return self.freq

    def __init__(self, log_dir, freq: int = 1, max_examples: int | None = 1000, *, x, y=None, batch_size=None):
        super().__init__(log_dir)
        if not isinstance(freq, int) or freq < 0:
            raise ValueError(f"freq must be an int >= 0 (epochs), not {freq!r}")
        if max_examples is not None and max_examples < 1:
            raise ValueError(f"max_examples must be >= 1 or None, not {max_examples!r}")
        self.freq = freq
        self.max_examples = max_examples
        self.batch_size = batch_size
        self._source = (x, y)
        self._data = None
        self._fns = None
        self.latest = None  # (epoch, {name: value}) of the last evaluation

    def on_train_begin(self, logs=None):
        if self._data is None:
            x, y = _take(*self._source, self.max_examples)
            size = self.batch_size or min(int(x.shape[0]), 4096)
            self._data = [(x[i : i + size], y[i : i + size]) for i in range(0, int(x.shape[0]), size)]
        model = self.model

        def first(x, y):
            for metric in model.metrics:
                metric.reset_state()
            return model.test_step((x, y))

        def more(x, y):
            return model.test_step((x, y))

        self._fns = (tf.function(first, reduce_retracing=True), tf.function(more, reduce_retracing=True))

    def evaluate(self) -> dict[str, float]:
        """The training examples' loss and metrics in inference mode, now."""
        results = None
        for i, (x, y) in enumerate(self._data):
            results = self._fns[0 if i == 0 else 1](x, y)
        return {
            name: to_float(value) for name, value in results.items() if np.ndim(keras.ops.convert_to_numpy(value)) == 0
        }

    def on_epoch_end(self, epoch, logs=None):
        if due(epoch, self.freq):
            results = self.evaluate()
            self.latest = (epoch, results)  # GeneralizationGap measures the gap against it
            self.write_scalars("train_eval", {f"epoch_{k}": v for k, v in results.items()}, epoch)
