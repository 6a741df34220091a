"""IMDB reviews through Keras: `keras.datasets.imdb`'s file (imdb.npz) from Keras' cache or origin.

As `keras.datasets.imdb.load_data(num_words=10000)` returns them: the training reviews shuffled
with Keras' seed 113, each a start mark (1) followed by its word indices + 3, words outside the
10,000 most frequent replaced by the out-of-vocabulary mark (2); then multi-hot vectors of 10,000
as in Chollet's `vectorize_sequences`. Validation follows the books' `validation_split=0.4`: the
last `n_validation` (10,000) of the 25,000 training reviews; training uses the first `n_train`
(15,000). The test set is left alone.
"""

import pickle
import zipfile

import numpy as np

from tbreg.datasets import Data, keras_files
from tbreg.datasets.mnist import split
from tbreg.errors import UserError

FNAME = "imdb.npz"
SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"  # keras.datasets.imdb's
NUM_WORDS = 10_000
# keras.datasets.imdb.load_data's defaults
SEED, START_CHAR, OOV_CHAR, INDEX_FROM = 113, 1, 2, 3


def _load_npz(path: str) -> dict:
    """The arrays of a Keras IMDB .npz (ragged object arrays) with Keras' restricted unpickler."""
    # Keras' own safe reader (what imdb.load_data uses): only numpy arrays are unpickled.
    from keras.src.datasets import npz_utils

    try:
        return npz_utils.load_npz(path)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as e:
        raise UserError(f"{path}: cannot read it as Keras' {FNAME} ({e}); delete it to download it again") from None


def sequences(path: str, num_words: int = NUM_WORDS) -> tuple[list[np.ndarray], np.ndarray]:
    """The training reviews and labels as `keras.datasets.imdb.load_data(num_words=...)` gives them."""
    arrays = _load_npz(path)
    keras_files.check_keys(path, arrays)
    x, labels = arrays["x_train"], np.asarray(arrays["y_train"])
    if len(x) != len(labels):
        raise UserError(f"{path}: {len(x)} training reviews but {len(labels)} labels")
    indices = np.arange(len(x))
    np.random.RandomState(SEED).shuffle(indices)
    out = []
    for i in indices:
        words = np.asarray(x[i], dtype=np.int64) + INDEX_FROM
        words = np.where(words < num_words, words, OOV_CHAR)
        out.append(np.concatenate([[START_CHAR], words]))
    return out, labels[indices]


def multi_hot(seqs, dimension: int = NUM_WORDS) -> np.ndarray:
    """Chollet's `vectorize_sequences`: row i has 1.0 at every word index of review i (float32)."""
    out = np.zeros((len(seqs), dimension), dtype=np.float32)
    if seqs:
        rows = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
        out[rows, np.concatenate(seqs)] = 1.0
    return out


def load(config) -> Data:
    path = keras_files.fetch("imdb", FNAME, SHA256, config.data_path)
    seqs, labels = sequences(path)
    train, val = split(len(seqs), config.n_train, config.n_validation, "imdb")
    y = labels.astype(np.float32).reshape(-1, 1)
    return Data(
        name="imdb",
        x_train=multi_hot(seqs[train]),
        y_train=y[train],
        x_val=multi_hot(seqs[val]),
        y_val=y[val],
        num_classes=2,
    )
