"""Shared fixtures: a script-made log tree (real scripts, real event files) and small helpers."""

import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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
