"""The `tbreg` command: helpers around the log tree.

tbreg baseline copy SRC_RUN DST_RUN [--overwrite]
tbreg share report LOGDIR -o REPORT.html
tbreg share export LOGDIR -o SCALARS.csv|SCALARS.json
tbreg share bundle LOGDIR -o RUNS.tar.gz
tbreg share open BUNDLE [--dest=DIR] [--max_mb=MB]
tbreg share upload LOGDIR URI [--watch [--interval=SECONDS] [--max_cycles=N]]
tbreg sweep [--families=…] [--grid name=v1,v2 …] [--seeds=N] [--engine=local|ray] [--jobs=N] (see tbreg sweep --help)
tbreg plot FAMILY_DIR -o FIGURE.png|FIGURE.svg [--metric=NAME] [--smoothing_std=N] [--logx] [--ylim=LOW,HIGH]
tbreg reproduce [tutorial|chollet|blog|geron|all] (see tbreg reproduce --help)

`tbreg --help` lists the commands and flags; `tbreg COMMAND --help` that command's own.
"""

import dataclasses
import math
import shlex
import sys
import time
from typing import Callable

from absl import app, flags
from absl import logging as absl_logging

from tbreg import _app, _quiet
from tbreg.errors import UserError

_OVERWRITE = flags.DEFINE_bool("overwrite", False, "baseline copy: replace DST_RUN if it exists.")
_OUTPUT = flags.DEFINE_string("output", None, "share report/export/bundle, plot: the file to write.", short_name="o")
_DEST = flags.DEFINE_string("dest", ".", "share open: the dir to extract the bundle's tree into.")
_MAX_MB = flags.DEFINE_float(
    "max_mb", 1000, "share open: refuse a bundle whose files add up to more megabytes than this.", lower_bound=0
)
_WATCH = flags.DEFINE_bool("watch", False, "share upload: keep syncing every --interval seconds until Ctrl-C.")
_INTERVAL = flags.DEFINE_float("interval", 30.0, "share upload --watch: seconds between syncs.", lower_bound=0)
_MAX_CYCLES = flags.DEFINE_integer(
    "max_cycles", 0, "share upload --watch: stop after N syncs (0 = until Ctrl-C).", lower_bound=0
)
_METRIC = flags.DEFINE_string(
    "metric", None, "plot: metric without epoch_ (default: the data loss EarlyStopping watched)."
)
_SMOOTHING_STD = flags.DEFINE_integer(
    "smoothing_std", None, "plot: Gaussian smoothing width in epochs (tutorial: 10).", lower_bound=0
)
_KEEP_DAMAGED = flags.DEFINE_bool(
    "keep_damaged",
    False,
    "share report/export, plot: warn about a damaged event file and use its records before the damage.",
)
_LOGX = flags.DEFINE_bool("logx", False, "plot: log-scale epoch axis, as in the tutorial.")
_YLIM = flags.DEFINE_list("ylim", None, "plot: y-axis limits LOW,HIGH, e.g. 0.5,0.7.")

USAGE_LINES = [line.strip() for line in __doc__.split("\n\n")[1].splitlines()]
USAGE = "usage: " + "; ".join(USAGE_LINES)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB" if n else "0 bytes"


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def _output(ext_hint: str) -> str:
    if not _OUTPUT.value:
        raise UserError(f"missing -o FILE (e.g. -o {ext_hint})")
    return _OUTPUT.value


def baseline_copy(src: str, dst: str) -> None:
    from tbreg import logtree

    logtree.copy_run(src, dst, overwrite=_OVERWRITE.value)
    print(f"copied {src} -> {dst} ({len(logtree.list_files(dst))} files, verified)")


def share_report(logdir: str) -> None:
    from tbreg import share

    start = time.perf_counter()
    r = share.write_report(logdir, _output("report.html"), keep_damaged=_KEEP_DAMAGED.value)
    sampled = f", curves downsampled to {r.points_per_curve} points" if r.downsampled else ""
    print(
        f"wrote {r.path} ({_size(r.bytes)}: {_n(r.families, 'family', 'families')}, {_n(r.runs, 'run')}{sampled}) "
        f"in {time.perf_counter() - start:.1f} s; open it in any browser, no server or network needed"
    )


