"""Interrupting and resuming a fast-engine training at an epoch boundary.

While `deferred_interrupts()` is active, SIGINT (and SIGTERM, when a script turned it into
KeyboardInterrupt) only set a flag: the engine finishes the epoch — or the block of epochs of one
compiled call — it is in (its events are written), saves the training state into `<run>/.resume/`
and then raises KeyboardInterrupt. A second signal
interrupts at once (no state saved). `load`/`restore` put the state back so training continues with
the next epoch: same weights, optimizer, dropout and shuffle generators, EarlyStopping, History and
the state of callbacks that define `resume_state()` / `restore_state(state)`.

A save also records the size of every event file of the run (after flushing the callbacks'
writers), so that a training killed after a save (SIGKILL, a lost machine) can be continued from
it: `rewind_events` sets aside what the killed process wrote after the save, which training then
writes again — every step once. The scripts and sweeps also save periodically
(`--checkpoint_secs`, `fast_fit(checkpoint_secs=…)`).
"""

import contextlib
import io
import json
import os
import platform
import shlex
import signal
import sys
import threading

import keras
import numpy as np
import tensorflow as tf

from tbreg import logtree
from tbreg.errors import UserError, first_line

RESUME_DIR = ".resume"
ATTEMPTS_DIR = ".attempts"  # what killed trainings wrote after their last save, set aside
STATE_FILE = "state.npz"  # arrays and the JSON state in one file, replaced atomically: never half a save
_JSON = "__state_json__"
_EARLY_STOPPING = ("wait", "stopped_epoch", "best", "best_epoch")


@contextlib.contextmanager
def deferred_interrupts():
    """Yields a list that receives the numbers of the signals that arrived; a second one raises."""
    pending = []
    if threading.current_thread() is not threading.main_thread():
        yield pending
        return
    originals = {}

    def defer(signum, frame):
        if pending:  # the user insists: stop now
            raise KeyboardInterrupt
        pending.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if callable(handler):  # only signals that would raise KeyboardInterrupt anyway
            originals[sig] = handler
            signal.signal(sig, defer)
    try:
        yield pending
    finally:
        for sig, handler in originals.items():
            signal.signal(sig, handler)


def _write(path: str, data: bytes) -> None:
    with logtree.atomic_write(path) as f:
        f.write(data)


def _keyed(callbacks):
    """(class name#k, callback): the k-th callback of its class, so the list may change order."""
    seen = {}
    for callback in callbacks:
        name = type(callback).__name__
        seen[name] = seen.get(name, 0) + 1
        yield f"{name}#{seen[name]}", callback


def flush_writers(callbacks) -> None:
    """Flushes the summary writers of Keras' TensorBoard and tbreg's callbacks (their `_writers`)."""
    for callback in callbacks:
        for writer in list(getattr(callback, "_writers", {}).values()):
            writer.flush()


def event_files(run_dir: str) -> dict[str, int]:
    """{path relative to `run_dir`: size} of the run's event files (not those set aside)."""
    sizes = {}
    for dirpath, dirnames, filenames in tf.io.gfile.walk(run_dir):
        dirnames[:] = [d for d in dirnames if d not in (RESUME_DIR, ATTEMPTS_DIR)]
        for name in filenames:
            if "tfevents" in name:
                path = os.path.join(dirpath, name)
                sizes[os.path.relpath(path, run_dir)] = tf.io.gfile.stat(path).length
    return sizes


