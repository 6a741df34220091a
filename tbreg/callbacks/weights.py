"""`WeightHistograms`: each layer's weight histograms, L2 norm and sparsity, every few epochs."""

import re

import keras
import tensorflow as tf

from tbreg.callbacks._base import SummaryCallback, due

BUCKETS = 30  # tf.summary.histogram's default


def histogram_buckets(values, bucket_count: int = BUCKETS):
    """The `[bucket_count, 3]` (left edge, right edge, count) tensor `tf.summary.histogram` writes,
    bucket for bucket, counted with `bincount` instead of its `one_hot` matrix (n × buckets
    float64s: 63 MB and most of the time for a 512×512 kernel). Only the finite values are counted
    (a diverged weight holds NaN or ±inf, which have no bucket); none gives all-zero buckets."""
    data = tf.cast(tf.reshape(values, [-1]), tf.float64)
    if data.shape[0] == 0:
        return tf.zeros((bucket_count, 3), tf.float64)
    finite = tf.math.is_finite(data)
    data = tf.cond(tf.reduce_all(finite), lambda: data, lambda: tf.boolean_mask(data, finite))  # masking costs 2×
    size = tf.size(data)
    low, high = tf.reduce_min(data), tf.reduce_max(data)  # ±inf when nothing is finite: not used then
    width = (high - low) / bucket_count

    def spread():
        index = tf.minimum(tf.cast(tf.floor((data - low) / width), tf.int32), bucket_count - 1)
        counts = tf.cast(tf.math.bincount(index, minlength=bucket_count, maxlength=bucket_count), tf.float64)
        edges = tf.concat([tf.linspace(low, high, bucket_count + 1)[:-1], [high]], 0)
        return tf.stack([edges[:-1], edges[1:], counts], axis=1)

    def single_value():  # every value equal: all edges there, the count in the last bucket
        edges = tf.fill([bucket_count], high)
        counts = tf.concat([tf.zeros([bucket_count - 1], tf.float64), [tf.cast(size, tf.float64)]], 0)
        return tf.stack([edges, edges, counts], axis=1)

    def nothing_finite():
        return tf.zeros((bucket_count, 3), tf.float64)

    return tf.cond(tf.equal(size, 0), nothing_finite, lambda: tf.cond(tf.equal(high, low), single_value, spread))


def select_layers(model, patterns) -> list:
    """Layers of `model` with trainable weights whose name equals or fully matches a pattern."""
    layers = [layer for layer in model.layers if layer.trainable_weights]
    if patterns is None:
        return layers
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)

    def matches(pattern, name):
        if pattern == name:
            return True
        try:
            return re.fullmatch(pattern, name) is not None
        except re.error:
            return False

    unmatched = [p for p in patterns if not any(matches(p, layer.name) for layer in layers)]
    if unmatched:
        raise ValueError(
            f"layers={unmatched} match no layer with weights; choose among: {', '.join(layer.name for layer in layers)}"
        )
    return [layer for layer in layers if any(matches(p, layer.name) for p in patterns)]


def weight_names(layer) -> list[str]:
    """Short, unique names of `layer`'s trainable weights: `kernel`, `bias`, …"""
    prefix = getattr(layer, "path", layer.name) + "/"
    names = [w.path[len(prefix) :] if w.path.startswith(prefix) else w.name for w in layer.trainable_weights]
    return [n if names.count(n) == 1 else f"{n}_{i}" for i, n in enumerate(names)]


