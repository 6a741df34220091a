"""`RegularizationLoss`: the penalty part of the loss, per epoch and per layer."""

import keras
import tensorflow as tf

from tbreg.callbacks._base import (
    SummaryCallback,
    data_loss_in_logs,
    keras_tensorboard_in_fit,
    to_float,
)


class RegularizationLoss(SummaryCallback):
    """Logs the regularization penalty every epoch: its mean over the epoch and each layer's share.

    Written with step = epoch (0-based):

    | dir | tag | value |
    |---|---|---|
    | train | `epoch_regularization_loss` | mean penalty over the epoch's steps = `loss - <data loss>` |
    | train | `regularization/<layer>` | the layer's penalty at the end of the epoch (`sum(layer.losses)`) |
    | train, validation | `epoch_<data loss>` | only when no `keras.callbacks.TensorBoard` on the same `log_dir` is in the fit (it writes them already) |

    **Why `loss - data loss` is the mean penalty.** Keras' epoch `loss` is the mean over the
    epoch's steps (weighted by batch size) of `data loss + sum(model.losses)`, and the compiled
    data-loss metric (e.g. `binary_crossentropy`) is the mean of the data part computed on the
    *same* forward pass — with dropout active, the same dropped units. Their difference is exactly
    the mean penalty the optimizer saw, with no per-batch work; tests check it against the penalty
    recomputed from the weights before every step. The validation `val_loss` also contains the
    penalty (of the epoch-end weights), which only applies in training: compare models on the
    validation *data* loss.

    The data loss is the metric named `data_loss`, else the compiled loss' name or
    `binary_crossentropy` / `sparse_categorical_crossentropy` / `categorical_crossentropy` if it
    is among the metrics. Without one, only the per-layer penalties are logged (with a warning),
    unless the model has no penalty at all: then everything is 0.

    Per-layer penalties cover kernel, bias and any other weight regularizer, from the epoch-end
    weights. Activity regularizers depend on the input: they are in `epoch_regularization_loss`,
    and per layer when `activity_data` (a small batch of inputs) is given; the layer's activity
    penalty is then computed on it in inference mode. The per-layer values sum to
    `sum(model.losses)`. Works for L1, L2, L1L2 and custom regularizers.

    Args:
        log_dir: the run's log dir, as for `keras.callbacks.TensorBoard`.
        data_loss: name of the metric that is the data loss, e.g. `"mean_squared_error"`; None
            finds it as above.
        activity_data: inputs on which to evaluate activity regularizers per layer, or None.

    Example:
        ```python
        model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[keras.metrics.BinaryCrossentropy(from_logits=True)])
        model.fit(x, y, validation_split=0.2, epochs=20, callbacks=[
            keras.callbacks.TensorBoard("logs/run1"),
            tbreg.callbacks.RegularizationLoss("logs/run1"),
        ])
        ```
    """

    @property
    def tbreg_model_freq(self) -> int:
        """With penalties it reads them from the weights every epoch (one epoch per compiled call in
        tbreg's fast engine); without, only the epoch's logs."""
        return 1 if self._has_penalty else 0

    def __init__(self, log_dir, data_loss: str | None = None, activity_data=None):
        super().__init__(log_dir)
        self.data_loss = data_loss
        self.activity_data = activity_data
        self._keras_tensorboard = False
        self._layers = []
        self._has_activity = self._has_regularizers = False
        self._has_penalty = True  # until on_train_begin knows

    def on_train_begin(self, logs=None):
        self._keras_tensorboard = keras_tensorboard_in_fit(self, self.log_dir)
        self._layers = [
            layer
            for layer in self.model.layers
            if layer.trainable_weights or getattr(layer, "activity_regularizer", None) is not None
        ]
        self._has_activity = any(getattr(layer, "activity_regularizer", None) is not None for layer in self._layers)
        self._has_regularizers = self._has_activity or any(
            getattr(w, "regularizer", None) is not None for w in self.model.trainable_weights
        )
        self._has_penalty = self._has_regularizers or bool(self.model.losses)
        if self.activity_data is not None:
            self.activity_data = tf.convert_to_tensor(self.activity_data)

    def layer_penalties(self) -> dict[str, float]:
        """Each layer's current penalty: weight regularizers, plus activity on `activity_data`."""
        if self._has_activity and self.activity_data is not None:
            self.model(self.activity_data, training=False)  # refreshes layer.losses eagerly
        out = {}
        for layer in self._layers:
            # After a compiled fit, activity losses are graph tensors of the last trace: skipped.
            values = [v for v in layer.losses if not tf.is_symbolic_tensor(v)]
            out[layer.name] = sum(to_float(keras.ops.sum(v)) for v in values) if values else 0.0
        return out

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        has_penalty = self._has_regularizers or bool(self.model.losses)  # also add_loss() in call()
        data_loss = data_loss_in_logs(self.model, logs, self.data_loss)
        values = {}
        if not has_penalty:
            values["epoch_regularization_loss"] = 0.0
        elif data_loss and "loss" in logs:
            values["epoch_regularization_loss"] = logs["loss"] - logs[data_loss]
        else:
            self.warn_once(
                "data_loss",
                "no data-loss metric in the logs, so epoch_regularization_loss is not logged; compile "
                "the loss as a metric too (e.g. metrics=[keras.metrics.BinaryCrossentropy()]) or pass "
                "data_loss=<metric name>",
            )
        if self._has_activity and self.activity_data is None:
            self.warn_once(
                "activity",
                "activity regularizers are in epoch_regularization_loss but not in regularization/<layer>; "
                "pass activity_data=x[:256] to log them per layer",
            )
        penalties = self.layer_penalties() if has_penalty else {layer.name: 0.0 for layer in self._layers}
        values.update({f"regularization/{name}": value for name, value in penalties.items()})
        self.write_scalars("train", values, epoch)
        if data_loss and not self._keras_tensorboard:
            tag = f"epoch_{data_loss}"
            self.write_scalars("train", {tag: logs[data_loss]}, epoch)
            if f"val_{data_loss}" in logs:
                self.write_scalars("validation", {tag: logs[f"val_{data_loss}"]}, epoch)