def save(resume_dir: str, model, generator, epoch: int, callbacks) -> None:
    """Saves the state after `epoch` (the last completed one) into `resume_dir`.

    The callbacks' writers are flushed first, and the sizes of the run's event files (the run
    dir is `resume_dir`'s parent) are part of the state.
    """
    flush_writers(callbacks)
    tf.io.gfile.makedirs(resume_dir)
    arrays = {f"model_{i}": v.numpy() for i, v in enumerate(model.variables)}
    arrays.update({f"optimizer_{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)})
    arrays["generator"] = generator.state.numpy()
    buffer = io.BytesIO()
    state = {"epoch": epoch, "callbacks": {}, "event_files": event_files(os.path.dirname(resume_dir.rstrip("/")))}
    for key, callback in _keyed(callbacks):
        if isinstance(callback, keras.callbacks.History):
            entry = {"history": callback.history, "epochs": list(getattr(callback, "epoch", []))}
        elif isinstance(callback, keras.callbacks.EarlyStopping):
            entry = {name: getattr(callback, name) for name in _EARLY_STOPPING}
        elif hasattr(callback, "resume_state"):
            entry = callback.resume_state()
        else:
            entry = None
        state["callbacks"][key] = entry
    arrays[_JSON] = np.frombuffer(json.dumps(state, default=float).encode(), dtype=np.uint8)
    np.savez(buffer, **arrays)
    _write(os.path.join(resume_dir, STATE_FILE), buffer.getvalue())


def exists(resume_dir: str) -> bool:
    return tf.io.gfile.exists(os.path.join(resume_dir, STATE_FILE))


def _load(resume_dir: str):
    """(state dict, arrays) of the save in `resume_dir`; a UserError when it cannot be used.

    Every array is read (and its checksum checked) here, so a damaged save is found before
    training starts, not halfway through restoring it.
    """
    path = os.path.join(resume_dir, STATE_FILE)
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            blob = f.read()
    except (tf.errors.OpError, OSError) as e:
        raise damaged_save(resume_dir, first_line(e)) from None
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        state = json.loads(arrays[_JSON].tobytes())
    except Exception:  # noqa: BLE001 - numpy, zipfile and json each raise their own kinds; none says more
        raise damaged_save(resume_dir, "not a complete save: truncated or overwritten") from None
    problem = _state_problem(state)
    if problem:
        raise damaged_save(resume_dir, problem)
    return state, arrays


def _state_problem(state) -> str | None:
    def whole(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    if not (isinstance(state, dict) and whole(state.get("epoch"))):
        return "no epoch in it"
    if not isinstance(state.get("callbacks"), dict):
        return "no callback states in it"
    sizes = state.get("event_files")
    if not (isinstance(sizes, dict) and all(whole(v) for v in sizes.values())):
        return "no event file sizes in it"
    return None


def damaged_save(resume_dir: str, reason: str) -> UserError:
    """The one-line error for a save in `resume_dir` that cannot be read back."""
    path = os.path.join(resume_dir, STATE_FILE)
    here = resume_dir.rstrip("/")
    return UserError(
        f"{path}: damaged save, cannot resume from it ({reason}); set it aside "
        f"(mv {shlex.quote(here)} {shlex.quote(here + '-damaged')}) and run again to train that model anew in a "
        "new run dir, the old run kept as it is"
    )


def restore(resume_dir: str, model, generator, callbacks) -> int:
    """Restores what `save` wrote (after the callbacks' on_train_begin); returns the next epoch."""
    state, arrays = _load(resume_dir)
    for prefix, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
        for i, v in enumerate(variables):
            value = arrays[f"{prefix}_{i}"]
            if tuple(value.shape) != tuple(v.shape):
                raise ValueError(f"{resume_dir}: the saved state does not fit this model ({v.path})")
            v.assign(value)
    generator.state.assign(arrays["generator"])
    for key, callback in _keyed(callbacks):
        entry = state["callbacks"].get(key)
        if entry is None:
            continue
        if isinstance(callback, keras.callbacks.History):
            callback.history, callback.epoch = entry["history"], entry["epochs"]
            callback.model.history = callback
        elif isinstance(callback, keras.callbacks.EarlyStopping):
            for name, value in entry.items():
                setattr(callback, name, value)
        elif hasattr(callback, "restore_state"):
            callback.restore_state(entry)
    return state["epoch"] + 1


def saved_epoch(resume_dir: str) -> int | None:
    """The last completed epoch of the saved state; None without one."""
    if not exists(resume_dir):
        return None
    try:
        return _load(resume_dir)[0]["epoch"]
    except UserError:
        if not exists(resume_dir):  # cleared while being read: the training it belonged to ended
            return None
        raise


def _read(path: str, start: int = 0) -> bytes:
    with tf.io.gfile.GFile(path, "rb") as f:
        f.seek(start)
        return f.read()


def _truncate(path: str, size: int) -> None:
    if "://" not in path:
        os.truncate(path, size)
        return
    head = _read(path)[:size]  # object stores cannot truncate: rewrite the file
    _write(path, head)


def rewind_events(resume_dir: str, attempt: str) -> int:
    """Sets aside the event-file bytes written after the save in `resume_dir`; returns how many.

    Each event file of the run is cut back to its size at the save; the cut part (and any event
    file the save did not know) goes to `<run>/.attempts/<attempt>/`, renamed so TensorBoard does
    not read it as events. Nothing is lost; the steps after the save are then trained again.
    """
    run_dir = os.path.dirname(resume_dir.rstrip("/"))
    saved = _load(resume_dir)[0]["event_files"]
    moved = 0
    for rel, size in event_files(run_dir).items():
        keep = saved.get(rel, 0)
        if size <= keep:
            continue
        path = os.path.join(run_dir, rel)
        aside = os.path.join(
            run_dir, ATTEMPTS_DIR, attempt, rel.replace("tfevents", "set-aside-events") + f".from-{keep}"
        )
        tf.io.gfile.makedirs(os.path.dirname(aside))
        _write(aside, _read(path, keep))
        _truncate(path, keep)
        moved += size - keep
    return moved


def start_over_if_shrunk(resume_dir: str, attempt: str) -> bool:
    """When an event file of the run is now smaller than at the save in `resume_dir` (or gone),
    the steps it lost cannot come back from that save: every event file is set aside in
    `<run>/.attempts/<attempt>/` (renamed so TensorBoard does not read it), the save is removed, a
    line on stderr says so, and True is returned: the run then trains again from its first epoch."""
    run_dir = os.path.dirname(resume_dir.rstrip("/"))
    saved, now = _load(resume_dir)[0]["event_files"], event_files(run_dir)
    shrunk = [(rel, size) for rel, size in sorted(saved.items()) if now.get(rel, 0) < size]
    if not shrunk:
        return False
    rel, size = shrunk[0]
    aside = os.path.join(run_dir, ATTEMPTS_DIR, attempt)
    for name in now:
        target = os.path.join(aside, name.replace("tfevents", "set-aside-events"))
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.rename(os.path.join(run_dir, name), target, overwrite=True)
    clear(resume_dir)
    print(
        f"{os.path.join(run_dir, rel)}: {now.get(rel, 0)} bytes, smaller than the {size} bytes at the last save, so "
        f"steps are missing that the save cannot restore; training {run_dir} again from its first epoch (its events "
        f"so far are kept in {aside})",
        file=sys.stderr,
    )
    return True


def clear(resume_dir: str) -> None:
    if tf.io.gfile.isdir(resume_dir):
        tf.io.gfile.rmtree(resume_dir)


def preflight(run_dir: str, after_lost_worker: bool = False) -> int | None:
    """What every planner and worker checks before a training of `run_dir` (the one owner of these
    checks): a UserError if a live training holds its lock or if its save is damaged; else the
    epoch its save ends with (training continues after it), None when it starts afresh.

    `after_lost_worker`: a retry after the worker of the last attempt died; a lock it left on
    another host is removed (its pid cannot be checked from here; same-host locks of dead
    processes count as free anyway).
    """
    holder = logtree.lock_holder(run_dir)
    if holder and after_lost_worker and holder.get("host") != platform.node():
        tf.io.gfile.remove(os.path.join(run_dir, logtree.LOCK))
    else:
        logtree.check_unlocked(run_dir)
    return saved_epoch(os.path.join(run_dir, RESUME_DIR))
