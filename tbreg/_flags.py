"""The flags that the training scripts and `tbreg sweep` share: data, config, seeds, callbacks.

Imported only by command-line modules; library code takes explicit arguments. Importing it does not
import TensorFlow (so `--help` and `--list` answer at once).
"""

import sys

from absl import flags

from tbreg import config as config_lib
from tbreg import datasets
from tbreg.constants import CALLBACK_NAMES
from tbreg.errors import UserError


LOGDIR = flags.DEFINE_string("logdir", "runs", "Root of the log tree (local path or tf.io.gfile URI).")
DATASET = flags.DEFINE_enum("dataset", "mnist1d", list(datasets.NAMES), "Dataset; mnist1d is generated offline.")
DATA_PATH = flags.DEFINE_string(
    "data_path",
    None,
    "higgs: local .csv/.csv.gz or URL (default: the UCI URL); imdb, mnist: local Keras .npz or URL "
    "(default: Keras' own file via ~/.keras/datasets).",
)
CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Dataset cache (default $TBREG_CACHE or ~/.cache/tbreg).")
MODELS = flags.DEFINE_list("models", [], "Comma list of models to train (default: the whole family).")
MAX_EPOCHS = flags.DEFINE_integer(
    "max_epochs", None, "Most epochs per model (preset: higgs 10000, mnist1d 150, imdb and mnist 20).", lower_bound=1
)
PATIENCE = flags.DEFINE_integer("patience", None, "EarlyStopping patience on the validation data loss.", lower_bound=0)
BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Batch size (tutorial: 500).", lower_bound=1)
BUFFER_SIZE = flags.DEFINE_integer("buffer_size", None, "Shuffle buffer (tutorial: 10000).", lower_bound=1)
N_TRAIN = flags.DEFINE_integer("n_train", None, "Training examples (higgs: the rows after validation).", lower_bound=1)
N_VALIDATION = flags.DEFINE_integer("n_validation", None, "Validation examples (higgs: the first rows).", lower_bound=1)
LEARNING_RATE = flags.DEFINE_float(
    "learning_rate",
    None,
    "Initial learning rate of models without one of their own (preset 0.001: the tutorial's Adam, Chollet's RMSprop).",
    lower_bound=0,
)
DECAY_EPOCHS = flags.DEFINE_float(
    "decay_epochs", None, "InverseTimeDecay: epochs until the rate halves.", lower_bound=0
)
MAX_SEED = 2**32 - 1  # what numpy's and Keras' seeding accept
SEED = flags.DEFINE_integer(
    "seed", None, "Random seed for weights, dropout and shuffling.", lower_bound=0, upper_bound=MAX_SEED
)
SEEDS = flags.DEFINE_list(
    "seeds",
    [],
    "N: train every model N times, with seeds --seed, --seed+1, …; or a comma list of seeds. Runs go to "
    "<family>/<model>/seed_<k>, plus the aggregate run <family>/<model>/mean (mean and std). Empty: one run per model.",
)
flags.register_validator(
    "seeds",
    lambda v: all(x.strip().isdigit() and int(x) <= MAX_SEED for x in v) and (len(v) != 1 or int(v[0]) >= 1),
    message=f"must be a count N >= 1 or a comma list of seeds from 0 to {MAX_SEED}",
)
MC_SAMPLES = flags.DEFINE_integer(
    "mc_samples",
    None,
    "Monte-Carlo dropout passes per epoch for models that have them (regularizers' dropout models; default 20); 0: off.",
    lower_bound=0,
)
TENSORBOARD_URL = flags.DEFINE_string(
    "tensorboard_url",
    None,
    "Where your TensorBoard is served (e.g. http://localhost:6006/, http://host:7007/, a proxy's address): the "
    "note for trees over 40 runs then prints whole per-family links; default: the fragments to append.",
)
flags.register_validator(
    "tensorboard_url",
    lambda v: v is None or v.startswith(("http://", "https://")),
    message="give the address TensorBoard is served at, starting with http:// or https://",
)
QUIET = flags.DEFINE_bool("quiet", False, "No progress display (the end-of-run table is still printed).")
CALLBACKS = flags.DEFINE_list(
    "callbacks",
    ["all"],
    f"tbreg callbacks per run: all, none, or a comma list of {', '.join(CALLBACK_NAMES)}.",
)
HISTOGRAM_FREQ = flags.DEFINE_integer(
    "histogram_freq", 1, "Weight histograms, norms and sparsity every N epochs (0: off).", lower_bound=0
)
SPARSITY_THRESHOLD = flags.DEFINE_float(
    "sparsity_threshold", 1e-3, "weight_sparsity counts weights with |w| below this as zero.", lower_bound=0
)
TRAIN_EVAL_FREQ = flags.DEFINE_integer(
    "train_eval_freq", 1, "Evaluate training data in inference mode every N epochs (0: off).", lower_bound=0
)
DIAGNOSTICS_FREQ = flags.DEFINE_integer(
    "diagnostics_freq",
    5,
    "Weight diagnostics (Frobenius and spectral norm, stable rank, power-law alpha per kernel) every N epochs "
    "(0: off).",
    lower_bound=0,
)
SHARPNESS_EXAMPLES = flags.DEFINE_integer(
    "sharpness_examples",
    0,
    "Weight diagnostics: estimate sharpness (loss increase under weight noise) on this many training examples at "
    "each new best epoch (0: off; it costs 6 inference passes over them each time).",
    lower_bound=0,
)
TRAIN_EVAL_EXAMPLES = flags.DEFINE_integer(
    "train_eval_examples", 1000, "Training examples evaluated by train_eval.", lower_bound=1
)
flags.register_validator(
    "callbacks",
    lambda v: v in (["all"], ["none"]) or all(n in CALLBACK_NAMES for n in v),
    message=f"must be all, none, or a comma list of: {', '.join(CALLBACK_NAMES)}",
)


