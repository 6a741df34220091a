"""UCI HIGGS, the TensorFlow tutorial's data: CSV rows of label + 28 features, often gzipped.

The tutorial's split: the first `n_validation` rows validate, the next `n_train` train. Only those
rows are read: a local file or an HTTP(S) stream is decompressed chunk by chunk and reading stops
once enough lines are in (the tutorial's 11,000 rows are ~2 MB of an 8 GB file). Downloaded rows
are cached as .npy and reused; a cache with too few rows is refilled from the start.
Rows are parsed by pandas' C reader; a file that fails to parse is scanned once more in Python
only to name the first bad line.
"""

import gzip
import hashlib
import http.client
import io
import os
import socket
import sys
import urllib.error
import urllib.request
import zlib

import numpy as np

from tbreg.datasets import Data, cache_root
from tbreg.errors import UserError

URL = "http://mlphysics.ics.uci.edu/data/higgs/HIGGS.csv.gz"
N_FEATURES = 28
N_COLUMNS = N_FEATURES + 1
CHUNK = 1 << 20
TIMEOUT_S = 60


def load(config) -> Data:
    n_rows = config.n_validation + config.n_train
    source = config.data_path or URL
    if _is_url(source):
        rows = _cached_download(source, n_rows, cache_root(config))
    else:
        rows = read_file(source, n_rows)
    rows = rows[:n_rows]
    val, train = rows[: config.n_validation], rows[config.n_validation :]
    return Data(
        name="higgs",
        x_train=np.ascontiguousarray(train[:, 1:]),
        y_train=np.ascontiguousarray(train[:, :1]),
        x_val=np.ascontiguousarray(val[:, 1:]),
        y_val=np.ascontiguousarray(val[:, :1]),
        num_classes=2,
    )


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def read_file(path: str, n_rows: int) -> np.ndarray:
    """The first `n_rows` rows of a local (or tf.io.gfile) .csv / .csv.gz file as float32 (n, 29)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise UserError(f"{path}: file not found; pass --data_path=<HIGGS .csv or .csv.gz>")
    if tf.io.gfile.isdir(path):
        raise UserError(f"{path}: is a directory; pass --data_path=<HIGGS .csv or .csv.gz>")
    with tf.io.gfile.GFile(path, "rb") as f:
        return read_rows(f, n_rows, path)


def read_rows(raw, n_rows: int, name: str) -> np.ndarray:
    """Reads the first `n_rows` CSV rows from the binary stream `raw` (gzip detected by magic)."""
    head = raw.read(2)
    stream = _Prefixed(head, raw)
    if head == b"\x1f\x8b":
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
    text = _read_lines(stream, n_rows, name)
    if not text.strip():
        raise UserError(f"{name}: file is empty; expected HIGGS CSV rows (label + {N_FEATURES} features)")
    rows = parse(text, name)
    if len(rows) < n_rows:
        raise UserError(
            f"{name}: has {len(rows)} rows but --n_validation + --n_train need {n_rows}; "
            "lower them or use the full file"
        )
    return rows


class _Prefixed(io.RawIOBase):
    """A stream that yields `prefix` and then the rest of `raw` (to sniff gzip magic)."""

    def __init__(self, prefix: bytes, raw):
        self._prefix, self._raw = prefix, raw

    def readable(self):
        return True

    def read(self, n=-1):
        if self._prefix:
            out, self._prefix = self._prefix, b""
            if n is None or n < 0:
                return out + self._raw.read()
            return out + (self._raw.read(n - len(out)) if n > len(out) else b"")
        return self._raw.read(n)

    def readinto(self, b):
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def _read_lines(stream, n_rows: int, name: str) -> bytes:
    """Decompressed bytes up to and including the `n_rows`-th newline (or the end)."""
    chunks, lines = [], 0
    try:
        while lines < n_rows:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            lines += chunk.count(b"\n")
    except EOFError:
        raise UserError(
            f"{name}: gzip data ends early (truncated file?) after about {lines} rows; "
            "download it again"
        ) from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise UserError(f"{name}: not a readable gzip file ({e}); download it again") from None
    data = b"".join(chunks)
    if lines > n_rows:  # cut after the n_rows-th newline
        end = -1
        for _ in range(n_rows):
            end = data.index(b"\n", end + 1)
        data = data[: end + 1]
    return data


def parse(text: bytes, name: str) -> np.ndarray:
    """Parses CSV bytes into float32 (n, 29) with pandas' C reader; names the first bad line."""
    import pandas as pd

    try:
        frame = pd.read_csv(
            io.BytesIO(text), header=None, dtype=np.float32, engine="c",
            na_filter=False, skip_blank_lines=True,
        )
        rows = frame.to_numpy(dtype=np.float32)
    except (ValueError, pd.errors.ParserError) as e:
        raise _first_bad_line(text, name) or UserError(f"{name}: cannot parse CSV ({e})") from None
    if rows.shape[1] != N_COLUMNS or not np.isfinite(rows).all():
        raise _first_bad_line(text, name) or UserError(f"{name}: cannot parse CSV")
    return rows


def _first_bad_line(text: bytes, name: str) -> UserError | None:
    """Error-path only: finds the first line that is not N_COLUMNS finite numbers."""
    for number, line in enumerate(text.split(b"\n"), start=1):
        if not line.strip():
            continue
        fields = line.split(b",")
        if len(fields) != N_COLUMNS:
            return UserError(
                f"{name}: line {number}: expected {N_COLUMNS} comma-separated columns "
                f"(label + {N_FEATURES} features), found {len(fields)}"
            )
        for column, field in enumerate(fields, start=1):
            try:
                ok = np.isfinite(float(field))
            except ValueError:
                ok = False
            if not ok:
                shown = field.decode("utf-8", "replace").strip()[:40]
                return UserError(f"{name}: line {number}, column {column}: {shown!r} is not a finite number")
    return None


def _cached_download(url: str, n_rows: int, cache_dir: str) -> np.ndarray:
    """Rows from the cache when it holds enough, else streamed from `url` and cached."""
    key = hashlib.sha1(url.encode()).hexdigest()[:12]
    path = os.path.join(cache_dir, "higgs", f"rows-{key}.npy")
    if os.path.exists(path):
        rows = np.load(path, mmap_mode="r")
        if len(rows) >= n_rows:
            return np.array(rows[:n_rows])
    rows = download(url, n_rows)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npy"
    np.save(tmp, rows)
    os.replace(tmp, path)
    return rows


def download(url: str, n_rows: int) -> np.ndarray:
    """Streams `url` and returns its first `n_rows` rows, reading no more than needed."""
    print(f"higgs: streaming the first {n_rows:,} rows of {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return read_rows(response, n_rows, url)
    except urllib.error.HTTPError as e:
        raise UserError(f"{url}: server answered HTTP {e.code} {e.reason}; check the URL or pass --data_path") from None
    except urllib.error.URLError as e:
        raise UserError(f"{url}: cannot connect ({e.reason}); check the network or pass --data_path=<local copy>") from None
    except (http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError) as e:
        raise UserError(
            f"{url}: download interrupted ({type(e).__name__}: {e}); run again or pass --data_path=<local copy>"
        ) from None
