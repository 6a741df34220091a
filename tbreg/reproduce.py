"""Reproductions: train what the sources' claims read, check the claims, write the page.

`reproduce(sources, ...)` trains each source's models (tbreg.sweep.train_family, with seeds) into
`<logdir>/<dataset>[-<N>epochs]/<group>/<family>/<model>/seed_<k>`, skipping models whose seed
runs are already complete there; `measure` reads them back (tbreg.reader, tbreg.analysis);
tbreg.claims decides each claim; `write_page` writes docs/reproductions.md and its figures.
"""

import dataclasses
import datetime
import functools
import io
import os
import platform
import re
import sys
import time

from tbreg import analysis, claims, families
from tbreg import config as config_lib
from tbreg.errors import UserError
from tbreg.status import FINISHED, Status

# Chollet's models on MNIST-1D (no early stopping, as in his books): enough epochs for his
# bigger models to overfit; his own datasets keep their presets (20 epochs).
CHOLLET_MNIST1D_EPOCHS = 60
# The group's real dataset per family (with --data_path DATASET=PATH), else MNIST-1D.
REAL = {
    "tutorial": {"sizes": "higgs", "regularizers": "higgs", "schedules": "higgs"},
    "chollet": {"sizes": "imdb", "regularizers": "imdb", "learning_rate": "mnist", "capacity": "mnist"},
}
# Models a claim reads that no registry family has: Chollet's "too low" learning rate.
EXTRA_SPECS = {("chollet", "learning_rate"): (families.chollet("lr_1e-5", (512,), learning_rate=1e-5),)}
OFFLINE = "mnist1d"
# Figures whose curves would be flattened by one run's huge losses (a learning rate of 1.0 reaches
# thousands): the y range shown, as the tutorial sets plt.ylim.
YLIM = {("chollet", "learning_rate"): (0.0, 3.0)}


def parse_sources(name: str) -> list:
    """The sources `name` means (a source key or `all`); a UserError naming the choices otherwise."""
    if name == claims.ALL:
        return list(claims.SOURCES.values())
    if name not in claims.SOURCES:
        raise UserError(f"unknown source {name!r}; choose one of {', '.join([*claims.SOURCES, claims.ALL])}")
    return [claims.SOURCES[name]]


def parse_data_paths(values) -> dict:
    """{dataset: path} from `DATASET=PATH` items (the real datasets a reproduction may use)."""
    out = {}
    for item in values or ():
        dataset, sep, path = item.partition("=")
        if not sep or not path or dataset not in ("higgs", "imdb", "mnist"):
            raise UserError(
                f"--data_path={item}: give DATASET=PATH with DATASET higgs, imdb or mnist, "
                "e.g. --data_path=imdb=imdb.npz,mnist=mnist.npz"
            )
        out[dataset] = path
    return out


@dataclasses.dataclass(frozen=True)
class Plan:
    """One family of a group to train: on `dataset`, into `logdir` (the group's dir), `models`."""

    group: str
    family: str
    registry: str  # the registry dataset whose family it is (mnist1d/higgs, imdb, mnist)
    dataset: str  # the dataset it trains on
    logdir: str
    models: tuple[str, ...]
    max_epochs: int | None  # None: the dataset's preset
    patience: int | None
    batch_size: int | None = None  # None: the dataset's preset


def plan(sources, logdir: str, data_paths: dict, max_epochs: int | None) -> list[Plan]:
    """The families the claims of `sources` read, each on its dataset, with its size."""
    out = []
    for group, fams in claims.needed(sources).items():
        for family, models in fams.items():
            real = REAL[group][family]
            dataset = real if real in data_paths else OFFLINE
            registry = dataset if group == "tutorial" else real
            epochs, patience, batch = max_epochs, None, None
            if group == "chollet":  # his books train a fixed number of epochs, in his batch size
                epochs = max_epochs or (CHOLLET_MNIST1D_EPOCHS if dataset == OFFLINE else None)
                patience = epochs or 20
                batch = config_lib.PRESETS["mnist"]["batch_size"] if dataset == OFFLINE and real == "mnist" else None
            size = "" if max_epochs is None else f"-{max_epochs}epochs"
            where = os.path.join(logdir, dataset + size, group)
            out.append(Plan(group, family, registry, dataset, where, tuple(models), epochs, patience, batch))
    return out


