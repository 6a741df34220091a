"""Trains the `regularizers` family (l2, dropout, combined) into <logdir>/regularizers/<model>,
after copying the sizes family's baseline run (tiny) in beside them.

    python -m tbreg.train_regularizers                # after tbreg.train_sizes
    python -m tbreg.train_regularizers --baseline=    # no baseline copy
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out

import sys  # noqa: E402

from absl import app, flags

from tbreg import _train_script, families, logtree
from tbreg.errors import UserError

_BASELINE = flags.DEFINE_string(
    "baseline", families.REGULARIZERS.default_baseline,
    "Run of the sizes family to copy in as the baseline (empty: none).",
)
_train_script.add_models_validator(families.REGULARIZERS)


def copy_baseline(logdir, family, config):
    if not _BASELINE.value:
        return
    runs = logtree.runs_of(os.path.join(logdir, family.baseline_family), _BASELINE.value)
    record = logtree.read_run_json(runs[-1]) if runs else None
    if record and record.get("dataset") not in (None, config.dataset):
        raise UserError(
            f"{runs[-1]} was trained on {record['dataset']}, not {config.dataset}; train it first: "
            f"tbreg-train-sizes --dataset={config.dataset} --models={_BASELINE.value}, or pass --baseline="
        )
    dst = logtree.copy_baseline(
        logdir, family.baseline_family, family.name, _BASELINE.value, flags.FLAGS.if_exists
    )
    where = dst or f"{logdir}/{family.name}/{_BASELINE.value} (already there)"
    print(f"baseline: {family.baseline_family}/{_BASELINE.value} -> {where}", file=sys.stderr)


def main(argv):
    sys.exit(_train_script.run("regularizers", argv, before_training=copy_baseline))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
