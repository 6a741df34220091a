"""What the training scripts share: their flags, their --help and their main. Imported only by scripts.

Importing it does not import TensorFlow: `run` does, quietly (tbreg._quiet), once the flags are parsed.
"""

import contextlib
import dataclasses
import functools
import os
import shlex
import signal
import sys

from absl import app, flags

from tbreg import _app, _flags, _quiet, families, progress, text
from tbreg.constants import IF_EXISTS
from tbreg.errors import UserError
from tbreg.status import ENDED_WELL, Status

_IF_EXISTS = flags.DEFINE_enum(
    "if_exists",
    "new",
    list(IF_EXISTS),
    "When a run dir exists: new = train into <model>.2, <model>.3, …; error = stop; overwrite = delete it first.",
)
_ENGINE = flags.DEFINE_enum(
    "engine",
    "fast",
    ["fast", "keras"],
    "fast: blocks of epochs per compiled call (default; see --epochs_per_call); keras: plain model.fit, for per-batch "
    "callbacks.",
)
_JOBS = flags.DEFINE_integer(
    "jobs", 1, "Train this many models of the family at once, in separate processes.", lower_bound=1
)
_BASELINE = flags.DEFINE_string(
    "baseline",
    None,
    "Families with a baseline (regularizers): the run copied in beside them (default: the family's, e.g. "
    "sizes/tiny; imdb: sizes/original; mnist: capacity/large); empty: none.",
)
_STACK_SEEDS = flags.DEFINE_bool(
    "stack_seeds",
    True,
    "With --seeds=N: train the N seeds of a model as N models stacked in one compiled call per epoch (the same "
    "runs, much faster) where the model allows it (see docs/training.md); false: one run after another.",
)
_RESUME = flags.DEFINE_bool(
    "resume",
    False,
    "Continue the newest run of each model where an interrupt (Ctrl-C, SIGTERM) stopped it; finished runs are skipped.",
)


def callbacks_for(data):
    """`run_dir -> [tbreg callbacks]` as the flags say, for sweep.train_family."""
    from tbreg import callbacks as callbacks_lib

    # a partial, not a closure: --jobs sends it to worker processes
    return functools.partial(callbacks_lib.make, train_data=(data.x_train, data.y_train), **_flags.callback_options())


def add_models_validator(family: families.Family) -> None:
    names = families.model_names(family.name) or family.model_names()  # the family's models on any dataset
    flags.register_validator(
        "models", lambda v: all(m in names for m in v), message=f"must be a comma list of: {', '.join(names)}"
    )


def _run_name(r) -> str:
    """The run's path below its family dir: `tiny`, `tiny.2`, `tiny/seed_3`, `tiny/mean`."""
    parts = r.run_dir.rstrip("/").split("/")
    if r.family in parts[:-1]:
        return "/".join(parts[len(parts) - parts[::-1].index(r.family) :])
    return os.path.basename(r.run_dir) if r.run_dir else r.model


def _baseline_command(family_name: str, dataset: str, logdir: str, model: str) -> str:
    script = (
        f"tbreg-train-{family_name}"
        if family_name in ("sizes", "regularizers")
        else f"tbreg-train --family={family_name}"
    )
    data = "" if dataset == "mnist1d" else f" --dataset={dataset}"
    return f"{script}{data} --logdir={logdir} --models={model}"


def copy_baseline(logdir: str, family: families.Family, config, model: str | None) -> None:
    """Copies the newest `<baseline family>/<model>` run (or seed group) in beside `family`'s runs."""
    from tbreg import logtree

    if not family.baseline_family or not model:
        return
    runs = logtree.runs_of(os.path.join(logdir, family.baseline_family), model)
    if not runs:
        raise UserError(
            f"{os.path.join(logdir, family.baseline_family, model)}: no such run dir; train it first: "
            f"{_baseline_command(family.baseline_family, config.dataset, logdir, model)}, or pass --baseline="
        )
    src = runs[-1]
    record = logtree.read_run_json(src) or logtree.read_run_json(os.path.join(src, "mean")) or {}
    if record.get("dataset") not in (None, config.dataset):
        raise UserError(
            f"{src} was trained on {record['dataset']}, not {config.dataset}; train it first: "
            f"{_baseline_command(family.baseline_family, config.dataset, logdir, model)}, or pass --baseline="
        )
    dst = logtree.copy_baseline(logdir, family.baseline_family, family.name, model, _IF_EXISTS.value)
    where = dst or f"{logdir}/{family.name}/{model} (already there)"
    print(f"baseline: {family.baseline_family}/{model} -> {where}", file=sys.stderr)


