"""absl's `app.run` as every tbreg command uses it: `--help` lists that command's own flags, and a
usage error is one line.

absl's own --help shows only the flags of the `__main__` module, which for a console script holds
none; here each command says which flags are its own.
"""

import os
import stat
import sys
from typing import Callable

from absl import app, flags

HELP_ARGS = ("-h", "-?", "--help", "-help", "--helpshort", "-helpshort")  # --helpfull stays absl's


def wants_help(args) -> bool:
    """Whether the command line `args` (without the program) asks for help (before a `--`)."""
    args = list(args)
    if "--" in args:
        args = args[: args.index("--")]
    return any(a in HELP_ARGS for a in args)


def format_flags(names) -> str:
    """The flags `names` in absl's help layout: `--name: help`, then its default and kind."""
    out = []
    for name in names:
        flag = flags.FLAGS[name]
        head = (f"-{flag.short_name}," if flag.short_name else "") + (f"--[no]{name}" if flag.boolean else f"--{name}")
        out.append(flags.text_wrap(f"{head}: {flag.help}", indent="    ", firstline_indent="  "))
        notes = [f"default: {flag.default_as_str}"] if flag.default_as_str else []  # None: the help says
        if flag.parser.syntactic_help and not flag.boolean:
            notes.append(flag.parser.syntactic_help)
        if notes:
            out.append(flags.text_wrap(f"({'; '.join(notes)})", indent="    "))
    return "\n".join(out)


MAX_FLAGFILE_BYTES = 1 << 20  # a flag file is a few lines; absl would read /dev/zero until memory runs out


def flagfile_problem(argv) -> str | None:
    """What is wrong with a `--flagfile=PATH` of `argv` (not a regular file, larger than 1 MB), or None."""
    for arg in argv[1:]:
        if arg == "--":
            break
        name, sep, path = arg.partition("=")
        if not (sep and name.lstrip("-") == "flagfile"):
            continue
        try:
            info = os.stat(path)
        except OSError as e:
            return f"--flagfile={path}: cannot read it ({e.strerror}); give a text file of --flag=value lines"
        if not stat.S_ISREG(info.st_mode):
            return f"--flagfile={path}: not a regular file; give a text file of --flag=value lines"
        if info.st_size > MAX_FLAGFILE_BYTES:
            return f"--flagfile={path}: {info.st_size:,} bytes, more than a flag file's 1 MB; give a text file of --flag=value lines"
    return None


def run(main: Callable, help_text: Callable[[], str], prog: str | None = None) -> None:
    """`app.run(main)`; `-h`/`--help`/`--helpshort` print `help_text()` and exit 0, and an
    `app.UsageError` from `main` or a bad flag prints one line `prog: error: …` and exits 2."""
    prog = prog or os.path.basename(sys.argv[0])

    def guarded(argv):
        try:
            return main(argv)
        except app.UsageError as e:
            print(f"{prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
            sys.exit(2)

    def parse(argv):  # absl's parser prints two lines ("FATAL Flags parsing error", "Pass --helpshort")
        problem = flagfile_problem(argv)
        if problem:
            print(f"{prog}: error: {problem}", file=sys.stderr)
            sys.exit(2)
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            print(f"{prog}: error: {' '.join(str(e).split())}; see {prog} --help", file=sys.stderr)
            sys.exit(2)

    try:
        if wants_help(sys.argv[1:]):
            print(help_text(), flush=True)
            sys.exit(0)
        app.run(guarded, flags_parser=parse)
    except BrokenPipeError:  # `… --help | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
