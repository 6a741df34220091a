"""The log tree: `<logdir>/<family>/<run>/{train,validation}/events…` plus `<run>/run.json`.

A run dir is written by one training, ever: TensorBoard hides or zig-zags points when a second
training appends to a run. So a re-run goes to a new dir (`<model>.2`, `<model>.3`, …) by default,
fails with `if_exists="error"`, and replaces the old dir only with `if_exists="overwrite"`.
Paths may be local or any tf.io.gfile URI (gs://, ram://).
"""

import contextlib
import errno
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import stat
import sys
import uuid

import tensorflow as tf

from tbreg.constants import IF_EXISTS
from tbreg.errors import UserError, first_line
from tbreg.plugin import summary as record_summary
from tbreg.status import Status

RUN_JSON = "run.json"
SCHEMA_VERSION = 1
STATUSES = tuple(Status)  # what run.json's `status` may hold
_CHUNK = 1 << 22
EVENTS_MARK = "tfevents"  # TensorBoard reads every file whose name holds it

gfile = tf.io.gfile


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def check_logdir(logdir: str) -> None:
    """Fails early, before any training, if `logdir` cannot be created or written."""
    try:
        probe_dir(logdir)
    except (tf.errors.OpError, OSError) as e:
        raise UserError(f"--logdir={logdir} is not writable ({first_line(e)}); pick another dir") from None


def probe_dir(path: str) -> None:
    """Creates dir `path` (and its parents) and writes and removes a probe file in it.

    Raises the file system's own error (tf.errors.OpError or OSError); callers word it for users.
    """
    gfile.makedirs(path)
    probe = os.path.join(path, f".tbreg-probe-{uuid.uuid4().hex[:8]}")
    with gfile.GFile(probe, "wb") as f:
        f.write(b"")
    gfile.remove(probe)


def _taken(path: str) -> bool:
    return gfile.isdir(path) and bool(gfile.listdir(path))


# A run dir claimed by a training that has not written into it yet holds this file (the claimant's
# pid and host): a second script on the same log dir sees the dir taken, not empty and free.
CLAIM = ".tbreg-claim"


def _mkdir_exclusive(path: str) -> bool:
    """Creates and claims run dir `path` (its CLAIM file); False if it already holds something or
    another process claimed it first. Atomic on local filesystems: mkdir, then the claim file made
    with O_EXCL, so of two processes that race for one dir exactly one gets it. An empty dir left
    behind, or one holding only a claim of this process or of one that is gone (same host), is free
    to use (e.g. the dirs an interrupted family run claimed but never trained)."""
    payload = json.dumps(_me())
    claim = os.path.join(path, CLAIM)
    if not _is_local(path):  # object stores: best effort
        if _taken(path):
            return False
        gfile.makedirs(path)
        with gfile.GFile(claim, "w") as f:
            f.write(payload)
        return True
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        os.mkdir(path)
    except FileExistsError:
        entries = os.listdir(path)
        if entries == [CLAIM] and _holder(claim) in (None, _me()):  # never trained: its claimant is gone, or is us
            with contextlib.suppress(FileNotFoundError):
                os.remove(claim)
        elif entries:
            return False
    try:
        fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:  # another process claimed it between our look and now
        return False
    with os.fdopen(fd, "w") as f:
        f.write(payload)
    return True


def _suffixed(base: str, k: int) -> str:
    return base if k == 1 else f"{base}.{k}"


def runs_of(family_dir: str, model: str) -> list[str]:
    """Existing run dirs of `model` in `family_dir`, oldest first (`model`, `model.2`, …)."""
    if not gfile.isdir(family_dir):
        return []
    pattern = re.compile(rf"^{re.escape(model)}(?:\.(\d+))?/?$")
    found = []
    for name in gfile.listdir(family_dir):
        m = pattern.match(name)
        if m and _taken(os.path.join(family_dir, name.rstrip("/"))):
            found.append((int(m.group(1) or 1), os.path.join(family_dir, name.rstrip("/"))))
    return [path for _, path in sorted(found)]


