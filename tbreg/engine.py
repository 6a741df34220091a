"""The fast training engine: blocks of epochs per compiled call instead of Keras' per-step Python loop.

`fast_fit` trains a compiled Keras model like `model.fit(train, validation_data=val)` with a
reshuffled full pass per epoch and validation every epoch, but runs a block of up to K epochs —
every train step, every validation step and the early-stopping rule of each epoch — inside a single
`tf.function`, with the data held as tensors. It calls the model's own `train_step` / `test_step`,
so the loss, penalties, optimizer, schedule and metrics are exactly Keras' own.

After each call the epochs of the block are replayed to the callbacks in order through Keras'
`CallbackList` (epoch begin, test begin/end, epoch end; per-batch hooks are not called), with the
optimizer's step counter set to its value at the end of each epoch, so Keras' `EarlyStopping`,
History, the TensorBoard scalars (learning rate and `evaluation_*_vs_iterations` included) and the
progress display see every epoch as with one epoch per call. The block stops inside the graph where
Keras' `EarlyStopping` will stop (the same rule: monitor, patience, min_delta, mode, baseline,
start_from_epoch; its best weights kept in variables for `restore_best_weights`) or where the loss is
not finite, so the same seed gives the same epochs, weights and logged values for every K.

A callback that reads the model in `on_epoch_end` says how often with `tbreg_model_freq` (0: never;
n: at epochs 0, n, 2n, … — a block then ends at those epochs); a callback without that attribute
is assumed to read the model (or stop training) every epoch and gets one epoch per call.
"""

import concurrent.futures
import math
import threading
import time
import warnings

import keras
import tensorflow as tf

from tbreg import resume

AUTO_MAX_EPOCHS = 64  # most epochs per call with epochs_per_call=0 (auto)
AUTO_BLOCK_SECS = 0.5  # auto: a block takes about this long (Ctrl-C, progress and checkpoints wait for it)


def model_freq(callback) -> int | None:
    """How often `callback` must see the model at an epoch's end: 0 never, n every n epochs, None every epoch."""
    if isinstance(callback, (keras.callbacks.History, keras.callbacks.TerminateOnNaN)):
        return 0
    if type(callback) is keras.callbacks.EarlyStopping:  # its rule runs inside the graph too
        return 0
    freq = getattr(callback, "tbreg_model_freq", None)
    if freq is None or (isinstance(freq, int) and not isinstance(freq, bool) and freq >= 0):
        return freq
    return None


