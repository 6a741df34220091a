"""`LearningRate`: the optimizer's learning rate per epoch, for any schedule."""

from tbreg.callbacks._base import SummaryCallback, keras_tensorboard_in_fit, to_float


def current_learning_rate(optimizer) -> float | dict[str, float]:
    """The rate the next step will use: a schedule is evaluated at the optimizer's iterations."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
    if hasattr(optimizer, "optimizers"):  # one rate per wrapped optimizer
        return {opt.name: to_float(opt.learning_rate) for opt in optimizer.optimizers}
    return to_float(optimizer.learning_rate)


class LearningRate(SummaryCallback):
    """Logs the learning rate at the end of every epoch, for constant rates and any
    `keras.optimizers.schedules.LearningRateSchedule` (built-in or custom, e.g.
    `tbreg.models.PaperSchedule`): the schedule's value at the optimizer's step count.

    | dir | tag | value |
    |---|---|---|
    | train | `epoch_learning_rate` | the rate of the next step (`epoch_learning_rate_<optimizer>` for several) |

    Keras' own `keras.callbacks.TensorBoard` already writes `epoch_learning_rate` the same way;
    when one writing to the same `log_dir` is in the same fit, this callback writes nothing, so
    the tag is never duplicated. Use it when you don't use Keras' TensorBoard callback.

    Args:
        log_dir: the run's log dir, as for `keras.callbacks.TensorBoard`.

    Example:
        ```python
        model.fit(x, y, epochs=20, callbacks=[tbreg.callbacks.LearningRate("logs/run1")])
        ```
    """

    tbreg_model_freq = 0  # the optimizer's rate at the epoch's step, which the fast engine sets per epoch

    def __init__(self, log_dir):
        super().__init__(log_dir)
        self.active = True

    def on_train_begin(self, logs=None):
        self.active = not keras_tensorboard_in_fit(self, self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        if not self.active or self.model.optimizer is None:
            return
        rate = current_learning_rate(self.model.optimizer)
        if isinstance(rate, dict):
            values = {f"epoch_learning_rate_{name}": value for name, value in rate.items()}
        else:
            values = {"epoch_learning_rate": rate}
        self.write_scalars("train", values, epoch)