def claim_run_dir(logdir: str, family: str, model: str, if_exists: str = "new") -> str:
    """Creates and returns the dir the next training of `model` writes into."""
    if if_exists not in IF_EXISTS:
        raise ValueError(f"if_exists must be one of {IF_EXISTS}, not {if_exists!r}")
    base = os.path.join(logdir, family, model)
    if _mkdir_exclusive(base):
        return base
    if if_exists == "error":
        raise UserError(
            f"{base} already holds a run; pass --if_exists=new to train into a new dir "
            "or --if_exists=overwrite to replace it"
        )
    if if_exists == "overwrite":
        check_unlocked(base)
        claimant = _holder(os.path.join(base, CLAIM))
        if claimant and claimant.get("pid") != os.getpid():
            raise _locked_error(base, claimant, CLAIM)
        gfile.rmtree(base)
        if not _mkdir_exclusive(base):  # claimed by another process in between
            raise UserError(f"{base} was claimed by another training while it was replaced; train into a new dir")
        return base
    k = 2
    while not _mkdir_exclusive(_suffixed(base, k)):
        k += 1
    return _suffixed(base, k)


# ---------------------------------------------------------------------------------------------
# One training per run dir at a time: `<run>/.lock` holds the writer's pid and host.

LOCK = ".lock"


def _alive(pid: int) -> bool:
    """Whether process `pid` (on this host) still runs. A killed process its parent has not reaped
    yet (a zombie, e.g. a SIGKILLed Ray worker) answers signal 0 but runs no more: dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):  # no /proc (not Linux): signal 0 is all we know
        return True
    return state not in ("Z", "X")


def lock_holder(run_dir: str) -> dict | None:
    """{pid, host} of the live training that holds `run_dir`'s lock; None when it is free or stale."""
    return _holder(os.path.join(run_dir, LOCK))


def _me() -> dict:
    return {"pid": os.getpid(), "host": platform.node()}


def _holder(path: str) -> dict | None:
    """{pid, host} written in lock or claim file `path` by a live process; None when there is no
    such file or its process is gone (same host); {} when the file cannot be read."""
    try:
        with gfile.GFile(path, "r") as f:
            holder = json.loads(f.read() or "{}")
    except (tf.errors.NotFoundError, FileNotFoundError):
        return None
    except (ValueError, tf.errors.OpError, OSError):
        holder = {}
    if not isinstance(holder, dict):  # a damaged lock file: nobody we can name
        holder = {}
    if holder.get("host") == platform.node() and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
        return None
    return holder


def _locked_error(run_dir: str, holder: dict, name: str = LOCK) -> UserError:
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    doing = "being written by" if name == LOCK else "claimed by"
    return UserError(
        f"{run_dir} is {doing} another training ({who}); wait for it to end, or train into a new "
        f"dir (--if_exists=new); if that process is gone, delete {os.path.join(run_dir, name)}"
    )


def lock_run(run_dir: str) -> None:
    """Marks `run_dir` as written by this process; UserError if a live training holds it.

    A stale lock (its process is gone, same host) is taken over with a message on stderr.
    """
    path = os.path.join(run_dir, LOCK)
    payload = json.dumps({"pid": os.getpid(), "host": platform.node()})
    for _ in range(3):
        if _is_local(path):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as f:
                    f.write(payload)
                return
        elif not gfile.exists(path):  # object stores: best effort
            with gfile.GFile(path, "w") as f:
                f.write(payload)
            return
        holder = lock_holder(run_dir)
        if holder is not None:
            if holder.get("pid") == os.getpid() and holder.get("host") == platform.node():
                return
            raise _locked_error(run_dir, holder)
        print(f"{run_dir}: taking over the lock of a training that is gone", file=sys.stderr)
        try:
            gfile.remove(path)
        except (tf.errors.NotFoundError, FileNotFoundError):
            pass
    raise _locked_error(run_dir, lock_holder(run_dir) or {})


