"""Writing a share output (report, export, bundle, plot) all or nothing."""

import contextlib
import os

import tensorflow as tf

from tbreg import logtree
from tbreg.errors import UserError
from tbreg.share.tree import _op_error_text

gfile = tf.io.gfile


def check_writable(path: str) -> None:
    """Fails with a one-line UserError unless a file can be written at `path` (made by a probe)."""
    if gfile.isdir(path):
        raise UserError(f"{path} is a directory; give a file name, e.g. {os.path.join(path, 'out')}")
    try:
        logtree.probe_dir(os.path.dirname(path) or ".")
    except tf.errors.OpError as e:
        raise UserError(f"cannot write {path} ({_op_error_text(e)}); pick a writable location") from None


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
        raise UserError(f"cannot write {path} ({_op_error_text(e)}); nothing was written") from None
