"""A small log tree with known curves for the views' verdicts, markers and seed bands (no training).

`demo/` holds: the baseline `tiny` (a seed group copied from sizes: its records name family
sizes) that overfits from epoch 25; `l2`, 3 seeds that turn near epoch 40, one of them early
stopped at epoch 45 (n drops from 3 to 2 there); `dropout`, one run with an inference-mode
training curve that is still improving.
"""

import numpy as np

TAG = "epoch_binary_crossentropy"


def turning(turn, epochs, low, rise=0.02, start=1.0, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    e = np.arange(epochs)
    values = np.where(e <= turn, start - (start - low) * e / turn, low + rise * (e - turn))
    return values + noise * rng.normal(size=epochs)


def write_run(run_dir, family, model, splits: dict, status="completed", hparams=None, seed=None):
    import tensorflow as tf

    from tbreg import analysis, logtree

    for split, values in splits.items():
        writer = tf.summary.create_file_writer(str(run_dir / split))
        with writer.as_default():
            for step, v in enumerate(values):
                tf.summary.scalar(TAG, float(v), step=step)
                tf.summary.scalar("epoch_loss", float(v) + (0.05 if split == "train" else 0.0), step=step)
        writer.close()
    best_epoch, best_value = analysis.lowest(dict(enumerate(map(float, splits["validation"]))))
    epochs = len(splits["validation"])
    logtree.write_record(
        str(run_dir),
        {
            "family": family,
            "model": model,
            "status": status,
            "epochs": epochs,
            "stopped_epoch": epochs - 1,
            "best_epoch": best_epoch,
            "best_value": best_value,
            "monitor": "val_binary_crossentropy",
            "params": 1000,
            "hparams": {"model": model, "dropout": 0.0, "l2": 0.0, **(hparams or {})},
            "seed": seed,
        },
    )


def write_demo(root):
    """Writes `root/demo` (see the module docstring); returns its path."""
    from tbreg import aggregate

    family = root / "demo"
    for k, turn in enumerate((24, 25, 26)):
        val = turning(turn, 60, 0.50, noise=0.004, seed=k)
        train = turning(turn, 60, 0.45, rise=-0.005, noise=0.002, seed=10 + k)
        write_run(family / "tiny" / f"seed_{k}", "sizes", "tiny", {"train": train, "validation": val}, seed=k)
    aggregate.write_mean(str(family / "tiny"))
    for k, (turn, epochs) in enumerate(((40, 60), (38, 60), (41, 46))):
        val = turning(turn, epochs, 0.42, rise=0.01, noise=0.004, seed=20 + k)
        train = turning(turn, epochs, 0.40, rise=-0.002, noise=0.002, seed=30 + k)
        status = "early_stopped" if epochs < 60 else "completed"
        write_run(
            family / "l2" / f"seed_{k}", "demo", "l2", {"train": train, "validation": val}, status, {"l2": 1e-3}, seed=k
        )
    aggregate.write_mean(str(family / "l2"))
    e = np.arange(30)
    val = 0.45 + 0.5 / (1 + 0.2 * e)
    write_run(
        family / "dropout",
        "demo",
        "dropout",
        {"train": val + 0.08, "validation": val, "train_eval": val - 0.05},
        hparams={"dropout": 0.5},
    )
    return family
