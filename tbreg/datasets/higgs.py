"""UCI HIGGS, the TensorFlow tutorial's data: CSV rows of label + 28 features, often gzipped.

The tutorial's split: the first `n_validation` rows validate, the next `n_train` train. Only those
rows are read: a local file or an HTTP(S) stream is decompressed chunk by chunk and reading stops
once enough lines are in (the tutorial's 11,000 rows are ~2 MB of an 8 GB file). Downloaded rows
are cached as .npy and reused; a cache with too few rows is refilled from the start.
Rows are parsed by pandas' C reader; a file that fails to parse is scanned once more in Python
only to name the first bad line.
"""

import hashlib
import http.client
import io
import os
import sys
import urllib.error
import urllib.request
import warnings
import zlib

try:  # ISA-L's inflate is a drop-in for zlib's, ~3x faster
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover
    _zlib = zlib

import numpy as np

from tbreg.datasets import Data, cache_root
from tbreg.errors import UserError

URL = "http://mlphysics.ics.uci.edu/data/higgs/HIGGS.csv.gz"
N_FEATURES = 28
N_COLUMNS = N_FEATURES + 1
TIMEOUT_S = 60
FLOAT32_MAX = float(np.finfo(np.float32).max)


def load(config) -> Data:
    if config.n_validation < 1 or config.n_train < 1:
        raise UserError(
            f"higgs needs at least 1 validation and 1 training row, got --n_validation={config.n_validation} "
            f"--n_train={config.n_train}; raise them"
        )
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
    return source.lower().startswith(("http://", "https://"))


def read_file(path: str, n_rows: int) -> np.ndarray:
    """The first `n_rows` rows of a local (or tf.io.gfile URI) .csv / .csv.gz file as float32 (n, 29)."""
    if "://" in path:  # gs://, ram://, ...: TensorFlow's file systems
        return _read_gfile(path, n_rows)
    if not os.path.exists(path):
        raise UserError(f"{path}: file not found; pass --data_path=<HIGGS .csv or .csv.gz>")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory; pass --data_path=<HIGGS .csv or .csv.gz>")
    try:
        with open(path, "rb") as f:
            return read_rows(f, n_rows, path)
    except OSError as e:  # permission denied, I/O error, ... (gzip errors are UserErrors already)
        raise UserError(
            f"{path}: cannot read ({_one_line(e.strerror or e)}); pass --data_path=<readable HIGGS .csv or .csv.gz>"
        ) from None


def _read_gfile(path: str, n_rows: int) -> np.ndarray:
    import tensorflow as tf

    try:
        if not tf.io.gfile.exists(path):
            raise UserError(f"{path}: file not found; pass --data_path=<HIGGS .csv or .csv.gz>")
        if tf.io.gfile.isdir(path):
            raise UserError(f"{path}: is a directory; pass --data_path=<HIGGS .csv or .csv.gz>")
        with tf.io.gfile.GFile(path, "rb") as f:
            return read_rows(f, n_rows, path)
    except tf.errors.OpError as e:  # unknown scheme, permission denied, ...
        raise UserError(
            f"{path}: cannot read ({_one_line(e.message)}); pass --data_path=<readable HIGGS .csv or .csv.gz>"
        ) from None


def read_rows(raw, n_rows: int, name: str) -> np.ndarray:
    """Reads the first `n_rows` CSV rows from the binary stream `raw` (gzip detected by magic).

    Decompresses and parses block by block (BLOCK_ROWS rows), so memory stays bounded by the
    rows kept and reading stops as soon as `n_rows` rows are in.
    """
    rows, first_line = [], 1
    pending, pending_lines = [], 0  # decompressed chunks not parsed yet, and their newlines
    partial = 0  # bytes of pending's last, unfinished line
    chunks = _decompressed(raw, name)
    try:
        for chunk in chunks:
            pending.append(chunk)
            pending_lines += chunk.count(b"\n")
            last_newline = chunk.rfind(b"\n")
            partial = partial + len(chunk) if last_newline < 0 else len(chunk) - last_newline - 1
            if partial > MAX_LINE_BYTES:
                raise UserError(
                    f"{name}: line {first_line + pending_lines} is longer than {MAX_LINE_BYTES:,} bytes (a HIGGS row "
                    f"is ~600); not a HIGGS CSV file? pass --data_path=<HIGGS .csv or .csv.gz>"
                )
            want = n_rows - (first_line - 1)
            if pending_lines < min(BLOCK_ROWS, want):
                continue
            text = b"".join(pending)
            cut = _after_newline(text, want) if want < pending_lines else text.rfind(b"\n") + 1
            rows.append(parse(text[:cut], name, first_line))
            first_line += min(pending_lines, want)
            pending, pending_lines = [text[cut:]], 0  # a partial line (or we are done)
            if first_line > n_rows:
                break
        else:  # the stream ended: the rest is the last block; blank lines at its end are fine
            text = _drop_trailing_blank_lines(b"".join(pending))
            if text:
                rows.append(parse(text, name, first_line))
    except _TruncatedGzip:
        raise UserError(
            f"{name}: gzip data ends early (truncated file?) after about {first_line - 1 + pending_lines} rows; "
            "download it again"
        ) from None
    if not rows:
        raise UserError(f"{name}: file is empty; expected HIGGS CSV rows (label + {N_FEATURES} features)")
    rows = np.concatenate(rows) if len(rows) > 1 else rows[0]
    _check_labels(rows[:n_rows], name)
    if len(rows) < n_rows:
        raise UserError(
            f"{name}: has {len(rows)} rows but --n_validation + --n_train need {n_rows}; "
            "lower them or use the full file"
        )
    return rows