def format_table(results, verdicts: dict | None = None) -> str:
    """The end-of-run table; `verdicts` ({run dir: text}, see `verdicts`) adds the verdict column."""
    header = ("run", "params", "epochs", "best epoch", "best val data loss", "status")
    rows = [
        (
            _run_name(r),
            f"{r.params:,}",
            str(r.epochs),
            "-" if r.best_epoch is None else str(r.best_epoch),
            "-" if r.best_value is None else f"{r.best_value:.4f}",
            r.status,
        )
        for r in results
    ]
    if verdicts:
        header += ("verdict",)
        rows = [(*row, verdicts.get(os.path.normpath(r.run_dir or ""), "-")) for row, r in zip(rows, results)]
    return text.table(header, rows)


def verdicts(logdir: str, family_name: str) -> dict:
    """{run dir: verdict} of a family's runs as every view shows them (`analysis.summarize_family`
    with the family's baseline and seed groups; a seed run on its own), plus a seed group's onset
    spread and paired comparison; {} when the tree cannot be read (the table goes without)."""
    from tbreg import analysis, reader
    from tbreg.errors import UserError

    from tbreg.aggregate import _quiet_loader

    try:
        with _quiet_loader():  # TensorBoard's loader logs each file it opens at INFO under absl
            runs = reader.load_runs(os.path.join(logdir, family_name))
    except (UserError, OSError):
        return {}
    members = reader.members(runs)
    out = {}
    for m, row in zip(members, reader.summarize_family(members)):
        extra = [t for t in (analysis.onset_spread(row.seed_onsets), analysis.paired_text(row.paired)) if t]
        out[os.path.normpath(m.run.path)] = "; ".join([row.verdict.text, *extra])
        for seed_run in m.seeds.values():
            (own,) = reader.summarize_family(reader.members([seed_run]))
            out[os.path.normpath(seed_run.path)] = own.verdict.text
    return out


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def resume_command() -> str:
    """The command line that started this script, plus --resume."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    head = ["python", "-m", spec.name] if spec and spec.name.startswith("tbreg.") else [os.path.basename(sys.argv[0])]
    args = [a for a in sys.argv[1:] if a not in ("--resume", "--resume=true")]
    return shlex.join([*head, *args, "--resume"])


def _report_interrupt(prog: str, e: KeyboardInterrupt) -> None:
    result = getattr(e, "result", None)
    if result is None:
        print(f"{prog}: interrupted before a run's first epoch; runs that finished are kept", file=sys.stderr)
        return
    where = f"after epoch {result.epochs - 1}" if result.epochs else "before its first epoch ended"
    print(
        f"{prog}: interrupted {where} of {_run_name(result)} ({result.run_dir}): every event so far is "
        "written and its run.json says status=interrupted",
        file=sys.stderr,
    )
    if getattr(e, "resumable", False):
        print(f"resume with: {resume_command()}", file=sys.stderr)
    else:
        print(
            "this run cannot be resumed (interrupted twice, or --engine=keras); run the command again to train anew",
            file=sys.stderr,
        )


def help_text(script) -> str:
    """The --help of the training script `script` (a module): its docstring and every flag it takes."""
    modules = (script, sys.modules[__name__], _flags)
    names = sorted({f.name for m in modules for f in flags.FLAGS.get_key_flags_for_module(m)})
    module = script.__spec__.name  # tbreg.train_sizes, also under `python -m`
    usage = f"usage: {module.replace('.', '-').replace('_', '-')} [--flag=value …]  (or: python -m {module} …)"
    return (
        f"{usage}\n\n{script.__doc__.strip()}\n\nflags:\n{_app.format_flags(names)}\n\n"
        "(--helpfull: absl's own flags too)"
    )


def start(main, script) -> None:
    """Runs `main` as the console script / `python -m` main of the training script `script`."""
    _app.run(main, lambda: help_text(script))


def _progress(family_name: str, runs: int, config):
    """The live progress of a family trained in this process; with --jobs > 1 (workers) or --quiet,
    none (the driver prints a line per model start and end with --jobs)."""
    if not config.verbose or (_JOBS.value > 1 and runs > 1):
        return contextlib.nullcontext()
    return progress.FamilyProgress(family_name, runs)


def run(family_name: str, argv, before_training=None) -> int:
    """Trains `family_name` as the flags say; returns the exit code. SIGTERM is handled like Ctrl-C."""
    prog = os.path.basename(argv[0])
    progress.guard_streams(prog)  # `… | head` stops the reading, not the training
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])} (all options are --flags)")
    logdir = _flags.LOGDIR.value
    try:
        config = _flags.make_config(_ENGINE.value)
        family = families.get(family_name, config.dataset)
        names, seeds = _flags.models(), _flags.seeds_from(_flags.SEEDS.value, config.seed)
        try:
            specs = family.select(names)
        except UserError as e:
            raise UserError(f"--models: {e} on {config.dataset}") from None
        if _flags.MC_SAMPLES.value is not None:
            specs = [dataclasses.replace(s, mc_samples=_flags.MC_SAMPLES.value) if s.mc_samples else s for s in specs]
        _quiet.import_tensorflow()  # before the library modules below import it
        from tbreg import datasets, hparams, logtree, sweep

        logtree.check_logdir(logdir)
        data = datasets.load(config)
        if before_training:
            before_training(logdir, family, config)
        baseline = family.default_baseline if _BASELINE.value is None else _BASELINE.value
        copy_baseline(logdir, family, config, baseline)
        flag_values = _flags.values(sys.modules[__name__])
        seeds = _flags.seeds_from(_flags.SEEDS.value, config.seed)
        with _progress(family.name, len(specs) * len(seeds or [0]), config):
            results = sweep.train_family(
                family,
                specs,
                data,
                config,
                logdir,
                _IF_EXISTS.value,
                callbacks_for=callbacks_for(data),
                extra={"flags": flag_values},
                jobs=_JOBS.value,
                seeds=seeds,
                resume=_RESUME.value,
                stack_seeds=_STACK_SEEDS.value,
            )
        hparams.write_experiment(logdir)  # the HParams dashboard's columns and metrics, for the whole tree
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        _report_interrupt(prog, e)
        return 130
    print(f"\n{family.name} on {config.dataset} ({logdir}/{family.name}):")
    print(format_table(results, verdicts(logdir, family.name)))
    for r in results:
        if r.error:
            print(f"{r.model} failed: {r.error}", file=sys.stderr)
    print(f"\nSee them in TensorBoard: tensorboard --logdir {logdir}")
    note = logtree.tensorboard_note(logdir, _flags.TENSORBOARD_URL.value)
    if note:
        print(note)
    for r in results:
        if r.status == Status.DIVERGED:
            print(f"{_run_name(r)} diverged (see its run.json: diverged_epoch); the family went on", file=sys.stderr)
    # Exit 1 when any run did not end well (failed or diverged), so shells and CI notice; the
    # family still trained every model and each run.json says what happened.
    bad = [r for r in results if r.status not in ENDED_WELL]
    if bad:
        print(
            f"{prog}: {len(bad)} of {len(results)} runs did not end well: "
            + ", ".join(f"{_run_name(r)} {r.status}" for r in bad),
            file=sys.stderr,
        )
    return 1 if bad else 0
