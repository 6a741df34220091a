"""Reading a log tree for sharing: its runs (checked, with every scalar) and its files."""

import dataclasses
import os
import shlex
import sys

import tensorflow as tf

from tbreg import analysis, logtree, reader
from tbreg.errors import UserError
from tbreg.status import Status

gfile = tf.io.gfile


@dataclasses.dataclass
class Run:
    """One run dir of a tree: where it sits, its run.json and every scalar, by split and tag."""

    family: str
    name: str
    path: str
    rel: str  # the run dir relative to the tree's root ("" when the tree is one run)
    info: dict
    scalars: dict[str, dict[str, list[reader.Point]]]

    def sort_key(self):
        return (self.family, self.info.get("started") or "", self.name)


def _op_error_text(e: Exception) -> str:
    return (getattr(e, "message", None) or str(e)).splitlines()[0]


def _fs_reason(e: Exception) -> str:
    """What the file system said, without the (temporary) path TensorFlow puts in front of it."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = _op_error_text(e)
    head, sep, tail = text.rpartition("; ")
    return tail if sep and ("/" in head or "://" in head) else text


def _scheme(path: str) -> str | None:
    return path.split("://", 1)[0] if "://" in path else None


def check_source(logdir: str) -> None:
    """Fails with a one-line UserError unless `logdir` is an existing dir we can read."""
    try:
        exists = gfile.isdir(logdir)
    except tf.errors.OpError as e:
        raise UserError(f"{logdir}: cannot read it ({_op_error_text(e)})") from None
    if not exists:
        hint = "train one first: tbreg-train-sizes --logdir=" + shlex.quote(logdir)
        raise UserError(f"{logdir}: no such log dir; {hint}")


def tree_files(logdir: str) -> list[str]:
    """Regular files of the tree below `logdir`, relative, sorted; tbreg's own temporary and state
    files left out (`logtree.is_internal`), and what no reader may open (`logtree.list_files`)."""
    return [rel for rel in logtree.list_files(logdir) if not logtree.is_internal(rel)]


def _run_names(logdir: str, rel: str, record: dict | None = None) -> tuple[str, str]:
    """(family, run) for run dir `rel` below `logdir`, by the dir layout; a seed group's runs
    (`<family>/<model>/seed_<k>`, `…/mean`) are runs `<model>/seed_<k>`, `<model>/mean` of `<family>`."""
    base = os.path.basename(logdir.rstrip("/"))
    parent = os.path.basename(os.path.dirname(logdir.rstrip("/")))
    if rel in ("", "."):
        return parent or base, base
    name = analysis.run_name(rel, record)
    if name.member is None:
        return name.family or base, name.name
    if name.name == ".":  # `logdir` is the seed group itself
        return parent or base, f"{base}/{name.member}"
    return name.family or base, f"{name.name}/{name.member}"


def check_run_files(run_dir: str, live: bool = False, keep_damaged: bool = False) -> dict[str, reader.EventFileCheck]:
    """Checks every event file below `run_dir`; a damaged one is a UserError naming file and byte.

    With `live` (the run is still training) an incomplete last record is what the writer has not
    flushed yet, not damage. With `keep_damaged` a damaged file is a one-line warning on stderr
    instead, and its records before the damage are used. Returns {path: check}.
    """
    checks = {}
    for split in reader.splits(run_dir):
        split_dir = os.path.join(run_dir, split)
        for name in sorted(gfile.listdir(split_dir)):
            if reader.is_event_file(name) and logtree.readable(os.path.join(split_dir, name)):
                check = reader.inspect_event_file(os.path.join(split_dir, name))
                if not check.ok and not (live and check.problem == "truncated"):
                    if not keep_damaged:
                        raise UserError(
                            f"{check.describe()}; restore it from a copy, or pass --keep_damaged to use "
                            "the records before the damage"
                        )
                    print(f"tbreg: warning: {check.describe()}; using the {check.events} events before it",
                          file=sys.stderr)
                checks[check.path] = check
    return checks


def iter_runs(logdir: str, keep_damaged: bool = False):
    """Yields every run below `logdir` (a tree, a family dir or one run), checked and read in full,
    one at a time in dir order; a missing or empty tree is a UserError before the first.
    `keep_damaged`: see `check_run_files`."""
    check_source(logdir)
    rels = [rel for rel in reader.find_runs(logdir) if not logtree.is_internal(rel)]
    if not rels:
        raise UserError(
            f"{logdir}: no runs found (no run.json or train/validation dirs below it); "
            f"train some first: tbreg-train-sizes --logdir={shlex.quote(logdir)}"
        )
    for rel in rels:
        path = logdir.rstrip("/") if rel in ("", ".") else os.path.join(logdir, rel)
        info = logtree.read_run_json(path) or {}
        check_run_files(path, live=info.get("status") == Status.RUNNING, keep_damaged=keep_damaged)
        family, name = _run_names(logdir, rel, info or None)  # no record: the dir's name decides
        yield Run(family, name, path, "" if rel == "." else rel, info, reader.run_scalars(path))


def load_runs(logdir: str, keep_damaged: bool = False) -> list[Run]:
    """All of `iter_runs`, families in name order, runs in the order they were trained."""
    return sorted(iter_runs(logdir, keep_damaged), key=Run.sort_key)


def _read_snapshot(path: str, size: int) -> bytes:
    """The first `size` bytes of `path` (a file still being written may have grown since)."""
    with gfile.GFile(path, "rb") as f:
        data = f.read(size)
    if len(data) != size:
        raise UserError(f"{path} shrank while being read; is something rewriting it? try again")
    return data
