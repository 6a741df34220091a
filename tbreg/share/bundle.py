"""Bundle: a tree as a .tar.gz plus a manifest (size, sha256, event count per file), and opening one."""

import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import shlex
import shutil
import tarfile
import time
import uuid
import zlib

import tensorflow as tf

from tbreg import logtree, reader
from tbreg.errors import UserError
from tbreg.reader import load_runs, tree_files
from tbreg.share.output import atomic_output, check_no_dangling_link, check_outside, read_snapshot
from tbreg.share.upload import check_destination
from tbreg.status import Status

gfile = tf.io.gfile

MANIFEST = "tbreg-manifest.json"
BUNDLE_FORMAT = "tbreg-bundle"
BUNDLE_VERSION = 1
MAX_OPEN_MB = 1000  # what `share open` extracts at most unless --max_mb says more (a gzip bomb guard)


@dataclasses.dataclass(frozen=True)
class BundleResult:
    path: str
    root: str  # the tree's dir name inside the bundle
    files: int
    bytes: int


def _manifest_entry(logdir: str, rel: str, live: set[str]) -> tuple[dict, bytes]:
    path = os.path.join(logdir, rel)
    data = read_snapshot(path, gfile.stat(path).length)
    events = None
    if reader.is_event_file(rel):
        check = reader.inspect_event_file(path, size=len(data))
        if not check.ok:
            if not (check.problem == "truncated" and any(rel.startswith(r + "/") or not r for r in live)):
                raise UserError(f"{check.describe()}; restore it from a copy or delete it, then bundle again")
            data = data[: check.offset]  # a live run: keep what TensorBoard shows now
        events = check.events
    entry = {"path": rel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "events": events}
    return entry, data


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


def _tree_name(logdir: str) -> str:
    """The name the tree gets inside a bundle: its dir's name."""
    name = os.path.basename(logdir.rstrip("/") if "://" in logdir else os.path.abspath(logdir))
    return name if _safe_rel(name) else "runs"


