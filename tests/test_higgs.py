"""HIGGS loader: real files in the UCI format, served by a real HTTP server on 127.0.0.1.

Rows are `label,f1,…,f28` written like the UCI file (`%.18e`, no header). Every user mistake must be
a `UserError` with a one-line message naming the file or URL, the line and what is wrong.
"""

import concurrent.futures
import contextlib
import dataclasses
import glob
import gzip
import http.server
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import REPO, own_lines, run_script

from tbreg import config as config_lib
from tbreg.datasets import higgs
from tbreg.errors import UserError

N_COLUMNS = 29


# ---------------------------------------------------------------------------------------------------
# Files in the HIGGS format


def make_rows(n: int, seed: int = 0) -> np.ndarray:
    """float32 (n, 29): a 0/1 label, then 28 features of both signs."""
    rng = np.random.default_rng(seed)
    rows = np.empty((n, N_COLUMNS), np.float32)
    rows[:, 0] = rng.integers(0, 2, n)
    rows[:, 1:] = rng.normal(size=(n, N_COLUMNS - 1))
    return rows


def to_csv(rows: np.ndarray) -> bytes:
    """The UCI file's text: `1.000000000000000000e+00,8.692932128906250000e-01,…` per line."""
    buf = io.StringIO()
    np.savetxt(buf, rows, fmt="%.18e", delimiter=",")
    return buf.getvalue().encode()


def csv_lines(rows: np.ndarray) -> list[bytes]:
    return to_csv(rows).splitlines(keepends=True)


