"""A faithful Keras 3 port of the TensorFlow tutorial "Overfit and underfit" — the reference.

Kept as close to the tutorial as Keras 3 allows: CsvDataset over the gzip, pack_row on batches of
10,000, take/skip/cache, shuffle(BUFFER).repeat().batch(BATCH), Adam with InverseTimeDecay,
EarlyStopping on val_binary_crossentropy, the TensorBoard callback. Two changes Keras 3 needs:
labels shaped (N, 1) for the BinaryCrossentropy metric, and keras.Input instead of input_shape=.
Used only by the benchmarks.
"""

import keras
import tensorflow as tf

FEATURES = 28


def pack_row(*row):
    label = tf.reshape(row[0], (-1, 1))  # Keras 3: the BCE metric needs (N, 1) labels
    features = tf.stack(row[1:], 1)
    return features, label


def datasets(gz_path, n_validation=1_000, n_train=10_000, batch_size=500, buffer_size=10_000):
    ds = tf.data.experimental.CsvDataset(gz_path, [float()] * (FEATURES + 1), compression_type="GZIP")
    packed_ds = ds.batch(10_000).map(pack_row).unbatch()
    validate_ds = packed_ds.take(n_validation).cache()
    train_ds = packed_ds.skip(n_validation).take(n_train).cache()
    return validate_ds.batch(batch_size), train_ds.shuffle(buffer_size).repeat().batch(batch_size)


def read_all(gz_path):
    """The tutorial's pipeline read to the end (for the CSV benchmark): number of rows."""
    ds = tf.data.experimental.CsvDataset(gz_path, [float()] * (FEATURES + 1), compression_type="GZIP")
    rows = 0
    for features, _ in ds.batch(10_000).map(pack_row):
        rows += int(features.shape[0])
    return rows


def _dense_stack(units, activation="elu", l2=0.0, dropout=0.0):
    reg = keras.regularizers.l2(l2) if l2 else None
    stack = [keras.Input((FEATURES,))]
    for u in units:
        stack.append(keras.layers.Dense(u, activation=activation, kernel_regularizer=reg))
        if dropout:
            stack.append(keras.layers.Dropout(dropout))
    stack.append(keras.layers.Dense(1))
    return keras.Sequential(stack)


MODELS = {
    "tiny": lambda: _dense_stack([16]),
    "small": lambda: _dense_stack([16, 16]),
    "medium": lambda: _dense_stack([64, 64, 64]),
    "large": lambda: _dense_stack([512] * 4),
    "l2": lambda: _dense_stack([512] * 4, l2=0.001),
    "dropout": lambda: _dense_stack([512] * 4, dropout=0.5),
    "combined": lambda: _dense_stack([512] * 4, l2=0.0001, dropout=0.5),
}


def compile_and_fit(
    model, train_ds, validate_ds, logdir, steps_per_epoch, max_epochs, patience=200, extra_callbacks=()
):
    lr_schedule = keras.optimizers.schedules.InverseTimeDecay(
        0.001, decay_steps=steps_per_epoch * 1000, decay_rate=1, staircase=False
    )
    model.compile(
        optimizer=keras.optimizers.Adam(lr_schedule),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryCrossentropy(from_logits=True, name="binary_crossentropy"), "accuracy"],
    )
    return model.fit(
        train_ds,
        steps_per_epoch=steps_per_epoch,
        epochs=max_epochs,
        validation_data=validate_ds,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_binary_crossentropy", patience=patience),
            keras.callbacks.TensorBoard(logdir),
            *extra_callbacks,  # the benchmark's epoch timer
        ],
        verbose=0,
    )
