"""Models as data: a `ModelSpec` per model (`tbreg.model_spec`) and one builder that turns a spec into a Keras model.

The output head follows the task: binary -> Dense(1) logits, multiclass -> Dense(C) logits.
Hidden layers are named hidden_1..hidden_n and the head `logits`, so callbacks' tags are stable.
Optimizers and learning-rate schedules are named in the spec and built by `make_optimizer`.
"""

import math

import keras

from tbreg import analysis
from tbreg.model_spec import ModelSpec  # the spec is data (no Keras); re-exported as tbreg.models.ModelSpec


def _initializer(spec: ModelSpec, position: str, seed: int | None):
    if spec.init_std is None:
        return keras.initializers.GlorotUniform(seed=seed)
    std = dict(zip(("first", "hidden", "output"), spec.init_std))[position]
    return keras.initializers.RandomNormal(mean=0.0, stddev=std, seed=seed)


def _regularizer(spec: ModelSpec, first: bool):
    """The hidden kernel's penalty: L2, L1 or both (L1L2); none on the first layer if not l2_first."""
    if first and not spec.l2_first:
        return None
    if spec.l1 and spec.l2:
        return keras.regularizers.L1L2(l1=spec.l1, l2=spec.l2)
    if spec.l1:
        return keras.regularizers.L1(spec.l1)
    return keras.regularizers.L2(spec.l2) if spec.l2 else None


def build_model(
    spec: ModelSpec, num_features: int, num_classes: int, seed: int | None = None, dtype_policy: str = "float32"
) -> keras.Model:
    """The Keras model for `spec` (uncompiled); `seed` makes the initial weights reproducible.

    `dtype_policy` (Keras' name, e.g. "mixed_bfloat16") applies to the hidden layers; the logits
    layer stays float32, so the loss and metrics are computed on float32 logits (Keras' advice for
    mixed precision).
    """
    dtype = keras.DTypePolicy(dtype_policy)
    layer_seed = (lambda i: None) if seed is None else (lambda i: seed * 1000 + i)
    stack = [keras.Input((num_features,), name="features")]
    for i, units in enumerate(spec.units):
        stack.append(
            keras.layers.Dense(
                units,
                activation=spec.activation,
                kernel_initializer=_initializer(spec, "first" if i == 0 else "hidden", layer_seed(i)),
                kernel_regularizer=_regularizer(spec, first=i == 0),
                kernel_constraint=keras.constraints.MaxNorm(spec.max_norm, axis=0) if spec.max_norm else None,
                name=f"hidden_{i + 1}",
                dtype=dtype,
            )
        )
        if spec.batch_norm:
            stack.append(keras.layers.BatchNormalization(name=f"batch_norm_{i + 1}", dtype=dtype))
        if spec.dropout:
            stack.append(
                keras.layers.Dropout(spec.dropout, seed=layer_seed(100 + i), name=f"dropout_{i + 1}", dtype=dtype)
            )
    if spec.dropout_before_output:
        stack.append(
            keras.layers.Dropout(spec.dropout_before_output, seed=layer_seed(200), name="dropout_out", dtype=dtype)
        )
    outputs = 1 if num_classes == 2 else num_classes
    stack.append(
        keras.layers.Dense(outputs, kernel_initializer=_initializer(spec, "output", layer_seed(300)), name="logits")
    )
    return keras.Sequential(stack, name=spec.name)


def data_loss_for_classes(num_classes: int) -> str:
    """The metric that is the data loss (the loss without the penalty) for this task: tbreg's models
    have one logit for two classes, integer labels otherwise."""
    return analysis.data_loss_for_outputs(1 if num_classes == 2 else num_classes)


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


