"""`WeightDiagnostics`: per kernel, the weight-space measures that claim to predict the generalization gap.

Frobenius norm, spectral norm, stable rank and the power-law exponent α of the tail of the
eigenvalue spectrum of WᵀW (Martin & Mahoney's heavy-tailed self-regularization, the number the
WeightWatcher tool reports), every few epochs; see docs/callbacks.md for what each means and its
limits. The measures are plain numpy (`kernel_measures`, `powerlaw_alpha`), computed on the
kernel's Gram matrix in float64.
"""

import keras
import numpy as np
from threadpoolctl import ThreadpoolController

from tbreg.callbacks._base import SummaryCallback, data_loss_in_logs, due, to_float

PREFIX = "diagnostics/"
MEASURES = ("frobenius", "spectral", "stable_rank", "alpha")
UNRELIABLE = "alpha_unreliable"  # 1 where the α fit is too small to mean much, else 0
SHARPNESS = "sharpness"  # of the whole model: logged as `diagnostics/sharpness/model`
MODEL = "model"
# An α fit is flagged unreliable when the matrix has fewer eigenvalues (its smaller side) than
# MIN_EIGENVALUES, or the fitted tail holds fewer than MIN_TAIL of them. WeightWatcher skips
# layers with fewer than 50 eigenvalues by default; a 16-unit layer has 16.
MIN_EIGENVALUES = 50
MIN_TAIL = 10


_CONTROLLER = []


def _blas() -> ThreadpoolController:
    """threadpoolctl's controller of this process' thread pools, found once (a few ms each time)."""
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def tag(measure: str, layer: str) -> str:
    return f"{PREFIX}{measure}/{layer}"


def kernel_matrix(kernel) -> np.ndarray:
    """A kernel as a 2-D float64 matrix: Dense (in, out) as it is; a convolution's
    (k…, in, out) with its window and input channels flattened: (k·…·in, out)."""
    w = np.asarray(kernel, dtype=np.float64)
    return w.reshape(-1, w.shape[-1]) if w.ndim != 2 else w


def eigenvalues(w: np.ndarray) -> np.ndarray:
    """The eigenvalues of WᵀW (= the squared singular values of W), ascending, from the smaller Gram matrix."""
    gram = w.T @ w if w.shape[1] <= w.shape[0] else w @ w.T
    return np.clip(np.linalg.eigvalsh(gram), 0.0, None)


