"""Report: one self-contained HTML file (plotly inlined) with every family's curves and tables."""

import dataclasses
import datetime
import html
import json
import math
import os

import numpy as np

import tbreg
from tbreg import analysis, reader
from tbreg.reader import Member, Run, load_runs
from tbreg.share.output import atomic_output, check_outside

REGULARIZATION_TAG = analysis.PENALTY_TAG
REGULARIZATION_PREFIXES = ("regularization/", "gap/")
# Report size: plotly.min.js is ~4.8 MB; curves share a budget of points so 50 runs x 10,000
# epochs stay well under 10 MB (each point costs ~17 bytes of JSON).
POINT_BUDGET = 200_000
MIN_POINTS, MAX_POINTS = 100, 2_000


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
    """The run's data-loss tag among its validation scalars (see `analysis.data_loss_tag`)."""
    return analysis.data_loss_tag(run.info, run.scalars.get("validation", {}))


def _tag_order(tag: str, data_loss_tags: set[str]) -> tuple:
    first = ["epoch_loss", *sorted(data_loss_tags), "epoch_accuracy"]
    return (first.index(tag) if tag in first else len(first), tag)


def _family_tags(runs: list[Run]) -> tuple[list[str], list[str], list[str]]:
    """(main, regularization, other) chart tags of a family; main = tags logged in train and validation."""
    every, overlaid = set(), set()
    for run in runs:
        for tags in run.scalars.values():
            every.update(t for t in tags if not (analysis.is_std_tag(t) or analysis.is_end_tag(t)))
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


_DASH = {"train": "solid", "validation": "dash", "train_eval": "dot", "validation_mc": "dashdot"}  # as the tab
BASELINE_COLOR = "#5f6368"  # the tab's baseline gray
BAND_LABEL = {"ci": "95% CI of the mean", "std": "± std (ddof=1)", "std0": "± std (ddof=0, the mean run's)"}


def _translucent(color: str, alpha: float = 0.18) -> str:
    """`color` (#rrggbb or hsl(…)) with opacity `alpha`, for a band's fill."""
    if color.startswith("#"):
        r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
        return f"rgba({r}, {g}, {b}, {alpha})"
    return f"hsla({color[color.index('(') + 1 : -1]}, {alpha})"


def _label(text: str) -> str:
    """`text` for plotly, which reads names as pseudo-HTML and `$…$` as LaTeX: shown literally."""
    return html.escape(text).replace("$", "&#36;")


def _band(points: list[reader.Point], spread: dict, max_points: int) -> tuple[list, list] | None:
    """The closed outline of `mean ± half` (a seed group's band, {step: half-width}), downsampled
    like its line."""
    spread = {s: v for s, v in spread.items() if v is not None and math.isfinite(v)}
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


def seed_band(member: Member, split: str, tag: str, kind: str = "ci") -> analysis.Band | None:
    """A seed group's band of `tag` in `split` (`analysis.seed_band` over its seed runs), or, when
    its seed runs are gone, the mean run's `<tag>/std` (ddof=0) as kind `std0`; None for a run."""
    curves = [c for c in (reader.curve(r, split, tag) for r in member.seeds.values()) if c]
    if curves:
        return analysis.seed_band(curves, kind)
    std = reader.curve(member.run, split, analysis.std_tag(tag))
    if std and analysis.is_aggregate(member.run.info):
        steps = sorted(std)
        return analysis.Band("std0", steps, [], [std[s] for s in steps], [], [])
    return None


def _split_order(split: str) -> tuple:
    return (analysis.SPLITS.index(split) if split in analysis.SPLITS else len(analysis.SPLITS), split)