def block_length(epoch: int, want: int, freqs) -> int:
    """Epochs of the block that starts at `epoch`: at most `want`, ending at every epoch a
    callback with frequency n in `freqs` reads the model (n divides it; None: every epoch)."""
    length = max(1, want)
    for freq in freqs:
        if freq is None:
            return 1
        if freq:
            due = -(-epoch // freq) * freq  # the first epoch >= `epoch` with due(epoch, freq)
            length = min(length, due - epoch + 1)
    return length


class _EarlyStoppingRule:
    """Keras' EarlyStopping rule as graph ops, on variables loaded from (and agreeing with) the callback."""

    def __init__(self, callback, model, log_keys):
        self.callback = callback
        if callback.monitor_op is None:
            callback._set_monitor_op()  # what its first on_epoch_end would do (it flips min_delta's sign for min)
        self.greater = callback.monitor_op is keras.ops.greater
        self.active = callback.monitor in log_keys
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best = tf.Variable(0.0, dtype=tf.float32, trainable=False)
        self.has_best = tf.Variable(False, trainable=False)
        self.best_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.restore = bool(callback.restore_best_weights)
        self.weights = list(model.weights) if self.restore else []
        self.best_weights = [tf.Variable(tf.zeros(w.shape, w.dtype), trainable=False) for w in self.weights]
        self.has_weights = tf.Variable(False, trainable=False)

    def load(self) -> None:
        """Takes the callback's state (after a resume, or after its replay of the last block)."""
        cb = self.callback
        self.wait.assign(int(cb.wait))
        self.has_best.assign(cb.best is not None)
        self.best.assign(0.0 if cb.best is None else float(cb.best))
        self.best_epoch.assign(int(cb.best_epoch))
        if self.restore and cb.best_weights is None:
            self.has_weights.assign(False)

    def _improves(self, value, reference):
        # As Keras: (value - min_delta) in float64 (Python floats), compared as float32 tensors (keras.ops).
        shifted = tf.cast(tf.cast(value, tf.float64) - self.callback.min_delta, tf.float32)
        return tf.greater(shifted, reference) if self.greater else tf.less(shifted, reference)

    def _snapshot(self):
        for best, w in zip(self.best_weights, self.weights):
            best.assign(w.value)
        self.has_weights.assign(True)

    def update(self, epoch, logs):
        """Graph ops for the end of `epoch` (int64): Keras' `on_epoch_end`; returns a bool tensor: stop here."""
        cb = self.callback
        stop = tf.constant(False)
        if self.active:
            value = tf.cast(logs[cb.monitor], tf.float32)
            if epoch >= cb.start_from_epoch:
                if self.restore and tf.logical_not(self.has_weights):  # never set: the current ones are the best
                    self._snapshot()
                    self.best_epoch.assign(epoch)
                self.wait.assign_add(1)
                if tf.logical_or(tf.logical_not(self.has_best), self._improves(value, self.best)):
                    self.best.assign(value)
                    self.has_best.assign(True)
                    self.best_epoch.assign(epoch)
                    if self.restore:
                        self._snapshot()
                    if cb.baseline is None or self._improves(value, tf.constant(cb.baseline, tf.float32)):
                        self.wait.assign(0)
                else:
                    stop = tf.logical_and(self.wait.read_value() >= cb.patience, epoch > 0)
        return stop

    def after_replay(self) -> None:
        """Gives the callback the best weights of their epoch (its replay saw the block's last weights)."""
        if self.restore and self.callback.best_weights is not None and bool(self.has_weights.numpy()):
            self.callback.best_weights = [v.numpy() for v in self.best_weights]


class _BlockRunner:
    """Holds the data as tensors and the compiled function that trains a block of epochs."""

    def __init__(self, model, x, y, x_val, y_val, batch_size: int, seed: int, early_stopping=None):
        self.model = model
        self.tensors = tuple(tf.convert_to_tensor(a) for a in (x, y, x_val, y_val))
        self.batch_size = tf.constant(batch_size, tf.int32)
        self.generator = tf.random.Generator.from_seed(seed)
        self.early_stopping = early_stopping
        self.halt = tf.Variable(False, trainable=False)  # set from Python: end the block after the current epoch
        self.worker = None
        self.run = tf.function(self._block, autograph=True)

    def _reset(self):
        for metric in self.model.metrics:
            metric.reset_state()

    def _epoch(self, x, y, x_val, y_val):
        model, bs = self.model, self.batch_size
        n = tf.shape(x)[0]
        order = tf.argsort(self.generator.uniform([n]))  # a fresh permutation every epoch
        self._reset()
        for i in tf.range((n + bs - 1) // bs):
            idx = order[i * bs : tf.minimum((i + 1) * bs, n)]
            model.train_step((tf.gather(x, idx), tf.gather(y, idx)))
        train_logs = model.get_metrics_result()
        n_val = tf.shape(x_val)[0]
        with tf.control_dependencies(tf.nest.flatten(train_logs)):
            self._reset()
        for j in tf.range((n_val + bs - 1) // bs):
            end = tf.minimum((j + 1) * bs, n_val)
            model.test_step((x_val[j * bs : end], y_val[j * bs : end]))
        logs = {k: tf.convert_to_tensor(v) for k, v in train_logs.items()}
        logs.update({f"val_{k}": tf.convert_to_tensor(v) for k, v in model.get_metrics_result().items()})
        return logs

    def _block(self, x, y, x_val, y_val, first_epoch, epochs):
        """Trains up to `epochs` epochs from `first_epoch` (int64 tensors); returns the per-epoch logs
        (stacked), the optimizer's step count at each epoch's end, and how many epochs ran."""
        keys = self.keys
        arrays = {k: tf.TensorArray(tf.float32, size=0, dynamic_size=True) for k in keys}
        steps = tf.TensorArray(tf.int64, size=0, dynamic_size=True)
        done = tf.constant(0, tf.int64)
        for k in tf.range(epochs):
            if tf.logical_and(k > 0, self.halt.read_value()):
                break
            logs = self._epoch(x, y, x_val, y_val)
            arrays = {name: arrays[name].write(tf.cast(k, tf.int32), tf.cast(logs[name], tf.float32)) for name in keys}
            with tf.control_dependencies([logs[name] for name in keys]):
                step = tf.cast(tf.identity(self.model.optimizer.iterations), tf.int64)
            steps = steps.write(tf.cast(k, tf.int32), step)
            done = k + 1
            stop = tf.logical_not(tf.math.is_finite(logs["loss"]))
            if self.early_stopping is not None:
                stop = tf.logical_or(self.early_stopping.update(first_epoch + k, logs), stop)
            if stop:
                break
        return {name: arrays[name].stack() for name in keys}, steps.stack(), done

    def trace_keys(self) -> None:
        """The names of the epoch logs (as fit gives them), from the compiled metrics."""
        names = list(self.model.get_metrics_result())
        self.keys = names + [f"val_{k}" for k in names]

    def call(self, first_epoch: int, epochs: int, pending: list) -> tuple[list[dict], list[int]]:
        """`self(first_epoch, epochs)`; a block of several epochs runs in a helper thread while this
        (main) thread waits for it, so an interrupt that arrives meanwhile (`pending` gets it) ends
        the block after the epoch it is in."""
        if epochs == 1 or threading.current_thread() is not threading.main_thread():
            return self(first_epoch, epochs)
        self.halt.assign(False)
        if self.worker is None:  # one thread for all blocks (a new thread per call measured ~40 % slower)
            self.worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tbreg-block")
        future = self.worker.submit(self, first_epoch, epochs)
        try:
            while True:
                try:
                    return future.result(timeout=0.05)
                except concurrent.futures.TimeoutError:
                    if pending:
                        self.halt.assign(True)
        except BaseException:  # a second interrupt: the block ends after its current epoch, then it raises
            self.halt.assign(True)
            concurrent.futures.wait([future])
            raise

    def close(self) -> None:
        if self.worker is not None:
            self.worker.shutdown(wait=True)
            self.worker = None

    def __call__(self, first_epoch: int, epochs: int) -> tuple[list[dict], list[int]]:
        stacks, steps, done = self.run(*self.tensors, tf.constant(first_epoch, tf.int64), tf.constant(epochs, tf.int64))
        done = int(done)
        columns = {k: v.numpy().tolist() for k, v in stacks.items()}
        logs = [{k: columns[k][i] for k in self.keys} for i in range(done)]
        return logs, steps.numpy().tolist()[:done]


def _build(model, x, y):
    """Creates the optimizer's and metrics' variables outside the compiled function."""
    model.optimizer.build(model.trainable_variables)
    model.test_step((x[:1], y[:1]))  # eagerly: builds the compiled metrics (reset every epoch), no tracing


def _early_stopping(callbacks):
    """The one Keras EarlyStopping of `callbacks` (None if there is none); the rest need one epoch per call."""
    found = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    return found[0] if len(found) == 1 and type(found[0]) is keras.callbacks.EarlyStopping else None


class _AutoLength:
    """epochs_per_call=0: blocks of about AUTO_BLOCK_SECS, at most AUTO_MAX_EPOCHS epochs, from the
    measured time per epoch (the first block of one epoch includes tracing and is not measured)."""

    def __init__(self, fixed: int):
        self.fixed, self.per_epoch = fixed, None

    def want(self) -> int:
        if self.fixed:
            return self.fixed
        if self.per_epoch is None:
            return 1
        return max(1, min(AUTO_MAX_EPOCHS, int(AUTO_BLOCK_SECS / max(self.per_epoch, 1e-6))))

    def measured(self, seconds: float, epochs: int, first: bool) -> None:
        if not first and epochs:
            self.per_epoch = seconds / epochs


def fast_fit(
    model,
    x,
    y,
    validation_data,
    epochs: int,
    batch_size: int,
    callbacks=(),
    seed: int = 0,
    resume_dir: str | None = None,
    checkpoint_secs: float | None = None,
    epochs_per_call: int = 1,
):
    """Trains `model` (compiled) for up to `epochs` epochs; returns the History (its
    `epochs_per_call` lists how many epochs each compiled call trained).

    `epochs_per_call`: the most epochs one compiled call trains (1: one call per epoch; 0: auto,
    blocks of about AUTO_BLOCK_SECS). The results do not depend on it. An interrupt ends a block
    after the epoch it arrives in. Stops when a callback sets
    `model.stop_training` (e.g. EarlyStopping) or the loss is not finite (like
    `keras.callbacks.TerminateOnNaN`, checked once per epoch). The callbacks' `on_train_end` runs
    however training ends, so their writers are flushed and closed. With `resume_dir`, an interrupt
    (SIGINT, or SIGTERM turned into KeyboardInterrupt) stops at the end of the current epoch and
    saves the training state there (see tbreg.resume); if that dir holds a saved state, training
    continues from it. With `checkpoint_secs` too, the state is also saved after the first block
    that ends at least that many seconds after the last save (0: every epoch, so one epoch per
    call), so a training that is killed can continue from there (see tbreg.resume).
    """
    if not (isinstance(epochs_per_call, int) and epochs_per_call >= 0):
        raise ValueError(f"epochs_per_call must be an int >= 0 (0: auto), not {epochs_per_call!r}")
    x_val, y_val = validation_data
    _build(model, x, y)
    callbacks = list(callbacks)
    early_stopping = _early_stopping(callbacks)
    runner = _BlockRunner(model, x, y, x_val, y_val, batch_size, seed)
    runner.trace_keys()
    callback_list = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=False,
        model=model,
        epochs=epochs,
        steps=math.ceil(len(x) / batch_size),
        verbose=0,
    )
    blocks = []  # epochs of each compiled call: the History's `epochs_per_call`
    for callback in callback_list.callbacks:
        if isinstance(callback, keras.callbacks.History):
            callback.epochs_per_call = blocks
    model.stop_training = False
    callback_list.on_train_begin()
    # after on_train_begin: callbacks decide there what they read (e.g. RegularizationLoss)
    freqs = [model_freq(c) for c in callback_list.callbacks]
    if any(isinstance(c, keras.callbacks.EarlyStopping) for c in callbacks) and early_stopping is None:
        freqs.append(None)  # several (or subclassed) EarlyStopping callbacks: their rule is not in the graph
    if checkpoint_secs == 0 and resume_dir:
        freqs.append(None)  # a save after every epoch
    rule = None
    if early_stopping is not None:
        rule = _EarlyStoppingRule(early_stopping, model, runner.keys)
        runner.early_stopping = rule
    length = _AutoLength(epochs_per_call)
    iterations = model.optimizer.iterations
    logs = {}
    try:
        start = 0
        if resume_dir and resume.exists(resume_dir):
            start = resume.restore(resume_dir, model, runner.generator, callback_list.callbacks)
            if checkpoint_secs is None:
                resume.clear(resume_dir)  # new events follow: only a new save may be resumed from
        last_save = time.monotonic()
        first_call = True
        with resume.deferred_interrupts() as pending:
            epoch = start
            while epoch < epochs:
                count = min(block_length(epoch, length.want(), freqs), epochs - epoch)
                if rule is not None:
                    rule.load()
                began = time.monotonic()
                block, steps = runner.call(epoch, count, pending)
                blocks.append(len(block))
                length.measured(time.monotonic() - began, len(block), first_call)
                first_call = False
                final_step = iterations.numpy()
                last = epoch + len(block) - 1
                try:
                    for i, logs in enumerate(block):
                        if len(block) > 1:
                            iterations.assign(steps[i])  # what callbacks read of the optimizer at that epoch
                        callback_list.on_epoch_begin(epoch + i)
                        callback_list.on_test_begin()  # validation ran inside the call; report it as fit does
                        callback_list.on_test_end({k[4:]: v for k, v in logs.items() if k.startswith("val_")})
                        callback_list.on_epoch_end(epoch + i, logs)
                        if model.stop_training and epoch + i < last:
                            warnings.warn(
                                f"a callback stopped training at epoch {epoch + i}, inside a block of epochs that "
                                f"ran to epoch {last}; use epochs_per_call=1 for callbacks that stop training"
                            )
                finally:
                    iterations.assign(final_step)
                if rule is not None:
                    rule.after_replay()
                epoch = last + 1
                if pending:  # an interrupt arrived during this block: stop here, resumable
                    if resume_dir:
                        try:
                            resume.save(resume_dir, model, runner.generator, last, callback_list.callbacks)
                        except (OSError, tf.errors.OpError) as e:  # e.g. disk full: stop anyway, not resumable
                            warnings.warn(f"could not save the state to resume from in {resume_dir}: {e}")
                            resume.clear(resume_dir)
                    raise KeyboardInterrupt
                if not math.isfinite(logs["loss"]):
                    model.stop_training = True
                if model.stop_training:
                    break
                if resume_dir and checkpoint_secs is not None and time.monotonic() - last_save >= checkpoint_secs:
                    resume.save(resume_dir, model, runner.generator, last, callback_list.callbacks)
                    last_save = time.monotonic()
    except BaseException:
        runner.close()
        try:
            callback_list.on_train_end(logs)  # flush and close every writer
        except Exception as e:  # the first error is the one to report
            warnings.warn(f"closing the callbacks after an error failed too: {type(e).__name__}: {e}")
        raise
    runner.close()
    callback_list.on_train_end(logs)
    return model.history