def powerlaw_alpha(values, min_tail: int = 2) -> tuple[float, float, int, float]:
    """(α, xmin, tail size, KS distance) of a continuous power law p(x) ∝ x^-α fitted to the tail
    x ≥ xmin of `values` (Clauset, Shalizi & Newman 2009): for every candidate xmin the maximum
    likelihood α = 1 + n / Σ ln(x / xmin), and the xmin whose fit is closest to the tail's empirical
    distribution by the Kolmogorov–Smirnov distance. NaNs when fewer than `min_tail` positive values."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    x = x[x > 0]
    k = max(min_tail, 2)
    if len(x) < k:
        return (np.nan, np.nan, 0, np.nan)
    logs = np.log(x)
    starts = np.arange(len(x) - k + 1)  # candidate xmin = x[i]
    n = len(x) - starts
    total = np.cumsum(logs[::-1])[::-1][starts] - n * logs[starts]  # Σ_{j≥i} ln(x_j / x_i)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(total > 0, 1.0 + n / total, np.nan)
        rank = np.arange(len(x))[None, :] - starts[:, None]  # j - i: position in the tail
        ratio = np.maximum(logs[None, :] - logs[starts, None], 0.0)  # ln(x_j / x_i) in the tail, 0 before it
        fitted = 1.0 - np.exp((1.0 - alpha[:, None]) * ratio)
        gap = np.maximum(np.abs(fitted - rank / n[:, None]), np.abs(fitted - (rank + 1) / n[:, None]))
    gap = np.where(rank >= 0, gap, -np.inf)
    d = np.where(np.isfinite(alpha), gap.max(axis=1), np.inf)
    if not np.isfinite(d).any():
        return (np.nan, np.nan, 0, np.nan)
    i = int(np.argmin(d))  # the smallest distance; the lowest xmin on ties
    return float(alpha[i]), float(x[i]), int(n[i]), float(d[i])


def kernel_measures(kernel) -> dict[str, float]:
    """{measure: value} of one kernel: `frobenius` ‖W‖_F, `spectral` ‖W‖₂ (largest singular value),
    `stable_rank` ‖W‖²_F / ‖W‖²₂, `alpha` (the power-law exponent of the tail of the eigenvalues of
    WᵀW, see `powerlaw_alpha`) and `alpha_unreliable` (1.0 when the matrix has fewer than
    MIN_EIGENVALUES eigenvalues or the tail fewer than MIN_TAIL)."""
    w = kernel_matrix(kernel)
    if not np.all(np.isfinite(w)):
        return {**{m: float("nan") for m in MEASURES}, UNRELIABLE: 1.0}
    eig = eigenvalues(w)
    frobenius2 = float(np.sum(w * w))
    spectral2 = float(eig[-1]) if len(eig) else 0.0
    alpha, _, tail, _ = powerlaw_alpha(eig)
    unreliable = len(eig) < MIN_EIGENVALUES or tail < MIN_TAIL or not np.isfinite(alpha)
    return {
        "frobenius": frobenius2**0.5,
        "spectral": spectral2**0.5,
        "stable_rank": frobenius2 / spectral2 if spectral2 > 0 else float("nan"),
        "alpha": float(alpha),
        UNRELIABLE: float(unreliable),
    }


def kernel_layers(model) -> list:
    """The layers of `model` with a `kernel` of rank ≥ 2 (Dense, Conv*, EinsumDense, …), in order."""
    out = []
    for layer in model._flatten_layers(include_self=False) if hasattr(model, "_flatten_layers") else model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and len(getattr(kernel, "shape", ())) >= 2:
            out.append(layer)
    return out


def _numpy(variable) -> np.ndarray:
    return variable.numpy() if hasattr(variable, "numpy") else keras.ops.convert_to_numpy(variable)


class WeightDiagnostics(SummaryCallback):
    """Logs per Dense/Conv kernel, every `freq` epochs, the weight-space generalization measures.

    Written under `log_dir/train` with step = epoch (0-based), for each layer with a kernel:

    | tag | kind | value |
    |---|---|---|
    | `diagnostics/frobenius/<layer>` | scalar | ‖W‖_F |
    | `diagnostics/spectral/<layer>` | scalar | ‖W‖₂, the largest singular value |
    | `diagnostics/stable_rank/<layer>` | scalar | ‖W‖²_F / ‖W‖²₂ |
    | `diagnostics/alpha/<layer>` | scalar | power-law α of the tail of the eigenvalues of WᵀW (CSN fit) |
    | `diagnostics/alpha_unreliable/<layer>` | scalar | 1 when the layer is too small for a tail fit, else 0 |
    | `diagnostics/sharpness/model` | scalar | with `sharpness_data`, at each epoch whose validation data loss is the lowest so far: the relative increase of the data loss on those examples when every trainable weight w gets Gaussian noise of std `sigma`·\|w\| (mean over `samples` draws, fixed seed) |

    A convolution's kernel (k…, in, out) is measured as the (k·…·in, out) matrix. The last
    trained epoch is logged too (at the end of training), so a run's final weights are always
    measured. Cost: one eigendecomposition of each kernel's smaller Gram matrix per logged epoch,
    in numpy (docs/callbacks.md gives measured figures).

    `tbreg_model_freq` tells tbreg's fast engine, which runs several epochs per compiled call, at
    which epochs this callback reads the model: those it logs (`due(epoch, freq)`), and every
    epoch with `sharpness_data` (a new best can come at any epoch).

    Args:
        log_dir: the run's log dir, as for `keras.callbacks.TensorBoard`.
        freq: log every `freq` epochs (epochs 0, freq, 2·freq, …); 0 logs nothing.
        sharpness_data: (x, y) arrays (e.g. the first 1,000 training examples) for the sharpness
            estimate; None (default) skips it. Each estimate costs `samples` + 1 inference passes
            over them, and runs only at epochs with a new lowest validation data loss, so the
            value logged last before the end is the best epoch's.
        sigma: the perturbation's scale relative to each weight's magnitude.
        samples: perturbations averaged per estimate.
        seed: the perturbations' seed (the same draws at every estimate, so epochs and runs compare).

    Example:
        ```python
        model.fit(x, y, validation_split=0.2, epochs=50, callbacks=[
            tbreg.callbacks.WeightDiagnostics("logs/run1", freq=5),
        ])
        ```
    """

    @property
    def tbreg_model_freq(self) -> int | None:
        """Epochs at which it reads the model: the fast engine ends a block of epochs there."""
        return None if self.sharpness_data is not None else self.freq

    def __init__(
        self, log_dir, freq: int = 5, sharpness_data=None, sigma: float = 0.05, samples: int = 5, seed: int = 0
    ):
        super().__init__(log_dir)
        if not isinstance(freq, int) or isinstance(freq, bool) or freq < 0:
            raise ValueError(f"freq must be an int >= 0 (epochs), not {freq!r}")
        if not sigma > 0 or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"sigma must be > 0 and samples an int >= 1, not {sigma!r} and {samples!r}")
        self.freq = freq
        self.sharpness_data = sharpness_data
        self.sigma, self.samples, self.seed = float(sigma), samples, seed
        self._layers = []
        self._last = None  # (epoch, logged?)
        self._best = None  # the lowest validation data loss so far
        self._eval = None

    def on_train_begin(self, logs=None):
        self._layers = kernel_layers(self.model) if self.freq else []
        self._last = None
        self._best = None
        if self.sharpness_data is not None and self._eval is None:
            import tensorflow as tf

            x, y = (tf.convert_to_tensor(a) for a in self.sharpness_data)
            model = self.model

            def evaluate():
                for metric in model.metrics:
                    metric.reset_state()
                return model.test_step((x, y))

            self._eval = tf.function(evaluate)

    def data_loss(self, name: str) -> float:
        """The data loss `name` of `sharpness_data` with the model's current weights (inference mode)."""
        return to_float(self._eval()[name])

    def sharpness(self, name: str) -> float:
        """(mean perturbed loss − loss) / loss over `samples` draws of w + N(0, (sigma·|w|)²) for every
        trainable weight; the weights are restored afterwards."""
        variables = self.model.trainable_variables
        saved = [_numpy(v) for v in variables]
        base = self.data_loss(name)
        rng = np.random.default_rng(self.seed)
        losses = []
        try:
            for _ in range(self.samples):
                for v, w in zip(variables, saved):
                    noise = rng.standard_normal(w.shape).astype(w.dtype)
                    v.assign(w + self.sigma * np.abs(w) * noise)
                losses.append(self.data_loss(name))
        finally:
            for v, w in zip(variables, saved):
                v.assign(w)
        return (float(np.mean(losses)) - base) / base if base > 0 else float("nan")

    def _maybe_sharpness(self, epoch: int, logs) -> None:
        if self._eval is None or not logs:
            return
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        name = data_loss_in_logs(self.model, train_logs) or "loss"  # without a data-loss metric: the loss
        value = logs.get(f"val_{name}")
        if value is None or not np.isfinite(float(value)) or (self._best is not None and float(value) >= self._best):
            return
        self._best = float(value)
        self.write_scalars("train", {tag(SHARPNESS, MODEL): self.sharpness(name)}, epoch)

    def measures(self) -> dict[str, dict[str, float]]:
        """{layer name: kernel_measures} of the model's current weights. numpy's BLAS runs on one
        thread here: these matrices are small, and on a loaded CPU its thread pool made the
        eigendecomposition 5–50× slower (docs/callbacks.md)."""
        with _blas().limit(limits=1, user_api="blas"):
            return {layer.name: kernel_measures(_numpy(layer.kernel)) for layer in self._layers}

    def _log(self, epoch: int) -> None:
        values = {}
        for layer, got in self.measures().items():
            values.update({tag(m, layer): v for m, v in got.items()})
        self.write_scalars("train", values, epoch)

    def on_epoch_end(self, epoch, logs=None):
        logged = bool(self._layers) and due(epoch, self.freq)
        if logged:
            self._log(epoch)
        self._last = (epoch, logged)
        self._maybe_sharpness(epoch, logs)

    def on_train_end(self, logs=None):
        if self._layers and self._last is not None and not self._last[1]:
            self._log(self._last[0])  # the final weights
        super().on_train_end(logs)