def share_export(logdir: str) -> None:
    from tbreg import share

    start = time.perf_counter()
    r = share.export_scalars(logdir, _output("scalars.csv"), keep_damaged=_KEEP_DAMAGED.value)
    columns = ", ".join(share.EXPORT_COLUMNS)
    print(f"wrote {r.path} ({r.rows:,} rows of {columns}; {r.runs} runs) in {time.perf_counter() - start:.1f} s")


def share_bundle(logdir: str) -> None:
    from tbreg import share

    r = share.make_bundle(logdir, _output("runs.tar.gz"))
    print(f"wrote {r.path} ({_size(r.bytes)}: {r.files} files of {r.root}/ with sizes, sha256 and event counts)")
    print(f"Open it with: tbreg share open {shlex.quote(r.path)} --dest=DIR")


def share_open(bundle: str) -> None:
    from tbreg import share

    r = share.open_bundle(bundle, _DEST.value, _MAX_MB.value)
    print(f"verified {r.files} files against the manifest and extracted them to {r.logdir}")
    print(f"See them in TensorBoard: tensorboard --logdir {shlex.quote(r.logdir)}")


def share_upload(logdir: str, uri: str) -> None:
    from tbreg import share

    if _WATCH.value:
        limit = f", {_MAX_CYCLES.value} syncs" if _MAX_CYCLES.value else ""
        print(f"syncing {logdir} -> {uri} every {_INTERVAL.value:g} s{limit}; Ctrl-C to stop", flush=True)
    log = lambda line: print(line, flush=True)  # noqa: E731
    r = share.upload(logdir, uri, watch=_WATCH.value, interval=_INTERVAL.value, max_cycles=_MAX_CYCLES.value, log=log)
    if r.interrupted:
        print(f"stopped by Ctrl-C after {r.cycles} syncs; every file at {uri} is a complete, verified copy", flush=True)
    syncs = f" in {r.cycles} syncs" if _WATCH.value else ""
    print(
        f"uploaded {r.copied} new or grown files ({_size(r.bytes)}){syncs}, verified; {r.unchanged} already up to date"
    )
    print(f"See them in TensorBoard: tensorboard --logdir {shlex.quote(uri)}")
    if r.interrupted and not _WATCH.value:  # Ctrl-C is how --watch ends; otherwise it cut the upload short
        sys.exit(130)


def _ylim() -> tuple[float, float] | None:
    if not _YLIM.value:
        return None
    given = ",".join(_YLIM.value)
    try:
        low, high = (float(v) for v in _YLIM.value)
    except ValueError:
        raise UserError(f"--ylim={given}: give two numbers LOW,HIGH, e.g. --ylim=0.5,0.7") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise UserError(f"--ylim={given}: the limits must be finite numbers; e.g. --ylim=0.5,0.7, or drop --ylim")
    if not low < high:
        raise UserError(f"--ylim={low:g},{high:g}: LOW must be below HIGH")
    return low, high


def plot(logdir: str) -> None:
    ylim, output = _ylim(), _output("sizes.png")  # before the slow import
    from tbreg import plot as plot_lib

    r = plot_lib.plot_family(
        logdir, output, _METRIC.value, _SMOOTHING_STD.value, _LOGX.value, ylim, _KEEP_DAMAGED.value
    )
    skipped = f"; skipped (no {r.metric}): {', '.join(r.skipped)}" if r.skipped else ""
    print(f"wrote {r.path}: {r.metric} of {len(r.runs)} runs ({', '.join(r.runs)}){skipped}")
    for name, row in r.rows.items():
        print(f"  {name}: {row.verdict.text}")


@dataclasses.dataclass(frozen=True)
class Command:
    func: Callable
    args: tuple[str, ...]  # positional argument names
    flags: tuple[str, ...] = ()  # the flags it reads; others given on the command line are an error


