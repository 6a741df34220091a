"""`ModelSpec`: one model of a family, as data (no Keras here; `tbreg.models` builds it).

Kept apart from the builder so that the families and the scripts' `--list` and `--help` load
without TensorFlow.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of a family. Regularizers apply to hidden layers' kernels only."""

    name: str
    units: tuple[int, ...]
    activation: str = "elu"
    l2: float = 0.0  # L2 factor on hidden kernels
    l2_first: bool = True  # False: the first hidden layer's kernel is not regularized (paper)
    dropout: float = 0.0  # Dropout rate after every hidden layer
    dropout_before_output: float = 0.0  # one Dropout before the head (paper)
    init_std: tuple[float, float, float] | None = None  # RandomNormal std: first, hidden, output
    optimizer: str = "adam"  # "adam", "rmsprop", "sgd", or "paper_sgd" (Baldi et al.'s SGD + decay)
    l1: float = 0.0  # L1 factor on hidden kernels (with l2: keras' L1L2)
    max_norm: float = 0.0  # > 0: MaxNorm constraint on each hidden unit's incoming weights (Géron)
    batch_norm: bool = False  # BatchNormalization after every hidden layer (Géron)
    learning_rate: float | None = None  # this model's own (initial) rate; None = the config's
    schedule: str = (
        "inverse_time"  # one of tbreg.models.SCHEDULES: inverse_time (the tutorial's), constant, exponential, one_cycle
    )
    mc_samples: int = 0  # > 0: Monte-Carlo dropout evaluation of the validation data with this many passes

    def hparams(self) -> dict:
        """Flat description for run.json and HParams."""
        return {
            "model": self.name,
            "units": ",".join(map(str, self.units)),
            "depth": len(self.units),
            "activation": self.activation,
            "l2": self.l2,
            "dropout": max(self.dropout, self.dropout_before_output),
            "optimizer": self.optimizer,
            "l1": self.l1,
            "max_norm": self.max_norm,
            "batch_norm": self.batch_norm,
            "schedule": self.schedule if self.optimizer != "paper_sgd" else "paper",
        }

    def describe(self) -> str:
        """One line: architecture, regularization and optimizer (for `tbreg-train --list`)."""
        layers = (
            "-".join(map(str, self.units)) + f" {self.activation}" if self.units else "head only (logistic regression)"
        )
        extras = [
            f"{name} {value:g}"
            for name, value in (
                ("l1", self.l1),
                ("l2", self.l2),
                ("dropout", self.dropout),
                ("dropout before head", self.dropout_before_output),
                ("max-norm", self.max_norm),
            )
            if value
        ]
        if self.batch_norm:
            extras.append("batch norm")
        if self.mc_samples:
            extras.append(f"MC dropout x{self.mc_samples}")
        rate = "" if self.learning_rate is None else f" {self.learning_rate:g}"
        schedule = "paper decay" if self.optimizer == "paper_sgd" else self.schedule
        return f"Dense {layers}{''.join(', ' + e for e in extras)}; {self.optimizer}{rate}, {schedule}"
