"""Choices that the flags offer and the library checks, in one place without TensorFlow (so that
`--help` and `--list` answer without importing it)."""

# What `--if_exists` (and logtree.claim_run_dir's `if_exists`) may say about a run dir that holds a run.
IF_EXISTS = ("new", "error", "overwrite")

# tbreg.callbacks.make's callbacks, by the names `--callbacks` takes.
CALLBACK_NAMES = ("weights", "regularization", "gap", "learning_rate", "train_eval", "diagnostics")

# The fields of a run's config that are hyperparameters too (the rest is plumbing): the HParams
# tab's columns (plugin.summary) and the Overfitting tab's (analysis.run_hparams) both take them.
CONFIG_HPARAMS = (
    "learning_rate",
    "batch_size",
    "patience",
    "max_epochs",
    "decay_epochs",
    "n_train",
    "seed",
    "dtype_policy",
)