def make_bundle(logdir: str, out: str) -> BundleResult:
    """Writes `logdir` as a .tar.gz with a manifest (first member) that `open_bundle` verifies."""
    if not (out.endswith(".tar.gz") or out.endswith(".tgz")):
        raise UserError(f"-o {out}: a bundle is a gzip tar; give a name ending in .tar.gz or .tgz")
    check_outside(out, logdir)
    runs = load_runs(logdir)  # checks every event file and says what is wrong
    live = {r.rel for r in runs if r.info.get("status") == Status.RUNNING}
    root = _tree_name(logdir)
    entries, blobs = [], []
    for rel in tree_files(logdir):
        name = rel.replace(os.sep, "/")  # bundles use / on every OS
        if "\\" in name:
            raise UserError(
                f"{os.path.join(logdir, rel)}: a backslash in a file name cannot go into a bundle (Windows reads it "
                "as a dir separator, and tbreg share open refuses it); rename it"
            )
        entry, data = _manifest_entry(logdir, rel, live)
        entry["path"] = name
        entries.append(entry)
        blobs.append(data)
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "root": root,
        "created": time.time(),
        "files": entries,
    }
    now = time.time()
    with atomic_output(out) as f:
        with (
            gzip.GzipFile(fileobj=f, mode="wb", mtime=int(now)) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            _tar_add(tar, MANIFEST, json.dumps(manifest, indent=1).encode("utf-8"), now)
            for entry, data in zip(entries, blobs):
                _tar_add(tar, f"{root}/{entry['path']}", data, now)
    return BundleResult(out, root, len(entries), gfile.stat(out).length)


def _safe_rel(name: str) -> bool:
    parts = name.split("/")
    no_tricks = not name.startswith("/") and "\\" not in name
    return bool(name) and no_tricks and all(p not in ("", ".", "..") for p in parts)


def _read_members(bundle: str) -> tuple[tarfile.TarFile, list[tarfile.TarInfo], dict]:
    """Opens `bundle`, reads all of it (a damaged gzip stream fails here) and its manifest."""
    bad = f"{bundle}: damaged or truncated bundle"
    try:
        tar = tarfile.open(bundle, mode="r:gz")
        members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise UserError(f"{bad} ({e}); ask for a fresh copy") from None
    by_name = {m.name: m for m in members}
    if MANIFEST not in by_name or not by_name[MANIFEST].isfile():
        raise UserError(f"{bundle}: not a tbreg bundle (no {MANIFEST}); make one with tbreg share bundle")
    try:
        manifest = json.loads(tar.extractfile(by_name[MANIFEST]).read())
        assert manifest["format"] == BUNDLE_FORMAT and isinstance(manifest["files"], list)
        assert isinstance(manifest["root"], str)
    except (
        AssertionError,
        KeyError,
        TypeError,
        ValueError,
        RecursionError,
        tarfile.TarError,
        EOFError,
        OSError,
        zlib.error,
    ) as e:  # RecursionError: JSON nested too deeply
        raise UserError(f"{bundle}: its {MANIFEST} is unreadable ({type(e).__name__}); ask for a fresh copy") from None
    if "\\" in manifest["root"]:
        raise _backslash_error(bundle, f"its root dir {manifest['root']!r}")
    if not _safe_rel(manifest["root"]) or "/" in manifest["root"]:
        raise UserError(f"{bundle}: its root dir {manifest['root']!r} is not a plain dir name; refusing it")
    return tar, members, manifest


_SHA256_HEX = frozenset("0123456789abcdef")


def _backslash_error(bundle: str, what: str) -> UserError:
    return UserError(
        f"{bundle}: {what} has a backslash in its name (a tar made on Windows?); refusing it, as a backslash "
        "is a dir separator there; make the bundle with tbreg share bundle, which writes / on every OS"
    )


def _check_entry(bundle: str, entry) -> None:
    """A manifest entry must be {path, size, sha256, events}: what `make_bundle` writes."""
    path = entry.get("path") if isinstance(entry, dict) else entry
    if isinstance(path, str) and "\\" in path:
        raise _backslash_error(bundle, f"its manifest entry {path!r}")
    if not isinstance(entry, dict) or not isinstance(path, str) or not _safe_rel(path):
        raise UserError(f"{bundle}: its manifest lists {path!r}, a path outside the bundle's dir; refusing it")
    size, digest, events = entry.get("size"), entry.get("sha256"), entry.get("events")
    for field, ok in (
        ("size", isinstance(size, int) and not isinstance(size, bool) and size >= 0),
        ("sha256", isinstance(digest, str) and len(digest) == 64 and set(digest) <= _SHA256_HEX),
        ("events", events is None or (isinstance(events, int) and not isinstance(events, bool) and events >= 0)),
    ):
        if not ok:
            raise UserError(
                f"{bundle}: its manifest has no valid {field} for {path} (a hand-edited or foreign manifest), so "
                "the file cannot be verified; ask for a bundle made with tbreg share bundle"
            )


def _verify_members(bundle: str, members: list[tarfile.TarInfo], manifest: dict) -> None:
    """Every member must be a plain file (or dir) inside the root and listed with its size."""
    root, listed = manifest["root"], {}
    for entry in manifest["files"]:
        _check_entry(bundle, entry)
        listed[entry["path"]] = entry
    seen = set()
    for m in members:
        if m.name == MANIFEST:
            continue
        if "\\" in m.name:
            raise _backslash_error(bundle, f"member {m.name!r}")
        if not _safe_rel(m.name) or not (m.name == root or m.name.startswith(root + "/")):
            raise UserError(f"{bundle}: member {m.name!r} points outside the destination; refusing to open it")
        if m.issym() or m.islnk() or not (m.isfile() or m.isdir()):
            raise UserError(f"{bundle}: member {m.name!r} is a link or special file; refusing to open it")
        rel = m.name[len(root) + 1 :]
        if m.isdir():
            continue
        if rel not in listed or rel in seen:
            raise UserError(f"{bundle}: member {m.name!r} is not in its manifest (or twice in the bundle); refusing it")
        if m.size != listed[rel]["size"]:
            raise UserError(
                f"{bundle}: {m.name} is {m.size} bytes, the manifest says {listed[rel]['size']}; damaged bundle"
            )
        seen.add(rel)
    missing = sorted(set(listed) - seen)
    if missing:
        raise UserError(
            f"{bundle}: {len(missing)} file(s) of the manifest are missing, e.g. {missing[0]}; incomplete bundle"
        )


def _verify_extracted(bundle: str, tree: str, manifest: dict) -> None:
    for entry in manifest["files"]:
        path = os.path.join(tree, entry["path"])
        if logtree.sha256(path) != entry["sha256"]:
            raise UserError(
                f"{bundle}: {entry['path']} does not match its sha256 in the manifest; damaged or tampered bundle"
            )
        if entry.get("events") is not None:
            check = reader.inspect_event_file(path)
            if not check.ok or check.events != entry["events"]:
                raise UserError(
                    f"{bundle}: {entry['path']} holds {check.events} readable events, "
                    f"the manifest says {entry['events']}; damaged bundle"
                )


@dataclasses.dataclass(frozen=True)
class OpenResult:
    logdir: str  # the extracted tree
    files: int


def open_bundle(bundle: str, dest: str = ".", max_mb: float = MAX_OPEN_MB) -> OpenResult:
    """Verifies `bundle` against its manifest and extracts its tree into `dest` (a local dir).

    A bundle whose files add up to more than `max_mb` megabytes (1 MB = 10^6 bytes) is refused
    before anything is extracted.

    Nothing is written to `dest` unless every check passes: the tree is extracted with tarfile's
    "data" filter into a hidden temporary dir inside `dest`, checked, then renamed into place.
    """
    if not os.path.isfile(bundle):
        raise UserError(
            f"{bundle}: no such bundle file; make one with tbreg share bundle LOGDIR -o {shlex.quote(bundle)}"
        )
    if "://" in dest:
        raise UserError(f"--dest={dest}: bundles open into a local dir; use tbreg share upload to copy them on")
    tar, members, manifest = _read_members(bundle)
    with tar:
        _verify_members(bundle, members, manifest)
        total = sum(entry["size"] for entry in manifest["files"])
        if total > max_mb * 1e6:
            raise UserError(
                f"{bundle}: its files add up to {total / 1e6:,.1f} MB, more than the {max_mb:g} MB "
                f"tbreg share open extracts by default; pass --max_mb={math.ceil(total / 1e6)} if you trust it"
            )
        target = os.path.join(dest, manifest["root"])
        if os.path.lexists(target):
            raise UserError(f"{target} already exists; pass --dest=DIR to open the bundle elsewhere")
        check_no_dangling_link(dest, "--dest=")
        made_dest = not os.path.isdir(dest)
        check_destination(dest)
        tmp = os.path.join(dest, f".tbreg-open-{uuid.uuid4().hex[:8]}")
        try:
            os.makedirs(tmp)
            tar.extractall(tmp, members=[m for m in members if m.name != MANIFEST], filter="data")
            _verify_extracted(bundle, os.path.join(tmp, manifest["root"]), manifest)
            os.makedirs(os.path.join(tmp, manifest["root"]), exist_ok=True)
            os.rename(os.path.join(tmp, manifest["root"]), target)
        except tarfile.FilterError as e:
            raise UserError(f"{bundle}: {e}; refusing to open it") from None
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise UserError(f"{bundle}: damaged or truncated bundle ({e}); ask for a fresh copy") from None
        except OSError as e:  # e.g. disk full: what was extracted is ours, in `tmp`, and goes
            raise UserError(
                f"extracting {bundle} into {dest} failed ({e.strerror or e}); nothing was added to {dest}; "
                "free some space there or pick another --dest"
            ) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if made_dest and not os.path.exists(target) and os.path.isdir(dest) and not os.listdir(dest):
                os.rmdir(dest)
    return OpenResult(target, len(manifest["files"]))
