"""`GeneralizationGap`: validation minus training per metric, and where overfitting starts."""

import tensorflow as tf

from tbreg import analysis
from tbreg.callbacks._base import SummaryCallback, data_loss_in_logs


class GeneralizationGap(SummaryCallback):
    """Logs validation − training for the data loss and every metric, and the overfitting onset.

    Written under `log_dir/train` with step = epoch (0-based):

    | tag | kind | value |
    |---|---|---|
    | `gap/<metric>` | scalar | `val_<metric> - <metric>` for the data loss and every metric with a validation value |
    | `gap/onset` | text, at the last epoch | the epoch with the lowest validation data loss, the gaps there, and where overfitting starts by Prechelt's GL criterion |

    With a `TrainEval` callback (`train_eval=`, run before this one) the training side of every
    gap is the training data in inference mode (dropout off) of the same epoch, not Keras' training
    loss, which a model with dropout computes on the thinned network: against it, a dropout model
    seems to generalize better than it fits.

    `loss` itself gets no gap when a data-loss metric exists: it includes the penalty, which only
    applies in training. Without a data-loss metric the data loss is `loss`. After training the
    onset is also in `self.onset`, and `run_json_fields()` returns it for the run's `run.json`
    (tbreg's trainer merges it in).

    Args:
        log_dir: the run's log dir, as for `keras.callbacks.TensorBoard`.
        data_loss: name of the metric that is the data loss; None finds it like
            `RegularizationLoss` does.
        train_eval: a `TrainEval` callback of the same fit, listed before this one: the gaps are
            taken against its results of the epoch where it evaluated (Keras' training values
            elsewhere).

    Example:
        ```python
        gap = tbreg.callbacks.GeneralizationGap("logs/run1")
        model.fit(x, y, validation_split=0.2, epochs=50, callbacks=[gap])
        print(gap.onset)   # {'epoch': 12, 'monitor': 'val_binary_crossentropy', ...}
        ```
    """

    tbreg_model_freq = 0  # reads the epoch's logs (and TrainEval's values), not the model

    def __init__(self, log_dir, data_loss: str | None = None, train_eval=None):
        super().__init__(log_dir)
        self.data_loss = data_loss
        self.train_eval = train_eval
        self.onset = None
        self._history = []  # (epoch, data loss name, logs)

    def on_train_begin(self, logs=None):
        self.onset = None
        self._history = []

    @staticmethod
    def gaps(logs: dict, data_loss: str) -> dict[str, float]:
        """{metric: val − train} for every metric of `logs` that has a `val_` twin."""
        return {
            name: float(logs[f"val_{name}"]) - float(value)
            for name, value in logs.items()
            if not name.startswith(("val_", "_")) and f"val_{name}" in logs and (name != "loss" or data_loss == "loss")
        }

    def _inference_mode(self, epoch, logs: dict) -> dict:
        """`logs` with the training values replaced by TrainEval's of this epoch, where it has them."""
        latest = getattr(self.train_eval, "latest", None)
        if not latest or latest[0] != epoch:
            return logs
        out = dict(logs)
        out.update({k: v for k, v in latest[1].items() if k in logs and not k.startswith("val_")})
        out["_train_split"] = analysis.TRAIN_EVAL
        return out

    def on_epoch_end(self, epoch, logs=None):
        logs = self._inference_mode(epoch, dict(logs or {}))
        data_loss = data_loss_in_logs(self.model, logs, self.data_loss) or "loss"
        self._history.append((epoch, data_loss, logs))
        self.write_scalars("train", {f"gap/{name}": value for name, value in self.gaps(logs, data_loss).items()}, epoch)

    def _find_onset(self) -> dict | None:
        rows = [(e, dl, logs) for e, dl, logs in self._history if f"val_{dl}" in logs]
        best, _ = analysis.lowest({i: float(logs[f"val_{dl}"]) for i, (_, dl, logs) in enumerate(rows)})
        if best is None:
            return None
        gl = analysis.overfitting_onset({e: float(logs[f"val_{dl}"]) for e, dl, logs in rows})
        epoch, data_loss, logs = rows[best]
        return {
            "epoch": int(epoch),
            "monitor": f"val_{data_loss}",
            "val": float(logs[f"val_{data_loss}"]),
            "train": float(logs[data_loss]),
            "train_split": logs.get("_train_split", "train"),
            "gap": self.gaps(logs, data_loss),
            "epochs": len(self._history),
            "criterion": f"GL{analysis.GL_THRESHOLD:g}",
            "overfits_from": None if gl is None else gl.epoch,
        }

    def on_train_end(self, logs=None):
        self.onset = self._find_onset()
        if self.onset:
            o = self.onset
            where = (
                f"overfitting starts at epoch {o['overfits_from']} by {o['criterion']}"
                if o["overfits_from"] is not None
                else f"no overfitting by {o['criterion']} yet"
            )
            lines = [
                f"Lowest {o['monitor']} = {o['val']:.6g} at epoch {o['epoch']} of {o['epochs']} "
                f"(training {o['monitor'][4:]} = {o['train']:.6g}, {o['train_split']}): {where}.",
                "",
                f"| metric | gap (validation − {o['train_split']}) at that epoch |",
                "|---|---|",
                *(f"| {name} | {value:.6g} |" for name, value in o["gap"].items()),
            ]
            with self.writer("train").as_default():
                tf.summary.text("gap/onset", "\n".join(lines), step=self._history[-1][0])
        self.close()

    def resume_state(self) -> list:
        """The epochs seen so far (tbreg.resume saves them when training is interrupted)."""
        return [list(row) for row in self._history]

    def restore_state(self, state: list) -> None:
        self._history = [tuple(row) for row in state]

    def run_json_fields(self) -> dict:
        """`{"overfitting_onset": {...}}` for run.json (from the epochs so far if training stopped
        with an error), or `{}` before any epoch with a validation data loss."""
        onset = self.onset or self._find_onset()
        return {"overfitting_onset": onset} if onset else {}
