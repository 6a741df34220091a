"""N seeds of one model in one compiled call per epoch: the models stacked on a leading model axis.

`train_seeds(spec, data, configs, run_dirs, …)` trains the seeds of one model spec (`configs[k].seed`)
as N models whose kernels have shape (N, in, out) and are applied with batched matmuls, and writes
each seed's run dir exactly as `tbreg.training.train_run` would: the epoch scalars of
`EpochTensorBoard` (same tags and steps, via tbreg.events.EventWriter) and run.json through
`logtree.write_record` (status, epochs, best epoch and value, params of one model), plus
`config.stacked` = N so a reader knows how it was trained. What each model gets:

- initial weights: those of the seed's own Keras model (`training.compile_model` after
  `keras.utils.set_random_seed(seed)`, as train_run does), copied into its slice of the stack;
- data order: its own reshuffle every epoch, from `tf.random.Generator.from_seed(seed)` as the fast
  engine draws it (the same batches as the seed trained alone);
- dropout: masks independent per model and per step, drawn from one generator of the stack (seeded
  from the seeds): not the masks the seed's Keras Dropout layers would draw;
- penalty: its own L1/L2 on its own kernels; max-norm on its own kernels;
- optimizer: Keras' `update_step` of Adam, RMSprop or SGD (with the paper's momentum) as TensorFlow's
  fused kernels with the same formulas (`ResourceApplyAdam`, `…RMSProp`, `…KerasMomentum`), per parameter — so one optimizer over the stack is N independent ones — with the same
  learning-rate schedule (`models.make_schedule`, or the paper's) on one shared step counter: every
  model that still trains has taken the same steps;
- early stopping: a Keras `EarlyStopping` per seed (patience, min_delta as train_run's); a model
  whose patience ran out, or whose loss is not finite, stops logging; the call goes on while any
  model trains, and at the end the stopped model's weights are set back to those of its last epoch
  (the stack still computes it — one fused optimizer kernel per variable cannot skip a model — but
  what it computed after its stop is discarded). As in train_run, the weights are not restored to
  the best epoch (train_run's EarlyStopping has restore_best_weights off, and no weights are
  written), so nothing is restored here either.

Without dropout the stacked models follow the seeds' own trainings to float32 rounding (the order
of additions in a batched matmul differs); with dropout they match in distribution (seed noise).

`unstackable(spec, config, callbacks)` says why a spec cannot be stacked (None if it can): the keras
engine, a dtype policy other than float32, an optimizer not in STACKABLE_OPTIMIZERS, batch norm, MC dropout, or
any tbreg callback (weight histograms, regularization, gap, train_eval, learning rate need a Keras
model per seed every epoch). Those seeds train one by one as before.
"""

import dataclasses
import math
import os
import sys

import keras

from tbreg import logtree, models, progress, training
from tbreg._quiet import tensorflow as tf
from tbreg.errors import first_line
from tbreg.events import EventWriter
from tbreg.status import Status

# models.make_optimizer's optimizers whose step tbreg.stacked writes out (Keras' defaults: RMSprop
# without momentum, not centered; SGD plain or with the paper's momentum).
STACKABLE_OPTIMIZERS = ("adam", "rmsprop", "sgd", "paper_sgd")


def unstackable(spec, config, callbacks=()) -> str | None:
    """Why the seeds of `spec` must train one by one under `config` (None: they can be stacked)."""
    if config.engine != "fast":
        return "--engine=keras"
    if config.dtype_policy != "float32":
        return f"--dtype_policy={config.dtype_policy}"
    if spec.optimizer not in STACKABLE_OPTIMIZERS:
        return f"optimizer {spec.optimizer}"
    if spec.batch_norm:
        return "batch norm"
    if spec.mc_samples:
        return "MC dropout"
    if callbacks:
        return "tbreg callbacks (--callbacks=none stacks)"
    return None


@dataclasses.dataclass
class _Layer:
    kernel: tf.Variable  # (N, in, out)
    bias: tf.Variable  # (N, 1, out): broadcast over the batch without a slice per step
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.0  # after this layer's activation (hidden layers)


