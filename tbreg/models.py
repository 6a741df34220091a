"""Models as data: a `ModelSpec` per model and one builder that turns a spec into a Keras model.

The output head follows the task: binary -> Dense(1) logits, multiclass -> Dense(C) logits.
Hidden layers are named hidden_1..hidden_n and the head `logits`, so callbacks' tags are stable.
"""

import dataclasses
import math

import keras


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One model of a family. Regularizers apply to hidden layers' kernels only."""

    name: str
    units: tuple[int, ...]
    activation: str = "elu"
    l2: float = 0.0  # L2 factor on hidden kernels
    l2_first: bool = True  # False: the first hidden layer's kernel is not regularized (paper)
    dropout: float = 0.0  # Dropout rate after every hidden layer
    dropout_before_output: float = 0.0  # one Dropout before the head (paper)
    init_std: tuple[float, float, float] | None = None  # RandomNormal std: first, hidden, output
    optimizer: str = "adam"  # "adam": the tutorial's Adam + InverseTimeDecay; "paper_sgd"

    def hparams(self) -> dict:
        """Flat description for run.json and HParams."""
        return {
            "model": self.name,
            "units": ",".join(map(str, self.units)),
            "depth": len(self.units),
            "activation": self.activation,
            "l2": self.l2,
            "dropout": max(self.dropout, self.dropout_before_output),
            "optimizer": self.optimizer,
        }


def _initializer(spec: ModelSpec, position: str, seed: int | None):
    if spec.init_std is None:
        return keras.initializers.GlorotUniform(seed=seed)
    std = dict(zip(("first", "hidden", "output"), spec.init_std))[position]
    return keras.initializers.RandomNormal(mean=0.0, stddev=std, seed=seed)


def build_model(spec: ModelSpec, num_features: int, num_classes: int, seed: int | None = None) -> keras.Model:
    """The Keras model for `spec` (uncompiled); `seed` makes the initial weights reproducible."""
    layer_seed = (lambda i: None) if seed is None else (lambda i: seed * 1000 + i)
    stack = [keras.Input((num_features,), name="features")]
    for i, units in enumerate(spec.units):
        regularize = spec.l2 and (i > 0 or spec.l2_first)
        stack.append(
            keras.layers.Dense(
                units,
                activation=spec.activation,
                kernel_initializer=_initializer(spec, "first" if i == 0 else "hidden", layer_seed(i)),
                kernel_regularizer=keras.regularizers.L2(spec.l2) if regularize else None,
                name=f"hidden_{i + 1}",
            )
        )
        if spec.dropout:
            stack.append(keras.layers.Dropout(spec.dropout, seed=layer_seed(100 + i), name=f"dropout_{i + 1}"))
    if spec.dropout_before_output:
        stack.append(keras.layers.Dropout(spec.dropout_before_output, seed=layer_seed(200), name="dropout_out"))
    outputs = 1 if num_classes == 2 else num_classes
    stack.append(
        keras.layers.Dense(outputs, kernel_initializer=_initializer(spec, "output", layer_seed(300)), name="logits")
    )
    return keras.Sequential(stack, name=spec.name)


def data_loss_name(num_classes: int) -> str:
    """The metric that is the data loss (the loss without the penalty) for this task."""
    return "binary_crossentropy" if num_classes == 2 else "sparse_categorical_crossentropy"


def loss_and_metrics(num_classes: int):
    """(loss, metrics) on logits. Accuracy thresholds logits at 0, i.e. probabilities at 0.5."""
    if num_classes == 2:
        return keras.losses.BinaryCrossentropy(from_logits=True), [
            keras.metrics.BinaryCrossentropy(from_logits=True, name="binary_crossentropy"),
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
        ]
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True), [
        keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="sparse_categorical_crossentropy"),
        keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
    ]


@keras.saving.register_keras_serializable("tbreg")
class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Baldi et al. 2014: lr = 0.05 / 1.0000002**step, clipped to [1e-6, 0.05]."""

    def __init__(self, initial=0.05, factor=1.0000002, minimum=1e-6):
        self.initial, self.factor, self.minimum = initial, factor, minimum

    def __call__(self, step):
        # factor**-step as exp(-step * ln factor): 1.0000002 itself does not survive float32.
        step = keras.ops.cast(step, "float32")
        rate = self.initial * keras.ops.exp(-step * math.log(self.factor))
        return keras.ops.clip(rate, self.minimum, self.initial)

    def get_config(self):
        return {"initial": self.initial, "factor": self.factor, "minimum": self.minimum}


def make_optimizer(spec: ModelSpec, learning_rate: float, decay_steps: int) -> keras.optimizers.Optimizer:
    """The spec's optimizer: the tutorial's Adam with InverseTimeDecay, or the paper's SGD."""
    if spec.optimizer == "adam":
        schedule = keras.optimizers.schedules.InverseTimeDecay(learning_rate, decay_steps=decay_steps, decay_rate=1)
        return keras.optimizers.Adam(schedule)
    if spec.optimizer == "paper_sgd":
        return keras.optimizers.SGD(PaperSchedule(), momentum=0.9)
    raise ValueError(f"unknown optimizer {spec.optimizer!r} in model spec {spec.name!r}")