def _complete(run_dir: str, seeds, expect=None) -> bool:
    """A model's seed group that needs no training: every seed finished and its mean written, with
    the config values `expect` says ({field: value}, e.g. batch_size)."""
    from tbreg import logtree

    mean = logtree.read_run_json(os.path.join(run_dir, analysis.MEAN)) or {}
    if mean.get("status") != Status.AGGREGATE:
        return False
    for seed in seeds:
        record = logtree.read_run_json(os.path.join(run_dir, analysis.seed_dir(seed))) or {}
        if record.get("status") not in FINISHED:
            return False
        config = record.get("config") if isinstance(record.get("config"), dict) else {}
        if any(config.get(k) != v for k, v in (expect or {}).items()):
            return False
    return True


def _expect(p: "Plan") -> dict:
    """The config values a plan's runs must have been trained with to be reused."""
    return {k: v for k, v in (("batch_size", p.batch_size), ("max_epochs", p.max_epochs)) if v is not None}


def _newest_complete(family_dir: str, model: str, seeds, expect=None) -> str | None:
    from tbreg import logtree

    done = [d for d in logtree.runs_of(family_dir, model) if _complete(d, seeds, expect)]
    return done[-1] if done else None


@dataclasses.dataclass
class Trained:
    """What `train` did for one family: models trained, models reused, seconds."""

    plan: Plan
    trained: list
    reused: list
    seconds: float
    failed: list = dataclasses.field(default_factory=list)


def _config(p: Plan, data_paths: dict, dtype_policy: str):
    return config_lib.for_dataset(
        p.dataset,
        data_path=data_paths.get(p.dataset),
        max_epochs=p.max_epochs,
        patience=p.patience,
        batch_size=p.batch_size,
        seed=0,
        verbose=0,
        checkpoint_secs=30,
        dtype_policy=dtype_policy,
    )


def train(plans, seeds, data_paths: dict, dtype_policy: str = "float32", jobs: int = 1, log=print) -> list[Trained]:
    """Trains each plan's models that have no complete seed group yet; returns what it did."""
    from tbreg import callbacks as callbacks_lib
    from tbreg import datasets, hparams, logtree, sweep

    loaded, out = {}, []
    for p in plans:
        family = families.get(p.family, p.registry)
        extra = {s.name: s for s in EXTRA_SPECS.get((p.group, p.family), ())}
        specs = [extra[m] if m in extra else family.select([m])[0] for m in p.models]
        family_dir = os.path.join(p.logdir, p.family)
        todo = [s for s in specs if _newest_complete(family_dir, s.name, seeds, _expect(p)) is None]
        reused = [s.name for s in specs if s not in todo]
        started = time.monotonic()
        results = []
        if todo:
            config = _config(p, data_paths, dtype_policy)
            if p.dataset not in loaded:
                loaded[p.dataset] = datasets.load(config)
            data = loaded[p.dataset]
            log(
                f"{p.group}/{p.family} on {p.dataset}: training {', '.join(s.name for s in todo)} × {len(seeds)} seeds"
                f" ({config.max_epochs} epochs at most) into {family_dir}"
            )
            logtree.check_logdir(p.logdir)
            results = sweep.train_family(
                family,
                todo,
                data,
                config,
                p.logdir,
                "new",
                callbacks_for=functools.partial(callbacks_lib.make, train_data=(data.x_train, data.y_train)),
                extra={"flags": {"reproduce": p.group}},
                jobs=jobs,
                seeds=list(seeds),
            )
            hparams.write_experiment(p.logdir)
        if reused:
            log(f"{p.group}/{p.family}: reusing complete runs of {', '.join(reused)}")
        failed = sorted({r.model for r in results if r.status == Status.FAILED})
        out.append(Trained(p, [s.name for s in todo], reused, time.monotonic() - started, failed))
        _copy_baseline(p, family, seeds)
    return out


def _copy_baseline(p: Plan, family, seeds) -> None:
    """The family's baseline beside it (the figures show it, as the tutorial's do), refreshed."""
    from tbreg import logtree

    if not family.baseline_family or not family.default_baseline:
        return
    src = _newest_complete(os.path.join(p.logdir, family.baseline_family), family.default_baseline, seeds)
    if src is None:
        return
    dst = os.path.join(p.logdir, p.family, family.default_baseline)
    if not (os.path.isdir(dst) and logtree.same_tree(src, dst)):
        logtree.copy_run(src, dst, overwrite=True)  # only ever a copy this command made


# ---------------------------------------------------------------------------------------------
# Reading the runs back


