"""Sharing a log tree: an offline HTML report, a tidy scalar export, a verified bundle, an upload.

Everything reads event files through `tbreg.reader`; outputs are written beside their destination
and renamed into place, so a failure never leaves a half-written file behind.
"""

import contextlib
import dataclasses
import datetime
import gzip
import hashlib
import html
import io
import itertools
import json
import math
import os
import shlex
import sys
import shutil
import tarfile
import time
import uuid
import zlib

import numpy as np
import tensorflow as tf

import tbreg
from tbreg import analysis, logtree, reader
from tbreg.errors import UserError

gfile = tf.io.gfile

EXPORT_COLUMNS = ("family", "run", "split", "tag", "step", "wall_time", "value")
MANIFEST = "tbreg-manifest.json"
BUNDLE_FORMAT = "tbreg-bundle"
BUNDLE_VERSION = 1
REGULARIZATION_TAG = "epoch_regularization_loss"
REGULARIZATION_PREFIXES = ("regularization/", "gap/")
# Report size: plotly.min.js is ~4.8 MB; curves share a budget of points so 50 runs x 10,000
# epochs stay well under 10 MB (each point costs ~17 bytes of JSON).
POINT_BUDGET = 200_000
MIN_POINTS, MAX_POINTS = 100, 2_000


# ---------------------------------------------------------------------------------------------
# Reading a tree


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


def _is_hidden(rel: str) -> bool:
    """Temporary and hidden files (`.x.tmp-…`, `run.json.tmp-…`) are never part of a tree."""
    return any(part.startswith(".") or ".tmp-" in part for part in rel.split("/"))


def tree_files(logdir: str) -> list[str]:
    """Files of the tree below `logdir`, relative, sorted; temporary and hidden files left out."""
    return [rel for rel in logtree.list_files(logdir) if not _is_hidden(rel)]


def _run_names(logdir: str, rel: str) -> tuple[str, str]:
    """(family, run) for run dir `rel` below `logdir`, by the dir layout; a seed group's runs
    (`<family>/<model>/seed_<k>`, `…/mean`) are runs `<model>/seed_<k>`, `<model>/mean` of `<family>`."""
    base = os.path.basename(logdir.rstrip("/"))
    parent = os.path.basename(os.path.dirname(logdir.rstrip("/")))
    if rel in ("", "."):
        return parent or base, base
    name = analysis.run_name(rel)
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
            if reader.is_event_file(name):
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
    rels = [rel for rel in reader.find_runs(logdir) if not _is_hidden(rel)]
    if not rels:
        raise UserError(
            f"{logdir}: no runs found (no run.json or train/validation dirs below it); "
            f"train some first: tbreg-train-sizes --logdir={shlex.quote(logdir)}"
        )
    for rel in rels:
        path = logdir.rstrip("/") if rel in ("", ".") else os.path.join(logdir, rel)
        info = logtree.read_run_json(path) or {}
        check_run_files(path, live=info.get("status") == "running", keep_damaged=keep_damaged)
        family, name = _run_names(logdir, rel)
        yield Run(family, name, path, "" if rel == "." else rel, info, reader.run_scalars(path))


def load_runs(logdir: str, keep_damaged: bool = False) -> list[Run]:
    """All of `iter_runs`, families in name order, runs in the order they were trained."""
    return sorted(iter_runs(logdir, keep_damaged), key=Run.sort_key)


# ---------------------------------------------------------------------------------------------
# Writing outputs all or nothing


