"""The tutorial's figures: tensorflow-docs' HistoryPlotter, fed from a family's event files.

Train curves are solid, validation dashed, one colour per run, optionally smoothed with the
plotter's Gaussian kernel, on a log epoch axis and within y limits, as in "Overfit and underfit";
the legend, right of the curves, names the runs as the tree does.
"""

import dataclasses
import io
import os
import types

import matplotlib

matplotlib.use("Agg")  # files only; never a window (tensorflow_docs.plots imports pyplot)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tensorflow_docs import plots as tfdocs_plots  # noqa: E402

from tbreg import analysis, reader  # noqa: E402
from tbreg.errors import UserError  # noqa: E402
from tbreg.share.output import atomic_output, check_outside  # noqa: E402

FORMATS = {".png": "png", ".svg": "svg"}


@dataclasses.dataclass(frozen=True)
class PlotResult:
    path: str
    metric: str
    runs: list[str]
    skipped: list[str]  # runs without that metric in both train and validation
    # {run name: analysis.FamilyRow} of the runs drawn (verdict, onset, CI, paired comparison)
    rows: dict = dataclasses.field(default_factory=dict)
    # {run name: [(what, epoch, value)]}: the markers drawn on its validation line
    markers: dict = dataclasses.field(default_factory=dict)


def _history(run: reader.Run, tag: str) -> types.SimpleNamespace | None:
    """A keras.callbacks.History look-alike (`.epoch`, `.history`) for the epochs both splits logged."""
    train = {p.step: p.value for p in run.scalars.get("train", {}).get(tag, [])}
    val = {p.step: p.value for p in run.scalars.get("validation", {}).get(tag, [])}
    epochs = sorted(set(train) & set(val))
    if not epochs:
        return None
    metric = tag.removeprefix("epoch_")
    return types.SimpleNamespace(
        epoch=epochs, history={metric: [train[e] for e in epochs], f"val_{metric}": [val[e] for e in epochs]}
    )


def default_metric(runs: list[reader.Run]) -> str:
    """The family's data loss (what EarlyStopping watched), e.g. binary_crossentropy."""
    for run in runs:
        tag = analysis.data_loss_tag(run.info, run.scalars.get("validation", {}))
        if tag:
            return tag.removeprefix("epoch_")
    raise UserError("no run has validation scalars to plot; pass --metric=NAME")


def _label(run: reader.Run, taken: dict) -> str:
    """The legend name of `run`; `$` kept literal (matplotlib reads `$…$` as math)."""
    name = run.name if run.name not in taken else f"{run.family}/{run.name}"
    return name.replace("$", r"\$")


def histories(runs: list[reader.Run], metric: str) -> tuple[dict, list[str]]:
    """{run name: history} of the runs that logged `metric`, and the names of those that did not."""
    tag = "epoch_" + metric.removeprefix("epoch_")
    found, skipped = {}, []
    for run in runs:
        history = _history(run, tag)
        if history is None:
            skipped.append(run.name)
        else:
            found[_label(run, found)] = history
    if not found:
        logged = sorted(
            {t.removeprefix("epoch_") for r in runs for t in r.scalars.get("validation", {}) if t.startswith("epoch_")}
        )
        raise UserError(
            f"no run logged {tag} in both train and validation; --metric can be one of: {', '.join(logged) or '(none)'}"
        )
    return found, skipped


def _by_label(members: list[reader.Member]) -> dict:
    names = {}
    for m in members:
        names.setdefault(_label(m.run, names), m)
    return names


def _draw_bands(plotter, members: list[reader.Member], found: dict, tag: str, smoothing_std: int | None) -> None:
    """A shaded band around each seed group's train and validation lines: the 95 % CI of the mean
    over its seed runs (the tab's and the report's band), where it is known."""
    from tbreg.share import report

    names = _by_label(members)
    for name, history in found.items():
        member = names.get(name)
        if member is None:
            continue
        for split in ("train", "validation"):
            band = report.seed_band(member, split, tag)
            mean = reader.curve(member.run, split, tag)
            half = dict(zip(band.steps, band.half)) if band else {}
            known = np.array([e in mean and half.get(e) is not None for e in history.epoch])
            if not known.any():
                continue
            m = np.array([mean.get(e, np.nan) for e in history.epoch], dtype=float)
            s = np.array([half.get(e) if half.get(e) is not None else np.nan for e in history.epoch], dtype=float)
            low, high = m - s, m + s
            if smoothing_std and known.all():  # as the plotter smooths the line
                low, high = tfdocs_plots._smooth(low, smoothing_std), tfdocs_plots._smooth(high, smoothing_std)
            # where fewer than 2 seeds logged an epoch the band stops (n per step: see the tab)
            plt.fill_between(
                history.epoch, low, high, where=known, color=plotter.color_table[name], alpha=0.15, linewidth=0
            )


