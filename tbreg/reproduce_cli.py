"""`tbreg reproduce [SOURCE]`: train what a source's claims read, check them, write docs/reproductions.md.

usage: tbreg reproduce [tutorial|chollet|blog|geron|all] [--logdir=DIR] [--seeds=N] [--max_epochs=N] …

    tbreg reproduce                       # every source on MNIST-1D (offline), 3 seeds
    tbreg reproduce tutorial --max_epochs=5 --seeds=2     # a quick check at a reduced size
    tbreg reproduce chollet --data_path=imdb=imdb.npz,mnist=mnist.npz   # his own datasets

Runs that are already complete in --logdir are reused, so a second call only re-checks. Every
source's claims are checked and shown on the page (those not asked for from the runs already there).
"""

import shlex
import sys

from absl import flags

from tbreg import _app, _quiet
from tbreg.errors import UserError

_LOGDIR = flags.DEFINE_string("logdir", "runs/reproduce", "Root of the reproductions' log tree.")
_SEEDS = flags.DEFINE_integer(
    "seeds", 3, "Seeds per model (a claim about a difference needs at least 2).", lower_bound=1
)
_MAX_EPOCHS = flags.DEFINE_integer(
    "max_epochs", None, "Reduced size: at most N epochs per run (default: each dataset's preset).", lower_bound=1
)
_DATA_PATH = flags.DEFINE_list(
    "data_path",
    [],
    "The real datasets, as DATASET=PATH items (higgs: .csv/.csv.gz; imdb, mnist: Keras .npz); without, MNIST-1D.",
)
_JOBS = flags.DEFINE_integer("jobs", 1, "Models trained at once, in separate processes.", lower_bound=1)
_DTYPE_POLICY = flags.DEFINE_enum(
    "dtype_policy", "float32", ["float32", "mixed_bfloat16"], "Keras dtype policy of the hidden layers."
)
_PAGE = flags.DEFINE_string(
    "page", "docs/reproductions.md", "The page to write (its figures go beside it, in reproductions/)."
)

NAMES = ("logdir", "seeds", "max_epochs", "data_path", "jobs", "dtype_policy", "page")


def main(argv) -> None:
    from absl import app
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)  # TensorBoard's loader logs every file it opens at INFO
    args = argv[2:]  # argv[1] is "reproduce"
    if len(args) > 1:
        raise app.UsageError(f"tbreg reproduce takes at most one SOURCE, got {' '.join(args)}")
    try:
        cli = sys.modules.get("tbreg.cli") or sys.modules.get("__main__")  # `tbreg`, or `python -m tbreg.cli`
        others = getattr(cli, "_OWN_FLAGS", ())  # the other commands' flags, defined beside these
        stray = sorted(f for f in others if f in flags.FLAGS and flags.FLAGS[f].present)
        if stray:
            raise UserError(f"tbreg reproduce does not take --{', --'.join(stray)} (see tbreg reproduce --help)")
        from tbreg import reproduce

        sources = reproduce.parse_sources(args[0] if args else "all")
        data_paths = reproduce.parse_data_paths(_DATA_PATH.value)
        _quiet.import_tensorflow()
        results = reproduce.reproduce(
            sources,
            _LOGDIR.value,
            seeds=_SEEDS.value,
            data_paths=data_paths,
            max_epochs=_MAX_EPOCHS.value,
            dtype_policy=_DTYPE_POLICY.value,
            jobs=_JOBS.value,
            page_path=_PAGE.value,
            command=shlex.join(["tbreg", *sys.argv[1:]]),  # with its flags (absl took them out of argv)
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except UserError as e:
        print(f"tbreg: error: {e}", file=sys.stderr)
        sys.exit(1)
    for s in sources:
        for c, r in results[s.key]:
            print(f"{s.key}: {r.verdict:12} {c.text}\n    {r.numbers}")
    print(f"wrote {_PAGE.value}")


def help_text() -> str:
    return f"{__doc__.strip()}\n\nflags:\n{_app.format_flags(NAMES)}"


def run() -> None:
    _app.run(main, help_text, prog="tbreg")
