"""`tbreg sweep`: a grid of families × models × hyperparameters × seeds, on local workers or Ray.

usage: tbreg sweep --families=F[,G…] [--models=M,…] [--grid name=v1,v2 …] [--seeds=N] [--engine=local|ray] …
       tbreg sweep --config=SWEEP.toml [flags that override the file]

    tbreg sweep --families=sizes --grid l2=0,1e-4 --max_epochs=20    # 5 models × 2 = 10 trials
    tbreg sweep --families=regularizers --models=l2 --grid l2=1e-4,1e-3 dropout=0.2,0.5 --seeds=2 --jobs=2
    tbreg sweep --config=sweep.toml --engine=ray --address=auto

A config file (TOML) holds the same settings under the flags' names, the grid as a table:

    dataset = "mnist1d"
    families = ["regularizers"]
    models = ["l2"]
    seeds = 2
    max_epochs = 60
    [grid]
    l2 = [1e-4, 1e-3]
    dropout = [0.2, 0.5]

Flags given on the command line win over the file.
"""

import os
import signal
import sys
import tomllib

from absl import flags

from tbreg import _app, _flags, _quiet, datasets, progress, text
from tbreg.errors import UserError
from tbreg.status import Status

flags.FLAGS.set_default("logdir", "runs/sweep")
_CONFIG = flags.DEFINE_string(
    "config", None, "A TOML file with the sweep's settings (flag names as keys, [grid] table)."
)
_FAMILIES = flags.DEFINE_list(
    "families", ["sizes"], "Comma list of families of --dataset to sweep (see tbreg-train --list)."
)
_GRID = flags.DEFINE_multi_string(
    "grid",
    [],
    "Hyperparameter axes name=v1,v2 (repeat the flag, or list several after it: --grid l2=1e-4,1e-3 dropout=0.2,0.5). "
    "Names: l1, l2, dropout, max_norm, batch_norm, activation, optimizer, schedule, learning_rate, units (e.g. 64x64), "
    "batch_size, patience, max_epochs, decay_epochs, n_train.",
)
_ENGINE = flags.DEFINE_enum(
    "engine", "local", ["local", "ray"], "local: worker processes on this machine; ray: Ray tasks."
)
_JOBS = flags.DEFINE_integer(
    "jobs", None, "Trials at once (local default 1; ray: default the cluster's CPUs, 1 CPU per trial).", lower_bound=1
)
_ADDRESS = flags.DEFINE_string(
    "address", None, "--engine=ray: the cluster (auto, ray://head:10001, …); none: a local one."
)
_MAX_TRIALS = flags.DEFINE_integer(
    "max_trials", 10_000, "Refuse a sweep of more trials than this (counted before planning).", lower_bound=1
)
_RETRIES = flags.DEFINE_integer(
    "retries", 2, "Attempts after a trial's first one fails (its training or its worker).", lower_bound=0
)

_NOT_FOR_SWEEPS = ("mc_samples",)