def _marker_traces(member: Member, row: analysis.FamilyRow, tag: str, color: str) -> list[dict]:
    """The best epoch (a dot on the validation curve), the verdict's onset and where early stopping
    fired, on the chart of the run's data loss; hover tells the value."""
    validation = reader.curve(member.run, "validation", tag)
    s, name = row.summary, _label(member.run.name)
    marks = [(s.best_epoch, "circle", "best epoch")]
    if row.verdict.onset is not None:  # an open diamond: around the dot when it is the best epoch
        marks.append((row.verdict.onset, "diamond-open", "overfitting onset"))
    if s.status == "early_stopped":
        marks.append((s.stop_epoch, "x", "early stopping fired"))
    out = []
    for epoch, symbol, what in marks:
        value = analysis.number(validation.get(epoch)) if epoch is not None else None
        if value is None:
            continue
        out.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": [epoch],
                "y": [float(f"{value:.6g}")],
                "name": _label(f"{member.run.name} {what}"),
                "legendgroup": name,
                "showlegend": False,
                "marker": {"symbol": symbol, "size": 16, "color": "#202124", "line": {"width": 2}}
                if symbol.endswith("-open")
                else {"symbol": symbol, "size": 10, "color": color, "line": {"width": 1.5, "color": "#202124"}},
                "hovertemplate": f"<b>{name}</b> · {what}<br>epoch %{{x}}<br>validation %{{y:.4g}}<extra></extra>",
                "meta": what,
            }
        )
    return out


def _chart(chart_id: str, tag: str, members: list, colors: dict, max_points: int, rows: dict | None = None) -> dict:
    """A plotly figure for `tag`: one colour per run (the baseline gray), train solid, validation
    dashed, train_eval dotted, validation_mc dash-dotted; a seed group's mean with its band (95 %
    CI of the mean over its seeds, n per step in the hover, a tick where n drops); on the data
    loss's chart (`rows`: {run name: FamilyRow}) the markers of `_marker_traces`."""
    traces, marks = [], []
    for member in members:
        run = member.run if isinstance(member, Member) else member
        member = member if isinstance(member, Member) else Member(run, {}, False)
        for split in sorted(run.scalars, key=_split_order):
            points = run.scalars[split].get(tag)
            if not points:
                continue
            band = seed_band(member, split, tag)
            spread = dict(zip(band.steps, band.half)) if band else {}
            n = dict(zip(band.steps, band.n)) if band and band.n else {}
            outline = _band(points, spread, max_points) if band else None
            if outline:
                traces.append(
                    {
                        "type": "scatter",
                        "mode": "none",
                        "x": outline[0],
                        "y": outline[1],
                        "fill": "toself",
                        "fillcolor": _translucent(colors[run.name]),
                        "name": _label(f"{run.name} {split} {BAND_LABEL[band.kind]}"),
                        "legendgroup": _label(run.name),
                        "showlegend": False,
                        "hoverinfo": "skip",
                        "meta": band.kind,
                    }
                )
            x, y = downsample([p.step for p in points], [p.value for p in points], max_points)
            line = {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": y,
                "name": _label(f"{run.name}{' (baseline)' if member.baseline else ''} {split}"),
                "legendgroup": _label(run.name),
                "line": {
                    "color": colors[run.name],
                    "dash": _DASH.get(split, "longdash"),
                    "width": 2.4 if member.baseline else 1.6,
                },
            }
            if band:
                line["customdata"] = [[spread.get(s), n.get(s, "?")] for s in x]
                line["hovertemplate"] = (
                    f"{line['name']}<br>epoch %{{x}}<br>mean %{{y:.4g}} ± %{{customdata[0]:.3g}} "
                    f"({BAND_LABEL[band.kind]})<br>n = %{{customdata[1]}} seeds<extra></extra>"
                )
            traces.append(line)
            drops = [s for s in (band.drops if band else []) if s in n]
            if drops:
                at = {p.step: p.value for p in points}
                marks.append(
                    {
                        "type": "scatter",
                        "mode": "markers+text",
                        "x": drops,
                        "y": [at.get(s) for s in drops],
                        "text": [f"n={n[s]}" for s in drops],
                        "textposition": "top center",
                        "name": _label(f"{run.name} {split} n drops"),
                        "legendgroup": _label(run.name),
                        "showlegend": False,
                        "marker": {"symbol": "line-ns-open", "size": 14, "color": colors[run.name]},
                    }
                )
        if rows and run.name in rows and tag == rows[run.name].summary.data_loss:
            marks += _marker_traces(member, rows[run.name], tag, colors[run.name])
    traces += marks
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


