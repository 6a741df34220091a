"""What the two training scripts share: their flags and their main. Imported only by scripts."""

import os
import sys

from absl import app, flags

from tbreg import config as config_lib
from tbreg import datasets, families, logtree, training
from tbreg.errors import UserError

_LOGDIR = flags.DEFINE_string("logdir", "runs", "Root of the log tree (local path or tf.io.gfile URI).")
_DATASET = flags.DEFINE_enum("dataset", "mnist1d", list(datasets.NAMES), "Dataset; mnist1d is generated offline.")
_DATA_PATH = flags.DEFINE_string("data_path", None, "higgs: local .csv/.csv.gz or URL (default: the UCI URL).")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Dataset cache (default $TBREG_CACHE or ~/.cache/tbreg).")
_MODELS = flags.DEFINE_list("models", [], "Comma list of models to train (default: the whole family).")
_IF_EXISTS = flags.DEFINE_enum(
    "if_exists", "new", list(logtree.IF_EXISTS),
    "When a run dir exists: new = train into <model>.2, <model>.3, …; error = stop; overwrite = delete it first.",
)
_MAX_EPOCHS = flags.DEFINE_integer("max_epochs", None, "Most epochs per model (preset: higgs 10000, mnist1d 150).", lower_bound=1)
_PATIENCE = flags.DEFINE_integer("patience", None, "EarlyStopping patience on the validation data loss.", lower_bound=0)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Batch size (tutorial: 500).", lower_bound=1)
_BUFFER_SIZE = flags.DEFINE_integer("buffer_size", None, "Shuffle buffer (tutorial: 10000).", lower_bound=1)
_N_TRAIN = flags.DEFINE_integer("n_train", None, "Training examples (higgs: the rows after validation).", lower_bound=1)
_N_VALIDATION = flags.DEFINE_integer("n_validation", None, "Validation examples (higgs: the first rows).", lower_bound=1)
_LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Adam's initial learning rate (tutorial: 0.001).", lower_bound=0)
_DECAY_EPOCHS = flags.DEFINE_float("decay_epochs", None, "InverseTimeDecay: epochs until the rate halves.", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", None, "Random seed for weights, dropout and shuffling.")
_QUIET = flags.DEFINE_bool("quiet", False, "No per-epoch progress dots.")


def add_models_validator(family: families.Family) -> None:
    names = family.model_names()
    flags.register_validator(
        "models", lambda v: all(m in names for m in v), message=f"must be a comma list of: {', '.join(names)}"
    )


def make_config() -> config_lib.TrainConfig:
    return config_lib.for_dataset(
        _DATASET.value,
        data_path=_DATA_PATH.value,
        cache_dir=_CACHE_DIR.value,
        max_epochs=_MAX_EPOCHS.value,
        patience=_PATIENCE.value,
        batch_size=_BATCH_SIZE.value,
        buffer_size=_BUFFER_SIZE.value,
        n_train=_N_TRAIN.value,
        n_validation=_N_VALIDATION.value,
        learning_rate=_LEARNING_RATE.value,
        decay_epochs=_DECAY_EPOCHS.value,
        seed=_SEED.value,
        verbose=0 if _QUIET.value else 1,
    )


def format_table(results) -> str:
    header = ("run", "params", "epochs", "best epoch", "best val data loss", "status")
    rows = [
        (
            os.path.basename(r.run_dir) if r.run_dir else r.model,
            f"{r.params:,}",
            str(r.epochs),
            "-" if r.best_epoch is None else str(r.best_epoch),
            "-" if r.best_value is None else f"{r.best_value:.4f}",
            r.status,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def run(family_name: str, argv, before_training=None) -> int:
    """Trains `family_name` as the flags say; returns the exit code."""
    prog = os.path.basename(argv[0])
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])} (all options are --flags)")
    family = families.get(family_name)
    logdir = _LOGDIR.value
    try:
        config = make_config()
        training.check_logdir(logdir)
        data = datasets.load(config)
        if before_training:
            before_training(logdir, family, config)
        flag_values = {f.name: f.value for f in flags.FLAGS.get_key_flags_for_module(sys.modules[__name__])}
        results = training.train_family(
            family, family.select(_MODELS.value), data, config, logdir, _IF_EXISTS.value, extra={"flags": flag_values}
        )
    except UserError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; the current run's run.json says status=interrupted", file=sys.stderr)
        return 130
    print(f"\n{family.name} on {config.dataset} ({logdir}/{family.name}):")
    print(format_table(results))
    for r in results:
        if r.error:
            print(f"{r.model} failed: {r.error}", file=sys.stderr)
    print(f"\nSee them in TensorBoard: tensorboard --logdir {logdir}")
    return 0 if all(r.status in ("completed", "early_stopped") for r in results) else 1