def _apply_config_file(path: str) -> dict:
    """Sets the flags the file names (unless given on the command line); returns its [grid]."""
    from tbreg import logtree

    reason = logtree.unreadable_reason(path)
    if reason:
        raise UserError(f"--config={path}: {reason.split(';')[0]}; give a TOML file")
    try:
        with open(path, "rb") as f:
            content = tomllib.load(f)
    except OSError as e:
        raise UserError(f"--config={path}: cannot read it ({e.strerror}); give a TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"--config={path}: not valid TOML ({e}); see tbreg sweep --help") from None
    except UnicodeDecodeError:
        raise UserError(f"--config={path}: not UTF-8 text; save it as UTF-8 (TOML files are)") from None
    except RecursionError:
        raise UserError(
            f"--config={path}: nested too deeply to read; a sweep file is flat settings and [grid]"
        ) from None
    grid = content.pop("grid", {})
    if not isinstance(grid, dict):
        raise UserError(f"--config={path}: grid must be a table, e.g. [grid] then l2 = [1e-4, 1e-3]")
    allowed = sorted(n for n in _sweep_flag_names() if n != "config")
    for name, value in content.items():
        if name not in allowed:
            raise UserError(f"--config={path}: unknown setting {name!r}; use flag names: {', '.join(allowed)}, [grid]")
        flag = flags.FLAGS[name]
        if flag.present:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        try:
            flag.parse(text.lower() if isinstance(value, bool) else text)
        except (flags.Error, ValueError) as e:
            raise UserError(f"--config={path}: {name} = {value!r}: {e}") from None
    try:
        flags.FLAGS.validate_all_flags()
    except flags.Error as e:
        raise UserError(f"--config={path}: {e}") from None
    return grid


def _sweep_flag_names() -> set:
    return {f.name for m in (_flags, sys.modules[__name__]) for f in flags.FLAGS.get_key_flags_for_module(m)}


def _check_stray_flags() -> None:
    own = _sweep_flag_names()
    stray = sorted(
        name
        for name in flags.FLAGS
        if flags.FLAGS[name].present
        and name not in own
        and flags.FLAGS.find_module_defining_flag(name, "").startswith("tbreg")
    )
    stray += [name for name in _NOT_FOR_SWEEPS if flags.FLAGS[name].present]
    if stray:
        raise UserError(f"tbreg sweep does not take --{', --'.join(stray)} (see tbreg sweep --help)")


def _format_table(result) -> str:
    header = ("run", "status", "attempts", "epochs", "best epoch", "best val data loss", "time")
    rows = []
    for r in result.results:
        rows.append(
            (
                r.trial.label,
                r.status + (" (earlier)" if r.skipped else ""),
                str(r.attempts) if not r.skipped else "-",
                str(r.epochs),
                "-" if r.best_epoch is None else str(r.best_epoch),
                "-" if r.best_value is None else f"{r.best_value:.4f}",
                "-" if r.skipped else f"{r.seconds:.0f}s",
            )
        )
    return text.table(header, rows)


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _pool():
    from tbreg import sweep

    if _ENGINE.value == "ray":
        return sweep.RayPool(_ADDRESS.value, _JOBS.value)
    if _ADDRESS.value:
        raise UserError("--address is for --engine=ray; add --engine=ray or drop --address")
    return sweep.LocalPool(_JOBS.value or 1)


def sweep_main(argv) -> int:
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)  # first: SIGTERM stops planning as Ctrl-C does
    _quiet.import_tensorflow()  # before tbreg.sweep imports it
    from tbreg import logtree, sweep

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    progress.guard_streams("tbreg sweep")  # `… | head` stops the reading, not the sweep
    _check_stray_flags()
    grid_items = list(_GRID.value)
    for arg in argv[2:]:  # `--grid l2=… dropout=…`: the axes after the first arrive as arguments
        if "=" not in arg or arg.startswith("-"):
            raise UserError(f"unexpected argument {arg!r}; grid axes look like name=v1,v2, options like --flag=value")
        grid_items.append(arg)
    grid = sweep.parse_grid(grid_items)
    if _CONFIG.value:
        file_grid = _apply_config_file(_CONFIG.value)
        given = {name for name, _ in grid}
        grid = tuple(sweep.parse_axis(n, v) for n, v in file_grid.items() if n not in given) + grid
    config = _flags.make_config()
    models = tuple(_flags.models())
    if len(_flags.SEEDS.value) == 1 and int(_flags.SEEDS.value[0]) > _MAX_TRIALS.value:  # count before listing them
        sweep.check_size(sweep.Sweep(config, max_trials=_MAX_TRIALS.value), int(_flags.SEEDS.value[0]))
    spec = sweep.Sweep(
        config,
        families=tuple(_FAMILIES.value),
        models=models,
        grid=grid,
        seeds=tuple(_flags.seeds_from(_flags.SEEDS.value, config.seed) or ()),
        callbacks=_flags.callback_options(),
        max_trials=_MAX_TRIALS.value,
    )
    log = (lambda line: None) if _flags.QUIET.value else (lambda line: print(line, file=sys.stderr, flush=True))
    logdir = _flags.LOGDIR.value
    sweep.expand(spec, logdir)  # unknown families or models: one line now
    datasets.load(config)  # a bad --dataset/--data_path: one line now, not a failed attempt per trial
    with _pool() as pool:
        result = sweep.run_sweep(spec, logdir, pool, _RETRIES.value, log=log)
    print(f"\nsweep on {config.dataset} ({logdir}), {progress.duration(result.seconds)}:")
    print(_format_table(result))
    print(f"\nSee it in TensorBoard: tensorboard --logdir {logdir}  (HParams tab: every trial with its metrics)")
    note = logtree.tensorboard_note(logdir, _flags.TENSORBOARD_URL.value)
    if note:
        print(note)
    if result.interrupted:
        print(
            "tbreg sweep: interrupted; run the same command again to continue (finished trials are skipped)",
            file=sys.stderr,
        )
        return 130
    failed = [r for r in result.results if r.status == Status.FAILED]
    diverged = [r for r in result.results if r.status == Status.DIVERGED]
    if diverged:
        print(f"diverged (a result, not retried): {', '.join(r.trial.label for r in diverged)}", file=sys.stderr)
    if failed:
        print(
            f"tbreg sweep: {len(failed)} of {len(result.results)} trials failed after every attempt: "
            + "; ".join(f"{r.trial.label}: {r.errors[-1] if r.errors else 'failed'}" for r in failed),
            file=sys.stderr,
        )
        print(
            f"run the same command again to retry them; attempts are in {os.path.join(logdir, sweep.SWEEP_JSON)}",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv) -> None:
    try:
        code = sweep_main(argv)
    except UserError as e:
        print(f"tbreg sweep: error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before the trials started (while planning)
        print("tbreg sweep: interrupted before any trial started; nothing was trained", file=sys.stderr)
        code = 130
    sys.exit(code)


def help_text() -> str:
    """`tbreg sweep --help`: the docstring (usage, examples, config file) and every flag the sweep takes."""
    names = sorted(_sweep_flag_names() - set(_NOT_FOR_SWEEPS))
    return f"{__doc__.strip()}\n\nflags:\n{_app.format_flags(names)}"


def run() -> None:
    """`tbreg sweep …` (sys.argv[1] is "sweep"). Without arguments it says what to pass and exits 2."""
    if len(sys.argv) == 2:
        print(__doc__.strip(), file=sys.stderr)
        print(
            "\ntbreg sweep: error: say what to sweep: --families=… (with --grid, --seeds, …) or --config=FILE; "
            "every flag: tbreg sweep --help",
            file=sys.stderr,
        )
        sys.exit(2)
    _app.run(main, help_text, prog="tbreg sweep")
