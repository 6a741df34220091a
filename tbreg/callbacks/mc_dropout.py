"""`MCDropout`: Monte-Carlo dropout evaluation of the validation data, as its own line."""

import keras
import numpy as np
import tensorflow as tf

from tbreg import analysis
from tbreg.callbacks._base import SummaryCallback, due

_EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped like its cross-entropies do


class MCDropout(SummaryCallback):
    """Evaluates data with Monte-Carlo dropout (Gal & Ghahramani 2016, Géron ch. 11) every `freq` epochs.

    The model's predictions are averaged over `samples` forward passes with dropout left on
    (probabilities, not logits, are averaged), and the data loss and accuracy of that mean are
    written under `log_dir/<split>` (default `validation_mc`) with the same tags as Keras'
    validation line, so TensorBoard draws them beside it:

    | dir | tag | value |
    |---|---|---|
    | validation_mc | `epoch_<data loss>` | cross-entropy of the mean prediction (`binary_crossentropy`, `sparse_categorical_crossentropy` or `categorical_crossentropy`) |
    | validation_mc | `epoch_accuracy` | accuracy of the mean prediction |

    Only the `Dropout` layers are stochastic; every other layer runs in inference mode (batch
    normalization uses its moving statistics and is not updated). The layers before the first
    `Dropout` are deterministic, so they run once per evaluation, not `samples` times. The dropout
    masks come from the callback's own random generator: training draws the same masks with or
    without this callback. Needs a `keras.Sequential` model.

    Args:
        log_dir: the run's log dir, as for `keras.callbacks.TensorBoard`.
        x: inputs to evaluate (e.g. the validation inputs).
        y: their targets: class indices, one-hot rows, or 0/1 for a single-output binary model.
        samples: stochastic forward passes averaged per evaluation.
        freq: evaluate every `freq` epochs (epochs 0, freq, 2·freq, …); 0 never.
        from_logits: whether the model outputs logits; None reads it from the compiled loss
            (`from_logits` attribute), else assumes probabilities.
        split: the subdir of `log_dir` written to.
        batch_size: examples per compiled call.
        seed: seed of the dropout masks.

    Example:
        ```python
        model.fit(x, y, validation_data=(x_val, y_val), epochs=20, callbacks=[
            keras.callbacks.TensorBoard("logs/run1"),
            tbreg.callbacks.MCDropout("logs/run1", x_val, y_val, samples=100),
        ])
        ```
    """

    @property
    def tbreg_model_freq(self) -> int:
        """It reads the model at the epochs it is due: tbreg's fast engine ends a block of epochs there."""
        return self.freq

    def __init__(
        self,
        log_dir,
        x,
        y,
        samples: int = 20,
        freq: int = 1,
        *,
        from_logits=None,
        split: str = "validation_mc",
        batch_size: int = 4096,
        seed: int = 0,
    ):
        super().__init__(log_dir)
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be an int >= 1, not {samples!r}")
        if not isinstance(freq, int) or freq < 0:
            raise ValueError(f"freq must be an int >= 0 (epochs), not {freq!r}")
        self.samples, self.freq, self.split = samples, freq, split
        self.from_logits, self.batch_size, self.seed = from_logits, batch_size, seed
        self._x, self._y = x, y
        self._fn = None
        self.last = None  # the last results, {tag: value}

    def _layers(self):
        model = self.model
        if not isinstance(model, keras.Sequential):
            raise ValueError(f"MCDropout needs a keras.Sequential model, not {type(model).__name__}")
        layers = list(model.layers)
        first = next((i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Dropout)), None)
        if first is None:
            raise ValueError(f"MCDropout: model {model.name!r} has no Dropout layer")
        return layers[:first], layers[first:]

    def on_train_begin(self, logs=None):
        prefix, suffix = self._layers()
        from_logits = self.from_logits
        if from_logits is None:
            from_logits = bool(getattr(self.model.loss, "from_logits", False))
        generator = tf.random.Generator.from_seed(self.seed)
        samples = self.samples

        def forward(h, layers, stochastic):
            for layer in layers:
                if stochastic and isinstance(layer, keras.layers.Dropout) and layer.rate > 0:
                    keep = generator.uniform(tf.shape(h)) >= layer.rate
                    h = tf.where(keep, h / (1.0 - layer.rate), tf.zeros_like(h))
                else:
                    h = layer(h, training=False)
            return h

        def to_probs(out):
            out = tf.cast(out, tf.float32)
            if not from_logits:
                return out
            return tf.sigmoid(out) if out.shape[-1] == 1 else tf.nn.softmax(out)

        def chunk(x, y):
            h = forward(x, prefix, stochastic=False)
            total = to_probs(forward(h, suffix, stochastic=True))
            for _ in tf.range(samples - 1):  # a graph loop: traced once, whatever `samples` is
                total += to_probs(forward(h, suffix, stochastic=True))
            probs = total / samples
            probs = tf.clip_by_value(probs, _EPSILON, 1.0 - _EPSILON)
            return _loss_and_hits(probs, y)

        self._fn = tf.function(chunk, reduce_retracing=True)

    def evaluate(self) -> dict[str, float]:
        """{`epoch_<data loss>`: …, `epoch_accuracy`: …} of the Monte-Carlo mean prediction, now."""
        x, y = self._x, self._y
        n = len(x)
        loss_sum, hits = 0.0, 0.0
        for start in range(0, n, self.batch_size):
            xb = tf.convert_to_tensor(x[start : start + self.batch_size])
            yb = tf.convert_to_tensor(y[start : start + self.batch_size])
            loss, correct = self._fn(xb, yb)
            loss_sum, hits = loss_sum + float(loss), hits + float(correct)
        name = analysis.data_loss_for_outputs(self.model.output_shape[-1], np.shape(y))
        return {f"epoch_{name}": loss_sum / n, "epoch_accuracy": hits / n}

    def on_epoch_end(self, epoch, logs=None):
        if due(epoch, self.freq):
            self.last = self.evaluate()
            self.write_scalars(self.split, self.last, epoch)


def _loss_and_hits(probs, y):
    """(summed cross-entropy, number correct) of mean probabilities `probs` for targets `y`."""
    name = analysis.data_loss_for_outputs(probs.shape[-1], tuple(y.shape))
    if name == "binary_crossentropy":
        y = tf.reshape(tf.cast(y, tf.float32), [-1, 1])
        loss = -(y * tf.math.log(probs) + (1.0 - y) * tf.math.log(1.0 - probs))
        hits = tf.cast(tf.equal(tf.cast(probs > 0.5, tf.float32), y), tf.float32)
    elif name == "categorical_crossentropy":
        loss = -tf.reduce_sum(tf.cast(y, tf.float32) * tf.math.log(probs), axis=-1)
        hits = tf.cast(tf.equal(tf.argmax(probs, axis=-1), tf.argmax(y, axis=-1)), tf.float32)
    else:
        labels = tf.reshape(tf.cast(y, tf.int64), [-1])
        loss = -tf.math.log(tf.gather(probs, labels, batch_dims=1))
        hits = tf.cast(tf.equal(tf.argmax(probs, axis=-1), labels), tf.float32)
    return tf.reduce_sum(loss), tf.reduce_sum(hits)