COMMANDS = {
    ("baseline", "copy"): Command(baseline_copy, ("SRC_RUN", "DST_RUN"), ("overwrite",)),
    ("share", "report"): Command(share_report, ("LOGDIR",), ("output", "keep_damaged")),
    ("share", "export"): Command(share_export, ("LOGDIR",), ("output", "keep_damaged")),
    ("share", "bundle"): Command(share_bundle, ("LOGDIR",), ("output",)),
    ("share", "open"): Command(share_open, ("BUNDLE",), ("dest", "max_mb")),
    ("share", "upload"): Command(share_upload, ("LOGDIR", "URI"), ("watch", "interval", "max_cycles")),
    ("plot",): Command(plot, ("FAMILY_DIR",), ("output", "metric", "smoothing_std", "logx", "ylim", "keep_damaged")),
}
_OWN_FLAGS = {
    "overwrite",
    "output",
    "dest",
    "max_mb",
    "watch",
    "interval",
    "max_cycles",
    "metric",
    "smoothing_std",
    "logx",
    "ylim",
    "keep_damaged",
}


def _check_flags(name: str, command: Command) -> None:
    stray = sorted(f for f in _OWN_FLAGS - set(command.flags) if flags.FLAGS[f].present)
    if stray:
        raise UserError(f"tbreg {name} does not take --{', --'.join(stray)} (see tbreg --help)")
    if (
        "interval" in command.flags
        and not _WATCH.value
        and (flags.FLAGS["interval"].present or flags.FLAGS["max_cycles"].present)
    ):
        raise UserError("--interval and --max_cycles only apply with --watch")
    if "ylim" in command.flags:
        _ylim()  # a bad value fails before TensorFlow loads


def main(argv):
    absl_logging.set_verbosity(absl_logging.WARNING)  # TensorBoard's loader logs every file it opens at INFO
    args = argv[1:]
    for words, command in COMMANDS.items():
        if tuple(args[: len(words)]) == words:
            name, given = " ".join(words), args[len(words) :]
            if len(given) != len(command.args):
                raise app.UsageError(
                    f"tbreg {name} takes {' '.join(command.args)}, got {len(given)} arguments; see tbreg {name} --help"
                )
            try:
                _check_flags(name, command)
                _quiet.import_tensorflow()  # every command reads or writes through it; first, so it says nothing
                command.func(*given)
            except UserError as e:
                print(f"tbreg: error: {e}", file=sys.stderr)
                sys.exit(1)
            return
    raise app.UsageError(f"unknown command {' '.join(args) or '(none)'}; {USAGE}")


def help_text(args) -> str:
    """`tbreg … --help`: the usage and flags of the command `args` name (of all commands if none)."""
    words = tuple(a for a in args if not a.startswith("-"))
    chosen = [w for w in COMMANDS if words[: len(w)] == w]  # `tbreg share report … --help`
    chosen = chosen or [w for w in COMMANDS if words and w[: len(words)] == words]  # `tbreg share --help`
    if not chosen:
        names = sorted(_OWN_FLAGS)
        usage = "\n".join([__doc__.splitlines()[0], "", "usage:", *(f"  {line}" for line in USAGE_LINES)])
        usage += "\n\n" + __doc__.split("\n\n")[2].strip()
    else:
        names = list(dict.fromkeys(f for w in chosen for f in COMMANDS[w].flags))
        lines = [line for w in chosen for line in USAGE_LINES if line.startswith(f"tbreg {' '.join(w)} ")]
        usage = "usage: " + "\n       ".join(lines)
    flag_help = _app.format_flags(names) if names else "  (none)"
    return f"{usage}\n\nflags:\n{flag_help}"


def run():
    if sys.argv[1:2] == ["sweep"]:  # its own flags, defined only when it runs
        from tbreg import sweep_cli

        sweep_cli.run()
        return
    if sys.argv[1:2] == ["reproduce"]:  # its own flags too
        from tbreg import reproduce_cli

        reproduce_cli.run()
        return
    _app.run(main, lambda: help_text(sys.argv[1:]), prog="tbreg")


if __name__ == "__main__":
    run()
