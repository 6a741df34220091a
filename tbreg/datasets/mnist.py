"""MNIST through Keras: `keras.datasets.mnist`'s file (mnist.npz) from Keras' cache or origin.

Images are flattened to 784 features scaled to [0, 1], as in Chollet's books. Validation follows
the books' `validation_split=0.2`: the last `n_validation` (12,000) of the 60,000 training images;
training uses the first `n_train` (48,000). The test set is left alone.
"""

import zipfile

import numpy as np

from tbreg.datasets import Data, keras_files
from tbreg.errors import UserError

FNAME = "mnist.npz"
SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"  # keras.datasets.mnist's
N_CLASSES = 10


def read(path: str) -> tuple[np.ndarray, np.ndarray]:
    """The training images (N, 28, 28) uint8 and labels (N,) of a Keras mnist.npz."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path}: cannot read it as Keras' {FNAME} ({e}); delete it to download it again") from None
    keras_files.check_keys(path, arrays)
    x, y = arrays["x_train"], arrays["y_train"]
    if x.ndim != 3 or x.shape[1:] != (28, 28) or len(y) != len(x):
        raise UserError(
            f"{path}: x_train has shape {x.shape} for {len(y)} labels; expected (N, 28, 28) images and N labels"
        )
    return x, y


def split(n: int, n_train: int, n_validation: int, name: str) -> tuple[slice, slice]:
    """Keras' validation_split: validation is the last `n_validation` examples, training the first `n_train`."""
    if n_train < 1 or n_validation < 1 or n_train + n_validation > n:
        raise UserError(
            f"{name} has {n} training examples; --n_train={n_train} plus --n_validation={n_validation} "
            f"must be at most {n} (each at least 1)"
        )
    return slice(0, n_train), slice(n - n_validation, n)


def load(config) -> Data:
    path = keras_files.fetch("mnist", FNAME, SHA256, config.data_path)
    x, y = read(path)
    train, val = split(len(x), config.n_train, config.n_validation, "mnist")
    x = x.reshape(len(x), -1)
    return Data(
        name="mnist",
        x_train=x[train].astype(np.float32) / 255.0,
        y_train=y[train].astype(np.int32),
        x_val=x[val].astype(np.float32) / 255.0,
        y_val=y[val].astype(np.int32),
        num_classes=N_CLASSES,
    )