def check_writable(path: str) -> None:
    """Fails with a one-line UserError unless a file can be written at `path` (made by a probe)."""
    if gfile.isdir(path):
        raise UserError(f"{path} is a directory; give a file name, e.g. {os.path.join(path, 'out')}")
    try:
        logtree.probe_dir(os.path.dirname(path) or ".")
    except tf.errors.OpError as e:
        raise UserError(f"cannot write {path} ({_op_error_text(e)}); pick a writable location") from None


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "wb"):
    """Yields a file to write; on success it replaces `path` in one rename, on failure it vanishes."""
    check_writable(path)
    parent, name = os.path.split(path)
    tmp = os.path.join(parent or ".", f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with gfile.GFile(tmp, mode) as f:
            yield f
        gfile.rename(tmp, path, overwrite=True)
    except BaseException as e:
        if gfile.exists(tmp):
            gfile.remove(tmp)
        if isinstance(e, tf.errors.OpError):
            raise UserError(f"cannot write {path} ({_op_error_text(e)}); nothing was written") from None
        raise


def _size_text(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


# ---------------------------------------------------------------------------------------------
# Export: every scalar as a tidy row


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: str
    rows: int
    runs: int


def export_rows(runs):
    """Yields (family, run, split, tag, step, wall_time, value) for every scalar point of `runs`."""
    for run in runs:
        for split, tags in sorted(run.scalars.items()):
            for tag, points in sorted(tags.items()):
                for p in points:
                    yield (run.family, run.name, split, tag, p.step, p.wall_time, p.value)


def _csv_field(value) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ',"\r\n') or text != text.strip():
        text = '"' + text.replace('"', '""') + '"'
    return text


def _json_row(row) -> str:
    clean = [None if isinstance(v, float) and not math.isfinite(v) else v for v in row]
    return json.dumps(dict(zip(EXPORT_COLUMNS, clean)), allow_nan=False)


def export_scalars(logdir: str, out: str, keep_damaged: bool = False) -> ExportResult:
    """Writes every scalar below `logdir` to `out` (.csv or .json) as tidy rows; see EXPORT_COLUMNS.

    CSV writes non-finite values as nan/inf; JSON (an array of objects) writes them as null.
    """
    fmt = os.path.splitext(out)[1].lower()
    if fmt not in (".csv", ".json"):
        raise UserError(f"-o {out}: give a .csv or .json file name")
    runs = iter_runs(logdir, keep_damaged)  # one run in memory at a time
    first = next(runs)  # a missing or empty tree fails before anything is written
    n, batch, names = 0, [], []
    runs = (names.append(run.name) or run for run in itertools.chain([first], runs))
    with atomic_output(out, "w") as f:
        f.write(",".join(EXPORT_COLUMNS) + "\n" if fmt == ".csv" else "[")
        for row in export_rows(runs):
            if fmt == ".csv":
                batch.append(",".join(_csv_field(v) for v in row) + "\n")
            else:
                batch.append(("\n" if n == 0 else ",\n") + _json_row(row))
            n += 1
            if len(batch) >= 10_000:
                f.write("".join(batch))
                batch = []
        f.write("".join(batch) + ("" if fmt == ".csv" else "\n]\n"))
    return ExportResult(out, n, len(names))


# ---------------------------------------------------------------------------------------------
# Report: one self-contained HTML file


@dataclasses.dataclass(frozen=True)
class ReportResult:
    path: str
    bytes: int
    runs: int
    families: int
    points_per_curve: int
    downsampled: bool  # some curve had more points than that


def downsample(steps, values, max_points: int) -> tuple[list[int], list[float | None]]:
    """At most ~`max_points` points: first, last, and each bucket's min and max (spikes survive).

    Values are rounded to 6 significant digits; non-finite values become None (a gap).
    """
    steps, values = np.asarray(steps), np.asarray(values, dtype=float)
    n = len(steps)
    if n > max_points:
        finite = np.isfinite(values)
        bucket = np.arange(n) * max(1, max_points // 2) // n  # equal-width buckets of indices
        starts = np.flatnonzero(np.diff(bucket, prepend=-1))
        lowest = np.lexsort((np.where(finite, values, np.inf), bucket))[starts]  # sorted by bucket, then value
        highest = np.lexsort((np.where(finite, -values, np.inf), bucket))[starts]
        idx = np.unique(np.concatenate([[0, n - 1], lowest, highest]))
        steps, values = steps[idx], values[idx]
    ys = [float(f"{v:.6g}") if math.isfinite(v) else None for v in values.tolist()]
    return [int(s) for s in steps.tolist()], ys


def _is_regularization(tag: str) -> bool:
    return tag == REGULARIZATION_TAG or tag.startswith(REGULARIZATION_PREFIXES)


def _data_loss_tag(run: Run) -> str | None:
    """The run's validation data-loss tag: run.json's EarlyStopping monitor, else a guess."""
    monitor = run.info.get("monitor", "")
    val_tags = run.scalars.get("validation", {})
    candidates = [f"epoch_{monitor[4:]}"] if monitor.startswith("val_") else []
    candidates += ["epoch_binary_crossentropy", "epoch_sparse_categorical_crossentropy", "epoch_loss"]
    return next((t for t in candidates if t in val_tags), None)


def _tag_order(tag: str, data_loss_tags: set[str]) -> tuple:
    first = ["epoch_loss", *sorted(data_loss_tags), "epoch_accuracy"]
    return (first.index(tag) if tag in first else len(first), tag)


def _family_tags(runs: list[Run]) -> tuple[list[str], list[str], list[str]]:
    """(main, regularization, other) chart tags of a family; main = tags logged in train and validation."""
    every, overlaid = set(), set()
    for run in runs:
        for tags in run.scalars.values():
            every.update(t for t in tags if not analysis.is_std_tag(t))
        overlaid.update(set(run.scalars.get("train", {})) & set(run.scalars.get("validation", {})))
    overlaid &= every
    loss_tags = {t for t in map(_data_loss_tag, runs) if t}
    order = lambda tags: sorted(tags, key=lambda t: _tag_order(t, loss_tags))  # noqa: E731
    regularization = {t for t in every if _is_regularization(t)}
    main = order(overlaid - regularization)
    return main, order(regularization), order(every - regularization - set(main))


_TEN = "#1f77b4 #ff7f0e #2ca02c #d62728 #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf".split()


def _palette(n: int) -> list[str]:
    """One colour per run: matplotlib's ten, or evenly spread hues for bigger families."""
    if n <= len(_TEN):
        return _TEN
    return [f"hsl({round(360 * i / n)}, 65%, {42 + 12 * (i % 2)}%)" for i in range(n)]


_DASH = {"train": "solid", "validation": "dash"}


def _translucent(color: str, alpha: float = 0.18) -> str:
    """`color` (#rrggbb or hsl(…)) with opacity `alpha`, for a band's fill."""
    if color.startswith("#"):
        r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
        return f"rgba({r}, {g}, {b}, {alpha})"
    return f"hsla({color[color.index('(') + 1 : -1]}, {alpha})"


def _label(text: str) -> str:
    """`text` for plotly, which reads names as pseudo-HTML and `$…$` as LaTeX: shown literally."""
    return html.escape(text).replace("$", "&#36;")


def _band(points: list[reader.Point], std: list[reader.Point], max_points: int) -> tuple[list, list] | None:
    """The closed outline of `mean ± std` (a seed group's band), downsampled like its line."""
    spread = {p.step: p.value for p in std if math.isfinite(p.value)}
    kept = [(p.step, p.value, spread[p.step]) for p in points if p.step in spread and math.isfinite(p.value)]
    if not kept:
        return None
    steps = [k[0] for k in kept]
    x_up, y_up = downsample(steps, [m + s for _, m, s in kept], max_points)
    x_low, y_low = downsample(steps, [m - s for _, m, s in kept], max_points)
    return x_up + x_low[::-1], y_up + y_low[::-1]


def _readable_range(traces: list[dict]) -> dict:
    """A y-axis range for a chart whose lines are all one constant value (a constant learning rate):
    plotly would centre the value in [v - 1, v + 1], where 0.001 reads as 0."""
    ys = [y for t in traces if t.get("mode") == "lines" for y in t["y"] if y is not None]
    if not ys or max(ys) - min(ys) > 1e-9 * max(1e-30, abs(max(ys))):
        return {}
    v = ys[0]
    pad = abs(v) / 2 or 1.0
    return {"range": [v - pad, v + pad], "exponentformat": "power"}


def _chart(chart_id: str, tag: str, runs: list[Run], colors: dict, max_points: int) -> dict:
    """A plotly figure for `tag`: one colour per run, train solid, validation dashed; a seed
    group's mean with its ±std band, shaded."""
    traces = []
    for run in runs:
        for split in sorted(run.scalars, key=lambda s: (s != "train", s != "validation", s)):
            points = run.scalars[split].get(tag)
            if not points:
                continue
            std = run.scalars[split].get(analysis.std_tag(tag))
            band = _band(points, std, max_points) if std and analysis.is_aggregate(run.info) else None
            if band:
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "none",
                        "x": band[0],
                        "y": band[1],
                        "fill": "toself",
                        "fillcolor": _translucent(colors[run.name]),
                        "name": _label(f"{run.name} {split} ±std"),
                        "legendgroup": _label(run.name),
                        "showlegend": False,
                        "hoverinfo": "skip",
                    }
                )
            x, y = downsample([p.step for p in points], [p.value for p in points], max_points)
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines",
                    "x": x,
                    "y": y,
                    "name": _label(f"{run.name} {split}"),
                    "legendgroup": _label(run.name),
                    "line": {"color": colors[run.name], "dash": _DASH.get(split, "dot"), "width": 1.6},
                }
            )
    layout = {
        "title": {"text": _label(tag), "font": {"size": 14}, "x": 0.02, "xanchor": "left"},
        "xaxis": {"title": {"text": "step" if tag.endswith("_vs_iterations") else "epoch"}},  # Keras' per-step tags
        "yaxis": {"title": {"text": _label(tag)}, **_readable_range(traces)},
        "margin": {"l": 60, "r": 10, "t": 40, "b": 45},
        "height": 360,
        "legend": {"font": {"size": 10}},
    }
    return {"id": chart_id, "traces": traces, "layout": layout}