def _seeds(run: Run) -> int | None:
    members = run.info.get("members")
    return len(members) if analysis.is_aggregate(run.info) and isinstance(members, list) else None


def _row_cells(member: Member, row: analysis.FamilyRow) -> dict:
    run, s = member.run, row.summary
    ci = row.best_ci
    return {
        "run": run.name + (" (baseline)" if member.baseline else ""),
        "seeds": _seeds(run) or row.seeds,
        "status": s.status or "–",
        "params": s.params,
        "stop epoch": s.stop_epoch,
        "best epoch": s.best_epoch,
        "metric": (s.data_loss or "–").removeprefix("epoch_"),
        "best validation": s.best_value,
        "± 95% CI": None if ci is None else ci.half,
        "± std": None if ci is None else ci.std,
        "train at best": s.train_value,
        "gap vs": (row.gap_split or "–") + (" (dropout on)" if row.gap_note else ""),
        "gap at best": s.gap,
        "penalty share": s.penalty_share,
        "verdict": "; ".join(t for t in (row.verdict.text, analysis.onset_spread(row.seed_onsets)) if t),
        "vs baseline (paired)": analysis.paired_text(row.paired),
        "_row": row,
        "_baseline": member.baseline,
    }


def summary_rows(runs: list[Run]) -> dict:
    """{name shown: summary line} of one family's runs (seed runs included: a group's CI and paired
    comparison come from them), as `analysis.summarize_family` makes them."""
    members = reader.members(runs)
    return {m.run.name: _row_cells(m, row) for m, row in zip(members, reader.summarize_family(members))}


def summary_row(run: Run) -> dict:
    """One run's summary line, on its own (no family, no seed runs)."""
    return next(iter(summary_rows([run]).values()))


