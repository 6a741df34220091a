"""The `tbreg` command: helpers around the log tree.

    tbreg baseline copy SRC_RUN DST_RUN [--overwrite]
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out

import sys

from absl import app, flags

from tbreg import logtree
from tbreg.errors import UserError

_OVERWRITE = flags.DEFINE_bool("overwrite", False, "baseline copy: replace DST_RUN if it exists.")

USAGE = "usage: tbreg baseline copy SRC_RUN DST_RUN [--overwrite]"


def baseline_copy(src: str, dst: str) -> None:
    logtree.copy_run(src, dst, overwrite=_OVERWRITE.value)
    print(f"copied {src} -> {dst} ({len(logtree.list_files(dst))} files, verified)")


COMMANDS = {("baseline", "copy"): (baseline_copy, 2)}


def main(argv):
    args = argv[1:]
    for (group, verb), (func, n_args) in COMMANDS.items():
        if args[:2] == [group, verb]:
            if len(args) - 2 != n_args:
                raise app.UsageError(f"tbreg {group} {verb} takes {n_args} arguments, got {len(args) - 2}; {USAGE}")
            try:
                func(*args[2:])
            except UserError as e:
                print(f"tbreg: error: {e}", file=sys.stderr)
                sys.exit(1)
            return
    raise app.UsageError(f"unknown command {' '.join(args) or '(none)'}; {USAGE}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