def _points_per_curve(runs: list[Run], max_points: int | None) -> int:
    if max_points:
        return max_points
    curves = sum(len(tags) for run in runs for tags in run.scalars.values())
    return max(MIN_POINTS, min(MAX_POINTS, POINT_BUDGET // max(1, curves)))


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _value_at(points: list[reader.Point], step: int) -> float | None:
    return next((p.value for p in points if p.step == step), None)


def shown_runs(runs: list[Run]) -> list[Run]:
    """The runs a family shows: a seed group (`<model>/seed_<k>` and `<model>/mean`) as its mean,
    named `<model>` (the seed runs are its band); seed runs with no mean yet as themselves."""
    means = {
        (r.family, r.name.rpartition("/")[0])
        for r in runs
        if r.name.rpartition("/")[2] == analysis.MEAN and analysis.is_aggregate(r.info)
    }
    out = []
    for r in runs:
        group, _, member = r.name.rpartition("/")
        if (r.family, group) not in means:
            out.append(r)
        elif member == analysis.MEAN:
            out.append(dataclasses.replace(r, name=group))
    return out


def _seeds(run: Run) -> int | None:
    members = run.info.get("members")
    return len(members) if analysis.is_aggregate(run.info) and isinstance(members, list) else None


def summary_row(run: Run) -> dict:
    """The numbers of a run's summary line: best validation data loss, train loss there, the gap."""
    tag = _data_loss_tag(run)
    val = run.scalars.get("validation", {}).get(tag, []) if tag else []
    train = run.scalars.get("train", {}).get(tag, []) if tag else []
    best_epoch = run.info.get("best_epoch")
    if best_epoch is None and val:
        best_epoch = min(val, key=lambda p: p.value if math.isfinite(p.value) else math.inf).step
    best = _value_at(val, best_epoch) if best_epoch is not None else None
    at_best = _value_at(train, best_epoch) if best_epoch is not None else None
    epochs = run.info.get("epochs", 1 + max((p.step for p in val or train), default=-1))
    group = tag and analysis.is_aggregate(run.info)
    std = run.scalars.get("validation", {}).get(analysis.std_tag(tag), []) if group else []
    return {
        "run": run.name,
        "seeds": _seeds(run),
        "status": run.info.get("status", "–"),
        "params": run.info.get("params"),
        "epochs": epochs,
        "best epoch": best_epoch,
        "metric": (tag or "–").removeprefix("epoch_"),
        "best validation": best,
        "± std": _value_at(std, best_epoch) if best_epoch is not None else None,
        "train at best": at_best,
        "gap at best": None if best is None or at_best is None else best - at_best,
    }


def _table(header: list[str], rows: list[list], cls: str, fmt=_fmt) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_SUMMARY_COLUMNS = {  # header: summary_row key
    "run": "run",
    "seeds": "seeds",
    "status": "status",
    "params": "params",
    "epochs": "epochs",
    "best epoch": "best epoch",
    "data loss": "metric",
    "best validation": "best validation",
    "± std": "± std",
    "train at best": "train at best",
    "gap at best": "gap at best",
}


_GROUP_COLUMNS = ("seeds", "± std")  # shown when the family has a seed group


def _summary_table(runs: list[Run]) -> str:
    groups = any(analysis.is_aggregate(r.info) for r in runs)
    columns = {h: k for h, k in _SUMMARY_COLUMNS.items() if groups or h not in _GROUP_COLUMNS}
    rows = [[row[key] for key in columns.values()] for row in map(summary_row, runs)]
    return _table(list(columns), rows, "summary")


def _seed_text(run: Run):
    """A run's seed; a seed group's seeds, e.g. `0,1,2`."""
    seeds = run.info.get("seeds")
    if analysis.is_aggregate(run.info) and isinstance(seeds, list):
        return ",".join(map(str, seeds))
    return run.info.get("seed")


def _hparams_table(runs: list[Run]) -> str:
    keys = []
    for run in runs:
        keys += [k for k in run.info.get("hparams", {}) if k not in keys]
    rows = [
        [run.name, run.info.get("dataset"), _seed_text(run), *(run.info.get("hparams", {}).get(k) for k in keys)]
        for run in runs
    ]
    as_given = lambda v: f"{v:g}" if isinstance(v, float) else _fmt(v)  # noqa: E731  (1e-05, not 0.0000)
    return _table(["run", "dataset", "seed", *keys], rows, "hparams", as_given)


def _family_section(index: int, family: str, runs: list[Run], max_points: int, charts: list) -> str:
    colors = dict(zip([r.name for r in runs], _palette(len(runs))))
    main, regularization, other = _family_tags(runs)

    def grid(tags, group):
        divs = []
        for k, tag in enumerate(tags):
            chart_id = f"chart-{index}-{group}-{k}"
            charts.append(_chart(chart_id, tag, runs, colors, max_points))
            divs.append(f'<div class="chart" id="{chart_id}" data-tag="{html.escape(tag)}"></div>')
        return f'<div class="grid">{"".join(divs)}</div>'

    reg_html = (
        grid(regularization, "reg")
        if regularization
        else (
            '<p class="empty">No regularization components were logged for this family. They appear when '
            "training adds tbreg's callbacks, which log epoch_regularization_loss, "
            "regularization/&lt;layer&gt; and gap/&lt;metric&gt;.</p>"
        )
    )
    parts = [
        f'<section class="family" id="family-{index}"><h2>{html.escape(family)}</h2>',
        f"<h3>Summary</h3>{_summary_table(runs)}",
        '<h3>Curves <span class="note">train solid, validation dashed, train_eval dotted; one colour per run'
        "</span></h3>",
        grid(main, "main") if main else '<p class="empty">No train/validation scalars in this family.</p>',
        f"<h3>Hyperparameters</h3>{_hparams_table(runs)}",
        f'<h3>Regularization components</h3><div class="regularization">{reg_html}</div>',
    ]
    if other:
        parts.append(f"<h3>Other scalars</h3>{grid(other, 'other')}")
    return "".join(parts) + "</section>"


def _script_json(data) -> str:
    """JSON safe inside a <script> element: no `<`, `>`, `&` or line separators left raw."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    for raw in "<>&\u2028\u2029":
        text = text.replace(raw, f"\\u{ord(raw):04x}")
    return text


def plotly_js() -> str:
    """plotly.min.js from the installed plotly package, inlined so the report needs no network."""
    import plotly

    path = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
    with open(path, encoding="utf-8") as f:
        js = f.read()
    return js.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;
  margin:0 auto;max-width:1400px;padding:0 24px 48px}
h1{margin:24px 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}h3{margin:22px 0 8px}
.meta,.note{color:#666;font-weight:normal;font-size:13px}
table{border-collapse:collapse;margin:6px 0;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:3px 9px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(620px,1fr));gap:10px}
.chart{border:1px solid #eee;min-height:360px}.empty{color:#777;font-style:italic}
"""

_SCRIPT = """
const data = JSON.parse(document.getElementById("tbreg-data").textContent);
for (const chart of data.charts) {
  Plotly.newPlot(chart.id, chart.traces, chart.layout, {displaylogo: false, responsive: true});
}
"""


def longest_curve(runs: list[Run]) -> int:
    return max((len(p) for r in runs for tags in r.scalars.values() for p in tags.values()), default=0)


def render_report(runs: list[Run], title: str, max_points: int | None = None) -> tuple[str, int]:
    """The report's HTML for `runs` and the most points kept per curve."""
    per_curve = _points_per_curve(runs, max_points)
    families, charts = {}, []
    for run in runs:
        families.setdefault(run.family, []).append(run)
    families = {family: shown_runs(members) for family, members in families.items()}
    sections = [
        _family_section(i, fam, fam_runs, per_curve, charts) for i, (fam, fam_runs) in enumerate(families.items())
    ]
    toc = " · ".join(f'<a href="#family-{i}">{html.escape(f)}</a>' for i, f in enumerate(families))
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    longest = longest_curve(runs)
    sampled = (
        f" Curves longer than {per_curve} points are downsampled (each bucket's min and max kept); "
        "<code>tbreg share export</code> gives every point."
        if longest > per_curve
        else ""
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style><script>{plotly_js()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">{len(runs)} run{"s" * (len(runs) != 1)} in {len(families)} '
        f"famil{'ies' if len(families) != 1 else 'y'} · made {now} "
        f"by tbreg {tbreg.__version__}.{sampled}</p>"
        f"<nav>{toc}</nav>{''.join(sections)}"
        f'<script type="application/json" id="tbreg-data">{_script_json({"charts": charts})}</script>'
        f"<script>{_SCRIPT}</script></body></html>"
    ), per_curve


def write_report(logdir: str, out: str, max_points: int | None = None, keep_damaged: bool = False) -> ReportResult:
    """Writes the report of every run below `logdir` to `out` (one HTML file, opens offline)."""
    runs = load_runs(logdir, keep_damaged)
    text, per_curve = render_report(runs, f"tbreg report: {logdir}", max_points)
    data = text.encode("utf-8")
    with atomic_output(out) as f:
        f.write(data)
    families = len({r.family for r in runs})
    return ReportResult(out, len(data), len(runs), families, per_curve, longest_curve(runs) > per_curve)


# ---------------------------------------------------------------------------------------------
# Bundle: the tree plus a manifest (size, sha256, event count per file)


@dataclasses.dataclass(frozen=True)
class BundleResult:
    path: str
    root: str  # the tree's dir name inside the bundle
    files: int
    bytes: int


def _read_snapshot(path: str, size: int) -> bytes:
    """The first `size` bytes of `path` (a file still being written may have grown since)."""
    with gfile.GFile(path, "rb") as f:
        data = f.read(size)
    if len(data) != size:
        raise UserError(f"{path} shrank while being read; is something rewriting it? try again")
    return data


def _manifest_entry(logdir: str, rel: str, live: set[str]) -> tuple[dict, bytes]:
    path = os.path.join(logdir, rel)
    data = _read_snapshot(path, gfile.stat(path).length)
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
    runs = load_runs(logdir)  # checks every event file and says what is wrong
    live = {r.rel for r in runs if r.info.get("status") == "running"}
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
    except (AssertionError, KeyError, TypeError, ValueError, tarfile.TarError, EOFError, OSError, zlib.error) as e:
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


def open_bundle(bundle: str, dest: str = ".") -> OpenResult:
    """Verifies `bundle` against its manifest and extracts its tree into `dest` (a local dir).

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
        target = os.path.join(dest, manifest["root"])
        if os.path.lexists(target):
            raise UserError(f"{target} already exists; pass --dest=DIR to open the bundle elsewhere")
        _check_no_dangling_link(dest, "--dest=")
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


# ---------------------------------------------------------------------------------------------
# Upload: incremental, verified copies to any tf.io.gfile destination


@dataclasses.dataclass
class SyncResult:
    copied: int = 0
    bytes: int = 0
    unchanged: int = 0
    cycles: int = 0
    interrupted: bool = False


def _check_no_dangling_link(path: str, flag: str = "") -> None:
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


def check_destination(uri: str) -> None:
    """Fails with a one-line UserError unless `uri` is a dir tf.io.gfile can create and write."""
    _check_no_dangling_link(uri)
    scheme = _scheme(uri)
    try:
        logtree.probe_dir(uri)
    except tf.errors.UnimplementedError:
        raise UserError(
            f"{uri}: unknown URI scheme {scheme!r}; tf.io.gfile here knows local paths, gs:// and ram:// "
            "(s3:// needs the tensorflow-io package)"
        ) from None
    except tf.errors.OpError as e:
        raise UserError(f"{uri}: cannot write there ({_op_error_text(e)}); pick a writable destination") from None


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
    data = _read_snapshot(src, size)
    digest = hashlib.sha256(data).hexdigest()
    parent = os.path.dirname(dst)
    tmp = os.path.join(parent, f".tbreg-upload-{uuid.uuid4().hex[:8]}.tmp")  # no "tfevents" in it
    try:
        gfile.makedirs(parent)
        with gfile.GFile(tmp, "wb") as f:
            f.write(data)
        if logtree.sha256(tmp) != digest:
            raise UserError(f"copy of {src} to {dst} did not verify (sha256 differs); nothing replaced")
        gfile.rename(tmp, dst, overwrite=True)
    finally:
        if gfile.exists(tmp):
            gfile.remove(tmp)


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
        except tf.errors.NotFoundError:  # vanished since the listing (a temp file renamed away)
            continue
        except (tf.errors.OpError, OSError) as e:
            raise UserError(
                f"copying {src} to {dst} failed ({_fs_reason(e)}); nothing partial was left, and the "
                f"{result.copied} files copied before it are complete and verified; fix that (e.g. free some "
                "space) and run again to copy the rest"
            ) from None
        result.copied += 1
        result.bytes += size
    return result


def _inside(child: str, parent: str) -> bool:
    if "://" in child or "://" in parent:
        return child.rstrip("/").startswith(parent.rstrip("/") + "/")
    child, parent = os.path.realpath(child), os.path.realpath(parent)
    return child == parent or child.startswith(parent + os.sep)


def upload(
    logdir: str, uri: str, watch: bool = False, interval: float = 30.0, max_cycles: int = 0, log=print
) -> SyncResult:
    """Copies `logdir` to `uri` (incremental and verified); with `watch`, again every `interval` s.

    Watching stops after `max_cycles` cycles (0 = never) or at Ctrl-C, which ends the copy in
    progress cleanly: every file at `uri` is either its previous version or a verified new one.
    """
    check_source(logdir)
    if _inside(uri, logdir) or _inside(logdir, uri):
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