CHUNK = 1 << 20  # bytes read (and decompressed) at a time
MAX_LINE_BYTES = 1 << 16  # a longer line is no HIGGS row: refused before it fills memory
BLOCK_ROWS = 20_000  # rows parsed at a time (~14 MB of HIGGS text)
_GZIP_MAGIC = b"\x1f\x8b"


def _check_labels(rows: np.ndarray, name: str) -> None:
    """A UserError naming the first row whose label (column 1) is not 0 or 1."""
    bad = np.flatnonzero((rows[:, 0] != 0) & (rows[:, 0] != 1))
    if bad.size:
        raise UserError(
            f"{name}: line {bad[0] + 1}, column 1: the label is {rows[bad[0], 0]:g}, not 0 or 1; HIGGS rows start "
            "with the class (1 signal, 0 background)"
        )


def _after_newline(text: bytes, k: int) -> int:
    """The index just after the `k`-th newline of `text` (k >= 1), or 0 for k == 0."""
    if k <= 0:
        return 0
    newlines = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("\n"))
    return int(newlines[k - 1]) + 1


class _TruncatedGzip(Exception):
    """The gzip stream ended before its end-of-stream marker."""


def _decompressed(raw, name: str):
    """Yields the decompressed bytes of `raw`: plain text, gzip or multi-member gzip.

    Inflates with ISA-L (`isal`, ~3x zlib's speed) where installed, else zlib. Truncated or
    invalid gzip data raises `_TruncatedGzip` or a UserError naming `name`.
    """
    head = raw.read(2)
    if head != _GZIP_MAGIC:
        yield head
        while chunk := raw.read(CHUNK):
            yield chunk
        return
    data, inflater = head, _zlib.decompressobj(wbits=31)
    while True:
        if not data:
            data = raw.read(CHUNK)
            if not data:
                if not inflater.eof:
                    raise _TruncatedGzip()
                return
        if inflater.eof:  # the previous gzip member ended: `data` starts the next one
            data = data.lstrip(b"\0")  # padding after the last member is allowed
            if len(data) < 2:
                data += raw.read(CHUNK)
                continue
            if data[:2] != _GZIP_MAGIC:
                raise UserError(f"{name}: not a readable gzip file (garbage after the data); download it again")
            inflater = _zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(data, CHUNK)  # at most CHUNK bytes at a time, however well it compresses
        except _zlib.error as e:
            raise UserError(f"{name}: not a readable gzip file ({_one_line(e)}); download it again") from None
        yield out
        data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail


def _drop_trailing_blank_lines(text: bytes) -> bytes:
    """`text` without blank lines at its end (blank lines between rows are reported by `parse`)."""
    end = len(text)
    while end and text[end - 1] in b" \t\r\n":
        end -= 1
    if end == 0:
        return b""
    return text if text.count(b"\n", end) <= 1 else text[:end] + b"\n"


def parse(text: bytes, name: str, first_line: int = 1) -> np.ndarray:
    """Parses CSV bytes into float32 (n, 29) with pandas' C reader; names the first bad line.

    `first_line` is the line number of `text`'s first line in the file, for error messages.
    """
    import pandas as pd

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow to inf in the cast: reported below
            frame = pd.read_csv(
                io.BytesIO(text),
                header=None,
                dtype=np.float32,
                engine="c",
                na_filter=False,
                skip_blank_lines=False,
            )
        rows = frame.to_numpy(dtype=np.float32)
    except (ValueError, pd.errors.ParserError) as e:
        raise _first_bad_line(text, name, first_line) or UserError(
            f"{name}: cannot parse CSV ({_one_line(e)})"
        ) from None
    if rows.shape[1] != N_COLUMNS or not np.isfinite(rows).all():
        raise _first_bad_line(text, name, first_line) or UserError(f"{name}: cannot parse CSV")
    return rows