def _draw_markers(
    plotter, members: list[reader.Member], rows: dict, found: dict, tag: str, smoothing_std: int | None
) -> dict:
    """On each run's validation line (of its data loss): ● the best epoch, ◆ the overfitting onset,
    ✕ where early stopping fired; returns {name: [(what, epoch, value)]}."""
    names, out = _by_label(members), {}
    for name, history in found.items():
        member, row = names.get(name), rows.get(name)
        if member is None or row is None or row.summary.data_loss != tag:
            continue
        s = row.summary
        marks = [("best epoch", s.best_epoch, "o")]
        if row.verdict.onset is not None:  # an open diamond, around the dot when it is the best epoch
            marks.append(("overfitting onset", row.verdict.onset, "D"))
        if s.status == "early_stopped":
            marks.append(("early stopping fired", s.stop_epoch, "X"))
        values = history.history["val_" + tag.removeprefix("epoch_")]
        shown = tfdocs_plots._smooth(np.array(values), smoothing_std) if smoothing_std else values
        for what, epoch, symbol in marks:
            if epoch in history.epoch:
                i = history.epoch.index(epoch)
                style = (
                    dict(markerfacecolor="none", markersize=12, markeredgewidth=1.5)
                    if symbol == "D"
                    else dict(markersize=7)
                )
                plt.plot(
                    [epoch],
                    [shown[i]],
                    symbol,
                    color=plotter.color_table[name],
                    markeredgecolor="#202124",
                    zorder=5,
                    **style,
                )
                out.setdefault(name.replace(r"\$", "$"), []).append((what, epoch, float(values[i])))
    return out


def _rows(members: list[reader.Member]) -> dict:
    """{legend name: analysis.FamilyRow}, each family summarized on its own (as the tab does)."""
    families, out, names = {}, {}, _by_label(members)
    for m in members:
        families.setdefault(m.run.family, []).append(m)
    rows = {id(m): row for fam in families.values() for m, row in zip(fam, reader.summarize_family(fam))}
    return {name: rows[id(m)] for name, m in names.items()}


def _label_and_place_legend(ax, names: list[str]) -> None:
    """The runs' own names in the legend (the plotter title-cases them: `l1_l2` → `L1_L2`), and the
    legend right of the axes, where it hides no curve (the saved figure grows to hold it)."""
    lines = ax.get_lines()  # the plotter draws train then validation per run, in `names` order
    for name, train, val in zip(names, lines[0::2], lines[1::2]):
        train.set_label(f"{name} train")
        val.set_label(f"{name} validation")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")


def plot_family(
    logdir: str,
    out: str,
    metric: str | None = None,
    smoothing_std: int | None = None,
    logx: bool = False,
    ylim: tuple[float, float] | None = None,
    keep_damaged: bool = False,
) -> PlotResult:
    """Draws `metric` for every run below `logdir` (usually a family dir) into `out` (.png or .svg)."""
    fmt = FORMATS.get(os.path.splitext(out)[1].lower())
    if fmt is None:
        raise UserError(f"-o {out}: give a .png or .svg file name")
    check_outside(out, logdir)
    loaded = reader.load_runs(logdir, keep_damaged)
    families = {}
    for run in loaded:
        families.setdefault(run.family, []).append(run)
    members = [m for fam in families.values() for m in reader.members(fam)]
    runs = [m.run for m in members]
    metric = (metric or default_metric(runs)).removeprefix("epoch_")
    found, skipped = histories(runs, metric)
    rows = _rows(members)
    fig = plt.figure(figsize=(8, 6))
    try:
        plotter = tfdocs_plots.HistoryPlotter(metric=metric, smoothing_std=smoothing_std)
        plotter.plot(found)
        _label_and_place_legend(plt.gca(), list(found))
        _draw_bands(plotter, members, found, "epoch_" + metric, smoothing_std)
        markers = _draw_markers(plotter, members, rows, found, "epoch_" + metric, smoothing_std)
        if logx:  # the tutorial's log-scale view: epoch 0 cannot be shown
            last = max(h.epoch[-1] for h in found.values())
            plt.xscale("log")
            plt.xlim([5 if last > 50 else 1, max(plt.xlim())])
            plt.xlabel("Epochs [Log Scale]")
        if ylim:
            plt.ylim(list(ylim))
        plt.title((os.path.basename(logdir.rstrip("/")) or logdir).replace("$", r"\$"))
        image = io.BytesIO()
        fig.savefig(image, format=fmt, dpi=100, bbox_inches="tight")
        with atomic_output(out) as f:
            f.write(image.getvalue())
    finally:
        plt.close(fig)
    drawn = {name.replace(r"\$", "$"): rows[name] for name in found if name in rows}
    return PlotResult(out, metric, [name.replace(r"\$", "$") for name in found], skipped, drawn, markers)