def _table(header: list[str], rows: list[list], cls: str, fmt=_fmt, wide: tuple = ()) -> str:
    """An HTML table; the columns named in `wide` hold sentences (left-aligned, wrapped wider)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    tds = ['<td class="text">' if h in wide else "<td>" for h in header]
    body = "".join(
        "<tr>" + "".join(f"{td}{html.escape(fmt(c))}</td>" for td, c in zip(tds, row)) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_SUMMARY_COLUMNS = {  # header: summary_row key
    "run": "run",
    "seeds": "seeds",
    "status": "status",
    "params": "params",
    "stop epoch": "stop epoch",
    "best epoch": "best epoch",
    "data loss": "metric",
    "best validation": "best validation",
    "± 95% CI": "± 95% CI",
    "± std": "± std",
    "train at best": "train at best",
    "gap vs": "gap vs",
    "gap at best": "gap at best",
    "penalty share": "penalty share",
    "verdict": "verdict",
    "vs baseline (paired)": "vs baseline (paired)",
}


def _percent(share: float | None) -> str | None:
    return None if share is None else f"{share:.1%}"


_GROUP_COLUMNS = ("seeds", "± 95% CI", "± std")  # shown when the family has a seed group
_PAIRED_COLUMNS = ("vs baseline (paired)",)  # shown when a group has a paired comparison


def _summary_table(lines: list[dict]) -> str:
    groups = any(line["seeds"] for line in lines)
    paired = any(line["vs baseline (paired)"] for line in lines)
    columns = {
        h: k
        for h, k in _SUMMARY_COLUMNS.items()
        if (groups or h not in _GROUP_COLUMNS) and (paired or h not in _PAIRED_COLUMNS)
    }
    rows = [
        [_percent(line[key]) if key == "penalty share" else line[key] for key in columns.values()] for line in lines
    ]
    return _table(list(columns), rows, "summary", wide=("verdict", "vs baseline (paired)"))


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


def _all_zero(tag: str, runs: list[Run]) -> bool:
    """Every value of `tag` in every run is 0 (e.g. per-layer penalties of an unregularized run)."""
    values = [p.value for r in runs for tags in r.scalars.values() for p in tags.get(tag, [])]
    return bool(values) and all(v == 0 for v in values)


def _family_section(index: int, family: str, all_runs: list[Run], max_points: int, charts: list) -> str:
    members = reader.members(all_runs)
    runs = [m.run for m in members]
    lines = [_row_cells(m, row) for m, row in zip(members, reader.summarize_family(members))]
    rows = {m.run.name: line["_row"] for m, line in zip(members, lines)}
    palette = iter(_palette(len(runs)))
    colors = {m.run.name: BASELINE_COLOR if m.baseline else next(palette) for m in members}
    main, regularization, other = _family_tags(runs)
    diagnostics = [t for t in other if analysis.is_diagnostic_tag(t) and not _is_unreliable_flag(t)]
    other = [t for t in other if not analysis.is_diagnostic_tag(t)]
    zero = [t for t in regularization if _all_zero(t, runs)]
    regularization = [t for t in regularization if t not in zero]

    def grid(tags, group):
        divs = []
        for k, tag in enumerate(tags):
            chart_id = f"chart-{index}-{group}-{k}"
            charts.append(_chart(chart_id, tag, members, colors, max_points, rows))
            divs.append(f'<div class="chart" id="{chart_id}" data-tag="{html.escape(tag)}"></div>')
        return f'<div class="grid">{"".join(divs)}</div>'

    zero_note = (
        f'<p class="empty zero">Left out, 0 at every epoch of every run: {html.escape(", ".join(zero))}.</p>'
        if zero
        else ""
    )
    reg_html = (
        grid(regularization, "reg") + zero_note
        if regularization
        else zero_note
        if zero
        else (
            '<p class="empty">No regularization components were logged for this family. They appear when '
            "training adds tbreg's callbacks, which log epoch_regularization_loss, "
            "regularization/&lt;layer&gt; and gap/&lt;metric&gt;.</p>"
        )
    )
    parts = [
        f'<section class="family" id="family-{index}"><h2>{html.escape(family)}</h2>',
        f"<h3>Summary</h3>{_summary_table(lines)}",
        f'<p class="note">{_SUMMARY_NOTE}</p>',
        '<h3>Curves <span class="note">train solid, validation dashed, train_eval (training data in inference '
        "mode) dotted, validation_mc (MC dropout) dash-dotted; one colour per run, the baseline gray; a seed "
        "group's band is the 95% CI of its mean (hover: n seeds; a tick where n drops); markers on the data "
        "loss: ● best epoch, ◇ overfitting onset (around the dot when it is the best epoch), ✕ early stopping fired</span></h3>",
        grid(main, "main") if main else '<p class="empty">No train/validation scalars in this family.</p>',
        f"<h3>Hyperparameters</h3>{_hparams_table(runs)}",
        f'<h3>Regularization components</h3><div class="regularization">{reg_html}</div>',
    ]
    if diagnostics:
        correlations = reader.diagnostic_correlations(members, [line["_row"] for line in lines])
        parts.append(
            f"<h3>Weight diagnostics</h3>{diagnostics_table(correlations, [m.run.name for m in members])}"
            f"{_unreliable_note(runs)}{grid(diagnostics, 'diag')}"
        )
    if other:
        parts.append(f"<h3>Other scalars</h3>{grid(other, 'other')}")
    return "".join(parts) + "</section>"


def _is_unreliable_flag(tag: str) -> bool:
    return tag.startswith(f"{analysis.DIAGNOSTIC_PREFIX}{analysis.ALPHA_UNRELIABLE}/")


def diagnostics_table(correlations: list[analysis.Correlation], names: list[str]) -> str:
    """The family's rank-correlation table (`analysis.diagnostic_correlations`) and each run's values."""
    fmt_p = lambda v: "–" if v is None else f"{v:.2g}" if isinstance(v, float) else _fmt(v)  # noqa: E731
    rows = [[c.diagnostic, c.text, c.n, None if c.rho is None else f"{c.rho:+.2f}", c.p, c.note] for c in correlations]
    table = _table(
        ["diagnostic", "per run, at its best epoch", "n", "Spearman ρ with the gap", "p", "reading"],
        rows,
        "diagnostics",
        fmt_p,
        wide=("per run, at its best epoch", "reading"),
    )
    values = {}  # run index -> {diagnostic: value}, and its gap
    gaps = {}
    for c in correlations:
        for i, value, gap in c.values:
            values.setdefault(i, {})[c.diagnostic] = value
            gaps[i] = gap
    per_run = [[names[i], gaps[i], *(values[i].get(c.diagnostic) for c in correlations)] for i in sorted(values)]
    per_run_table = _table(["run", "gap at best", *(c.diagnostic for c in correlations)], per_run, "diagnostic-values")
    return f'{table}<p class="note">{_DIAGNOSTICS_NOTE}</p>{per_run_table}'


def _unreliable_note(runs: list[Run]) -> str:
    """Which layers' α fits are flagged unreliable (too few eigenvalues), by run."""
    flagged = []
    for run in runs:
        layers = sorted(
            tag.rpartition("/")[2]
            for tag, points in run.scalars.get("train", {}).items()
            if _is_unreliable_flag(tag) and points and points[-1].value > 0
        )
        if layers:
            flagged.append(f"{run.name}: {', '.join(layers)}")
    if not flagged:
        return ""
    return (
        '<p class="note">α unreliable (fewer than 50 eigenvalues or a tail under 10; left out of mean_alpha): '
        f"{html.escape('; '.join(flagged))}.</p>"
    )


