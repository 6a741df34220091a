"""`EpochTensorBoard`: Keras' TensorBoard callback at epoch granularity, without eager summary ops."""

import keras

from tbreg.events import EventWriter


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Writes what `keras.callbacks.TensorBoard(log_dir, write_graph=False)` writes per epoch — the
    same tags, steps and values, byte for byte — as protobuf events from Python instead of one
    eager `tf.summary.scalar` (~1 ms) per value:

    | dir | tag | step |
    |---|---|---|
    | train | `epoch_<name>` for every training log, and `epoch_learning_rate` | epoch |
    | validation | `epoch_<name>` for every `val_<name>` log | epoch |
    | validation | `evaluation_<name>_vs_iterations` for every validation log | the optimizer's step count |

    It is a `keras.callbacks.TensorBoard` (so tbreg's callbacks see it as one and do not repeat
    its tags), for epoch-level logging only: no graph, histograms, images, profiling or per-batch
    summaries (use Keras' own callback for those). tbreg's fast engine uses it in place of Keras'.

    Args:
        log_dir: the run's log dir, as for `keras.callbacks.TensorBoard`.
    """

    # Reads only the optimizer's step count and learning rate, which tbreg's fast engine sets to each
    # epoch's values when it replays a block of epochs: any number of epochs per compiled call.
    tbreg_model_freq = 0

    def __init__(self, log_dir="logs"):
        super().__init__(log_dir, write_graph=False)

    @property
    def _train_writer(self):
        if "train" not in self._writers:
            self._writers["train"] = EventWriter(self._train_dir)
        return self._writers["train"]

    @property
    def _val_writer(self):
        if "val" not in self._writers:
            self._writers["val"] = EventWriter(self._val_dir)
        return self._writers["val"]

    def on_train_begin(self, logs=None):
        self._train_writer  # noqa: B018 - created at the start, as Keras' callback does

    def on_train_end(self, logs=None):
        self._close_writers()

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        optimizer = self.model.optimizer
        if optimizer and hasattr(optimizer, "iterations") and logs:
            step = int(keras.ops.convert_to_numpy(optimizer.iterations))
            self._val_writer.scalars({f"evaluation_{name}_vs_iterations": v for name, v in logs.items()}, step)

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        train_logs = self._collect_learning_rate({k: v for k, v in logs.items() if not k.startswith("val_")})
        val_logs = {f"epoch_{k[4:]}": v for k, v in logs.items() if k.startswith("val_")}
        if train_logs:
            self._train_writer.scalars({f"epoch_{k}": v for k, v in train_logs.items()}, epoch)
        if val_logs:
            self._val_writer.scalars(val_logs, epoch)

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_test_batch_begin(self, batch, logs=None):
        pass