def seeds_from(values, seed: int) -> list[int] | None:
    """The seeds `--seeds` means: N -> seed … seed+N-1; a list -> itself; empty -> None (one run per model)."""
    if not values:
        return None
    if len(values) == 1:
        count = int(values[0])
        if seed + count - 1 > MAX_SEED:
            raise UserError(
                f"--seeds={count} from --seed={seed} goes past {MAX_SEED}, the largest seed; give fewer seeds or a "
                "smaller --seed"
            )
        return list(range(seed, seed + count))
    return [int(v) for v in values]


def models() -> list[str]:
    """--models; an empty `--models=` is a UserError (it would train the whole family)."""
    if flags.FLAGS["models"].present and not MODELS.value:
        raise UserError(
            "--models is empty; name the models to train (e.g. --models=tiny,small), or drop --models to train them all"
        )
    return MODELS.value


CHECKPOINT_SECS = flags.DEFINE_float(
    "checkpoint_secs",
    30,
    "Save the training state this often (0: every epoch; fast engine), so a run that is killed (SIGKILL, a lost "
    "machine) continues with --resume (a sweep: on retry or re-run) from its last save.",
    lower_bound=0,
)


def callback_options() -> dict:
    """Keyword arguments of `tbreg.callbacks.make` (but `train_data`) as the flags say."""
    from tbreg import callbacks as callbacks_lib

    return {
        "names": callbacks_lib.resolve_names(CALLBACKS.value),
        "histogram_freq": HISTOGRAM_FREQ.value,
        "sparsity_threshold": SPARSITY_THRESHOLD.value,
        "train_eval_freq": TRAIN_EVAL_FREQ.value,
        "train_eval_examples": TRAIN_EVAL_EXAMPLES.value,
        "diagnostics_freq": DIAGNOSTICS_FREQ.value,
        "sharpness_examples": SHARPNESS_EXAMPLES.value,
    }


DTYPE_POLICY = flags.DEFINE_enum(
    "dtype_policy",
    "float32",
    list(config_lib.DTYPE_POLICIES),
    "Keras dtype policy of the hidden layers: float32, or mixed_bfloat16 (bfloat16 math, float32 weights and logits; "
    "only on CPUs with bfloat16 instructions, e.g. avx512_bf16).",
)


EPOCHS_PER_CALL = flags.DEFINE_string(
    "epochs_per_call",
    "auto",
    "Fast engine: most epochs trained per compiled call (validation and early stopping inside it; the same results "
    "for any value). auto (or 0): blocks of about half a second; 1: one call per epoch. Callbacks that read the "
    "model at an epoch (weights, train_eval, mc_dropout, regularization with penalties) end a block there.",
)
flags.register_validator(
    "epochs_per_call",
    lambda v: v.strip().lower() == "auto" or (v.strip().isdigit()),
    message="must be auto or a whole number of epochs >= 0 (0: auto, 1: one compiled call per epoch)",
)


def epochs_per_call() -> int:
    """--epochs_per_call as TrainConfig takes it: 0 for auto."""
    value = EPOCHS_PER_CALL.value.strip().lower()
    return 0 if value == "auto" else int(value)


def make_config(engine: str = "fast") -> config_lib.TrainConfig:
    """The dataset's preset with the flags given on the command line."""
    return config_lib.for_dataset(
        DATASET.value,
        data_path=DATA_PATH.value,
        cache_dir=CACHE_DIR.value,
        max_epochs=MAX_EPOCHS.value,
        patience=PATIENCE.value,
        batch_size=BATCH_SIZE.value,
        buffer_size=BUFFER_SIZE.value,
        n_train=N_TRAIN.value,
        n_validation=N_VALIDATION.value,
        learning_rate=LEARNING_RATE.value,
        decay_epochs=DECAY_EPOCHS.value,
        seed=SEED.value,
        engine=engine,
        checkpoint_secs=CHECKPOINT_SECS.value,
        verbose=0 if QUIET.value else 1,
        dtype_policy=DTYPE_POLICY.value,
        epochs_per_call=epochs_per_call(),
    )


def values(*modules) -> dict:
    """{name: value} of the flags this module and `modules` define (for run.json)."""
    return {f.name: f.value for m in (sys.modules[__name__], *modules) for f in flags.FLAGS.get_key_flags_for_module(m)}
