"""Shared fixtures: a script-made log tree (real scripts, real event files) and small helpers."""

import os
import re
import signal
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
    """The Ctrl-C tests send SIGINT to this process or to commands it starts. Started as a background
    job (`pytest … &`, nohup, some CI runners), a process inherits SIGINT *ignored*, Python then never
    raises KeyboardInterrupt, and every process it starts inherits the same: restore Python's default
    handler here (in each xdist worker too), so children start with the default disposition."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(module: str, *args: str, cache_dir=None, check=False, timeout=600) -> subprocess.CompletedProcess:
    """Runs `python -m module args…` as a user would; returns the finished process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if cache_dir:
        env["TBREG_CACHE"] = str(cache_dir)
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


# TensorFlow 2.21's C++ start-up lines, printed even with TF_CPP_MIN_LOG_LEVEL=2.
_TF_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] .*"
    r"|To enable the following instructions: .*"
)


def own_lines(stderr: str) -> list[str]:
    """stderr's non-empty lines that are not TensorFlow's start-up chatter."""
    return [line for line in stderr.splitlines() if line.strip() and not _TF_NOISE.fullmatch(line)]


def synthetic_data(n_train=400, n_val=200, features=8, seed=0, noise=2.0):
    """A small noisy linearly separable binary problem as `tbreg.datasets.Data` (labels (N, 1))."""
    import numpy as np

    from tbreg import datasets

    rng = np.random.default_rng(seed)
    w = rng.normal(size=(features, 1))
    x = rng.normal(size=(n_train + n_val, features)).astype(np.float32)
    y = ((x @ w + rng.normal(scale=noise, size=(n_train + n_val, 1))) > 0).astype(np.float32)
    return datasets.Data("synthetic", x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=2)


def tbreg(capsys, *argv):
    """Runs `tbreg argv…` in this process (flags parsed as the console script does): (code, out, err)."""
    from absl import flags
    from absl.testing import flagsaver

    from tbreg import cli

    with flagsaver.flagsaver():
        args = flags.FLAGS(["tbreg", *map(str, argv)])
        try:
            cli.main(args)
            code = 0
        except SystemExit as e:
            code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    """`tbreg` failed with exit 1 and exactly one stderr line, `tbreg: error: …`, holding each fragment."""
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tbreg: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


DIAGNOSTICS_FREQ = 5  # the scripts' --diagnostics_freq default


def assert_steps_once(run_dir, epochs):
    """Every epoch tag has steps 0..epochs-1 exactly once (WeightDiagnostics' `diagnostics/` tags: every
    DIAGNOSTICS_FREQ-th epoch and the last, once); per-iteration tags strictly increase."""
    from tbreg import reader

    scalars = reader.run_scalars(str(run_dir))
    assert {"train", "validation"} <= set(scalars)
    for split, tags in scalars.items():
        for tag, points in tags.items():
            steps = [p.step for p in points]
            if tag.startswith("end/"):  # tbreg.hparams' end-of-run metrics: one point, at step = epochs
                assert steps == sorted(set(steps)) and steps[-1] == epochs, (split, tag, steps)
            elif tag.endswith("_vs_iterations"):
                assert steps == sorted(set(steps)), (split, tag)
            elif tag.startswith("diagnostics/"):
                assert steps == sorted({*range(0, epochs, DIAGNOSTICS_FREQ), epochs - 1}), (split, tag, steps)
            else:
                assert steps == list(range(epochs)), (split, tag, steps)


@pytest.fixture(scope="session")
def tbreg_cache(tmp_path_factory):
    """One dataset cache for the whole test session (mnist1d is generated once)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def script_tree(tmp_path_factory, tbreg_cache):
    """A log tree made by both scripts on mnist1d with a few epochs: sizes/{tiny,small}, regularizers/{tiny,l2}."""
    logdir = tmp_path_factory.mktemp("logs") / "runs"
    common = ["--logdir", str(logdir), "--max_epochs", "4", "--quiet"]
    sizes = run_script("tbreg.train_sizes", *common, "--models", "tiny,small", cache_dir=tbreg_cache, check=True)
    regs = run_script("tbreg.train_regularizers", *common, "--models", "l2", cache_dir=tbreg_cache, check=True)
    return {"logdir": logdir, "sizes": sizes, "regularizers": regs}