@keras.saving.register_keras_serializable("tbreg")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Smith's 1cycle as in Géron's `OneCycleScheduler`, per step: linearly from `start_rate` up to
    `max_rate` over the first half of the cycle, back down to `start_rate` over the second half,
    then down to `last_rate` over the last `last_steps` steps, and `last_rate` after that.

    Géron's defaults: `start_rate = max_rate / 10`, `last_steps = total_steps // 10 + 1`,
    `last_rate = start_rate / 1000`.
    """

    def __init__(self, max_rate, total_steps, start_rate=None, last_steps=None, last_rate=None):
        self.max_rate = float(max_rate)
        self.total_steps = int(total_steps)
        self.start_rate = float(start_rate if start_rate is not None else max_rate / 10)
        self.last_steps = int(last_steps if last_steps is not None else self.total_steps // 10 + 1)
        self.last_rate = float(last_rate if last_rate is not None else self.start_rate / 1000)
        self.half = max(1, (self.total_steps - self.last_steps) // 2)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        half, lo, hi = float(self.half), self.start_rate, self.max_rate
        tail = float(max(1, self.total_steps - 2 * self.half))
        up = lo + (hi - lo) * step / half
        down = hi - (hi - lo) * (step - half) / half
        last = lo - (lo - self.last_rate) * keras.ops.minimum((step - 2 * half) / tail, 1.0)
        return keras.ops.where(step < half, up, keras.ops.where(step < 2 * half, down, last))

    def get_config(self):
        return {
            "max_rate": self.max_rate,
            "total_steps": self.total_steps,
            "start_rate": self.start_rate,
            "last_steps": self.last_steps,
            "last_rate": self.last_rate,
        }


# Learning-rate schedules a spec can name. Each gets the initial rate, the tutorial's decay_steps,
# steps per epoch and the number of epochs of the run.
EXPONENTIAL_EPOCHS_FRACTION = 0.8  # Géron: the rate drops 10x every s = 20 epochs of a 25-epoch run
ONE_CYCLE_PEAK = 10.0  # 1cycle peaks at 10x the initial rate and starts there / 10 (Géron's start_rate)


def make_schedule(name: str, learning_rate: float, decay_steps: float, steps_per_epoch: int, epochs: int):
    """The learning rate (a float or a LearningRateSchedule) of schedule `name`."""
    if name == "constant":
        return learning_rate
    if name == "inverse_time":  # the tutorial's: halves after decay_steps, a third after twice that, ...
        return keras.optimizers.schedules.InverseTimeDecay(learning_rate, decay_steps=decay_steps, decay_rate=1)
    if name == "exponential":  # Géron: lr0 * 0.1 ** (epoch / s)
        s = max(1, round(EXPONENTIAL_EPOCHS_FRACTION * epochs * steps_per_epoch))
        return keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps=s, decay_rate=0.1)
    if name == "one_cycle":  # Géron's 1cycle over the whole run
        return OneCycle(ONE_CYCLE_PEAK * learning_rate, total_steps=epochs * steps_per_epoch, start_rate=learning_rate)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


SCHEDULES = ("inverse_time", "constant", "exponential", "one_cycle")
OPTIMIZERS = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop, "sgd": keras.optimizers.SGD}


def make_optimizer(
    spec: ModelSpec, learning_rate: float, decay_steps: int, steps_per_epoch: int = 1, epochs: int = 1
) -> keras.optimizers.Optimizer:
    """The spec's optimizer and schedule: by default the tutorial's Adam with InverseTimeDecay.

    `learning_rate` is used unless the spec has its own; `decay_steps` is the tutorial's
    InverseTimeDecay constant; `steps_per_epoch` and `epochs` size the exponential and 1cycle
    schedules to the run. `paper_sgd` is Baldi et al.'s SGD with momentum and their own decay.
    """
    if spec.optimizer == "paper_sgd":
        return keras.optimizers.SGD(PaperSchedule(), momentum=0.9)
    if spec.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {spec.optimizer!r} in model spec {spec.name!r}")
    rate = spec.learning_rate if spec.learning_rate is not None else learning_rate
    return OPTIMIZERS[spec.optimizer](make_schedule(spec.schedule, rate, decay_steps, steps_per_epoch, epochs))