def _first_kernel_spread(run) -> float | None:
    """The std of the first hidden layer's kernel at the last epoch its histogram was logged."""
    from tbreg import reader

    split = os.path.join(run.path, "train")
    if not os.path.isdir(split):
        return None
    hists = reader.histograms(split)
    tags = sorted(t for t in hists if re.fullmatch(r"weights/hidden_1/kernel", t))
    if not tags or not hists[tags[0]]:
        return None
    last = max(hists[tags[0]], key=lambda h: h.step)
    return claims.spread_of_histogram(last.buckets)


def _seed(run, weights: bool) -> claims.Seed:
    from tbreg import reader

    (row,) = reader.summarize_family(reader.members([run]))
    tag = reader.data_loss_tag(run)
    _, mc = analysis.lowest(reader.curve(run, "validation_mc", tag))
    s = row.summary
    return claims.Seed(
        best_value=s.best_value,
        best_epoch=s.best_epoch,
        gap=s.gap,
        gap_split=row.gap_split,
        onset=row.verdict.onset,
        verdict=row.verdict.kind,
        stop_epoch=s.stop_epoch,
        penalty_share=s.penalty_share,
        mc_best=mc,
        weight_spread=_first_kernel_spread(run) if weights else None,
        validation=reader.curve(run, "validation", tag),
    )


def _when(text):
    try:
        return datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def training_span(runs) -> dict:
    """When the seed runs read were trained, from their own records: how many, the sum of their
    durations, and the first start and last end."""
    spans = [(_when(r.info.get("started")), _when(r.info.get("finished"))) for r in runs]
    spans = [(a, b) for a, b in spans if a and b]
    if not spans:
        return {"runs": 0}
    return {
        "runs": len(spans),
        "seconds": sum((b - a).total_seconds() for a, b in spans),
        "first": min(a for a, _ in spans),
        "last": max(b for _, b in spans),
    }


def measure(plans, seeds, weight_keys=(), read=None) -> dict:
    """{group: claims.Measured}: per (family, model) the newest complete seed group's seeds; the
    seed runs read are appended to `read` when given."""
    from tbreg import reader
    from tbreg.aggregate import _quiet_loader

    out = {}
    for p in plans:
        measured = out.setdefault(p.group, {})
        family_dir = os.path.join(p.logdir, p.family)
        for model in p.models:
            run_dir = _newest_complete(family_dir, model, seeds, _expect(p))
            if run_dir is None:
                continue
            with _quiet_loader():
                runs = reader.load_runs(run_dir)
            by_seed = {}
            for run in runs:
                seed = analysis.seed_of(run.member)
                if seed in seeds:
                    by_seed[seed] = _seed(run, (p.family, model) in weight_keys)
                    if read is not None:
                        read.append(run)
            measured[(p.family, model)] = by_seed
    return out


def check_all(sources, measured: dict) -> dict:
    """{source key: [(claim, result)]}."""
    return {s.key: [(c, claims.check(c, measured.get(s.group, {}))) for c in s.claims] for s in sources}


# ---------------------------------------------------------------------------------------------
# The page


