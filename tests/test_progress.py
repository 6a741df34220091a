"""The training scripts' progress: live lines in a real pseudo-terminal, plain lines on a pipe, nothing
with --quiet; and a closed stdout (`… | head`) that leaves every run as it would have ended."""

import io
import os
import re
import subprocess
import sys
import time

import pexpect
from conftest import REPO, own_lines, run_script

from tbreg import logtree, progress

ARGS = ["--models", "tiny,small", "--max_epochs", "5", "--callbacks", "none"]
PLAIN_END = re.compile(
    r"sizes (\d)/2 (tiny|small): ended after 5 epochs · best \d\.\d{4} \(epoch \d\) · [\d.]+ epochs/s · \d+s · "
    r"(done|family done)"
)


def _env(cache_dir):
    # pytest-xdist workers set COLUMNS=80 and LINES=24, which rich takes over the pty's own size
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "CI")}
    return dict(env, TF_CPP_MIN_LOG_LEVEL="2", TBREG_CACHE=str(cache_dir), PYTHONPATH=REPO, TERM="xterm")


def test_terminal_shows_a_live_line_per_model(tmp_path, tbreg_cache):
    child = pexpect.spawn(
        sys.executable,
        ["-m", "tbreg.train_sizes", "--logdir", str(tmp_path), *ARGS],
        env=_env(tbreg_cache),
        cwd=REPO,
        dimensions=(30, 160),
        timeout=300,
        encoding="utf-8",
    )
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == 0, screen
    assert "\x1b[1A" in screen and "\x1b[2K" in screen  # redrawn in place: a live display, not lines
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    for line in ("sizes 1/2 tiny", "sizes 2/2 small"):
        assert re.search(
            line + r" +━+ +5/5 epochs · best \d\.\d{4} \(epoch \d\) · [\d.]+ epochs/s · [\d:]+ · ", plain
        ), [row for row in plain.splitlines() if line in row]
    assert "family ETA" in plain and "family done" in plain
    assert "best val data loss" in plain  # the end-of-run table is still printed


def test_pipe_gets_plain_lines_and_quiet_gets_none(tmp_path, tbreg_cache):
    proc = run_script("tbreg.train_sizes", "--logdir", str(tmp_path / "a"), *ARGS, cache_dir=tbreg_cache, check=True)
    lines = own_lines(proc.stderr)
    assert "\x1b" not in proc.stderr
    ends = [m.groups()[:2] for line in lines if (m := PLAIN_END.fullmatch(line))]
    assert ends == [("1", "tiny"), ("2", "small")], lines
    assert len(lines) <= 4, lines  # a start line and an end line per model: 5 epochs take < 10 s
    quiet = run_script(
        "tbreg.train_sizes", "--logdir", str(tmp_path / "b"), *ARGS, "--quiet", cache_dir=tbreg_cache, check=True
    )
    assert own_lines(quiet.stderr) == []
    assert "best val data loss" in quiet.stdout


def test_plain_lines_come_at_most_every_plain_secs():
    stream = io.StringIO()
    with progress.FamilyProgress("sizes", total=1, stream=stream, live=False, plain_secs=0.2) as display:
        model = display.begin("tiny", max_epochs=1000)
        started = time.monotonic()
        epoch = 0
        while time.monotonic() - started < 0.5:
            model.epoch_ended(epoch, 1.0 / (epoch + 1))
            display.update(model)
            epoch += 1
        display.end(model)
    lines = stream.getvalue().splitlines()
    assert epoch > 100 and 2 <= len(lines) <= 4, lines
    assert lines[0].startswith("sizes 1/1 tiny: epoch ") and "epochs/s" in lines[0] and "family ETA ≤" in lines[0]
    assert lines[-1].startswith(f"sizes 1/1 tiny: ended after {epoch} epochs · best ") and lines[-1].endswith(
        "family done"
    )


def _all_completed(family_dir):
    runs = sorted(os.listdir(family_dir))
    return runs, [logtree.read_run_json(os.path.join(family_dir, r))["status"] for r in runs]


def test_a_family_piped_into_head_trains_to_the_end(tmp_path, tbreg_cache):
    # stdout and stderr into `head -2`: it exits after the first model's lines, while training goes on
    command = (
        f"set -o pipefail; {sys.executable} -m tbreg.train_sizes --logdir {tmp_path / 'a'} "
        f"--models tiny,small,medium --max_epochs 5 --callbacks none 2>&1 | head -2"
    )
    proc = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=_env(tbreg_cache), cwd=REPO, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert _all_completed(tmp_path / "a" / "sizes") == (["medium", "small", "tiny"], ["completed"] * 3)
    # stdout closed before the first byte (`| true`): the table is dropped, the note says so
    command = (
        f"{sys.executable} -m tbreg.train_sizes --logdir {tmp_path / 'b'} --models tiny --max_epochs 2 "
        "--callbacks none | true; exit ${PIPESTATUS[0]}"
    )
    proc = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=_env(tbreg_cache), cwd=REPO, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    assert "stdout was closed (its reader stopped); training goes on" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert _all_completed(tmp_path / "b" / "sizes") == (["tiny"], ["completed"])