def write(path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def make_config(source, cache_dir=None, n_validation=200, n_train=1000):
    return config_lib.for_dataset(
        "higgs",
        data_path=str(source),
        cache_dir=cache_dir and str(cache_dir),
        n_validation=n_validation,
        n_train=n_train,
    )


def load_error(source, cache_dir=None, **sizes) -> str:
    """The message of the UserError that loading `source` raises; asserts it is one line."""
    with pytest.raises(UserError) as info:
        higgs.load(make_config(source, cache_dir, **sizes))
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def assert_split(data, rows: np.ndarray, n_validation: int, n_train: int):
    """The first n_validation rows validate, the next n_train train; labels (N, 1) float32."""
    assert data.name == "higgs" and data.num_classes == 2 and data.task == "binary"
    assert data.x_val.shape == (n_validation, 28) and data.y_val.shape == (n_validation, 1)
    assert data.x_train.shape == (n_train, 28) and data.y_train.shape == (n_train, 1)
    for array in (data.x_train, data.y_train, data.x_val, data.y_val):
        assert array.dtype == np.float32
    np.testing.assert_array_equal(data.y_val, rows[:n_validation, :1])
    np.testing.assert_array_equal(data.x_val, rows[:n_validation, 1:])
    np.testing.assert_array_equal(data.y_train, rows[n_validation : n_validation + n_train, :1])
    np.testing.assert_array_equal(data.x_train, rows[n_validation : n_validation + n_train, 1:])


# ---------------------------------------------------------------------------------------------------
# A real HTTP server on 127.0.0.1


@dataclasses.dataclass
class Route:
    body: bytes
    cut: int | None = None  # send Content-Length: len(body), then only `cut` bytes and close


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append(self.path)
        route = server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        end = len(route.body) if route.cut is None else route.cut
        try:
            for start in range(0, end, 1 << 16):
                piece = route.body[start : min(start + (1 << 16), end)]
                self.wfile.write(piece)
                with server.lock:
                    server.sent[self.path] = server.sent.get(self.path, 0) + len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: it had enough rows
        self.close_connection = True

    def log_message(self, *args):
        pass


class Server:
    """Serves `routes` (path → Route); counts requests and body bytes sent per path."""

    def __init__(self):
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.routes, self._httpd.requests, self._httpd.sent = {}, [], {}
        self._httpd.lock = threading.Lock()
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def add(self, path: str, body: bytes, cut: int | None = None) -> str:
        self._httpd.routes[path] = Route(body, cut)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def requests(self, path: str) -> int:
        return self._httpd.requests.count(path)

    def sent(self, path: str) -> int:
        return self._httpd.sent.get(path, 0)

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


@contextlib.contextmanager
def serving():
    server = Server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def server():
    with serving() as s:
        yield s


@pytest.fixture
def closed_port():
    """A loopback port that refuses connections (bound, never listening)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


# ---------------------------------------------------------------------------------------------------
# Happy paths


@pytest.mark.parametrize("kind", ["local .csv", "local .csv.gz", "URL .csv.gz"])
def test_loads_first_rows_as_validation_then_train(kind, tmp_path, server):
    rows = make_rows(1500)
    text = to_csv(rows)
    if kind == "local .csv":
        source = write(tmp_path / "HIGGS.csv", text)
    elif kind == "local .csv.gz":
        source = write(tmp_path / "HIGGS.csv.gz", gzip.compress(text))
    else:
        source = server.add("/HIGGS.csv.gz", gzip.compress(text))
    data = higgs.load(make_config(source, tmp_path / "cache", n_validation=200, n_train=1000))
    assert_split(data, rows, 200, 1000)


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_rows_ending_inside_a_read_chunk(gz, tmp_path):
    """The last wanted row ends in the chunk where the next row is cut (regression: that row was parsed)."""
    rows = make_rows(1700)
    text = to_csv(rows)
    assert len(text) > higgs.CHUNK and text[higgs.CHUNK - 1 : higgs.CHUNK] != b"\n"
    n_rows = text[: higgs.CHUNK].count(b"\n")  # the chunk holds these rows plus part of the next
    source = write(tmp_path / ("HIGGS.csv.gz" if gz else "HIGGS.csv"), gzip.compress(text) if gz else text)
    data = higgs.load(make_config(source, n_validation=100, n_train=n_rows - 100))
    assert_split(data, rows, 100, n_rows - 100)


def test_rows_after_the_needed_ones_are_never_parsed(tmp_path):
    rows = make_rows(1300)
    lines = csv_lines(rows)
    source = write(tmp_path / "HIGGS.csv", b"".join(lines[:1250]) + b"not,a,row\n" + b"".join(lines[1250:]))
    assert_split(higgs.load(make_config(source, n_validation=200, n_train=1000)), rows, 200, 1000)


def test_trailing_blank_lines_and_crlf_are_accepted(tmp_path):
    rows = make_rows(300)
    source = write(tmp_path / "HIGGS.csv", to_csv(rows).replace(b"\n", b"\r\n") + b"\r\n\n")
    assert_split(higgs.load(make_config(source, n_validation=100, n_train=200)), rows, 100, 200)


@pytest.fixture(scope="module")
def big_gzip():
    """200,000 rows, ~68 MB of gzip: one 1,000-row gzip member repeated (a valid multi-member gzip)."""
    rows = make_rows(1000, seed=1)
    return rows, gzip.compress(to_csv(rows), compresslevel=1) * 200


def test_streaming_stops_after_the_needed_rows(big_gzip, tmp_path, server):
    rows, body = big_gzip
    url = server.add("/HIGGS.csv.gz", body)
    data = higgs.load(make_config(url, tmp_path / "cache", n_validation=100, n_train=1000))
    assert_split(data, np.concatenate([rows, rows]), 100, 1000)
    assert server.requests("/HIGGS.csv.gz") == 1
    # Read: ~0.4 MB of gzip; the rest is what the loopback socket buffers took before the client closed.
    assert server.sent("/HIGGS.csv.gz") < len(body) // 5, (server.sent("/HIGGS.csv.gz"), len(body))


# ---------------------------------------------------------------------------------------------------
# Cache


def test_cache_serves_same_or_fewer_rows_and_refills_for_more(tmp_path, server):
    rows = make_rows(3000)
    url = server.add("/HIGGS.csv.gz", gzip.compress(to_csv(rows)))
    cache = tmp_path / "cache"

    assert_split(higgs.load(make_config(url, cache, 200, 1000)), rows, 200, 1000)
    assert server.requests("/HIGGS.csv.gz") == 1
    (cached,) = glob.glob(str(cache / "higgs" / "*.npy"))
    assert np.load(cached).shape == (1200, N_COLUMNS)

    assert_split(higgs.load(make_config(url, cache, 200, 1000)), rows, 200, 1000)  # same rows
    assert_split(higgs.load(make_config(url, cache, 100, 500)), rows, 100, 500)  # fewer rows
    assert server.requests("/HIGGS.csv.gz") == 1

    assert_split(higgs.load(make_config(url, cache, 500, 2000)), rows, 500, 2000)  # more: refilled
    assert server.requests("/HIGGS.csv.gz") == 2
    assert np.load(cached).shape == (2500, N_COLUMNS)
    assert_split(higgs.load(make_config(url, cache, 200, 1000)), rows, 200, 1000)
    assert server.requests("/HIGGS.csv.gz") == 2


def test_cache_dir_comes_from_the_config(tmp_path, server, monkeypatch):
    rows = make_rows(1300)
    url = server.add("/HIGGS.csv.gz", gzip.compress(to_csv(rows)))
    monkeypatch.setenv("TBREG_CACHE", str(tmp_path / "env_cache"))
    higgs.load(make_config(url, tmp_path / "a"))
    assert len(glob.glob(str(tmp_path / "a" / "higgs" / "*.npy"))) == 1
    assert not (tmp_path / "env_cache").exists()
    higgs.load(make_config(url, tmp_path / "b"))  # another cache dir: downloads again
    assert server.requests("/HIGGS.csv.gz") == 2
    higgs.load(make_config(url, tmp_path / "a"))
    assert server.requests("/HIGGS.csv.gz") == 2


def test_unreadable_cache_is_refilled(tmp_path, server):
    rows = make_rows(1300)
    url = server.add("/HIGGS.csv.gz", gzip.compress(to_csv(rows)))
    higgs.load(make_config(url, tmp_path))
    (cached,) = glob.glob(str(tmp_path / "higgs" / "*.npy"))
    write(cached, b"\x93NUMPY half a header")
    assert_split(higgs.load(make_config(url, tmp_path)), rows, 200, 1000)
    assert server.requests("/HIGGS.csv.gz") == 2


def test_unwritable_cache_dir_is_a_user_error(tmp_path, server):
    url = server.add("/HIGGS.csv.gz", gzip.compress(to_csv(make_rows(1300))))
    blocker = write(tmp_path / "not_a_dir", b"")  # a file where the cache dir should be
    assert load_error(url, blocker) == (
        f"--cache_dir={blocker}: it is a file, not a directory; pass --cache_dir=<a directory> (created if missing)"
    )
    assert server.requests("/HIGGS.csv.gz") == 0  # checked before downloading


# ---------------------------------------------------------------------------------------------------
# Bad local files


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.csv.gz")
    assert load_error(path) == f"{path}: file not found; pass --data_path=<HIGGS .csv or .csv.gz>"


def test_directory(tmp_path):
    assert load_error(tmp_path) == f"{tmp_path}: is a directory; pass --data_path=<HIGGS .csv or .csv.gz>"


@pytest.mark.parametrize("body", [b"", b"\n\n", gzip.compress(b"")], ids=["empty", "blank", "empty-gzip"])
def test_empty_file(body, tmp_path):
    path = write(tmp_path / "HIGGS.csv.gz", body)
    assert load_error(path) == f"{path}: file is empty; expected HIGGS CSV rows (label + 28 features)"


def _with_line(lines, number, new_line):
    """The text of `lines` with line `number` (1-based) replaced."""
    return b"".join(lines[: number - 1] + [new_line] + lines[number:])


def _fields(line: bytes) -> list[bytes]:
    return line.rstrip(b"\n").split(b",")


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_wrong_column_count(gz, tmp_path):
    lines = csv_lines(make_rows(50))
    for number, fields, found in [
        (7, _fields(lines[6])[:-1], 28),  # a short line after good ones
        (9, _fields(lines[8]) + [b"1.0"], 30),  # a long line (pandas' own tokenizer error)
        (1, _fields(lines[0])[:-2], 27),  # the first line sets pandas' column count
    ]:
        text = _with_line(lines, number, b",".join(fields) + b"\n")
        path = write(tmp_path / f"bad{number}.csv{'.gz' if gz else ''}", gzip.compress(text) if gz else text)
        assert load_error(path, n_validation=10, n_train=30) == (
            f"{path}: line {number}: expected 29 comma-separated columns (label + 28 features), found {found}"
        )


@pytest.mark.parametrize(
    "field, shown",
    [
        (b"abc", "'abc'"),
        (b"", "''"),
        (b"nan", "'nan'"),
        (b"inf", "'inf'"),
        (b"1e39", "'1e39'"),
        (b" 0x1p3 ", "'0x1p3'"),
    ],
    ids=["text", "empty", "nan", "inf", "float32-overflow", "hex"],
)
def test_bad_field_names_line_and_column(field, shown, tmp_path):
    lines = csv_lines(make_rows(50))
    fields = _fields(lines[4])
    fields[2] = field
    path = write(tmp_path / "HIGGS.csv", _with_line(lines, 5, b",".join(fields) + b"\n"))
    assert load_error(path, n_validation=10, n_train=30) == (
        f"{path}: line 5, column 3: {shown} is not a finite float32 number"
    )


@pytest.mark.parametrize("number", [12, 40], ids=["inside", "last-wanted-line"])
def test_blank_line_between_rows(number, tmp_path):
    lines = csv_lines(make_rows(50))
    path = write(tmp_path / "HIGGS.csv", b"".join(lines[: number - 1] + [b"\n"] + lines[number - 1 :]))
    assert load_error(path, n_validation=10, n_train=30) == (
        f"{path}: line {number} is empty; remove blank lines between the rows"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_unreadable_file(tmp_path):
    path = write(tmp_path / "HIGGS.csv", to_csv(make_rows(10)))
    os.chmod(path, 0)
    assert load_error(path) == (
        f"{path}: cannot read (Permission denied); pass --data_path=<readable HIGGS .csv or .csv.gz>"
    )


def test_tensorflow_file_systems():
    """URIs other than http(s) go through tf.io.gfile: ram:// works, an unknown scheme is a UserError."""
    import tensorflow as tf

    rows = make_rows(400)
    path = "ram://tbreg_test_higgs/HIGGS.csv.gz"
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(gzip.compress(to_csv(rows)))
    assert_split(higgs.load(make_config(path, n_validation=100, n_train=250)), rows, 100, 250)
    assert load_error("ram://tbreg_test_higgs/nope.csv") == (
        "ram://tbreg_test_higgs/nope.csv: file not found; pass --data_path=<HIGGS .csv or .csv.gz>"
    )
    message = load_error("nosuchfs://bucket/HIGGS.csv.gz")
    assert message.startswith("nosuchfs://bucket/HIGGS.csv.gz: cannot read (") and "scheme" in message, message


@pytest.mark.parametrize("n_validation, n_train", [(0, 10), (10, 0)])
def test_no_rows_asked(n_validation, n_train, tmp_path):
    path = write(tmp_path / "HIGGS.csv", to_csv(make_rows(50)))
    assert load_error(path, n_validation=n_validation, n_train=n_train) == (
        f"higgs needs at least 1 validation and 1 training row, got --n_validation={n_validation} "
        f"--n_train={n_train}; raise them"
    )


def test_truncated_gzip(tmp_path):
    body = gzip.compress(to_csv(make_rows(3000)))
    path = write(tmp_path / "HIGGS.csv.gz", body[: len(body) // 2])
    message = load_error(path, n_validation=900, n_train=2000)
    assert re.fullmatch(
        rf"{re.escape(path)}: gzip data ends early \(truncated file\?\) after about \d+ rows; download it again",
        message,
    ), message


def test_garbage_with_gzip_magic(tmp_path):
    path = write(tmp_path / "HIGGS.csv.gz", b"\x1f\x8b" + b"this is no gzip data\n" * 100)
    message = load_error(path)  # the reason is the inflate library's own words (zlib or ISA-L)
    assert re.fullmatch(rf"{re.escape(path)}: not a readable gzip file \(.+\); download it again", message), message
    # A valid gzip header followed by bytes that are no deflate stream:
    path = write(tmp_path / "HIGGS2.csv.gz", gzip.compress(b"")[:10] + b"\xff" * 500)
    message = load_error(path)
    assert re.fullmatch(
        rf"{re.escape(path)}: not a readable gzip file \(.+\); download it again",
        message,
    ), message


def test_binary_garbage_without_gzip_magic(tmp_path):
    path = write(tmp_path / "HIGGS.csv", bytes(range(256)) * 4)
    assert load_error(path).startswith(f"{path}: line 1")


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_fewer_rows_than_asked(gz, tmp_path):
    text = to_csv(make_rows(50))
    path = write(tmp_path / "small.csv", gzip.compress(text) if gz else text)
    assert load_error(path, n_validation=200, n_train=1000) == (
        f"{path}: has 50 rows but --n_validation + --n_train need 1200; lower them or use the full file"
    )


# ---------------------------------------------------------------------------------------------------
# Bad URLs and broken downloads


def test_fewer_rows_than_asked_url(tmp_path, server):
    url = server.add("/small.csv.gz", gzip.compress(to_csv(make_rows(50))))
    assert load_error(url, tmp_path) == (
        f"{url}: has 50 rows but --n_validation + --n_train need 1200; lower them or use the full file"
    )
    assert not glob.glob(str(tmp_path / "higgs" / "*"))  # nothing cached


def test_bad_row_in_a_download_names_the_url(tmp_path, server):
    lines = csv_lines(make_rows(1300))
    url = server.add("/HIGGS.csv.gz", gzip.compress(_with_line(lines, 321, b"1.0,oops\n")))
    assert load_error(url, tmp_path) == (
        f"{url}: line 321: expected 29 comma-separated columns (label + 28 features), found 2"
    )


def test_unreachable_url(tmp_path, closed_port):
    url = f"http://127.0.0.1:{closed_port}/HIGGS.csv.gz"
    message = load_error(url, tmp_path)
    assert message.startswith(f"{url}: cannot connect (") and "Connection refused" in message, message
    assert message.endswith("); check the network or pass --data_path=<local copy>"), message


def test_http_404(tmp_path, server):
    url = server.url("/missing.csv.gz")
    assert load_error(url, tmp_path) == f"{url}: server answered HTTP 404 Not Found; check the URL or pass --data_path"


def test_malformed_url(tmp_path):
    assert load_error("http://[::1/HIGGS.csv.gz", tmp_path) == (
        "http://[::1/HIGGS.csv.gz: not a valid URL (Invalid IPv6 URL); pass --data_path=<URL or local file>"
    )


@pytest.mark.parametrize("gz", [False, True], ids=["csv", "csv.gz"])
def test_connection_dropped_mid_body(gz, tmp_path, server):
    """Content-Length promises the whole file; the server sends half and closes (http.client is silent)."""
    text = to_csv(make_rows(3000))
    body = gzip.compress(text) if gz else text
    cut = len(body) // 2 + 7  # mid-row, mid-field
    url = server.add("/HIGGS.csv" + (".gz" if gz else ""), body, cut=cut)
    assert load_error(url, tmp_path, n_validation=900, n_train=2000) == (
        f"{url}: download interrupted after {cut:,} of {len(body):,} bytes (connection closed); "
        "run again or pass --data_path=<local copy>"
    )
    assert not glob.glob(str(tmp_path / "higgs" / "*"))  # nothing cached


# ---------------------------------------------------------------------------------------------------
# End to end, as a user runs the script (subprocesses run in parallel: each imports TensorFlow)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    lines = csv_lines(make_rows(1300))
    bad = write(tmp / "bad.csv.gz", gzip.compress(_with_line(lines, 42, b"1.0,2.0\n")))
    with serving() as server:
        url = server.add("/HIGGS.csv.gz", gzip.compress(b"".join(lines)))
        jobs = {
            "bad_file": ("--dataset=higgs", f"--data_path={bad}", f"--logdir={tmp / 'bad_logs'}"),
            "good_url": (
                "--dataset=higgs",
                f"--data_path={url}",
                f"--logdir={tmp / 'logs'}",
                "--models=tiny",
                "--max_epochs=2",
                "--n_train=1000",
                "--n_validation=200",
                "--quiet",
            ),
            "bad_models": ("--models=huge", f"--logdir={tmp / 'flag_logs'}"),
            "bad_max_epochs": ("--max_epochs=0", f"--logdir={tmp / 'flag_logs'}"),
        }
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            futures = {
                name: pool.submit(run_script, "tbreg.train_sizes", *args, cache_dir=tmp / "cache", timeout=300)
                for name, args in jobs.items()
            }
            procs = {name: f.result() for name, f in futures.items()}
        return {"tmp": tmp, "bad": bad, "url": url, "requests": server.requests("/HIGGS.csv.gz"), **procs}


def test_script_bad_file_is_one_line_error(e2e):
    proc = e2e["bad_file"]
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    expected = (
        f"train_sizes.py: error: {e2e['bad']}: line 42: expected 29 comma-separated columns "
        "(label + 28 features), found 2"
    )
    assert own_lines(proc.stderr) == [expected], proc.stderr
    assert not os.path.exists(e2e["tmp"] / "bad_logs" / "sizes" / "tiny" / "run.json")


def test_script_trains_on_a_downloaded_gzip(e2e):
    proc = e2e["good_url"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert e2e["requests"] == 1
    with open(e2e["tmp"] / "logs" / "sizes" / "tiny" / "run.json") as f:
        run = json.load(f)
    assert run["dataset"] == "higgs" and run["status"] == "completed", run
    assert glob.glob(str(e2e["tmp"] / "cache" / "higgs" / "*.npy"))  # TBREG_CACHE was used


@pytest.mark.parametrize(
    "job, flag_message",
    [
        ("bad_models", "flag --models=['huge']: must be a comma list of: tiny, small, medium, large, paper"),
        ("bad_max_epochs", "flag --max_epochs=0: 0 is not a positive integer"),
    ],
)
def test_script_bad_flag_value(e2e, job, flag_message):
    proc = e2e[job]
    assert proc.returncode == 2
    assert own_lines(proc.stderr) == proc.stderr.strip().splitlines()  # no TensorFlow start-up lines either
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"train_sizes.py: error: {flag_message}") and line.endswith("--help"), line


def test_a_500_mb_line_is_refused_in_one_line_with_bounded_memory(tmp_path):
    path = tmp_path / "HIGGS.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(to_csv(make_rows(3)))
        block = b"1," * (1 << 19)
        for _ in range(500):  # one 500 MB line, ~500 KB gzipped
            f.write(block)
    assert path.stat().st_size < 5_000_000
    code = (
        "import sys\n"
        "from tbreg.datasets import higgs\n"
        "from tbreg.errors import UserError\n"
        "try:\n"
        f"    higgs.read_file({str(path)!r}, 100)\n"
        "except UserError as e:\n"
        "    print(e)\n"
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) // 1024)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=REPO)
    )
    message, peak_mb = proc.stdout.strip().splitlines()
    assert message == (
        f"{path}: line 4 is longer than 65,536 bytes (a HIGGS row is ~600); not a HIGGS CSV file? "
        "pass --data_path=<HIGGS .csv or .csv.gz>"
    ), proc.stderr
    assert int(peak_mb) < 400, peak_mb  # this process's peak (VmHWM; ru_maxrss survives exec): it took 2.7 GB


@pytest.mark.parametrize("label", [2.0, 0.5, -1.0])
def test_a_label_other_than_0_or_1_is_refused(tmp_path, label):
    rows = make_rows(1200)
    rows[700, 0] = label
    source = write(tmp_path / "HIGGS.csv", to_csv(rows))
    assert load_error(source) == (
        f"{source}: line 701, column 1: the label is {label:g}, not 0 or 1; HIGGS rows start with the class "
        "(1 signal, 0 background)"
    )
    rows = np.concatenate([make_rows(1200), make_rows(1200)])
    rows[1300:, 0] = 7  # rows past the 1,200 used are not checked
    assert higgs.load(make_config(write(tmp_path / "ok.csv", to_csv(rows)))).y_train.max() == 1