_DIAGNOSTICS_NOTE = html.escape(
    "Each run's value is taken at the logged epoch nearest its best epoch (diagnostics are logged every few "
    "epochs); the gap is the summary's gap at best. Spearman ρ ranks the runs: +1 = the diagnostic orders them "
    f"exactly as the gap does. Fewer than {analysis.MIN_CORRELATION_RUNS} runs: no ρ. p is exact (all orderings) up to "
    f"{analysis.EXACT_P_RUNS} runs: with few runs it stays large even for |ρ| = 1 (n = 4: p = 1/12 at best); see docs/callbacks.md for what each measure means."
)


_SUMMARY_NOTE = html.escape(
    "Best epoch = lowest validation data loss. The gap is validation minus the training data loss in inference "
    'mode (train_eval) where it was logged; "train (dropout on)" marks a model with dropout without it, whose '
    f"gap is against the dropout-on loss. Onset: Prechelt's GL{analysis.GL_THRESHOLD:g} (validation "
    f"{analysis.GL_THRESHOLD:g}% above its lowest so far) on a centred {analysis.SMOOTH_WINDOW}-epoch moving "
    "average. A seed group: ± 95% CI (t, n−1) and std (ddof=1) over its seeds at the best epoch; vs baseline: "
    "mean paired difference of the seeds' best validation data loss (seed k with seed k) [95% CI]."
)


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
td.text{text-align:left;min-width:240px}
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
    check_outside(out, logdir)
    runs = load_runs(logdir, keep_damaged)
    text, per_curve = render_report(runs, f"tbreg report: {logdir}", max_points)
    data = text.encode("utf-8")
    with atomic_output(out) as f:
        f.write(data)
    families = len({r.family for r in runs})
    return ReportResult(out, len(data), len(runs), families, per_curve, longest_curve(runs) > per_curve)
