"""Dataset registry: `load(config)` returns a `Data` for `config.dataset`.

Importing it imports no numpy or TensorFlow (the scripts' flags use NAMES); the loaders do.
"""

from __future__ import annotations

import dataclasses
import typing

if typing.TYPE_CHECKING:
    import numpy as np


@dataclasses.dataclass(frozen=True)
class Data:
    """Arrays ready for Keras. Binary tasks have float32 labels shaped (N, 1); multiclass int32 (N,)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int

    @property
    def task(self) -> str:
        return "binary" if self.num_classes == 2 else "multiclass"

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


def _loaders():
    from tbreg.datasets import higgs, imdb, mnist, mnist1d

    return {"mnist1d": mnist1d.load, "higgs": higgs.load, "imdb": imdb.load, "mnist": mnist.load}


NAMES = ("mnist1d", "higgs", "imdb", "mnist")
NUM_CLASSES = {"mnist1d": 10, "higgs": 2, "imdb": 2, "mnist": 10}  # known before loading (e.g. HParams metrics)


def load(config) -> Data:
    """Loads `config.dataset` as described by `config` (sizes, source, cache)."""
    loaders = _loaders()
    if config.dataset not in loaders:
        raise ValueError(f"unknown dataset {config.dataset!r}; choose one of {', '.join(NAMES)}")
    return loaders[config.dataset](config)


def cache_root(config) -> str:
    """Where datasets are cached: `config.cache_dir`, else $TBREG_CACHE, else ~/.cache/tbreg.

    Raises UserError when that path, or a dir above it, is a file.
    """
    import os

    from tbreg.errors import UserError

    if config.cache_dir:
        root, given = config.cache_dir, f"--cache_dir={config.cache_dir}"
    elif os.environ.get("TBREG_CACHE"):
        root = os.environ["TBREG_CACHE"]
        given = f"TBREG_CACHE={root}"
    else:
        root = os.path.expanduser("~/.cache/tbreg")
        given = root
    existing = os.path.abspath(root)
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "it is a file" if existing == os.path.abspath(root) else f"{existing} is a file"
        raise UserError(f"{given}: {where}, not a directory; pass --cache_dir=<a directory> (created if missing)")
    return root
