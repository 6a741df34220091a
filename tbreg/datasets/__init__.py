"""Dataset registry: `load(config)` returns a `Data` for `config.dataset`."""

import dataclasses

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
    """Where datasets are cached: `config.cache_dir`, else $TBREG_CACHE, else ~/.cache/tbreg."""
    import os

    return config.cache_dir or os.environ.get("TBREG_CACHE") or os.path.expanduser("~/.cache/tbreg")
