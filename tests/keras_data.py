"""Small files in the exact format of Keras' mnist.npz and imdb.npz, and a loopback server for them.

No network: Keras' `get_file` downloads them from 127.0.0.1 into a temporary Keras home.
"""

import contextlib
import functools
import http.server
import os
import threading

import numpy as np


def write_mnist(path, n_train=600, n_test=100, seed=0):
    """mnist.npz as Keras ships it: x_* uint8 (N, 28, 28), y_* uint8 (N,). Classes are learnable:
    each image is its class' random prototype plus noise."""
    rng = np.random.default_rng(seed)
    prototypes = rng.integers(0, 256, size=(10, 28, 28))

    def images(n):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        x = 0.7 * prototypes[y] + 0.3 * rng.integers(0, 256, size=(n, 28, 28))
        return np.clip(x, 0, 255).astype(np.uint8), y

    (x_train, y_train), (x_test, y_test) = images(n_train), images(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def _object_array(seqs):
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = s
    return out


def write_imdb(path, n_train=300, n_test=50, seed=0, vocabulary=12_000):
    """imdb.npz as Keras ships it: x_* object arrays of int lists (word ranks from 1, some beyond
    the 10,000 kept), y_* int64 labels. Positive reviews use more of a set of 'positive' words."""
    rng = np.random.default_rng(seed)
    positive, negative = rng.choice(np.arange(1, 2000), size=(2, 50), replace=False)

    def reviews(n):
        y = rng.integers(0, 2, size=n).astype(np.int64)
        seqs = []
        for label in y:
            words = rng.integers(1, vocabulary, size=rng.integers(20, 120))
            signal = rng.choice(positive if label else negative, size=10)
            seqs.append([int(w) for w in np.concatenate([words, signal])])
        return _object_array(seqs), y

    (x_train, y_train), (x_test, y_test) = reviews(n_train), reviews(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory):
    """Serves `directory` on 127.0.0.1; yields the base URL (ending in /)."""
    handler = functools.partial(_Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_url(name):
    """A loopback URL nobody listens on (the port was free a moment ago)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def keras_home_env(monkeypatch, tmp_path):
    """A fresh Keras home for this test (tbreg reads $KERAS_HOME at load time)."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def file_list(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
