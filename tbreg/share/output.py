"""Writing a share output (report, export, bundle, plot, upload copies) all or nothing, and the
helpers the outputs share: file-system reasons, URI schemes, snapshots of growing files, links."""

import contextlib
import os

import tensorflow as tf

from tbreg import logtree
from tbreg.errors import UserError, first_line

gfile = tf.io.gfile


def check_writable(path: str) -> None:
    """Fails with a one-line UserError unless a file can be written at `path` (made by a probe)."""
    if gfile.isdir(path):
        raise UserError(f"{path} is a directory; give a file name, e.g. {os.path.join(path, 'out')}")
    try:
        logtree.probe_dir(os.path.dirname(path) or ".")
    except tf.errors.OpError as e:
        raise UserError(f"cannot write {path} ({first_line(e)}); pick a writable location") from None


def check_outside(path: str, tree: str) -> None:
    """A one-line UserError when output `path` lies inside the tree `tree` it is made from.

    Refused outright, new file or not: an output in the tree could replace a run's files, and the
    next report, export or bundle of that tree would read it as part of the tree.
    """
    if logtree.is_inside(path, tree):
        name = os.path.basename(path.rstrip("/")) or "out"
        raise UserError(
            f"-o {path} is inside {tree}, the tree it is made from; write it outside that tree "
            f"(e.g. -o {name} in the current dir)"
        )


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "wb"):
    """Yields a file to write; on success it replaces `path` in one rename, on failure it vanishes."""
    check_writable(path)
    try:
        with logtree.atomic_write(path, mode) as f:
            yield f
    except (tf.errors.OpError, OSError) as e:
        raise UserError(f"cannot write {path} ({first_line(e)}); nothing was written") from None


def fs_reason(e: Exception) -> str:
    """What the file system said, without the (temporary) path TensorFlow puts in front of it."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = first_line(e)
    head, sep, tail = text.rpartition("; ")
    return tail if sep and ("/" in head or "://" in head) else text


def uri_scheme(path: str) -> str | None:
    return path.split("://", 1)[0] if "://" in path else None


def read_snapshot(path: str, size: int) -> bytes:
    """The first `size` bytes of `path` (a file still being written may have grown since)."""
    with gfile.GFile(path, "rb") as f:
        data = f.read(size)
    if len(data) != size:
        raise UserError(f"{path} shrank while being read; is something rewriting it? try again")
    return data


def check_no_dangling_link(path: str, flag: str = "") -> None:
    """A one-line UserError when `path` (local) or a dir above it is a symlink to nothing."""
    if "://" in path:
        return
    here = os.path.abspath(path)
    while True:
        if os.path.islink(here) and not os.path.exists(here):
            target = os.path.join(os.path.dirname(here), os.readlink(here))
            what = f"{flag}{path} is" if here == os.path.abspath(path) else f"{flag}{path}: {here} is"
            raise UserError(
                f"{what} a symlink to {target}, which does not exist; create {target} or pick another destination"
            )
        parent = os.path.dirname(here)
        if parent == here:
            return
        here = parent
