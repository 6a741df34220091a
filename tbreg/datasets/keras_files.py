"""Keras' own dataset files (mnist.npz, imdb.npz) through Keras' own download code and cache.

`fetch` calls `keras.utils.get_file` exactly as `keras.datasets.<name>.load_data()` does: same
origin, same file name, same sha256, same cache (`$KERAS_HOME/datasets`, default
`~/.keras/datasets`). A file either of them downloaded is used by the other; one whose hash does
not match is downloaded again by Keras. `--data_path` replaces the origin: a local file is read
where it is; a URL is downloaded (no hash is known for it) into the same cache under a name of
its own, so it never takes the place of Keras' file.
"""

import hashlib
import os
import urllib.parse

from tbreg.errors import UserError

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def keras_home() -> str:
    """Keras' cache root, read now (Keras itself reads $KERAS_HOME once, when it is imported)."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def _is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https", "ftp", "file")


def _how_to_get(dataset: str, fname: str) -> str:
    return (
        f"put Keras' {fname} into {os.path.join(keras_home(), 'datasets')} (e.g. run "
        f'`python -c "import keras; keras.datasets.{dataset}.load_data()"` where there is internet and copy it), '
        f"or pass --data_path=<local {fname} or its URL>"
    )


def fetch(dataset: str, fname: str, file_hash: str, data_path: str | None = None) -> str:
    """A local path of `fname` (Keras' format): `data_path` if it is a local file, else from the cache.

    Missing files are downloaded by `keras.utils.get_file` from Keras' origin (with Keras'
    sha256) or from the URL `data_path`. Errors are one-line `UserError`s naming the file.
    """
    if data_path and not _is_url(data_path):
        if not os.path.isfile(data_path):
            raise UserError(
                f"{data_path}: file not found; pass --data_path=<Keras' {fname}> or drop it to use Keras' cache"
            )
        return data_path
    import keras

    if data_path:
        origin, file_hash = data_path, None
        stem, ext = os.path.splitext(fname)
        name = f"{stem}-{hashlib.sha256(origin.encode()).hexdigest()[:12]}{ext}"
    else:
        origin, name = KERAS_ORIGIN + fname, fname
    home = keras_home()
    try:
        os.makedirs(home, exist_ok=True)  # get_file falls back to /tmp/.keras when the home does not exist
        return keras.utils.get_file(fname=name, origin=origin, file_hash=file_hash, cache_dir=home)
    except Exception as e:  # get_file raises plain Exception / ValueError for failed or corrupted downloads
        reason = " ".join(str(e).split()).replace(f"URL fetch failure on {origin}: ", "")[:300]
        target = os.path.join(keras_home(), "datasets", name)
        raise UserError(
            f"{target}: not cached and the download from {origin} failed ({reason}); {_how_to_get(dataset, fname)}"
        ) from None


def check_keys(path: str, arrays: dict, keys=("x_train", "y_train", "x_test", "y_test")) -> None:
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise UserError(
            f"{path}: not a Keras dataset file (no {', '.join(missing)}); expected arrays {', '.join(keys)}"
        )
