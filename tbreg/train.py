"""Trains any family of any dataset into <logdir>/<family>/<model>; `--list` shows which exist.

    python -m tbreg.train --list
    python -m tbreg.train --dataset=mnist --family=learning_rate --max_epochs=10
    python -m tbreg.train --dataset=imdb --family=sizes --seeds=5
    python -m tbreg.train --dataset=mnist1d --family=schedules --models=one_cycle

Families with a baseline (regularizers) first copy it in, as tbreg-train-regularizers does.
"""

import sys

from absl import app, flags

from tbreg import _train_script, families

_FAMILY = flags.DEFINE_enum("family", None, families.family_names(), "Family to train (see --list).")
_LIST = flags.DEFINE_bool("list", False, "Print every family, its models and the datasets they exist for, and exit.")
flags.register_validator(
    "models",
    lambda v: all(m in {n for f in families.family_names() for n in families.model_names(f)} for m in v),
    message="must be a comma list of models of the family (see --list)",
)


def main(argv):
    if _LIST.value:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])} (all options are --flags)")
        print(families.format_registry())
        sys.exit(0)
    if _FAMILY.value is None:
        raise app.UsageError("pass --family=<name> (see --list)")
    sys.exit(_train_script.run(_FAMILY.value, argv))


def run():
    _train_script.start(main, sys.modules[__name__])


if __name__ == "__main__":
    run()
