"""Keras callbacks that log the parts of overfitting and regularization to TensorBoard.

Each is a `keras.callbacks.Callback` usable alone in any `model.fit`, with `log_dir` first and
the same meaning as in `keras.callbacks.TensorBoard` (it writes under `log_dir/train`,
`log_dir/validation`, …). tbreg's training scripts add them all by default; `make` builds that set.
"""

from tbreg.callbacks.diagnostics import WeightDiagnostics
from tbreg.callbacks.epoch_tensorboard import EpochTensorBoard
from tbreg.callbacks.gap import GeneralizationGap
from tbreg.callbacks.learning_rate import LearningRate
from tbreg.callbacks.mc_dropout import MCDropout
from tbreg.callbacks.regularization import RegularizationLoss
from tbreg.callbacks.train_eval import TrainEval
from tbreg.callbacks.weights import WeightHistograms
from tbreg.constants import CALLBACK_NAMES

__all__ = [
    "EpochTensorBoard",
    "GeneralizationGap",
    "LearningRate",
    "MCDropout",
    "RegularizationLoss",
    "TrainEval",
    "WeightDiagnostics",
    "WeightHistograms",
    "NAMES",
    "make",
    "resolve_names",
]

# Names for the scripts' --callbacks flag, in the order the callbacks run.
NAMES = CALLBACK_NAMES


def resolve_names(names) -> tuple[str, ...]:
    """The callback names a `--callbacks` value means: `all`, `none`, or a list of NAMES."""
    names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if names == ["all"]:
        return NAMES
    if names in (["none"], []):
        return ()
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown callback(s) {', '.join(unknown)}; choose all, none, or from {', '.join(NAMES)}")
    return tuple(names)


def make(
    log_dir,
    names=NAMES,
    *,
    histogram_freq: int = 1,
    sparsity_threshold: float = 1e-3,
    train_data=None,
    train_eval_freq: int = 1,
    train_eval_examples: int | None = 1000,
    diagnostics_freq: int = 5,
    sharpness_examples: int = 0,
) -> list:
    """The callbacks `names` for one run dir, as the scripts use them.

    `train_data` is `(x, y)` for `train_eval` (skipped without it) and, with `sharpness_examples`,
    for the diagnostics' sharpness estimate on its first that many examples; a frequency of 0 skips
    the callback it drives.
    """
    names = resolve_names(names)
    train_eval = None
    if "train_eval" in names and train_eval_freq and train_data is not None:
        x, y = train_data
        train_eval = TrainEval(log_dir, train_eval_freq, train_eval_examples, x=x, y=y)
    out = []
    for name in NAMES:
        if name not in names:
            continue
        if name == "weights" and histogram_freq:
            out.append(WeightHistograms(log_dir, histogram_freq, sparsity_threshold=sparsity_threshold))
        elif name == "regularization":
            out.append(RegularizationLoss(log_dir))
        elif name == "gap":
            if train_eval is not None:  # evaluated first, so the gap is against it (dropout off)
                out.append(train_eval)
            out.append(GeneralizationGap(log_dir, train_eval=train_eval))
        elif name == "learning_rate":
            out.append(LearningRate(log_dir))
        elif name == "train_eval" and train_eval is not None and train_eval not in out:
            out.append(train_eval)
        elif name == "diagnostics" and (diagnostics_freq or (sharpness_examples and train_data is not None)):
            sharp = None
            if sharpness_examples and train_data is not None:
                sharp = (train_data[0][:sharpness_examples], train_data[1][:sharpness_examples])
            out.append(WeightDiagnostics(log_dir, diagnostics_freq, sharpness_data=sharp))
    return out