class _Stack:
    """The stacked variables, Adam's slots and the compiled whole-epoch function."""

    def __init__(self, spec, keras_models, config, data, seeds):
        self.n = len(keras_models)
        dense = [[l for l in m.layers if isinstance(l, keras.layers.Dense)] for m in keras_models]
        self.layers = []
        for i in range(len(dense[0])):
            kernel = tf.Variable(tf.stack([keras.ops.convert_to_numpy(d[i].kernel) for d in dense]))
            bias = tf.Variable(tf.stack([keras.ops.convert_to_numpy(d[i].bias)[None] for d in dense]))
            hidden = i < len(spec.units)
            regularized = hidden and (i > 0 or spec.l2_first)
            self.layers.append(
                _Layer(
                    kernel,
                    bias,
                    spec.l1 if regularized else 0.0,
                    spec.l2 if regularized else 0.0,
                    spec.dropout if hidden else 0.0,
                )
            )
        self.activation = keras.activations.get(spec.activation)
        self.dropout_out = spec.dropout_before_output
        self.max_norm = spec.max_norm
        self.binary = data.num_classes == 2
        steps = config.steps_per_epoch()
        self.optimizer = keras_models[0].optimizer  # its kind and constants (models.make_optimizer's)
        if spec.optimizer == "paper_sgd":
            self.schedule = models.PaperSchedule()
        else:
            self.schedule = models.make_schedule(
                spec.schedule, config.learning_rate, steps * config.decay_epochs, steps, config.max_epochs
            )
        self.regularized = any(layer.l1 or layer.l2 for layer in self.layers)
        self.variables = [v for layer in self.layers for v in (layer.kernel, layer.bias)]
        self.m = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
        self.iterations = tf.Variable(0, dtype=tf.int64)
        self.order_generators = [tf.random.Generator.from_seed(s) for s in seeds]  # the fast engine's shuffles
        self.dropout_generator = tf.random.Generator.from_seed(hash(tuple(seeds)) % (2**63))
        self.batch_size = tf.constant(config.batch_size, tf.int32)
        y_dtype = tf.float32 if self.binary else tf.int32
        self.tensors = (
            tf.convert_to_tensor(data.x_train, tf.float32),
            tf.cast(tf.reshape(data.y_train, [-1]), y_dtype),
            tf.convert_to_tensor(data.x_val, tf.float32),
            tf.cast(tf.reshape(data.y_val, [-1]), y_dtype),
        )
        self.run = tf.function(self._epoch, autograph=True)

    def _learning_rate(self):
        rate = self.schedule(self.iterations) if callable(self.schedule) else self.schedule
        return tf.cast(rate, tf.float32)

    def _dropout(self, h, rate):
        keep = self.dropout_generator.uniform(tf.shape(h)) >= rate
        return h * tf.cast(keep, h.dtype) / (1.0 - rate)

    def _forward(self, x, training: bool):
        """Logits (N, b, outputs) of every model; `x` is (N, b, f) or (1, b, f) (the same for all)."""
        h = x
        for layer in self.layers[:-1]:
            h = self.activation(tf.matmul(h, layer.kernel) + layer.bias)
            if training and layer.dropout:
                h = self._dropout(h, layer.dropout)
        if training and self.dropout_out:
            h = self._dropout(h, self.dropout_out)
        out = self.layers[-1]
        return tf.matmul(h, out.kernel) + out.bias

    def _per_example(self, y, logits):
        """(data loss, correct) per model and example, (N, b) each, as Keras' loss and accuracy."""
        if self.binary:
            logits = logits[..., 0]
            labels = tf.broadcast_to(y, tf.shape(logits))
            loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
            return loss, tf.cast(tf.equal(labels, tf.cast(logits > 0.0, tf.float32)), tf.float32)
        labels = tf.broadcast_to(y, tf.shape(logits)[:-1])
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        predicted = tf.cast(tf.argmax(logits, axis=-1), labels.dtype)
        return loss, tf.cast(tf.equal(labels, predicted), tf.float32)

    def _penalty(self):
        """Each model's kernel regularization, (N,): Keras' L1/L2 summed over the layers."""
        total = tf.zeros([self.n])
        for layer in self.layers:
            if layer.l1:
                total += layer.l1 * tf.reduce_sum(tf.abs(layer.kernel), axis=[1, 2])
            if layer.l2:
                total += layer.l2 * tf.reduce_sum(tf.square(layer.kernel), axis=[1, 2])
        return total

    def _update(self, grads):
        """The seeds' optimizer step — Keras' `update_step` of Adam, RMSprop or SGD, as TensorFlow's
        fused kernels that compute the same formulas — on every stacked variable; then max-norm and
        the step count."""
        rate = self._learning_rate()
        opt = self.optimizer
        if isinstance(opt, keras.optimizers.Adam):
            step = tf.cast(self.iterations + 1, tf.float32)
            beta_1, beta_2 = tf.constant(opt.beta_1, tf.float32), tf.constant(opt.beta_2, tf.float32)
            beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
        for var, g, m, v in zip(self.variables, grads, self.m, self.v):
            if isinstance(opt, keras.optimizers.Adam):
                # m += (g - m)(1 - β1); v += (g² - v)(1 - β2); var -= lr √(1 - β2^t) / (1 - β1^t) · m / (√v + ε)
                tf.raw_ops.ResourceApplyAdam(
                    var=var.handle,
                    m=m.handle,
                    v=v.handle,
                    beta1_power=beta_1_power,
                    beta2_power=beta_2_power,
                    lr=rate,
                    beta1=beta_1,
                    beta2=beta_2,
                    epsilon=tf.constant(opt.epsilon, tf.float32),
                    grad=g,
                )
            elif isinstance(opt, keras.optimizers.RMSprop):  # v = ρv + (1 - ρ)g²; var -= lr g / √(v + ε)
                tf.raw_ops.ResourceApplyRMSProp(
                    var=var.handle,
                    ms=v.handle,
                    mom=m.handle,
                    lr=rate,
                    rho=tf.constant(opt.rho, tf.float32),
                    momentum=tf.constant(0.0),
                    epsilon=tf.constant(opt.epsilon, tf.float32),
                    grad=g,
                )
            elif opt.momentum:  # SGD with the paper's momentum: m = μm - lr g; var += m
                tf.raw_ops.ResourceApplyKerasMomentum(
                    var=var.handle, accum=m.handle, lr=rate, grad=g, momentum=tf.constant(opt.momentum, tf.float32)
                )
            else:
                var.assign_sub(g * rate)
        if self.max_norm:  # Keras' MaxNorm(axis=0) on each model's hidden kernels, after the update
            for layer in self.layers[:-1]:
                w = layer.kernel
                norms = tf.sqrt(tf.reduce_sum(tf.square(w), axis=1, keepdims=True))
                desired = tf.clip_by_value(norms, 0, self.max_norm)
                w.assign(w * (desired / (keras.backend.epsilon() + norms)))
        self.iterations.assign_add(1)

    def _epoch(self, x, y, x_val, y_val):
        n, bs = tf.shape(x)[0], self.batch_size
        orders = tf.argsort(tf.stack([g.uniform([n]) for g in self.order_generators]), axis=-1)  # (N, n)
        sums = tf.zeros([4, self.n])  # loss × b, data loss, correct, count
        for i in tf.range((n + bs - 1) // bs):
            idx = orders[:, i * bs : tf.minimum((i + 1) * bs, n)]
            b = tf.cast(tf.shape(idx)[1], tf.float32)
            with tf.GradientTape() as tape:
                logits = self._forward(tf.gather(x, idx), training=True)
                data_loss, correct = self._per_example(tf.gather(y, idx), logits)
                loss = tf.reduce_mean(data_loss, axis=1)
                if self.regularized:
                    loss += self._penalty()
                total = tf.reduce_sum(loss)
            self._update(tape.gradient(total, self.variables))
            counts = tf.fill([self.n], b)
            sums += tf.stack([loss * b, tf.reduce_sum(data_loss, 1), tf.reduce_sum(correct, 1), counts])
        penalty = self._penalty()
        n_val = tf.shape(x_val)[0]
        val_sums = tf.zeros([4, self.n])
        for j in tf.range((n_val + bs - 1) // bs):
            end = tf.minimum((j + 1) * bs, n_val)
            logits = self._forward(x_val[None, j * bs : end], training=False)
            data_loss, correct = self._per_example(y_val[j * bs : end], logits)
            b = tf.cast(end - j * bs, tf.float32)
            loss = tf.reduce_mean(data_loss, axis=1) + penalty
            counts = tf.fill([self.n], b)
            val_sums += tf.stack([loss * b, tf.reduce_sum(data_loss, 1), tf.reduce_sum(correct, 1), counts])
        return sums[:3] / sums[3], val_sums[:3] / val_sums[3], self._learning_rate(), self.iterations

    def __call__(self):
        """One epoch of every model: ([logs per model], learning rate after it, optimizer steps)."""
        train, val, rate, iterations = (t.numpy() for t in self.run(*self.tensors))
        return train, val, float(rate), int(iterations)


class _Model:
    """What EarlyStopping sets on the model it watches."""

    stop_training = False


class _Seed:
    """One seed's run: its writers, history, early stopping and record."""

    def __init__(self, spec, data, config, run_dir, family, extra, keras_model, stacked: int):
        self.run_dir, self.config = run_dir, config
        self.record = training._start_record(spec, data, config, keras_model, family, extra, None, None)
        self.record["config"]["stacked"] = stacked
        self.result = training.RunResult(family, spec.name, run_dir, Status.RUNNING, keras_model.count_params())
        self.early_stopping = keras.callbacks.EarlyStopping(
            monitor=self.record["monitor"], patience=config.patience, min_delta=config.min_delta, mode="min"
        )
        self.watched = _Model()
        self.early_stopping.set_model(self.watched)
        self.history = keras.callbacks.History()
        self.history.history = {}
        self.train_writer = EventWriter(os.path.join(run_dir, "train"))  # EpochTensorBoard's dirs
        self.val_writer = None
        self.val_dir = os.path.join(run_dir, "validation")
        self.training = True
        self.progress = progress.callbacks(run_dir, config.max_epochs, self.record["monitor"]) if config.verbose else []

    def log(self, epoch: int, logs: dict, rate: float, iterations: int) -> None:
        """What EpochTensorBoard, History, EarlyStopping and the engine's NaN check do at an epoch's end."""
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if self.val_writer is None:
            self.val_writer = EventWriter(self.val_dir)
        evaluation = {f"evaluation_{k}_vs_iterations": v for k, v in val.items()}
        self.val_writer.scalars(evaluation, iterations, flush=False)  # written with the epoch's below
        for k, v in logs.items():
            self.history.history.setdefault(k, []).append(v)
        self.early_stopping.on_epoch_end(epoch, logs)
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith("val_")}
        self.train_writer.scalars({**train, "epoch_learning_rate": rate}, epoch)
        self.val_writer.scalars({f"epoch_{k}": v for k, v in val.items()}, epoch)
        for callback in self.progress:
            callback.on_epoch_end(epoch, logs)
        if self.watched.stop_training or not math.isfinite(logs["loss"]):
            self.training = False

    def close(self) -> None:
        for writer in (self.train_writer, self.val_writer):
            if writer is not None:
                writer.close()
        for callback in self.progress:
            callback.on_train_end({})


def _names(num_classes: int) -> tuple[str, str, str]:
    """The logs of the stack's rows: loss, data loss, accuracy."""
    return ("loss", models.data_loss_for_classes(num_classes), "accuracy")


def train_seeds(spec, data, configs, run_dirs, family: str = "", extra: dict | None = None, on_epoch_end=None) -> list:
    """Trains `spec` once per config (each with its own seed) as one stack into `run_dirs` (new dirs);
    returns a training.RunResult per seed. An interrupt marks every seed `interrupted` (not
    resumable) and raises training.Interrupted; an error marks every seed failed. `on_epoch_end(epoch)`,
    if given, is called after every epoch of the stack has been logged (e.g. a benchmark's timer)."""
    if spec.learning_rate is not None:
        configs = [dataclasses.replace(c, learning_rate=spec.learning_rate) for c in configs]
    keras_models = []
    for config in configs:  # each seed's own Keras model: its initial weights and its parameter count
        keras.utils.set_random_seed(config.seed)
        keras_models.append(training.compile_model(spec, data, config))
    locked, seeds = [], []
    try:
        try:
            for run_dir in run_dirs:
                tf.io.gfile.makedirs(run_dir)
                logtree.lock_run(run_dir)
                locked.append(run_dir)
            for config, run_dir, keras_model in zip(configs, run_dirs, keras_models):
                seeds.append(_Seed(spec, data, config, run_dir, family, extra, keras_model, len(configs)))
                logtree.write_record(run_dir, seeds[-1].record, start=True)
        except (OSError, tf.errors.OpError) as e:  # e.g. disk full: these seeds fail, the family goes on
            for seed in seeds:
                seed.close()
            params = keras_models[0].count_params()
            return [training._not_started(family, spec, run_dir, e, params) for run_dir in run_dirs]
        if configs[0].verbose:
            print(
                f"{family}/{spec.name}: {len(seeds)} seeds stacked in one compiled call, "
                f"{seeds[0].result.params:,} parameters each",
                file=sys.stderr,
            )
        return _train(spec, data, configs[0], keras_models, seeds, on_epoch_end)
    finally:
        for run_dir in locked:
            logtree.unlock_run(run_dir)


def _outcome(seed: _Seed, data) -> str:
    """A seed's status when its training ended (as train_run decides it)."""
    return training._status(seed.history.history, seed.early_stopping, data.num_classes)


def _train(spec, data, config, keras_models, seeds, on_epoch_end=None) -> list:
    stack = _Stack(spec, keras_models, config, data, [c.seed for c in (s.config for s in seeds)])
    names = _names(data.num_classes)
    for seed in seeds:
        seed.early_stopping.on_train_begin()
        for callback in seed.progress:
            callback.on_train_begin()
    interrupted = None
    stopped = {}  # model index -> its weights when it stopped
    try:
        for epoch in range(config.max_epochs):
            train, val, rate, iterations = stack()
            for k, seed in enumerate(seeds):
                if not seed.training:
                    continue
                logs = {name: float(train[i, k]) for i, name in enumerate(names)}
                logs.update({f"val_{name}": float(val[i, k]) for i, name in enumerate(names)})
                logs = dict(sorted(logs.items()))  # Keras' order of the logs (and so of the events)
                seed.log(epoch, logs, rate, iterations)
            if on_epoch_end:
                on_epoch_end(epoch)
            for k, seed in enumerate(seeds):
                if not seed.training and k not in stopped:  # its weights at its last epoch, put back at the end
                    stopped[k] = [v[k].numpy() for v in stack.variables]
            if len(stopped) == len(seeds):
                break
        for k, weights in stopped.items():  # what it computed after its last epoch is discarded
            for var, value in zip(stack.variables, weights):
                var[k].assign(value)
        for seed in seeds:
            seed.result.status = _outcome(seed, data)
    except KeyboardInterrupt:
        for seed in seeds:  # a seed that had stopped before keeps its outcome
            seed.result.status = Status.INTERRUPTED if seed.training else _outcome(seed, data)
        interrupted = True
    except Exception as e:  # noqa: BLE001 - recorded in the run.json of every seed that was training
        for seed in seeds:
            if seed.training:
                seed.result.status, seed.result.error = Status.FAILED, f"{type(e).__name__}: {first_line(e)}"
            else:
                seed.result.status = _outcome(seed, data)
    finally:
        for seed in seeds:
            seed.close()
            marker = training.Interrupted(seed.result, False) if seed.result.status == Status.INTERRUPTED else None
            training._finish_record(seed.record, seed.result, seed.history, (), data.num_classes, marker)
            training._record_outcome(seed.run_dir, seed.record, seed.result.history)
    if interrupted:
        raise training.Interrupted(seeds[0].result, False)
    return [s.result for s in seeds]
