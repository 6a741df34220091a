"""MNIST-1D (Greydanus 2020), generated locally: the offline default dataset.

The `mnist1d` package's `make_dataset` with its canonical arguments gives 4,000 training and
1,000 test examples of 40 features in 10 classes; the test split is our validation split.
Generated once (about 2 s) and cached as .npz; never touches the network.
"""

import os

import numpy as np

from tbreg.datasets import Data, cache_root
from tbreg.errors import UserError

N_TRAIN, N_VALIDATION, N_FEATURES, N_CLASSES = 4_000, 1_000, 40, 10


def generate() -> dict:
    """Runs mnist1d's generator with its canonical arguments (no download)."""
    from mnist1d.data import get_dataset_args, make_dataset

    d = make_dataset(get_dataset_args())
    return {
        "x_train": d["x"].astype(np.float32),
        "y_train": d["y"].astype(np.int32),
        "x_val": d["x_test"].astype(np.float32),
        "y_val": d["y_test"].astype(np.int32),
    }


def _cached(path: str) -> dict:
    if os.path.exists(path):
        with np.load(path) as f:
            return dict(f)
    arrays = generate()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


def load(config) -> Data:
    if config.data_path:
        raise UserError("--data_path is not used by mnist1d (it is generated locally); drop the flag")
    for flag, asked, have in (
        ("n_train", config.n_train, N_TRAIN),
        ("n_validation", config.n_validation, N_VALIDATION),
    ):
        if asked > have:
            raise UserError(f"mnist1d has {have} examples for --{flag}, asked for {asked}; use at most {have}")
    a = _cached(os.path.join(cache_root(config), "mnist1d", "mnist1d_canonical.npz"))
    return Data(
        name="mnist1d",
        x_train=a["x_train"][: config.n_train],
        y_train=a["y_train"][: config.n_train],
        x_val=a["x_val"][: config.n_validation],
        y_val=a["y_val"][: config.n_validation],
        num_classes=N_CLASSES,
    )
