"""The fast training engine: one compiled call per epoch instead of Keras' per-step Python loop.

`fast_fit` trains a compiled Keras model like `model.fit(train, validation_data=val)` with a
reshuffled full pass per epoch and validation every epoch, but runs each epoch — every train step
and every validation step — inside a single `tf.function`, with the data held as tensors. It calls
the model's own `train_step` / `test_step`, so the loss, penalties, optimizer, schedule and metrics
are exactly Keras' own. Callbacks are driven through Keras' `CallbackList` at epoch granularity
(train, epoch and test begin/end); per-batch hooks are not called.
"""

import math
import time
import warnings

import keras
import tensorflow as tf

from tbreg import resume


class _EpochRunner:
    """Holds the data as tensors and the compiled whole-epoch function."""

    def __init__(self, model, x, y, x_val, y_val, batch_size: int, seed: int):
        self.model = model
        self.tensors = tuple(tf.convert_to_tensor(a) for a in (x, y, x_val, y_val))
        self.batch_size = tf.constant(batch_size, tf.int32)
        self.generator = tf.random.Generator.from_seed(seed)
        self.run = tf.function(self._epoch, autograph=True)

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
        return train_logs, model.get_metrics_result()

    def __call__(self) -> dict:
        train_logs, val_logs = self.run(*self.tensors)
        logs = {k: float(v) for k, v in train_logs.items()}
        logs.update({f"val_{k}": float(v) for k, v in val_logs.items()})
        return logs


def _build(model, x, y):
    """Creates the optimizer's and metrics' variables outside the compiled function."""
    model.optimizer.build(model.trainable_variables)
    model.test_step((x[:1], y[:1]))  # eagerly: builds the compiled metrics (reset every epoch), no tracing


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
):
    """Trains `model` (compiled) for up to `epochs` epochs; returns the History.

    Stops when a callback sets `model.stop_training` (e.g. EarlyStopping) or the loss is not
    finite (like `keras.callbacks.TerminateOnNaN`, checked once per epoch). The callbacks'
    `on_train_end` runs however training ends, so their writers are flushed and closed.
    With `resume_dir`, an interrupt (SIGINT, or SIGTERM turned into KeyboardInterrupt) stops at the
    end of the current epoch and saves the training state there (see tbreg.resume); if that dir
    holds a saved state, training continues from it. With `checkpoint_secs` too, the state is
    also saved after the first epoch that ends at least that many seconds after the last save
    (0: every epoch), so a training that is killed can continue from there (see tbreg.resume).
    """
    x_val, y_val = validation_data
    _build(model, x, y)
    runner = _EpochRunner(model, x, y, x_val, y_val, batch_size, seed)
    callback_list = keras.callbacks.CallbackList(
        list(callbacks),
        add_history=True,
        add_progbar=False,
        model=model,
        epochs=epochs,
        steps=math.ceil(len(x) / batch_size),
        verbose=0,
    )
    model.stop_training = False
    callback_list.on_train_begin()
    logs = {}
    try:
        start = 0
        if resume_dir and resume.exists(resume_dir):
            start = resume.restore(resume_dir, model, runner.generator, callback_list.callbacks)
            if checkpoint_secs is None:
                resume.clear(resume_dir)  # new events follow: only a new save may be resumed from
        last_save = time.monotonic()
        with resume.deferred_interrupts() as pending:
            for epoch in range(start, epochs):
                callback_list.on_epoch_begin(epoch)
                logs = runner()
                callback_list.on_test_begin()  # validation ran inside the epoch call; report it as fit does
                callback_list.on_test_end({k[4:]: v for k, v in logs.items() if k.startswith("val_")})
                callback_list.on_epoch_end(epoch, logs)
                if pending:  # an interrupt arrived during this epoch: stop here, resumable
                    if resume_dir:
                        try:
                            resume.save(resume_dir, model, runner.generator, epoch, callback_list.callbacks)
                        except (OSError, tf.errors.OpError) as e:  # e.g. disk full: stop anyway, not resumable
                            warnings.warn(f"could not save the state to resume from in {resume_dir}: {e}")
                            resume.clear(resume_dir)
                    raise KeyboardInterrupt
                if not math.isfinite(logs["loss"]):
                    model.stop_training = True
                if model.stop_training:
                    break
                if resume_dir and checkpoint_secs is not None and time.monotonic() - last_save >= checkpoint_secs:
                    resume.save(resume_dir, model, runner.generator, epoch, callback_list.callbacks)
                    last_save = time.monotonic()
    except BaseException:
        try:
            callback_list.on_train_end(logs)  # flush and close every writer
        except Exception as e:  # the first error is the one to report
            warnings.warn(f"closing the callbacks after an error failed too: {type(e).__name__}: {e}")
        raise
    callback_list.on_train_end(logs)
    return model.history
