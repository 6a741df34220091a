"""Every command as a user runs it (the installed console scripts and `python -m`): its own --help,
no TensorFlow start-up lines, no TensorFlow at all for --help and --list, one-line errors."""

import os
import re
import subprocess
import sys

import pytest

from tbreg import _quiet

BIN = os.path.dirname(sys.executable)  # where pip put the console scripts

# What TensorFlow 2.21 prints on start even with TF_CPP_MIN_LOG_LEVEL=2 (independent of tbreg._quiet's list).
TF_STARTUP = re.compile(
    r"absl::InitializeLog|oneDNN custom operations|Could not find cuda drivers|cuInit"
    r"|This TensorFlow binary is optimized|To enable the following instructions|^[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\]"
)


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory) -> str:
    """A PYTHONPATH dir whose `tensorflow` and `keras` raise on import: a command that answers with
    them on the path never imported them."""
    shim = tmp_path_factory.mktemp("no_tensorflow")
    for name in ("tensorflow", "keras"):
        (shim / f"{name}.py").write_text(f"raise ImportError('{name} was imported')\n")
    return str(shim)


def command(*argv, tf_log_level=None, pythonpath=None, cache_dir=None, cwd=None, timeout=600):
    """Runs a console script (`tbreg …`) or `python -m …` with TF_CPP_MIN_LOG_LEVEL as given (default: unset)."""
    env = {k: v for k, v in os.environ.items() if k not in (_quiet.LEVEL, "TBREG_QUIET_TF")}
    if tf_log_level is not None:
        env[_quiet.LEVEL] = tf_log_level
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath, *filter(None, [env.get("PYTHONPATH")])])
    if cache_dir:
        env["TBREG_CACHE"] = str(cache_dir)
    args = [sys.executable, *argv[1:]] if argv[0] == "python" else [os.path.join(BIN, argv[0]), *argv[1:]]
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd or os.getcwd(), timeout=timeout)


def startup_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if TF_STARTUP.search(line)]


def one_error_line(proc, prog: str, code: int = 1) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# --help: each command's own flags, with help and defaults, exit 0, without TensorFlow


HELP_CASES = [
    (
        ["tbreg", "--help"],
        [
            "tbreg baseline copy SRC_RUN DST_RUN",
            "tbreg share upload LOGDIR URI",
            "tbreg sweep ",
            "tbreg plot FAMILY_DIR",
            "--[no]overwrite: baseline copy: replace DST_RUN if it exists.",
            "--interval: share upload --watch: seconds",
            "(default: '30.0'; a non-negative number)",
            "-o,--output: share report/export/bundle, plot",
        ],
        ["USAGE:", "Try --helpfull", "--max_epochs"],
    ),
    (
        ["tbreg", "share", "report", "--help"],
        [
            "usage: tbreg share report LOGDIR -o REPORT.html",
            "-o,--output: ",
            "--[no]keep_damaged: ",
            "(default: 'false')",
        ],
        ["--watch", "--overwrite", "--ylim", "tbreg plot"],
    ),
    (
        ["tbreg", "share", "upload", "LOGDIR", "-h"],
        ["usage: tbreg share upload LOGDIR URI", "--[no]watch: ", "--interval: ", "(default: '30.0'", "--max_cycles: "],
        ["--output", "--keep_damaged"],
    ),
    (
        ["tbreg", "plot", "--helpshort"],
        [
            "usage: tbreg plot FAMILY_DIR -o",
            "--ylim: plot: y-axis limits LOW,HIGH",
            "--smoothing_std: ",
            "--[no]logx: ",
        ],
        ["--overwrite", "--watch"],
    ),
    (
        ["tbreg", "baseline", "copy", "--help"],
        ["usage: tbreg baseline copy SRC_RUN DST_RUN [--overwrite]", "--[no]overwrite: ", "(default: 'false')"],
        ["--output", "--dest"],
    ),
    (
        ["tbreg", "sweep", "--help"],
        [
            "usage: tbreg sweep --families=",
            "--config=SWEEP.toml",
            "--families: Comma list of families",
            "(default: 'sizes'; a comma separated list)",
            "--grid: ",
            "--logdir: ",
            "(default: 'runs/sweep')",
            "--engine: <local|ray>: ",
            "--retries: ",
        ],
        ["--mc_samples", "--output", "--if_exists", "Try --helpfull"],
    ),
    (
        ["tbreg-train-sizes", "--help"],
        [
            "usage: tbreg-train-sizes ",
            "Trains the `sizes` family",
            "--max_epochs: Most epochs per model",
            "--if_exists: <new|error|overwrite>: ",
            "(default: 'new')",
            "--dataset: <mnist1d|higgs|imdb|mnist>",
            "(default: 'mnist1d')",
            "--callbacks: ",
            "(default: 'all'; a comma separated list)",
        ],
        ["--family:", "--list", "--output", "--grid", "Try --helpfull"],
    ),
    (
        ["tbreg-train-regularizers", "-h"],
        ["usage: tbreg-train-regularizers ", "--baseline: Families with a baseline", "--mc_samples: "],
        ["--family:", "--output"],
    ),
    (
        ["tbreg-train", "--help"],
        [
            "usage: tbreg-train ",
            "--family: <sizes|regularizers|schedules|learning_rate|capacity>:",
            "--[no]list: Print every family",
            "--seeds: ",
        ],
        ["--output", "--grid"],
    ),
    (
        ["python", "-m", "tbreg.train_sizes", "--help"],
        [
            "usage: tbreg-train-sizes ",
            "(or: python -m tbreg.train_sizes",
            "--logdir: Root of the log tree",
            "(default: 'runs')",
        ],
        ["--family:"],
    ),
    (
        ["python", "-m", "tbreg.cli", "share", "export", "--help"],
        ["usage: tbreg share export LOGDIR -o SCALARS.csv|SCALARS.json", "-o,--output: "],
        ["--watch"],
    ),
]


