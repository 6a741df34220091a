"""TensorFlow without its C++ start-up lines: tbreg's entry points call `import_tensorflow()` first.

TensorFlow 2.21 writes lines such as "oneDNN custom operations are on" and "failed call to cuInit"
to fd 2 before absl's C++ logging starts, so TF_CPP_MIN_LOG_LEVEL does not hide them. Unless the
user set TF_CPP_MIN_LOG_LEVEL, `import_tensorflow()` sets it to 2 and imports TensorFlow and starts
its devices with fd 2 sent to a temp file, then writes back every captured line that is not one of
those known start-up lines, so real errors still show. A library module whose import can be a
process's first TensorFlow import (a spawned worker's) uses `from tbreg._quiet import tensorflow as tf`.
"""

import os
import re
import sys
import tempfile

LEVEL = "TF_CPP_MIN_LOG_LEVEL"
_OURS = "TBREG_QUIET_TF"  # set beside LEVEL when tbreg chose it: spawned workers inherit both and filter too

# (source file, message start) of the C++ log lines TensorFlow prints on every start on a CPU machine.
_KNOWN = (
    ("port.cc", "oneDNN custom operations are on."),
    ("cudart_stub.cc", "Could not find cuda drivers on your machine, GPU will not be used."),
    ("cpu_feature_guard.cc", "This TensorFlow binary is optimized to use available CPU instructions"),
    ("cuda_platform.cc", "failed call to cuInit:"),
)
_KNOWN_LINES = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",)
_KNOWN_STARTS = ("To enable the following instructions: ",)  # cpu_feature_guard's second line
_LOG_LINE = re.compile(r"[IWEF]\d{4} [\d:.]+ +\d+ (?P<file>[\w.]+):\d+\] (?P<message>.*)")


def is_startup_line(line: str) -> bool:
    """Whether `line` is one of TensorFlow's known start-up lines (nothing a user needs)."""
    line = line.rstrip("\r\n")
    if line in _KNOWN_LINES or line.startswith(_KNOWN_STARTS):
        return True
    match = _LOG_LINE.fullmatch(line)
    return bool(match) and any(match["file"] == file and match["message"].startswith(start) for file, start in _KNOWN)


def tbreg_sets_level() -> bool:
    """True unless the user set TF_CPP_MIN_LOG_LEVEL (then TensorFlow's output is left as it is)."""
    return LEVEL not in os.environ or os.environ.get(_OURS) == os.environ[LEVEL]


def import_tensorflow():
    """`tensorflow`, imported and its devices started; its start-up lines dropped unless the user set
    TF_CPP_MIN_LOG_LEVEL. Call it before anything imports TensorFlow (later calls just return it)."""
    if "tensorflow" in sys.modules or not tbreg_sets_level():
        import tensorflow

        return tensorflow
    os.environ[LEVEL] = os.environ[_OURS] = "2"  # also hides C++ INFO and WARNING lines later on
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable stderr: nothing to keep clean
        import tensorflow

        return tensorflow
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow

            tensorflow.config.list_physical_devices()  # the device start prints "failed call to cuInit"
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = "".join(line for line in text.splitlines(keepends=True) if not is_startup_line(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
    return tensorflow


def __getattr__(name):
    if name == "tensorflow":  # `from tbreg._quiet import tensorflow as tf`
        return import_tensorflow()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