def unlock_run(run_dir: str) -> None:
    path = os.path.join(run_dir, LOCK)
    holder = lock_holder(run_dir)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == platform.node():
        gfile.remove(path)


def check_unlocked(run_dir: str) -> None:
    """UserError when a live training writes into `run_dir`."""
    holder = lock_holder(run_dir)
    if holder is not None:
        raise _locked_error(run_dir, holder)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb", check=None):
    """Yields a file to write; on success it replaces `path` in one rename, on failure it vanishes.

    The file is a hidden temporary one beside `path` (`.<name>.tmp-<hex>`, never with "tfevents"
    in its name, so neither TensorBoard nor a tree listing reads it). `check(temp_path)`, if given,
    runs after the file is closed and before the rename; raising there keeps `path` as it was.
    Errors are the file system's own (tf.errors.OpError or OSError); callers word them for users.
    """
    parent, name = os.path.split(path)
    tmp = os.path.join(parent, f".{name.replace('tfevents', 'events')}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with gfile.GFile(tmp, mode) as f:
            yield f
        if check is not None:
            check(tmp)
        gfile.rename(tmp, path, overwrite=True)
    except BaseException:  # e.g. disk full or Ctrl-C: the old file stays, no temporary file is left behind
        try:
            if gfile.exists(tmp):
                gfile.remove(tmp)
        except (tf.errors.OpError, OSError):
            pass  # the error that got us here is the one to report
        raise


def write_run_json(run_dir: str, record: dict) -> None:
    """Writes `record` (plus schema_version) to `run_dir/run.json`, replacing it atomically."""
    with atomic_write(os.path.join(run_dir, RUN_JSON), "w") as f:
        f.write(json.dumps({"schema_version": SCHEMA_VERSION, **record}, indent=2, default=_jsonable))


def write_record(run_dir: str, record: dict, start: bool = False) -> None:
    """The one writer of a run's record: its run.json (read by the report, export, plot and
    --resume) and the same record as the Overfitting tab's summary (tbreg.plugin.summary), so that
    every view says the same status. `start`: the run begins (its HParams and the record at step 0);
    otherwise, and for a start record that already holds an outcome (a seed group's mean), the
    record at step = its epochs, which supersedes the start. Errors are the file system's own."""
    write_run_json(run_dir, record)
    if start:
        record_summary.write_run_start(run_dir, record)
    if not start or "epochs" in record:
        record_summary.write_run_end(run_dir, record)


# run.json's known fields and what they must hold; a field that does not is dropped (with a
# warning) so every reader gets clean records. Other fields are kept as they are.
_COUNT, _EPOCH = "a whole number >= 0", "a whole number >= 0 or null"


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _text(value) -> bool:
    return isinstance(value, str)


RUN_JSON_FIELDS = {
    "schema_version": (_count, "a whole number >= 0"),
    "family": (_text, "a string"),
    "model": (_text, "a string"),
    "dataset": (_text, "a string"),
    "monitor": (_text, "a string"),
    "started": (_text, "a string"),
    "finished": (_text, "a string"),
    "status": (lambda v: v in STATUSES, f"one of {', '.join(STATUSES)}"),
    "error": (lambda v: v is None or isinstance(v, str), "a string or null"),
    "params": (_count, _COUNT),
    "epochs": (_count, _COUNT),
    "stopped_epoch": (lambda v: v is None or _count(v), _EPOCH),
    "best_epoch": (lambda v: v is None or _count(v), _EPOCH),
    "diverged_epoch": (lambda v: v is None or _count(v), _EPOCH),
    "best_value": (
        lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)),
        "a finite number or null",
    ),
    "seed": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "a whole number or null"),
    "resumable": (lambda v: isinstance(v, bool), "true or false"),
    "overfitting_onset": (lambda v: v is None or isinstance(v, dict), "an object or null"),
    **{
        name: (lambda v: isinstance(v, dict), "an object")
        for name in ("spec", "hparams", "config", "versions", "flags", "sweep", "aggregate", "member_status")
    },
    **{name: (lambda v: isinstance(v, list), "a list") for name in ("resumed", "members", "seeds")},
}