def machine() -> dict:
    """This machine, for the page: CPU model and count, OS, load average, library versions."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    from tbreg import training

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(terse=True),
        "load": os.getloadavg(),
        "versions": training.versions(),
    }


def plot_figures(plans, figure_dir: str, sources) -> dict:
    """{(group, family): figure path} of the families the sources show, where their runs exist."""
    from tbreg import plot as plot_lib

    wanted = {(s.group, f) for s in sources for f in s.figures}
    out = {}
    for p in plans:
        if (p.group, p.family) not in wanted or (p.group, p.family) in out:
            continue
        family_dir = os.path.join(p.logdir, p.family)
        if not os.path.isdir(family_dir):
            continue
        path = os.path.join(figure_dir, f"{p.group}_{p.family}_{os.path.basename(os.path.dirname(p.logdir))}.png")
        try:
            plot_lib.plot_family(family_dir, path, ylim=YLIM.get((p.group, p.family)))
        except UserError as e:
            print(f"tbreg reproduce: no figure of {family_dir}: {e}", file=sys.stderr)
            continue
        out[(p.group, p.family)] = path
    return out


def plot_weights(plans, figure_dir: str, seeds) -> str | None:
    """The blog's figure: the first hidden layer's kernel histogram at the last epoch, the L2
    model's against the unregularized one's (seed 0 of each); None without both runs."""
    import matplotlib.pyplot as plt

    from tbreg import reader
    from tbreg.share.output import atomic_output

    by_family = {p.family: p for p in plans if p.group == "tutorial"}
    found = {}
    for family, model in (("sizes", "large"), ("regularizers", "l2")):
        p = by_family.get(family)
        run_dir = p and _newest_complete(os.path.join(p.logdir, family), model, seeds)
        split = run_dir and os.path.join(run_dir, analysis.seed_dir(seeds[0]), "train")
        hists = reader.histograms(split).get("weights/hidden_1/kernel") if split and os.path.isdir(split) else None
        if not hists:
            return None
        found[f"{family}/{model}"] = max(hists, key=lambda h: h.step)
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        for name, h in found.items():
            lo, hi, n = h.buckets[:, 0], h.buckets[:, 1], h.buckets[:, 2]
            width = (hi - lo).clip(min=1e-12)
            ax.stairs(n / n.sum() / width, [*lo, hi[-1]], label=f"{name} (epoch {h.step})")
        ax.set_xlabel("first hidden layer's kernel weights")
        ax.set_ylabel("density")
        ax.set_title(f"weights/hidden_1/kernel, seed {seeds[0]}")
        ax.legend()
        path = os.path.join(
            figure_dir, f"blog_weights_{os.path.basename(os.path.dirname(by_family['sizes'].logdir))}.png"
        )
        image = io.BytesIO()
        fig.savefig(image, format="png", dpi=100, bbox_inches="tight")
        with atomic_output(path) as f:
            f.write(image.getvalue())
    finally:
        plt.close(fig)
    return path


def _hm(when) -> str:
    return "-" if when is None else when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def page(sources, results: dict, plans, trained, figures: dict, page_path: str, facts: dict, size: dict) -> str:
    """The markdown of docs/reproductions.md."""
    counts = {v: sum(r.verdict == v for rs in results.values() for _, r in rs) for v in claims.VERDICTS}
    v = facts["versions"]
    load_start, load_end, span = size["load_start"], facts["load"], size["span"]
    lines = [
        "# Reproductions",
        "",
        "Each source's headline claims, checked by `tbreg reproduce` over runs it trains (generated by that "
        "command; do not edit by hand). A claim **passes**, **fails** or is **inconclusive** (the 95 % interval "
        "of a paired difference includes 0, too few seeds, or a run missing); the numbers are what tbreg "
        "measured (the rules of `tbreg/analysis.py`: best epoch, gap against `train_eval`, GL5 onset, paired CI).",
        "",
        f"- Generated: {size['date']} by `{size['command']}`",
        f"- Size: {size['describe']}; {size['seeds']} seeds (0–{size['seeds'] - 1}) per model",
        f"- Machine: {facts['cpu']}, {facts['cores']} cores, {facts['os']}; TensorFlow {v['tensorflow']}, "
        f"Keras {v['keras']}, Python {v['python']}",
        f"- The {span['runs']} seed runs checked here trained for {span.get('seconds', 0) / 60:.1f} min in all "
        f"(their run.json times), between {_hm(span.get('first'))} and {_hm(span.get('last'))}",
        f"- This invocation: trained {size['trained_runs']} runs, took {size['seconds'] / 60:.1f} min "
        f"(training {size['train_seconds'] / 60:.1f} min); load average {load_start[0]:.1f} at its start, "
        f"{load_end[0]:.1f} at its end (1-minute; the machine is shared with other jobs)",
        f"- Verdicts: {counts[claims.PASS]} pass, {counts[claims.FAIL]} fail, {counts[claims.INCONCLUSIVE]} inconclusive",
        f"- The runs: `tensorboard --logdir {size['logdir']}` (the Overfitting tab shows the same verdicts); "
        f"an HTML report of them: `tbreg share report {size['logdir']} -o reproductions.html`",
        "",
    ]
    page_dir = os.path.dirname(os.path.abspath(page_path))
    for s in sources:
        lines += [f"## {s.title}", "", f"Source extracts: {', '.join(f'`{f}`' for f in s.seed_files)}.", ""]
        ran = [t for t in trained if t.plan.group == s.group and t.plan.family in claims.needed([s])[s.group]]
        for fam in claims.needed([s])[s.group]:
            p = next(p for p in plans if p.group == s.group and p.family == fam)
            t = next((t for t in ran if t.plan.family == fam), None)
            how = (
                ""
                if t is None
                else f"; this time trained {', '.join(t.trained) or 'nothing'}"
                + (f", reused {', '.join(t.reused)}" if t.reused else "")
                + (f" ({t.seconds:.0f} s)" if t.trained else "")
            )
            epochs = p.max_epochs or "preset"
            batch = f", batch {p.batch_size} (the source's)" if p.batch_size else ""
            lines.append(
                f"- `{fam}` ({families.get(fam, p.registry).source or fam}) on **{p.dataset}**, "
                f"models {', '.join(p.models)}, max epochs {epochs}{batch}{how}"
            )
        if all(r.missing for _, r in results[s.key]):
            lines += ["", f"**Not run** in {size['logdir']} at this size: `tbreg reproduce {s.key}` trains it."]
        lines += ["", "| claim | tbreg's measurement | verdict |", "|---|---|---|"]
        notes = []
        for c, r in results[s.key]:
            mark = {"pass": "✅ pass", "fail": "❌ fail", "inconclusive": "❔ inconclusive"}[r.verdict]
            lines.append(f"| {_cell(c.text)} | {_cell(r.numbers)} | {mark} |")
            if r.verdict != claims.PASS and c.why and not r.missing:
                notes.append(f"- *{c.text}* — {r.verdict} here. {c.why}")
        lines.append("")
        if notes:
            lines += ["Where it does not reproduce, and why:", "", *notes, ""]
        for fam in s.figures:
            fig = figures.get((s.group, fam))
            if fig:
                rel = os.path.relpath(fig, page_dir)
                caption = (
                    "the first hidden layer's kernel weights at the last epoch (from the runs' weight histograms)"
                    if fam == "weights"
                    else "validation (dashed) and training data loss, mean of the seeds with its 95 % band; "
                    "markers: onset and best epoch"
                )
                lines += [f"![{s.group} {fam}]({rel})", "", f"*{s.group}/{fam}: {caption}.*", ""]
    return "\n".join(lines).rstrip() + "\n"


def reproduce(
    sources,
    logdir: str,
    seeds: int = 3,
    data_paths: dict | None = None,
    max_epochs: int | None = None,
    dtype_policy: str = "float32",
    jobs: int = 1,
    page_path: str = "docs/reproductions.md",
    command: str = "tbreg reproduce",
    log=print,
) -> dict:
    """Trains what `sources`' claims need, checks every source's claims (those not asked for from
    the runs already in `logdir`), writes `page_path` and its figures; returns {source: [(claim, result)]}."""
    from tbreg.share.output import atomic_output

    started, load_start = time.monotonic(), os.getloadavg()
    data_paths = data_paths or {}
    every = list(claims.SOURCES.values())
    plans = plan(every, logdir, data_paths, max_epochs)
    wanted = claims.needed(sources)
    seed_list = list(range(seeds))
    todo = [p for p in plans if p.family in wanted.get(p.group, {})]
    todo = [dataclasses.replace(p, models=tuple(wanted[p.group][p.family])) for p in todo]
    trained = train(todo, seed_list, data_paths, dtype_policy, jobs, log)
    train_seconds = time.monotonic() - started
    weight_keys = {
        (c.a if k == 0 else c.b) for s in every for c in s.claims if c.stat == "weight_spread" for k in (0, 1)
    }
    read = []
    measured = measure(plans, seed_list, weight_keys, read)
    results = check_all(every, measured)
    figure_dir = os.path.join(os.path.dirname(os.path.abspath(page_path)), "reproductions")
    os.makedirs(figure_dir, exist_ok=True)
    figures = plot_figures(plans, figure_dir, every)
    weights = plot_weights(plans, figure_dir, seed_list)
    if weights:
        figures[("tutorial", "weights")] = weights
    size = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "describe": "each dataset's preset epochs (MNIST-1D: 150, patience 40; Chollet's models on MNIST-1D: "
        f"{CHOLLET_MNIST1D_EPOCHS}, no early stopping)"
        if max_epochs is None
        else f"reduced: at most {max_epochs} epochs per run (claims that need longer training, such as dropout's, "
        "may read differently at the presets: run `tbreg reproduce` without --max_epochs)",
        "seeds": seeds,
        "seconds": time.monotonic() - started,
        "train_seconds": train_seconds,
        "load_start": load_start,
        "logdir": logdir,
        "span": training_span(read),
        "trained_runs": sum(len(t.trained) for t in trained) * seeds,
    }
    text = page(every, results, plans, trained, figures, page_path, machine(), size)
    with atomic_output(page_path) as f:
        f.write(text.encode("utf-8"))
    return results
