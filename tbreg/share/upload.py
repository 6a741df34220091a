"""Upload: incremental, verified copies of a tree to any tf.io.gfile destination."""

import dataclasses
import hashlib
import os
import shlex
import time

import tensorflow as tf

from tbreg import logtree, reader
from tbreg.errors import UserError, first_line
from tbreg.reader import check_source, tree_files
from tbreg.share.output import check_no_dangling_link, fs_reason, read_snapshot, uri_scheme

gfile = tf.io.gfile


def _size_text(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


@dataclasses.dataclass
class SyncResult:
    copied: int = 0
    bytes: int = 0
    unchanged: int = 0
    cycles: int = 0
    interrupted: bool = False


def check_destination(uri: str) -> None:
    """Fails with a one-line UserError unless `uri` is a dir tf.io.gfile can create and write."""
    check_no_dangling_link(uri)
    scheme = uri_scheme(uri)
    try:
        logtree.probe_dir(uri)
    except tf.errors.UnimplementedError:
        raise UserError(
            f"{uri}: unknown URI scheme {scheme!r}; tf.io.gfile here knows local paths, gs:// and ram:// "
            "(s3:// needs the tensorflow-io package)"
        ) from None
    except tf.errors.OpError as e:
        raise UserError(f"{uri}: cannot write there ({first_line(e)}); pick a writable destination") from None


def _needs_copy(src: str, dst: str, rel: str) -> int | None:
    """The source size to copy, or None when `dst` is already up to date."""
    size = gfile.stat(src).length
    if not gfile.exists(dst):
        return size
    dst_size = gfile.stat(dst).length
    if reader.is_event_file(rel):  # event files only grow
        return size if size != dst_size else None
    return size if size != dst_size or logtree.sha256(src) != logtree.sha256(dst) else None


def copy_verified(src: str, dst: str, size: int) -> None:
    """Copies the first `size` bytes of `src` to `dst` through a temp file, checked before renaming."""
    data = read_snapshot(src, size)
    digest = hashlib.sha256(data).hexdigest()

    def verify(tmp: str) -> None:
        if logtree.sha256(tmp) != digest:
            raise UserError(f"copy of {src} to {dst} did not verify (sha256 differs); nothing replaced")

    gfile.makedirs(os.path.dirname(dst))
    with logtree.atomic_write(dst, check=verify) as f:
        f.write(data)


def sync_once(logdir: str, uri: str) -> SyncResult:
    """Copies the files of `logdir` that are new or grown to `uri`; returns what it did.

    A file that cannot be written (e.g. disk full) is a one-line UserError: its partial copy (ours)
    is removed, the files copied before it stay (complete and verified), so running again goes on.
    """
    result = SyncResult(cycles=1)
    for rel in tree_files(logdir):
        src, dst = os.path.join(logdir, rel), os.path.join(uri, rel)
        try:
            size = _needs_copy(src, dst, rel)
            if size is None:
                result.unchanged += 1
                continue
            copy_verified(src, dst, size)
        except (tf.errors.OpError, OSError) as e:
            if isinstance(e, tf.errors.NotFoundError) and not tf.io.gfile.exists(src):
                continue  # vanished since the listing (a temp file renamed away)
            raise UserError(
                f"copying {src} to {dst} failed ({fs_reason(e)}); nothing partial was left, and the "
                f"{result.copied} files copied before it are complete and verified; fix that (e.g. free some "
                "space) and run again to copy the rest"
            ) from None
        result.copied += 1
        result.bytes += size
    return result


def upload(
    logdir: str, uri: str, watch: bool = False, interval: float = 30.0, max_cycles: int = 0, log=print
) -> SyncResult:
    """Copies `logdir` to `uri` (incremental and verified); with `watch`, again every `interval` s.

    Watching stops after `max_cycles` cycles (0 = never) or at Ctrl-C, which ends the copy in
    progress cleanly: every file at `uri` is either its previous version or a verified new one.
    """
    check_source(logdir)
    if logtree.is_inside(uri, logdir) or logtree.is_inside(logdir, uri):
        raise UserError(f"{uri} and {logdir} overlap; upload to a destination outside the log dir")
    if not tree_files(logdir):
        raise UserError(
            f"{logdir}: no files to upload; train some first: tbreg-train-sizes --logdir={shlex.quote(logdir)}"
        )
    check_destination(uri)
    total = SyncResult()
    try:
        while True:
            cycle = sync_once(logdir, uri)
            total.cycles += 1
            total.copied += cycle.copied
            total.bytes += cycle.bytes
            total.unchanged = cycle.unchanged
            if watch and cycle.copied:
                copied = f"{cycle.copied} new or grown files ({_size_text(cycle.bytes)})"
                log(f"sync {total.cycles}: copied {copied}, {cycle.unchanged} unchanged")
            if not watch or (max_cycles and total.cycles >= max_cycles):
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        total.interrupted = True
    return total
