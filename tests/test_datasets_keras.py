"""imdb and mnist through Keras' own download code and cache, on files in Keras' exact format.

Keras' `get_file` checks an existing cached file against the sha256 of Keras' real file and
downloads it again when it differs, so a small fixture cannot pose as Keras' file in the cache.
The fixtures are served from 127.0.0.1 instead (`--data_path=<URL>`): Keras' `get_file` downloads
them into a temporary Keras home, and tbreg reads them from there.
"""

import inspect
import os

import keras
import numpy as np
import pytest
from keras_data import closed_port_url, keras_home_env, serve, write_imdb, write_mnist

from tbreg import config as config_lib
from tbreg import datasets
from tbreg.datasets import imdb, keras_files, mnist
from tbreg.errors import UserError


def _config(dataset, data_path, **sizes):
    return config_lib.for_dataset(dataset, data_path=data_path, **sizes)


def test_origins_names_and_hashes_are_keras_own():
    """tbreg asks get_file for the very file keras.datasets.<name>.load_data() asks for."""
    for module, ours in ((keras.src.datasets.mnist, mnist), (keras.src.datasets.imdb, imdb)):
        source = inspect.getsource(module.load_data)
        assert ours.SHA256 in source and f'{ours.FNAME}"' in source
        assert keras_files.KERAS_ORIGIN in source
    assert "seed=113" in inspect.getsource(keras.src.datasets.imdb.load_data)


def test_mnist_downloads_into_the_keras_cache_and_is_reused(tmp_path, monkeypatch):
    home = keras_home_env(monkeypatch, tmp_path)
    served = tmp_path / "www"
    served.mkdir()
    raw = write_mnist(served / "mnist.npz", n_train=500)
    with serve(served) as url:
        data = datasets.load(_config("mnist", url + "mnist.npz", n_train=300, n_validation=100))
    cached = os.listdir(home / "datasets")
    assert len(cached) == 1 and cached[0].startswith("mnist-") and cached[0].endswith(".npz")
    # validation_split semantics: the last n_validation training images; training the first n_train
    x = raw["x_train"].reshape(500, 784).astype(np.float32) / 255
    np.testing.assert_array_equal(data.x_train, x[:300])
    np.testing.assert_array_equal(data.x_val, x[400:])
    np.testing.assert_array_equal(data.y_val, raw["y_train"][400:])
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert (data.num_features, data.num_classes, data.task) == (784, 10, "multiclass")
    # The server is gone: the cached download is used.
    again = datasets.load(_config("mnist", url + "mnist.npz", n_train=300, n_validation=100))
    np.testing.assert_array_equal(again.x_val, data.x_val)


def keras_imdb_reference(raw, num_words=10_000):
    """keras.datasets.imdb.load_data(num_words)'s training part, step by step as its source does."""
    x, labels = raw["x_train"], raw["y_train"]
    rng = np.random.RandomState(113)
    indices = np.arange(len(x))
    rng.shuffle(indices)
    x, labels = x[indices], labels[indices]
    x = [[1] + [w + 3 for w in seq] for seq in x]
    x = [[w if w < num_words else 2 for w in seq] for seq in x]
    vectors = np.zeros((len(x), num_words))
    for i, seq in enumerate(x):
        vectors[i, seq] = 1.0  # Chollet's vectorize_sequences
    return vectors, labels


def test_imdb_is_keras_sequences_as_chollets_multi_hot_vectors(tmp_path, monkeypatch):
    home = keras_home_env(monkeypatch, tmp_path)
    served = tmp_path / "www"
    served.mkdir()
    raw = write_imdb(served / "imdb.npz", n_train=250)
    with serve(served) as url:
        data = datasets.load(_config("imdb", url + "imdb.npz", n_train=150, n_validation=100))
    assert any(name.startswith("imdb-") for name in os.listdir(home / "datasets"))
    vectors, labels = keras_imdb_reference(raw)
    np.testing.assert_array_equal(data.x_train, vectors[:150])
    np.testing.assert_array_equal(data.x_val, vectors[150:])
    np.testing.assert_array_equal(data.y_train[:, 0], labels[:150])
    assert data.x_train.shape == (150, 10_000) and data.x_train.dtype == np.float32
    assert data.y_train.shape == (150, 1) and data.task == "binary"
    assert data.x_train[:, 1].all()  # every review starts with the start mark
    assert data.x_train[:, 2].any()  # words beyond the 10,000 kept became the OOV mark


def test_a_local_data_path_is_read_where_it_is(tmp_path, monkeypatch):
    home = keras_home_env(monkeypatch, tmp_path)
    path = tmp_path / "my_mnist.npz"
    write_mnist(path, n_train=200)
    data = datasets.load(_config("mnist", str(path), n_train=150, n_validation=50))
    assert data.x_train.shape == (150, 784)
    assert not home.exists()  # nothing downloaded or copied


def test_missing_data_without_network_is_one_line_naming_the_file_and_the_fix(tmp_path, monkeypatch):
    home = keras_home_env(monkeypatch, tmp_path)
    with pytest.raises(UserError) as e:
        datasets.load(_config("mnist", closed_port_url("mnist.npz")))
    message = str(e.value)
    assert "\n" not in message
    assert str(home / "datasets" / "mnist-") in message and "download from http://127.0.0.1" in message
    assert "keras.datasets.mnist.load_data()" in message and "--data_path=" in message
    served = tmp_path / "www"
    served.mkdir()
    with serve(served) as url, pytest.raises(UserError, match="404"):  # not on the server
        datasets.load(_config("imdb", url + "imdb.npz"))


@pytest.mark.parametrize(
    "content, message",
    [(b"not a zip file", "cannot read it as Keras' mnist.npz"), (None, "not a Keras dataset file (no x_test, y_test)")],
)
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "mnist.npz"
    if content is None:
        np.savez(path, x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.zeros(3, np.uint8))
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        datasets.load(_config("mnist", str(path)))
    assert "\n" not in str(e.value)


def test_asking_for_more_examples_than_the_file_has(tmp_path):
    path = tmp_path / "mnist.npz"
    write_mnist(path, n_train=100)
    with pytest.raises(UserError, match=r"mnist has 100 training examples; --n_train=80 plus --n_validation=30"):
        datasets.load(_config("mnist", str(path), n_train=80, n_validation=30))


def test_presets_follow_the_books():
    imdb_cfg, mnist_cfg = config_lib.for_dataset("imdb"), config_lib.for_dataset("mnist")
    assert (imdb_cfg.n_train, imdb_cfg.n_validation, imdb_cfg.batch_size, imdb_cfg.max_epochs) == (
        15_000,
        10_000,
        512,
        20,
    )
    assert (mnist_cfg.n_train, mnist_cfg.n_validation, mnist_cfg.batch_size, mnist_cfg.max_epochs) == (
        48_000,
        12_000,
        128,
        20,
    )
    assert imdb_cfg.n_validation / 25_000 == 0.4 and mnist_cfg.n_validation / 60_000 == 0.2