class WeightHistograms(SummaryCallback):
    """Logs each layer's weight histograms, L2 norm and sparsity every `freq` epochs.

    Written under `log_dir/train` with step = epoch (0-based), for each selected layer:

    | tag | kind | value |
    |---|---|---|
    | `weights/<layer>/kernel`, `weights/<layer>/bias` | histogram | the weight's values (any other trainable weight by its name, e.g. `gamma`) |
    | `weight_norm/<layer>` | scalar | L2 norm of all the layer's trainable weights, `sqrt(sum w²)` |
    | `weight_sparsity/<layer>` | scalar | fraction of those weights with `abs(w) < sparsity_threshold` |
    | `weight_nonfinite/<layer>` | scalar | how many of those weights are NaN or ±inf; only logged when some are |

    Weights that are not finite (a diverged training) are left out of the histograms, which count
    the finite ones; the norm is then NaN or inf, as it is.

    Layers without trainable weights (Dropout, …) are skipped. With Keras' own
    `TensorBoard(histogram_freq=0)` beside it there is one histogram per weight, not two.

    Args:
        log_dir: the run's log dir, as for `keras.callbacks.TensorBoard`.
        freq: log every `freq` epochs (epochs 0, freq, 2·freq, …); 0 logs nothing.
        layers: None for every layer with weights, or a layer name / regex (full match), or a
            list of them. A pattern that matches no layer is an error at the start of training.
        sparsity_threshold: weights with an absolute value below it count as zero.

    Example:
        ```python
        model.fit(x, y, validation_split=0.2, epochs=20, callbacks=[
            keras.callbacks.TensorBoard("logs/run1"),
            tbreg.callbacks.WeightHistograms("logs/run1", freq=5, layers=r"hidden_\\d+"),
        ])
        ```
    """

    @property
    def tbreg_model_freq(self) -> int:
        """It reads the model at the epochs it is due: tbreg's fast engine ends a block of epochs there."""
        return self.freq

    def __init__(self, log_dir, freq: int = 1, layers=None, sparsity_threshold: float = 1e-3):
        super().__init__(log_dir)
        if not isinstance(freq, int) or freq < 0:
            raise ValueError(f"freq must be an int >= 0 (epochs), not {freq!r}")
        if sparsity_threshold < 0:
            raise ValueError(f"sparsity_threshold must be >= 0, not {sparsity_threshold!r}")
        self.freq = freq
        self.layers = layers
        self.sparsity_threshold = float(sparsity_threshold)
        self._selected = []
        self._stats_fn = None

    def on_train_begin(self, logs=None):
        self._selected = [(layer, weight_names(layer)) for layer in select_layers(self.model, self.layers)]
        self._stats_fn = self._make_stats_fn()

    def _make_stats_fn(self):
        groups = [layer.trainable_weights for layer, _ in self._selected]
        threshold = self.sparsity_threshold

        @tf.function(autograph=False)
        def stats():
            """Per layer: L2 norm, sparsity, non-finite count and each weight's histogram buckets, in one call."""
            norms, sparsity, nonfinite, buckets = [], [], [], []
            for weights in groups:
                values = [tf.reshape(keras.ops.convert_to_tensor(w), [-1]) for w in weights]
                squares = tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float64))) for v in values])
                small = tf.add_n([tf.math.count_nonzero(tf.abs(v) < threshold) for v in values])
                bad = tf.add_n([tf.math.count_nonzero(tf.logical_not(tf.math.is_finite(v))) for v in values])
                size = float(sum(int(v.shape[0]) for v in values))
                norms.append(tf.sqrt(squares))
                sparsity.append(tf.cast(small, tf.float64) / size)
                nonfinite.append(bad)
                buckets.append([histogram_buckets(v) for v in values])
            return tf.stack(norms), tf.stack(sparsity), tf.stack(nonfinite), buckets

        return stats

    def on_epoch_end(self, epoch, logs=None):
        if not due(epoch, self.freq) or not self._selected:
            return
        norms, sparsity, nonfinite, buckets = self._stats_fn()
        norms, sparsity, nonfinite = norms.numpy(), sparsity.numpy(), nonfinite.numpy()
        events = self.events("train")
        for i, (layer, names) in enumerate(self._selected):
            for name, tensor in zip(names, buckets[i]):
                events.histogram(f"weights/{layer.name}/{name}", tensor.numpy(), epoch)
            values = {f"weight_norm/{layer.name}": norms[i], f"weight_sparsity/{layer.name}": sparsity[i]}
            if nonfinite[i]:
                values[f"weight_nonfinite/{layer.name}"] = float(nonfinite[i])
            events.scalars(values, epoch)