_warned = set()  # (path, message) already printed: a run.json read twice warns once


def _warn(path: str, message: str) -> None:
    if (path, message) not in _warned:
        _warned.add((path, message))
        print(f"tbreg: warning: {path}: {message}", file=sys.stderr)


def _short(value) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_run_json(run_dir: str) -> tuple[dict | None, list[str]]:
    """(the record of `run_dir`'s run.json, the problems found in it), without printing.

    The record is None without a run.json or when it cannot be read as a JSON object; known fields
    that hold the wrong type (RUN_JSON_FIELDS) are left out of it.
    """
    path = os.path.join(run_dir, RUN_JSON)
    if not gfile.exists(path):
        return None, []
    if gfile.isdir(path):
        return None, ["is a directory, not a file; using the run without its record (move that dir away)"]
    unusable = "using the run without its record (restore run.json from a copy to get it back)"
    reason = unreadable_reason(path)
    if reason:
        return None, [f"{reason}; using the run without its record"]
    try:
        with gfile.GFile(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (tf.errors.OpError, OSError) as e:
        return None, [f"cannot read it ({first_line(e)}); {unusable}"]
    except UnicodeDecodeError:
        return None, [f"not text (not UTF-8); {unusable}"]
    if not text.strip():
        return None, [f"empty file; {unusable}"]
    try:
        record = json.loads(text)
    except ValueError as e:
        where = f" at line {e.lineno} column {e.colno}" if hasattr(e, "lineno") else ""
        return None, [f"not valid JSON ({getattr(e, 'msg', e)}{where}); {unusable}"]
    except RecursionError:
        return None, [f"nested too deeply to read (not a run record); {unusable}"]
    if not isinstance(record, dict):
        return None, [f"holds a JSON {type(record).__name__}, not an object; {unusable}"]
    problems = []
    for name in [n for n in record if n in RUN_JSON_FIELDS]:  # in the file's order
        ok, expected = RUN_JSON_FIELDS[name]
        if not ok(record[name]):
            problems.append(f"field {name!r} is {_short(record[name])}, not {expected}; ignoring that field")
            del record[name]
    return record, problems


def read_run_json(run_dir: str) -> dict | None:
    """The record in `run_dir/run.json`, checked: None without one.

    A run.json that cannot be used (not JSON, empty, not an object, a directory) gives a one-line
    warning on stderr and None, as if the run had no record; a known field of the wrong type gives
    a warning naming the file and field and is left out. So every reader gets clean records.
    """
    record, problems = load_run_json(run_dir)
    for problem in problems:
        _warn(os.path.join(run_dir, RUN_JSON), problem)
    return record


def _jsonable(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Copying runs (baselines)


# ---------------------------------------------------------------------------------------------
# What a reader may open: regular files under the tree, tbreg's own temporary and state files left out.

# Names tbreg writes for itself inside a tree (locks, resume saves, set-aside events, temporary files
# and dirs); never part of a run for a reader. tbreg.resume's RESUME_DIR and ATTEMPTS_DIR are here too.
_INTERNAL_NAMES = frozenset({LOCK, ".resume", ".attempts"})
_INTERNAL = re.compile(r"^\.(tbreg-.*|.+\.tmp-.*)$")


def is_internal(rel: str) -> bool:
    """Whether `rel` (a path below a tree, / separated) is one of tbreg's own temporary or state files."""
    return any(part in _INTERNAL_NAMES or _INTERNAL.match(part) for part in rel.split("/"))


def is_inside(child: str, parent: str) -> bool:
    """Whether `child` is `parent` or lies below it (local paths: after resolving symlinks)."""
    if not (_is_local(child) and _is_local(parent)):
        child, parent = child.rstrip("/"), parent.rstrip("/")
        return child == parent or child.startswith(parent + "/")
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return os.path.commonpath([child, parent]) == parent


def unreadable_reason(path: str, root: str | None = None) -> str | None:
    """Why a reader must not open `path` (None when it may): not a regular file (a FIFO, a device,
    a socket: opening one can hang forever), a symlink loop, or (with `root`) a symlink that leads
    out of the tree `root`. A missing file is None: the caller's own open says so."""
    if not _is_local(path):
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop; skipped (remove the link)"
        return None
    if root is not None and os.path.islink(path) and not is_inside(path, root):
        return f"a symlink to {os.path.realpath(path)}, outside the tree; not followed"
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a dir" if stat.S_ISDIR(mode) else "a device or socket"
        return f"not a regular file ({kind}); skipped"
    return None


def readable(path: str, root: str | None = None) -> bool:
    """`unreadable_reason` as a check that warns (once per file) and says whether to open `path`."""
    reason = unreadable_reason(path, root)
    if reason:
        _warn(path, reason)
    return reason is None


def _walk_local(root: str):
    """os.walk of `root` that follows dir symlinks only inside the tree and never twice (no loops);
    other linked dirs get a one-line warning."""
    top = os.path.realpath(root)
    seen = {top}
    for dirpath, dirnames, filenames in os.walk(root):
        keep = []
        for d in dirnames:
            path = os.path.join(dirpath, d)
            if os.path.islink(path):
                real = os.path.realpath(path)
                if not is_inside(real, top):
                    _warn(path, f"a symlink to {real}, outside the tree; not followed")
                    continue
                if real in seen:
                    _warn(path, "a symlink to a dir already read (a loop?); not followed")
                    continue
                seen.add(real)
            keep.append(d)
        dirnames[:] = keep
        yield dirpath, dirnames, filenames


def walk(root: str):
    """(dirpath, dirnames, filenames) below `root`, like tf.io.gfile.walk; local trees never leave
    `root` through a symlink nor loop (see `_walk_local`)."""
    return _walk_local(root) if _is_local(root) else gfile.walk(root)


def list_files(root: str) -> list[str]:
    """Paths of the regular files below `root`, relative to it, sorted.

    Anything a reader must not open (see `unreadable_reason`: FIFOs, devices, links out of the tree,
    symlink loops) is left out with a one-line warning.
    """
    out, local = [], _is_local(root)
    for dirpath, _, filenames in walk(root):
        rel = os.path.relpath(dirpath, root) if local else dirpath[len(root) :].strip("/")
        for name in filenames:
            path = os.path.join(dirpath, name)
            if local and not readable(path, root):
                continue
            # ram:// lists `train_eval/x` also as `train/_eval`; keep only names that exist as files
            if local or gfile.exists(path):
                out.append(os.path.normpath(os.path.join(rel, name)) if rel not in ("", ".") else name)
    return sorted(out)


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with gfile.GFile(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def same_tree(a: str, b: str) -> bool:
    """True when `a` and `b` hold the same files with the same bytes (tbreg's own state files aside)."""
    files = [rel for rel in list_files(a) if not is_internal(rel)]
    return files == [rel for rel in list_files(b) if not is_internal(rel)] and all(
        sha256(os.path.join(a, f)) == sha256(os.path.join(b, f)) for f in files
    )


def _train_hint(src: str) -> str:
    parts = src.rstrip("/").split("/")
    if len(parts) >= 3:
        logdir, family, model = "/".join(parts[:-2]) or ".", parts[-2], parts[-1].split(".")[0]
        return f"; train it first: tbreg-train-{family} --logdir={shlex.quote(logdir)} --models={shlex.quote(model)}"
    return "; pass the dir of a trained run"


# A copy in progress lives in `.<name>.tmp-copy-<pid>-<hex>` beside its destination, with "tfevents"
# in no file name until the copy is verified, so TensorBoard never lists it as a run; a replaced run
# waits in `.<name>.tmp-old-<pid>-<hex>` for its removal. A process killed mid-copy leaves one of
# them: the next copy into that dir removes those whose process is gone.
_COPY_TEMP = re.compile(r"^\..+\.tmp-(?:copy|old)-(\d+)-[0-9a-f]{8}$")
_HIDDEN_EVENTS = "tbreg-copying-events"


def _temp_name(dst: str, kind: str) -> str:
    parent, name = os.path.split(dst)
    return os.path.join(parent, f".{name}.tmp-{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove_stale_copies(parent: str) -> None:
    """Removes temporary copies (see _COPY_TEMP) in `parent` whose process is gone."""
    if not gfile.isdir(parent):
        return
    for name in gfile.listdir(parent):
        m = _COPY_TEMP.match(name.rstrip("/"))
        pid = int(m.group(1)) if m else None
        if m and pid != os.getpid() and not (_is_local(parent) and _alive(pid)):
            path = os.path.join(parent, name.rstrip("/"))
            print(f"tbreg: removing {path}, a copy left by a process that is gone", file=sys.stderr)
            gfile.rmtree(path)


def find_runs(logdir: str) -> list[str]:
    """Run dirs below `logdir` (those with a run.json or a split of event files), relative, sorted."""
    found = []
    for dirpath, dirnames, filenames in walk(logdir):  # never out of the tree, never in a loop
        if RUN_JSON in filenames or any(
            gfile.isdir(os.path.join(dirpath, d)) and d in ("train", "validation") for d in dirnames
        ):
            found.append(os.path.relpath(dirpath, logdir) if "://" not in logdir else dirpath[len(logdir) :].strip("/"))
    return sorted(found)


def _holds_one_run(path: str) -> bool:
    """Whether dir `path` is one run dir (or one seed group: `seed_<k>` runs and their `mean`)."""
    runs = [rel for rel in find_runs(path) if not is_internal(rel)]
    return runs == ["."] or bool(runs) and all(re.fullmatch(r"seed_\d+|mean", rel) for rel in runs)


def _check_copy_target(src: str, dst: str, overwrite: bool) -> None:
    """A one-line UserError unless copying run `src` to `dst` replaces at most one run, outside `src`."""
    if is_inside(dst, src):
        where = "is the source itself" if is_inside(src, dst) else "lies inside the source"
        raise UserError(f"{dst} {where} ({src}); copy the run to a dir outside it, e.g. a sibling family dir")
    if is_inside(src, dst):
        raise UserError(
            f"{dst} contains the source run {src}; give the destination run dir itself, e.g. "
            f"{os.path.join(dst, 'baseline')}, not a family or log dir"
        )
    if not gfile.exists(dst):
        return
    if not overwrite:
        raise UserError(f"{dst} already exists; choose another destination or pass --overwrite to replace it")
    if not gfile.isdir(dst) or (gfile.listdir(dst) and not _holds_one_run(dst)):
        raise UserError(
            f"{dst} is not one run dir (it holds other runs or files); --overwrite replaces one run, never a "
            "family or a tree; give the run dir to replace, or a new one"
        )
    check_unlocked(dst)


def copy_run(src: str, dst: str, overwrite: bool = False) -> str:
    """Copies run dir `src` to `dst` byte for byte, all or nothing.

    Files are copied into a temporary dir beside `dst` (invisible to TensorBoard), every file's
    sha256 is checked against `src`, and only then is the copy renamed to `dst`. If anything
    fails, `dst` is as it was. An existing `dst` is an error unless `overwrite`, and even then it
    must be one run dir: a `dst` that holds other runs or files, contains `src` or lies inside it
    is refused. Returns `dst`.
    """
    src, dst = src.rstrip("/"), dst.rstrip("/")
    if not gfile.isdir(src):
        raise UserError(f"{src}: no such run dir{_train_hint(src)}")
    _check_copy_target(src, dst, overwrite)
    files = [rel for rel in list_files(src) if not is_internal(rel)]
    if not files:
        raise UserError(f"{src}: run dir is empty{_train_hint(src)}")
    _remove_stale_copies(os.path.dirname(dst))
    tmp = _temp_name(dst, "copy")
    hidden = {rel: rel.replace(EVENTS_MARK, _HIDDEN_EVENTS) for rel in files}
    try:
        for rel in files:
            target = os.path.join(tmp, hidden[rel])
            gfile.makedirs(os.path.dirname(target))
            gfile.copy(os.path.join(src, rel), target)
        for rel in files:
            if sha256(os.path.join(src, rel)) != sha256(os.path.join(tmp, hidden[rel])):
                raise UserError(
                    f"copy of {os.path.join(src, rel)} differs from the original; nothing was changed at {dst}"
                )
        for rel in files:
            if hidden[rel] != rel:
                gfile.rename(os.path.join(tmp, hidden[rel]), os.path.join(tmp, rel))
        _publish(tmp, dst, files)
    except BaseException as e:
        if gfile.exists(tmp):
            gfile.rmtree(tmp)
        if isinstance(e, (tf.errors.OpError, OSError)):
            raise UserError(f"copying {src} to {dst} failed ({first_line(e)}); {dst} was left as it was") from None
        raise
    return dst


def _publish(tmp: str, dst: str, files: list[str]) -> None:
    """Moves the verified copy `tmp` to `dst` (replacing it): one rename where the filesystem can."""
    if _is_local(dst):
        old = None
        if os.path.exists(dst):
            old = _temp_name(dst, "old")
            os.rename(dst, old)
        os.rename(tmp, dst)
        if old:
            shutil.rmtree(old)
        return
    # Object stores have no directory rename: move file by file, then drop the temp dir.
    if gfile.exists(dst):
        gfile.rmtree(dst)
    try:
        for rel in files:
            gfile.makedirs(os.path.dirname(os.path.join(dst, rel)))
            gfile.rename(os.path.join(tmp, rel), os.path.join(dst, rel))
    except BaseException:
        if gfile.exists(dst):
            gfile.rmtree(dst)
        raise
    try:  # every file has moved; what is left are (virtual) dirs
        gfile.rmtree(tmp)
    except tf.errors.NotFoundError:  # ram:// lists phantom entries (`train/_eval` for `train_eval/…`)
        pass


def copy_baseline(logdir: str, from_family: str, to_family: str, model: str, if_exists: str = "new") -> str | None:
    """Copies the newest `<logdir>/<from_family>/<model>` run into `<logdir>/<to_family>/`.

    Returns the destination, or None when an identical copy is already there.
    """
    runs = runs_of(os.path.join(logdir, from_family), model)
    src = runs[-1] if runs else os.path.join(logdir, from_family, model)
    base = os.path.join(logdir, to_family, model)
    existing = runs_of(os.path.join(logdir, to_family), model)
    if gfile.isdir(src) and any(same_tree(src, d) for d in existing):
        return None
    if not existing:
        return copy_run(src, base)
    if if_exists == "error":
        raise UserError(
            f"{base} already holds a different run; pass --if_exists=new to copy into a new dir "
            "or --if_exists=overwrite to replace it"
        )
    if if_exists == "overwrite":
        return copy_run(src, base, overwrite=True)
    k = 2
    while gfile.exists(_suffixed(base, k)):
        k += 1
    return copy_run(src, _suffixed(base, k))


def tensorboard_note(logdir: str, url: str | None = None) -> str | None:
    """What to open when TensorBoard's Scalars/Histograms tabs would start with no run ticked
    (more than 40 runs below `logdir`): see `analysis.tensorboard_note`."""
    from tbreg import analysis

    return analysis.tensorboard_note(analysis.tensorboard_runs(list_files(logdir)), url)
