"""Summaries written from Python (tbreg.events, EpochTensorBoard) are the events TensorFlow writes."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import synthetic_data

from tbreg import config, engine, events, logtree, models, training
from tbreg.callbacks import EpochTensorBoard


def _events(event_dir: str) -> list[bytes]:
    """Every summary event of the dir's event files (file order, then record order), wall time cleared."""
    out = []
    for path in sorted(glob.glob(os.path.join(event_dir, "*tfevents*"))):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            if event.HasField("summary"):
                event.wall_time = 0
                out.append(event.SerializeToString())
    return out


def _keys(blobs):
    keys = []
    for blob in blobs:
        event = tf.compat.v1.Event.FromString(blob)
        keys += [(v.tag, event.step) for v in event.summary.value]
    return keys


# Not -0.0: TensorFlow caches the eager constants of Python scalars by value, and -0.0 == 0.0, so
# tf.summary.scalar(-0.0) writes +0.0 or -0.0 depending on what the process converted before.
VALUES = [0.6931471805599453, 1e-3, np.float32(0.25), np.float64(1 / 3), 7, float("nan"), float("inf"), -2.5e-38]


def test_event_writer_writes_the_bytes_tf_summary_writes(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path / "tf"))
    with writer.as_default():
        for i, value in enumerate(VALUES):
            tf.summary.scalar(f"s{i}", value, step=i)
            tf.summary.scalar(f"t{i}", tf.constant(value, tf.float64), step=2**40 + i)
    buckets = np.array([[0.0, 0.5, 3.0], [0.5, 1.0, 1.0]])
    from tensorboard.plugins.histogram import metadata as histogram_metadata

    with writer.as_default():
        tf.summary.write("h", buckets, step=4, metadata=histogram_metadata.create_summary_metadata(None, None))
    writer.close()
    ours = events.EventWriter(str(tmp_path / "ours"))
    for i, value in enumerate(VALUES):
        ours.scalars({f"s{i}": value}, i)
        ours.scalars({f"t{i}": tf.constant(value, tf.float64)}, 2**40 + i)
    ours.histogram("h", buckets, 4)
    ours.close()
    expected = _events(str(tmp_path / "tf"))
    assert len(expected) == 2 * len(VALUES) + 1
    assert _events(str(tmp_path / "ours")) == expected


def _fit(fit, tmp_path, epochs=4):
    """Keras' TensorBoard and EpochTensorBoard in the same training: they see the same logs."""
    data = synthetic_data(n_train=300, n_val=100, seed=3)
    cfg = config.TrainConfig(dataset="synthetic", n_train=300, n_validation=100, batch_size=64, max_epochs=epochs)
    keras.utils.set_random_seed(2)
    model = training.compile_model(models.ModelSpec("m", (8, 8), l2=1e-3, dropout=0.2), data, cfg)
    ref, ours = str(tmp_path / "keras"), str(tmp_path / "ours")
    callbacks = [keras.callbacks.TensorBoard(ref, write_graph=False), EpochTensorBoard(ours)]
    fit(model, data, cfg, callbacks)
    return ref, ours


@pytest.mark.parametrize("engine_name", ["fast", "keras"])
def test_epoch_tensorboard_writes_what_keras_tensorboard_writes(tmp_path, engine_name):
    def fit(model, data, cfg, callbacks):
        if engine_name == "fast":
            engine.fast_fit(
                model,
                data.x_train,
                data.y_train,
                (data.x_val, data.y_val),
                cfg.max_epochs,
                cfg.batch_size,
                callbacks,
                seed=1,
            )
        else:
            train, val = training.make_datasets(data, cfg)
            model.fit(train, validation_data=val, epochs=cfg.max_epochs, callbacks=callbacks, verbose=0)

    ref, ours = _fit(fit, tmp_path)
    for split in ("train", "validation"):
        expected = _events(os.path.join(ref, split))
        assert len(expected) >= 4 * 3, split
        assert _events(os.path.join(ours, split)) == expected, split
    keys = set(_keys(_events(os.path.join(ours, "train")))) | set(_keys(_events(os.path.join(ours, "validation"))))
    assert ("epoch_learning_rate", 3) in keys and ("epoch_binary_crossentropy", 0) in keys
    assert ("evaluation_binary_crossentropy_vs_iterations", 4 * 5) in keys  # 300 rows / 64: 5 steps an epoch
    assert {os.path.basename(p).endswith(events.FILE_SUFFIX) for p in glob.glob(os.path.join(ours, "*", "*"))} == {True}


def test_fast_engine_run_has_the_keras_engine_runs_tags_and_steps(tmp_path):
    """Full batch: both engines do the same math, so every (dir, tag, step) and value agrees."""
    from tbreg import callbacks, reader

    data = synthetic_data(n_train=256, n_val=128, seed=4)
    trees = {}
    for name in ("fast", "keras"):
        cfg = config.TrainConfig(
            dataset="synthetic", n_train=256, n_validation=128, batch_size=256, max_epochs=5, verbose=0, engine=name
        )
        run_dir = logtree.claim_run_dir(str(tmp_path), name, "m")
        extra = callbacks.make(run_dir, callbacks.NAMES, train_data=(data.x_train, data.y_train))
        training.train_run(models.ModelSpec("m", (16,), l2=1e-3), data, cfg, run_dir, name, extra)
        trees[name] = {
            (split, tag): [(p.step, p.value) for p in points]
            for split, tags in reader.run_scalars(run_dir).items()
            for tag, points in tags.items()
        }
    assert trees["fast"].keys() == trees["keras"].keys()
    for key, points in trees["keras"].items():
        assert [s for s, _ in trees["fast"][key]] == [s for s, _ in points], key
        np.testing.assert_allclose(
            [v for _, v in trees["fast"][key]], [v for _, v in points], rtol=1e-3, atol=1e-6, err_msg=str(key)
        )