@pytest.mark.parametrize("argv, shown, not_shown", HELP_CASES, ids=[" ".join(argv) for argv, _, _ in HELP_CASES])
def test_help_lists_the_commands_own_flags(argv, shown, not_shown, no_tensorflow):
    proc = command(*argv, pythonpath=no_tensorflow)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    for text in shown:
        assert text in proc.stdout, (text, proc.stdout)
    for text in not_shown:
        assert text not in proc.stdout, (text, proc.stdout)


def test_list_answers_without_tensorflow(no_tensorflow):
    proc = command("tbreg-train", "--list", pythonpath=no_tensorflow)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert proc.stdout.splitlines()[0].split() == ["family", "model", "datasets", "model", "spec"]
    assert "lr_1e-2" in proc.stdout


def test_sweep_without_arguments_says_what_to_pass_and_trains_nothing(tmp_path, no_tensorflow):
    proc = command("tbreg", "sweep", pythonpath=no_tensorflow, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "usage: tbreg sweep --families=" in proc.stderr and "--config=SWEEP.toml" in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tbreg sweep: error: ") and "--families" in last and "--config" in last
    assert os.listdir(tmp_path) == []  # no runs/sweep


@pytest.mark.parametrize(
    "argv, prog, fragment",
    [
        (["tbreg", "bogus"], "tbreg", "unknown command bogus; usage: tbreg baseline copy"),
        (["tbreg", "share", "report"], "tbreg", "tbreg share report takes LOGDIR, got 0 arguments"),
        (["tbreg-train", "--list", "stray"], "tbreg-train", "unexpected arguments: stray"),
        (["tbreg-train"], "tbreg-train", "pass --family=<name> (see --list)"),
    ],
)
def test_usage_errors_are_one_line(argv, prog, fragment, no_tensorflow):
    proc = command(*argv, pythonpath=no_tensorflow)
    assert fragment in one_error_line(proc, prog, code=2)


# ---------------------------------------------------------------------------------------------
# No TensorFlow start-up lines unless the user set TF_CPP_MIN_LOG_LEVEL


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tbreg_cache):
    """sizes/{tiny,small} trained by the console script with --jobs=2 (spawned workers); TF_CPP_MIN_LOG_LEVEL unset."""
    logdir = tmp_path_factory.mktemp("quiet") / "runs"
    proc = command(
        "tbreg-train-sizes",
        "--models=tiny,small",
        "--max_epochs=2",
        f"--logdir={logdir}",
        "--jobs=2",
        "--quiet",
        cache_dir=tbreg_cache,
    )
    return logdir, proc


def test_training_prints_no_tensorflow_startup_lines(trained):
    logdir, proc = trained
    assert proc.returncode == 0, proc.stderr
    assert startup_lines(proc.stderr) == [], proc.stderr
    assert proc.stderr == "", proc.stderr
    assert "best val data loss" in proc.stdout and (logdir / "sizes" / "small" / "run.json").exists()


def test_share_and_plot_print_no_tensorflow_startup_lines(trained, tmp_path):
    logdir, _ = trained
    report = command("tbreg", "share", "report", str(logdir), "-o", str(tmp_path / "r.html"))
    plot = command("tbreg", "plot", str(logdir / "sizes"), "-o", str(tmp_path / "p.png"))
    for proc in (report, plot):
        assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert report.stdout.startswith(f"wrote {tmp_path / 'r.html'}") and plot.stdout.startswith(f"wrote {tmp_path}")


def test_sweep_and_its_workers_print_no_tensorflow_startup_lines(tmp_path, tbreg_cache):
    proc = command(
        "tbreg",
        "sweep",
        f"--logdir={tmp_path}",
        "--families=sizes",
        "--models=tiny",
        "--grid",
        "l2=0,1e-3",
        "--max_epochs=2",
        "--jobs=2",
        "--callbacks=none",
        cache_dir=tbreg_cache,
    )
    assert proc.returncode == 0, proc.stderr
    assert startup_lines(proc.stderr) == [], proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("sweep: 2 trials") and sorted(line.split()[0] for line in lines[1:]) == [
        "done",
        "done",
        "start",
        "start",
    ], proc.stderr


