"""Experiment configuration: one dataclass, tutorial constants, and per-dataset presets.

`for_dataset("higgs")` gives the TensorFlow tutorial's constants; `for_dataset("mnist1d")` is the
offline default, shortened so the README's main job finishes in a few minutes on 2 CPU cores.
"""

import dataclasses
import functools
import math

from tbreg.errors import UserError


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that decides how a family is trained. Defaults are the tutorial's constants."""

    dataset: str = "higgs"
    data_path: str | None = None  # local file or URL; None = the dataset's own source
    cache_dir: str | None = None  # None = ~/.cache/tbreg
    n_train: int = 10_000
    n_validation: int = 1_000
    batch_size: int = 500
    buffer_size: int = 10_000  # shuffle buffer
    max_epochs: int = 10_000
    patience: int = 200  # EarlyStopping patience on the validation data loss
    min_delta: float = 1e-4
    learning_rate: float = 1e-3  # Adam's initial rate for InverseTimeDecay
    decay_epochs: float = 1_000  # InverseTimeDecay decay_steps = steps_per_epoch * decay_epochs
    seed: int = 0
    engine: str = "fast"  # "fast": blocks of epochs per compiled call (tbreg.engine); "keras": plain model.fit
    checkpoint_secs: float | None = (
        None  # fast engine: save the state this often (0: every epoch), so a killed run resumes
    )
    verbose: int = 1  # 0 silent, 1 progress (inside a tbreg.progress.FamilyProgress) and a line per run
    dtype_policy: str = (
        "float32"  # Keras' dtype policy of the hidden layers: float32 or mixed_bfloat16 (see DTYPE_POLICIES)
    )
    # fast engine: most epochs per compiled call (0: auto, blocks of ~0.5 s; 1: one call per epoch); the results
    # do not depend on it (tbreg.engine)
    epochs_per_call: int = 0

    def __post_init__(self):
        # Values a flag, a sweep grid or a config file can give that no schedule can use.
        if not (math.isfinite(self.learning_rate) and self.learning_rate >= 0):
            raise UserError(f"learning_rate={self.learning_rate:g}: give a finite rate >= 0, e.g. 0.001")
        if not (math.isfinite(self.decay_epochs) and self.decay_epochs > 0):
            raise UserError(
                f"decay_epochs={self.decay_epochs:g}: InverseTimeDecay needs a finite number of epochs above 0 "
                "(the rate halves after it); give e.g. 1000, or leave it out for the dataset's preset"
            )

        check_dtype_policy(self.dtype_policy)
        if not (isinstance(self.epochs_per_call, int) and not isinstance(self.epochs_per_call, bool)) or (
            self.epochs_per_call < 0
        ):
            raise UserError(
                f"epochs_per_call={self.epochs_per_call!r}: give a whole number of epochs >= 1, or 0 (auto)"
            )

    def steps_per_epoch(self) -> int:
        return max(1, -(-self.n_train // self.batch_size))


# Keras dtype policies a training may use. mixed_bfloat16: the hidden layers compute in bfloat16
# (weights, optimizer and the logits layer stay float32); only on CPUs with bfloat16 instructions.
DTYPE_POLICIES = ("float32", "mixed_bfloat16")
_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 (Zen 4, Sapphire Rapids, …); Arm's "bf16" feature


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> str | None:
    """The CPU flag that gives bfloat16 instructions (from /proc/cpuinfo), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            words = set(f.read().split())
    except OSError:
        return None
    return next((flag for flag in _BF16_FLAGS if flag in words), None)


def check_dtype_policy(policy: str) -> None:
    """A one-line UserError unless `policy` is one of DTYPE_POLICIES and this CPU can run it fast."""
    if policy not in DTYPE_POLICIES:
        raise UserError(f"dtype_policy={policy!r}: choose one of {', '.join(DTYPE_POLICIES)}")
    if policy == "mixed_bfloat16" and not cpu_bf16():
        raise UserError(
            "dtype_policy=mixed_bfloat16: this CPU has no bfloat16 instructions (no avx512_bf16, amx_bf16 or bf16 in "
            "/proc/cpuinfo), so bfloat16 would be emulated and slower than float32; use dtype_policy=float32"
        )


# Per-dataset presets: only the fields that differ from the tutorial's constants.
PRESETS = {
    "higgs": {},
    # MNIST-1D: 4,000 train / 1,000 validation (the package's canonical split). 512x4 overfits
    # after ~30 epochs; 150 epochs with patience 40 show the whole story in a few minutes.
    "mnist1d": {"n_train": 4_000, "n_validation": 1_000, "max_epochs": 150, "patience": 40},
    # Chollet's books: IMDB multi-hot (10,000 words), batch 512, 20 epochs, validation_split=0.4 of
    # the 25,000 training reviews (the last 10,000; 15,000 train). No early stopping (patience =
    # epochs), as in the books. decay_epochs = max_epochs / 10, the tutorial's ratio (1,000 / 10,000).
    "imdb": {
        "n_train": 15_000,
        "n_validation": 10_000,
        "batch_size": 512,
        "buffer_size": 15_000,
        "max_epochs": 20,
        "patience": 20,
        "decay_epochs": 2,
    },
    # MNIST, 784 pixels in [0, 1]: validation_split=0.2 of the 60,000 training images (the last
    # 12,000; 48,000 train), batch 128, 20 epochs (Chollet's learning-rate example runs 10:
    # --max_epochs=10).
    "mnist": {
        "n_train": 48_000,
        "n_validation": 12_000,
        "batch_size": 128,
        "buffer_size": 48_000,
        "max_epochs": 20,
        "patience": 20,
        "decay_epochs": 2,
    },
}


def for_dataset(dataset: str, **overrides) -> TrainConfig:
    """The preset for `dataset` with `overrides` (fields set to None are ignored) applied."""
    if dataset not in PRESETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(sorted(PRESETS))}")
    fields = {"dataset": dataset, **PRESETS[dataset]}
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**fields)