def _first_bad_line(text: bytes, name: str, first_line: int = 1) -> UserError | None:
    """Error-path only: finds the first line that is not N_COLUMNS finite numbers."""
    last = first_line + text.count(b"\n")
    for number, line in enumerate(text.split(b"\n"), start=first_line):
        if not line.strip():
            if number == last:  # after the final newline
                continue
            return UserError(f"{name}: line {number} is empty; remove blank lines between the rows")
        fields = line.split(b",")
        if len(fields) != N_COLUMNS:
            return UserError(
                f"{name}: line {number}: expected {N_COLUMNS} comma-separated columns "
                f"(label + {N_FEATURES} features), found {len(fields)}"
            )
        for column, field in enumerate(fields, start=1):
            try:
                ok = abs(float(field)) <= FLOAT32_MAX  # False for nan, inf and overflow
            except ValueError:
                ok = False
            if not ok:
                shown = field.decode("utf-8", "replace").strip()[:40]
                return UserError(f"{name}: line {number}, column {column}: {shown!r} is not a finite float32 number")
    return None


def _cached_download(url: str, n_rows: int, cache_dir: str) -> np.ndarray:
    """Rows from the cache when it holds enough, else streamed from `url` and cached."""
    key = hashlib.sha1(url.encode()).hexdigest()[:12]
    path = os.path.join(cache_dir, "higgs", f"rows-{key}.npy")
    cached = _read_cache(path)
    if cached is not None and len(cached) >= n_rows:
        return np.array(cached[:n_rows])
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)  # before downloading: fail early
    except OSError as e:
        raise _cache_error(path, e) from None
    rows = download(url, n_rows)
    tmp = f"{path}.{os.getpid()}.tmp.npy"
    try:
        np.save(tmp, rows)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise _cache_error(path, e) from None
    return rows


def _cache_error(path: str, e: OSError) -> UserError:
    return UserError(
        f"{os.path.dirname(path)}: cannot write the HIGGS cache ({_one_line(e.strerror or e)}); "
        "pass --cache_dir=<writable dir> or set TBREG_CACHE"
    )


def _read_cache(path: str) -> np.ndarray | None:
    """The cached rows at `path` (memory-mapped), or None when missing or unreadable (then refilled)."""
    try:
        rows = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if rows.dtype != np.float32 or rows.ndim != 2 or rows.shape[1] != N_COLUMNS:
        return None
    return rows


class _HTTPBody(io.RawIOBase):
    """An HTTP response body that fails loudly when the server sends less than its Content-Length.

    (http.client returns a short body silently when the connection drops mid-way.)
    """

    def __init__(self, response, url: str):
        self._response, self._url, self._got = response, url, 0
        self._total = response.length  # None without a Content-Length (chunked or close-delimited)

    def readable(self):
        return True

    def read(self, n=-1):
        data = self._response.read(None if n is None or n < 0 else n)
        self._got += len(data)
        if not data and n and self._total is not None and self._got < self._total:
            raise UserError(
                f"{self._url}: download interrupted after {self._got:,} of {self._total:,} bytes "
                "(connection closed); run again or pass --data_path=<local copy>"
            )
        return data

    def readinto(self, b):
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


def download(url: str, n_rows: int) -> np.ndarray:
    """Streams `url` and returns its first `n_rows` rows, reading no more than needed."""
    print(f"higgs: streaming the first {n_rows:,} rows of {url}", file=sys.stderr)
    response = _open(url)
    try:
        with response:
            return read_rows(_HTTPBody(response, url), n_rows, url)
    except (http.client.HTTPException, OSError) as e:  # ConnectionError, TimeoutError, ssl errors, ...
        raise UserError(
            f"{url}: download interrupted ({type(e).__name__}: {_one_line(e)}); run again or pass --data_path=<local copy>"
        ) from None


def _open(url: str):
    """The HTTP response for `url`; UserError when the URL is malformed, unreachable or refused."""
    try:
        return urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        raise UserError(
            f"{url}: server answered HTTP {e.code} {_one_line(e.reason)}; check the URL or pass --data_path"
        ) from None
    except urllib.error.URLError as e:
        raise UserError(
            f"{url}: cannot connect ({_one_line(e.reason)}); check the network or pass --data_path=<local copy>"
        ) from None
    except (ValueError, http.client.InvalidURL) as e:
        raise UserError(f"{url}: not a valid URL ({_one_line(e)}); pass --data_path=<URL or local file>") from None
    except (http.client.HTTPException, OSError) as e:  # e.g. the server closed without answering
        raise UserError(
            f"{url}: no valid HTTP answer ({type(e).__name__}: {_one_line(e)}); check the URL or pass --data_path=<local copy>"
        ) from None


def _one_line(reason) -> str:
    """`reason` (an exception or text) as one line, for a UserError message."""
    return " ".join(str(reason).split())