def test_user_set_log_level_is_left_alone(trained, tmp_path):
    logdir, _ = trained
    proc = command("tbreg", "share", "export", str(logdir), "-o", str(tmp_path / "s.csv"), tf_log_level="0")
    assert proc.returncode == 0, proc.stderr
    assert any("oneDNN custom operations are on" in line for line in startup_lines(proc.stderr)), proc.stderr


def test_other_lines_tensorflow_prints_on_import_are_kept(tmp_path):
    """A stand-in `tensorflow` writes a known start-up line and an unknown error straight to fd 2."""
    shim = tmp_path / "tensorflow"
    shim.mkdir()
    (shim / "__init__.py").write_text(
        "import os, types\n"
        "os.write(2, b'I0000 00:00:1796373592.034897    8468 port.cc:153] oneDNN custom operations are on. Y\\n')\n"
        "os.write(2, b'E0000 00:00:1796373592.034897    8468 stream.cc:7] disk on fire\\n')\n"
        "import warnings; warnings.warn('a Python warning while importing')\n"
        "config = types.SimpleNamespace(list_physical_devices=lambda: "
        "os.write(2, b'E0000 00:00:1796373598.854084    8468 cuda_platform.cc:52] failed call to cuInit: 303\\n'))\n"
    )
    code = "import os; from tbreg import _quiet; _quiet.import_tensorflow(); print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    proc = command("python", "-c", code, pythonpath=str(tmp_path))
    assert proc.returncode == 0 and proc.stdout == "2\n", proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "E0000 00:00:1796373592.034897    8468 stream.cc:7] disk on fire"
    assert "UserWarning: a Python warning while importing" in lines[1]
    assert not [line for line in lines if "oneDNN" in line or "cuInit" in line], lines


def test_startup_lines_are_recognized_exactly():
    known = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796373459.005204    6068 port.cc:153] oneDNN custom operations are on. You may see slightly",
        "I0000 00:00:1796373459.005551    6068 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
        "will not be used.",
        "I0000 00:00:1796373556.184091    7949 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
        "available "
        "CPU instructions in performance-critical operations.",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the …",
        "E0000 00:00:1796373463.383030    6068 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: (303)",
    ]
    other = [
        "E0000 00:00:1796373463.383030    6068 cuda_platform.cc:52] out of memory",
        "E0000 00:00:1796373463.383030    6068 stream.cc:52] failed call to cuInit: copied elsewhere",
        "W0000 00:00:1796373463.383030    6068 op_kernel.cc:1857] OP_REQUIRES failed",
        "tbreg-train-sizes: error: port.cc oneDNN custom operations are on.",
    ]
    assert [_quiet.is_startup_line(line) for line in known] == [True] * len(known)
    assert [_quiet.is_startup_line(line) for line in other] == [False] * len(other)


# ---------------------------------------------------------------------------------------------
# Values no run can use: one line naming the flag, before anything is written


def test_decay_epochs_0_is_one_line_before_tensorflow(tmp_path, no_tensorflow):
    proc = command("tbreg-train-sizes", "--decay_epochs=0", f"--logdir={tmp_path / 'runs'}", pythonpath=no_tensorflow)
    line = one_error_line(proc, "tbreg-train-sizes")
    assert "decay_epochs=0: InverseTimeDecay needs a finite number of epochs above 0" in line
    assert not (tmp_path / "runs").exists()


def test_decay_epochs_0_in_a_sweep_grid_is_one_line(tmp_path, tbreg_cache):
    logdir = tmp_path / "runs"
    proc = command("tbreg", "sweep", f"--logdir={logdir}", "--grid", "decay_epochs=0,10", cache_dir=tbreg_cache)
    assert "decay_epochs=0: " in one_error_line(proc, "tbreg sweep")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("given", ["cache", "cache/below"])
def test_cache_dir_that_is_a_file_is_one_line(given, tmp_path):
    (tmp_path / "cache").write_text("a file")
    cache_dir = tmp_path / given
    proc = command("tbreg-train-sizes", f"--cache_dir={cache_dir}", f"--logdir={tmp_path / 'runs'}", "--max_epochs=1")
    line = one_error_line(proc, "tbreg-train-sizes")
    assert line.startswith(f"tbreg-train-sizes: error: --cache_dir={cache_dir}: ")
    assert "is a file, not a directory" in line
    assert not (tmp_path / "runs" / "sizes").exists()


@pytest.mark.parametrize("ylim", ["0,inf", "nan,1", "-inf,0.7", "0.5,nan"])
def test_plot_ylim_must_be_finite(ylim, tmp_path, no_tensorflow):
    proc = command(
        "tbreg", "plot", str(tmp_path), "-o", str(tmp_path / "p.png"), f"--ylim={ylim}", pythonpath=no_tensorflow
    )
    assert f"--ylim={ylim}: the limits must be finite numbers" in one_error_line(proc, "tbreg")
    assert not (tmp_path / "p.png").exists()
