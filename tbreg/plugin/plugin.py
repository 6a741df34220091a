"""Reader side of the overfitting plugin: the routes TensorBoard serves under /data/plugin/overfitting.

Everything comes through TensorBoard's data provider (`context.data_provider`); the plugin never
opens a file of the log tree. Runs are grouped the way tbreg writes them:
`<family>/<run>/{train,validation,train_eval,validation_mc}` are TensorBoard runs of their own,
`<family>/<run>` holds the run's record (see `summary.py`) and its HParams. A seed group
`<family>/<model>/{seed_<k>,mean}` is one member of `<family>` named `<model>`: its mean run, with
the band `<tag>/std` (see `tbreg.analysis`); its seed runs are shown only while it has no mean.
Records are untrusted: a value of the wrong type or a non-finite number is ignored.

Routes (`*_route` parses and responds, `*_impl` computes plain data):
  /families                          families, their runs, metrics and data loss
  /family?family=F&metric=TAG        one metric of every run of F, per split (and a group's std)
  /summary?family=F                  per run: best epoch, best validation data loss, gap, status, …,
                                     and its hyperparameters (`hparams`; `hparam_keys`, `varying`)
     both take  &family=G …  more families (runs of several families in one comparison),
                &filter=TEXT  runs whose hyperparameters or name match (`analysis.parse_filter`),
                &group=KEY    runs sharing KEY's value as one line and band (`analysis.group_runs`);
     /family also  &points=N  at most ~N points per curve (`analysis.downsample`: minimum, best
                              epoch and ends exact; 0 = all; default: a budget per answer)
  /regularization?family=F           per run: data loss, penalty and per-layer penalties (long
                                     curves of many runs downsampled like /family's)
  /diagnostics?family=F              per run and layer the weight diagnostics over epochs, and per
                                     diagnostic its rank correlation with the runs' gaps
  /weights?family=F&tag=T&epoch=E    one weights histogram per run at the epoch closest below E
                                     (a seed group's: its first seed run's, named in `seed_run`)
  /weight_history?family=F&tag=T&run=R  one run's weights histograms over its epochs, as shares
                                     of weights in HISTORY_BINS common value bins (a heatmap)
  /static/*, /vendor/plotly.min.js   the frontend (ES module) and plotly.js from the plotly package
"""

import bisect
import collections
import concurrent.futures
import dataclasses
import functools
import gzip
import json
import logging
import math
import os
import posixpath
import re
import threading
import time

import grpc
from tensorboard import errors, plugin_util
from tensorboard.backend import http_util
from tensorboard.data import grpc_provider, provider
from tensorboard.data.proto import data_provider_pb2
from tensorboard.plugins import base_plugin
from werkzeug import wrappers

from tbreg import analysis
from tbreg.plugin import metadata

logger = logging.getLogger(__name__)
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_STATIC_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_SAFE_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_SCALARS, _HISTOGRAMS = "scalars", "histograms"
_ALL = 1_000_000_000  # downsample: every point TensorBoard keeps (its --samples_per_plugin decides)
# /family's curves: about this many points per answer in all (≈ 1–2 MB of JSON before gzip), but
# at least MIN_POINTS per curve; the summary is always computed from the full curves.
POINT_BUDGET = 60_000
MIN_POINTS = 24
HISTORY_BINS = 60  # value bins of /weight_history
GROUP_PREFIX = "group:"  # the `run` of a group of runs (group-by) in /family and /summary


@dataclasses.dataclass(frozen=True)
class Series:
    """One time series: steps (epochs) ascending, values with non-finite ones as None.

    Series are cached between requests, so what is derived from them is computed once.
    """

    steps: list  # or a range: epochs 0, 1, 2, … (most curves) take no memory per point
    values: list

    def json(self) -> dict:
        return {"steps": list(self.steps), "values": self.values}

    @functools.cached_property
    def json_text(self) -> str:
        return json.dumps(self.json(), separators=(",", ":"), allow_nan=False)

    @property
    def by_step(self) -> dict:
        """{step: value}, the curve as `tbreg.analysis` takes it (built on each use, not kept: at
        1,000 runs × 1,000 epochs the dicts would hold ~100 MB; what is computed from them is kept)."""
        return dict(zip(self.steps, self.values))

    @functools.cached_property
    def _samples(self) -> dict:
        return {}

    def downsampled(self, points: int, keep=()) -> "Series":
        """`analysis.downsample` of this series (itself when that keeps every point), cached."""
        key = (points, tuple(keep))
        if key not in self._samples:
            idx = analysis.downsample(self.steps, self.values, points, keep)
            got = (
                self
                if len(idx) == len(self.steps)
                else Series([self.steps[i] for i in idx], [self.values[i] for i in idx])
            )
            self._samples.clear()  # one size at a time: the budget changes only with the view
            self._samples[key] = got
        return self._samples[key]


@dataclasses.dataclass
class Run:
    """A member of a family: a run dir as TensorBoard names it (`run`), its split runs and record.

    A seed group is its mean run, with `seeds` = how many seed runs it averages (None otherwise);
    the mean has no histograms, so a group's weights are those of its first seed run (`seed_run`).
    """

    run: str
    family: str
    name: str
    splits: dict = dataclasses.field(default_factory=dict)  # split -> TensorBoard run name
    record: dict | None = None
    baseline: bool = False
    seeds: int | None = None
    seed_run: str | None = None  # "seed_<k>": the member whose histograms stand for the group
    seed_splits: dict = dataclasses.field(default_factory=dict)  # that member's splits
    seed_runs: dict = dataclasses.field(default_factory=dict)  # seed -> splits of every seed run

    def header(self) -> dict:
        return {"run": self.run, "name": self.name, "baseline": self.baseline, "seeds": self.seeds}

    def member_curves(self, split: str) -> list:
        """The TensorBoard runs of `split` whose curves this member stands for: its seed runs'
        (a seed group), else its own."""
        if self.seed_runs:
            return [s[split] for s in self.seed_runs.values() if split in s]
        return [self.splits[split]] if split in self.splits else []

    def histogram_splits(self) -> dict:
        return self.seed_splits if self.seed_run else self.splits


@dataclasses.dataclass
class Snapshot:
    """What one request sees: the runs by family, and the last point of every scalar series."""

    families: dict  # family -> [Run], baseline first
    last: dict  # TensorBoard run -> {tag: ScalarDatum}

    def family(self, name: str) -> list:
        if name not in self.families:
            raise errors.NotFoundError(f"no family {name!r} in this log dir")
        return self.families[name]

    def select(self, families: list, filter_text: str | None = None) -> "Selection":
        """The runs of `families` (several: named `<family>/<name>`) that pass `filter_text`."""
        runs = []
        for family in dict.fromkeys(families):
            members = self.family(family)
            if len(families) > 1:
                members = [dataclasses.replace(r, name=f"{family or '.'}/{r.name}") for r in members]
            runs += members
        hparams = [analysis.run_hparams(r.record) for r in runs]
        keys, varying = analysis.hparam_columns(hparams)
        try:
            keep = analysis.parse_filter(filter_text, keys)
        except analysis.FilterError as e:
            raise errors.InvalidArgumentError(str(e)) from None
        chosen = [i for i, r in enumerate(runs) if keep(r.run, r.name, hparams[i])]
        return Selection([runs[i] for i in chosen], [hparams[i] for i in chosen], keys, varying, len(runs))

    def data_loss(self, run: Run) -> str:
        """The tag of the run's data loss (see `analysis.data_loss_tag`); `epoch_loss` before any is logged."""
        logged = {tag for name in run.splits.values() for tag in self.last.get(name, {})}
        return analysis.data_loss_tag(run.record, logged) or metadata.LOSS_TAG


@dataclasses.dataclass
class Selection:
    """The runs a comparison shows (after the filter), their hyperparameters, and the columns of
    every run of its families: `keys` (their union) and `varying` (those that differ)."""

    runs: list
    hparams: list
    keys: list
    varying: list
    total: int  # runs before the filter

    def groups(self, key: str) -> list:
        """[(label, [Run])] of `analysis.group_runs`; a key no run has is an error."""
        if key not in self.keys:
            known = ", ".join(self.keys) or "none"
            raise errors.InvalidArgumentError(f"cannot group by {key!r}: no run has it (hyperparameters: {known})")
        return [(label, [self.runs[i] for i in idx]) for label, idx in analysis.group_runs(self.hparams, key)]

    def columns(self) -> dict:
        return {"hparam_keys": self.keys, "varying": self.varying, "total": self.total, "shown": len(self.runs)}


def _finite(value):
    return value if math.isfinite(value) else None


def _finite_values(values: list) -> list:
    """`values` with NaN and ±inf as None (JSON has neither); the common all-finite case in C."""
    return values if all(map(math.isfinite, values)) else [_finite(v) for v in values]


def _compact(steps: list):
    """`steps` as a range when they are consecutive (epochs 0…n−1 of one training), else as they are."""
    span = range(steps[0], steps[-1] + 1) if steps else range(0)
    return span if len(span) == len(steps) and steps == list(span) else steps


def _read_scalars(data_provider, ctx, experiment: str, run_tag_filter) -> dict:
    """{run: {tag: (steps, values)}}: every point TensorBoard keeps of the filtered scalars, the
    steps `_compact`ed as each series is read (no list of ints is held for all of them at once).

    With RustBoard (TensorBoard's default loader) the gRPC answer's columns become lists in C: the
    provider's `read_scalars` makes a `ScalarDatum` object per point, ~1 µs each — seconds for the
    millions of points of 1,000 runs × 1,000 epochs. Any other provider, or an error, goes through
    `read_scalars` (which also turns gRPC errors into TensorBoard's)."""
    stub = getattr(data_provider, "_stub", None) if isinstance(data_provider, grpc_provider.GrpcDataProvider) else None
    if stub is not None:
        req = data_provider_pb2.ReadScalarsRequest(experiment_id=experiment)
        req.plugin_filter.plugin_name = _SCALARS
        req.downsample.num_points = _ALL
        if run_tag_filter.runs is not None:
            req.run_tag_filter.runs.names.extend(sorted(run_tag_filter.runs))
        if run_tag_filter.tags is not None:
            req.run_tag_filter.tags.names.extend(sorted(run_tag_filter.tags))
        try:
            res = stub.ReadScalars(req)
        except grpc.RpcError:
            pass  # read again below, for TensorBoard's error
        else:
            return {
                r.run_name: {t.tag_name: (_compact(list(t.data.step)), list(t.data.value)) for t in r.tags}
                for r in res.runs
            }
    data = data_provider.read_scalars(
        ctx, experiment_id=experiment, plugin_name=_SCALARS, downsample=_ALL, run_tag_filter=run_tag_filter
    )
    return {
        run: {tag: (_compact([d.step for d in datums]), [d.value for d in datums]) for tag, datums in by_tag.items()}
        for run, by_tag in data.items()
    }


def _split_of(name: str) -> tuple[str, str | None]:
    """('sizes/tiny', 'train') for 'sizes/tiny/train'; ('sizes/tiny', None) for the run dir itself."""
    head, tail = posixpath.split(name)
    if tail in metadata.SPLITS:
        return head or ".", tail
    return name, None


def _members(dirs: dict, records: dict) -> list:
    """The runs families show (`analysis.shown_runs`), from {run dir: {split: TensorBoard run}} and
    the records. A seed group's weights are those of its first seed run."""
    runs = list(dirs)
    names = [analysis.run_name(run, records.get(run)) for run in runs]
    out = []
    for shown in analysis.shown_runs(names, [records.get(run) for run in runs]):
        run = runs[shown.index]
        r = Run(run, names[shown.index].family, shown.name, dirs[run], records.get(run))
        if shown.seeds or analysis.is_aggregate(r.record):
            members = (r.record or {}).get("members")
            r.seeds = len(members) if isinstance(members, list) and members else len(shown.seeds)
            if shown.seeds:
                first = runs[shown.seeds[0]]
                r.seed_run, r.seed_splits = names[shown.seeds[0]].member, dirs[first]
                r.seed_runs = {analysis.seed_of(names[i].member): dirs[runs[i]] for i in shown.seeds}
        out.append(r)
    return out


def _encode(value) -> str:
    """JSON text of plain data whose Series are rendered from their cached text."""
    if isinstance(value, Series):
        return value.json_text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    return json.dumps(value, allow_nan=False)


def _json_response(request, body: dict):
    """A JSON response, gzipped (fast level) for clients that accept it: family answers are MBs."""
    text = _encode(body).encode("utf-8")
    accepted = request.headers.get("Accept-Encoding", "").replace(" ", "")
    if "gzip" in accepted and "gzip;q=0" not in accepted and len(text) > 1024:
        return http_util.Respond(
            request, gzip.compress(text, compresslevel=1, mtime=0), "application/json", content_encoding="gzip"
        )
    return http_util.Respond(request, text, "application/json")


def _required(request, name: str) -> str:
    value = request.args.get(name)
    if value is None:
        raise errors.InvalidArgumentError(f"missing query parameter {name!r}")
    return value


class OverfittingPlugin(base_plugin.TBPlugin):
    """Compares a family's runs: curves, a summary table, penalties and weight distributions."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context, warm_up: bool = False):
        """`warm_up`: once TensorBoard has loaded the log tree, read and summarize every family in
        a background thread (`_warm_up`), so that the tab's first paint finds it done."""
        self._provider = context.data_provider
        # (experiment, TensorBoard run, tag) -> (fingerprint, Series | record): a series is read
        # again only when the (step, wall time) of its last point changed.
        self._cache = {}
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="overfitting")
        self._plotly = None  # gzipped plotly.min.js, once read
        self._summaries = {}  # view -> (the series and records it read, its summary rows or group curves)
        self._penalties = {}  # (id(loss), id(data)) -> (loss, data, penalty Series)
        self._active = False  # once a log has curves to show, it keeps them
        self.warmed = threading.Event()  # set when the warm-up has ended (or was not asked for)
        if warm_up and self._provider is not None:
            threading.Thread(target=self._warm_up, name="overfitting-warm-up", daemon=True).start()
        else:
            self.warmed.set()

    # ---------------------------------------------------------------------------------------
    # TensorBoard plugin interface

    def get_plugin_apps(self):
        return {
            "/families": self.families_route,
            "/family": self.family_route,
            "/summary": self.summary_route,
            "/regularization": self.regularization_route,
            "/weights": self.weights_route,
            "/weight_history": self.weight_history_route,
            "/diagnostics": self.diagnostics_route,
            "/static/*": self.static_route,
            "/vendor/plotly.min.js": self.plotly_route,
        }

    def is_active(self):
        """Active when a run has a record (TensorBoard checks data_plugin_names() first) or, for any
        Keras log, when a `train` or `validation` run has an `epoch_` scalar."""
        if self._active:
            return True
        from tensorboard import context

        listing = self._provider.list_scalars(context.RequestContext(), experiment_id="", plugin_name=_SCALARS)
        self._active = any(
            _split_of(run)[1] in (metadata.TRAIN, metadata.VALIDATION)
            and any(tag.startswith(metadata.EPOCH_PREFIX) for tag in tags)
            for run, tags in listing.items()
        )
        return self._active

    def frontend_metadata(self):
        # TensorBoard's reload button does not reach iframed plugins; the tab refreshes itself.
        return base_plugin.FrontendMetadata(
            es_module_path="/static/index.js", tab_name="Overfitting", disable_reload=True
        )

    # ---------------------------------------------------------------------------------------
    # Reading through the data provider. Each request takes a snapshot (two provider calls, made
    # concurrently: with RustBoard each is a gRPC round trip); series and records are cached and
    # read again only when their last point changed.

    def _cached(self, key, fingerprint):
        with self._lock:
            hit = self._cache.get(key)
        return hit[1] if hit and hit[0] == fingerprint else None

    def _store(self, key, fingerprint, value):
        with self._lock:
            self._cache[key] = (fingerprint, value)

    def _snapshot(self, ctx, experiment) -> "Snapshot":
        last_scalars = self._pool.submit(
            self._provider.read_last_scalars, ctx, experiment_id=experiment, plugin_name=_SCALARS
        )
        records = self._records(ctx, experiment)
        last = last_scalars.result()
        dirs = {}  # run dir -> {split: TensorBoard run}
        for name in [*last, *records]:
            run, split = _split_of(name)
            if split is None and name not in records:
                continue  # scalars at a run dir's root: not a split tbreg writes
            splits = dirs.setdefault(run, {})
            if split:
                splits[split] = name
        families = collections.defaultdict(list)
        for run in _members(dirs, records):
            families[run.family].append(run)
        for family, members in families.items():
            for r, baseline in zip(members, analysis.baselines(family, [r.record for r in members])):
                r.baseline = baseline
            members.sort(key=lambda r: (not r.baseline, r.name))  # the baseline first
        return Snapshot(dict(sorted(families.items())), last)

    def _records(self, ctx, experiment) -> dict:
        """{run dir: record} from the plugin's own summaries (the highest step wins)."""
        listing = self._provider.list_tensors(ctx, experiment_id=experiment, plugin_name=self.plugin_name)
        out, stale = {}, set()
        for run, by_tag in listing.items():
            meta = by_tag.get(metadata.RUN_TAG)
            if meta is None:
                continue
            try:
                metadata.parse_plugin_metadata(meta.plugin_content)
            except ValueError:
                continue
            record = self._cached((experiment, run, metadata.RUN_TAG), (meta.max_step, meta.max_wall_time))
            if record is None:
                stale.add(run)
            else:
                out[run] = record
        if stale:
            data = self._provider.read_tensors(
                ctx,
                experiment_id=experiment,
                plugin_name=self.plugin_name,
                downsample=_ALL,
                run_tag_filter=provider.RunTagFilter(runs=sorted(stale), tags=[metadata.RUN_TAG]),
            )
            for run, by_tag in data.items():
                record = _last_record(by_tag.get(metadata.RUN_TAG) or [])
                if record is not None:
                    meta = listing[run][metadata.RUN_TAG]
                    self._store((experiment, run, metadata.RUN_TAG), (meta.max_step, meta.max_wall_time), record)
                    out[run] = record
        return out

    def _scalars(self, ctx, experiment, snapshot, wanted) -> dict:
        """{(TensorBoard run, tag): Series} for the `wanted` (run, tag) pairs that exist."""
        out, stale = {}, []
        for run, tag in set(wanted):
            datum = snapshot.last.get(run, {}).get(tag)
            if datum is None:
                continue
            series = self._cached((experiment, run, tag), (datum.step, datum.wall_time))
            if series is None:
                stale.append((run, tag))
            else:
                out[(run, tag)] = series
        if stale:
            data = _read_scalars(
                self._provider,
                ctx,
                experiment,
                provider.RunTagFilter(runs={r for r, _ in stale}, tags={t for _, t in stale}),
            )
            for run, tag in stale:
                steps, values = data.get(run, {}).get(tag) or ((), ())
                if steps:
                    series = Series(steps, _finite_values(values))
                    datum = snapshot.last[run][tag]
                    self._store((experiment, run, tag), (datum.step, datum.wall_time), series)
                    out[(run, tag)] = series
        return out

    def _warm_up(self, poll: float = 2.0, patience: float = 60.0, give_up: float = 600.0) -> None:
        """Wait until TensorBoard has loaded the tree — two polls `poll` s apart see the same last
        points, or `patience` s of points still arriving (a run training) —, then answer each
        family's default view once (/family of its data loss, /summary, /regularization,
        /diagnostics): every series the tab asks for on opening is read and summarized, and stays
        cached until it changes. Gives up on a tree still empty after `give_up` s; later requests
        read what they need as before."""
        from tensorboard import context

        start, before, since = time.monotonic(), None, None
        try:
            while time.monotonic() - start < give_up:
                ctx = context.RequestContext()
                last = self._provider.read_last_scalars(ctx, experiment_id="", plugin_name=_SCALARS)
                seen = {(run, tag, d.step, d.wall_time) for run, tags in last.items() for tag, d in tags.items()}
                if seen:
                    since = since or time.monotonic()
                    if seen == before or time.monotonic() - since >= patience:
                        break
                before = seen
                time.sleep(poll)
            else:
                return
            t0 = time.monotonic()
            families = self.families_impl(ctx, "")["families"]
            for f in families:  # what the tab asks on opening a family, in its order
                self.family_impl(ctx, "", f["family"], f["data_loss"])
                self.summary_impl(ctx, "", f["family"])
                self.regularization_impl(ctx, "", f["family"])
                self.diagnostics_impl(ctx, "", f["family"])
            logger.info(
                "Overfitting tab: %d families (%d runs) read and summarized in %.1f s",
                len(families),
                sum(len(f["runs"]) for f in families),
                time.monotonic() - t0,
            )
        except Exception as e:  # noqa: BLE001 - a warm-up only: requests read what they need
            logger.warning("Overfitting tab: warm-up stopped (%s); the tab reads on request", e)
        finally:
            self.warmed.set()

    # ---------------------------------------------------------------------------------------
    # Implementations: plain data in, plain data out

    def families_impl(self, ctx, experiment) -> dict:
        snapshot = self._snapshot(ctx, experiment)
        out = []
        for family, runs in snapshot.families.items():
            tags = {tag for r in runs for name in r.splits.values() for tag in snapshot.last.get(name, {})}
            counts = collections.Counter(snapshot.data_loss(r) for r in runs)
            out.append(
                {
                    "family": family,
                    "runs": [r.header() for r in runs],
                    "metrics": sorted(
                        t for t in tags if t.startswith(metadata.EPOCH_PREFIX) and not analysis.is_std_tag(t)
                    ),
                    "data_loss": counts.most_common(1)[0][0] if counts else metadata.LOSS_TAG,
                }
            )
        return {"families": out}

    def family_impl(
        self,
        ctx,
        experiment,
        family,
        metric: str,
        band: str = "ci",
        filter_text: str | None = None,
        group: str | None = None,
        points: int | None = None,
    ) -> dict:
        """Per run and split, the metric's series; for a seed group also its `band` per split
        (`analysis.seed_band` over its seed runs: the 95 % CI of the mean, or ± std with
        band=std; n per step), or, when its seed runs are gone, the mean run's `<tag>/std`.

        `family` is a name or a list of them; `filter_text` narrows the runs; `group` (a
        hyperparameter) makes each set of runs sharing its value one member, its mean line and
        band over every member curve (a seed group's seed runs), whatever their seeds. Curves
        are downsampled to about `points` points (None: POINT_BUDGET per answer; 0: all)."""
        if band not in analysis.BAND_KINDS:
            raise errors.InvalidArgumentError(f"band must be one of {', '.join(analysis.BAND_KINDS)}, not {band!r}")
        families = [family] if isinstance(family, str) else list(family)
        snapshot = self._snapshot(ctx, experiment)
        selection = snapshot.select(families, filter_text)
        runs = selection.runs
        groups = selection.groups(group) if group else None
        std = analysis.std_tag(metric)
        wanted = [
            (name, tag)
            for r in runs
            for name in r.splits.values()
            for tag in ((metric, std) if r.seeds is not None else (metric,))
        ]
        wanted += [(name, metric) for r in runs for splits in r.seed_runs.values() for name in splits.values()]
        series = self._scalars(ctx, experiment, snapshot, [] if analysis.is_std_tag(metric) else wanted)
        if runs and not any(tag == metric for _, tag in series):
            raise errors.NotFoundError(f"no metric {metric!r} in family {', '.join(families)!r}")
        if groups:  # each group's band over all its curves: kept while none of them changed
            used = tuple(series.get(w) for w in wanted)
            key = ("family", tuple(families), filter_text or "", group, metric, band, tuple(r.run for r in runs))
            kept = self._reuse(key, used, lambda: _group_curves(groups, metric, band, series))
            out = [{**e, "series": dict(e["series"]), "band": dict(e["band"])} for e in kept]  # downsampled below
        else:
            out = _member_curves(runs, metric, std, band, series)
        n_series = sum(len(r["series"]) for r in out)
        longest = max((len(s.steps) for r in out for s in r["series"].values()), default=0)
        if points is None:
            points = max(MIN_POINTS, POINT_BUDGET // max(1, n_series))
        downsampled = bool(points) and longest > points
        if downsampled:
            for i, entry in enumerate(out):
                record = {} if groups else (runs[i].record or {})
                keep = [analysis.count(record.get(k)) for k in ("best_epoch", "stopped_epoch")]
                _downsample_entry(entry, points, [e for e in keep if e is not None])
        return {
            "family": families[0] if len(families) == 1 else families,
            "families": families,
            "metric": metric,
            "band": band,
            "group": group,
            "filter": filter_text or "",
            "points": points if downsampled else None,
            "longest": longest,
            **selection.columns(),
            "runs": out,
        }

    def summary_impl(self, ctx, experiment, family, filter_text: str | None = None, group: str | None = None) -> dict:
        """Every member's row (`analysis.summarize_family` over the full curves) with its
        hyperparameters; with `group`, a row per group: its mean curves, and the CI and onsets
        over its member curves (a seed group's seed runs)."""
        families = [family] if isinstance(family, str) else list(family)
        snapshot = self._snapshot(ctx, experiment)
        selection = snapshot.select(families, filter_text)
        runs = selection.runs
        wanted = self._summary_wanted(snapshot, runs, group)
        series = self._scalars(ctx, experiment, snapshot, wanted)
        # the rows depend only on these series and records: while none changed (the same cached
        # objects), the last answer's rows stand (summarizing 1,000 long runs takes seconds)
        used = (*(series.get(w) for w in wanted), *(r.record for r in runs))
        key = ("summary", tuple(families), filter_text or "", group, tuple((r.run, r.baseline) for r in runs))
        rows = self._reuse(key, used, lambda: self._summary_rows(snapshot, selection, series, group))
        return {
            "family": families[0] if len(families) == 1 else families,
            "families": families,
            "group": group,
            "filter": filter_text or "",
            **selection.columns(),
            "rows": rows,
            "criterion": _criterion(),
        }

    def diagnostics_impl(self, ctx, experiment, family, filter_text: str | None = None) -> dict:
        """Per run of the view (`family`: one or several, `filter_text`): {measure: {layer: Series}}
        of its weight diagnostics (train split); and per diagnostic its rank correlation with the
        runs' gaps at their best epochs (`analysis.diagnostic_correlations`, the rule the report shows)."""
        snapshot = self._snapshot(ctx, experiment)
        runs = _view_runs(snapshot, family, filter_text)
        tags = {
            r.run: [t for t in snapshot.last.get(r.splits.get(metadata.TRAIN), {}) if analysis.is_diagnostic_tag(t)]
            for r in runs
        }
        summary_wanted = self._summary_wanted(snapshot, runs)
        wanted = summary_wanted + [(r.splits.get(metadata.TRAIN), t) for r in runs for t in tags[r.run]]
        series = self._scalars(ctx, experiment, snapshot, wanted)
        # the runs' summaries, as /summary computes them: again only when a curve or record changed
        used = (*(series.get(w) for w in summary_wanted), *(r.record for r in runs))
        rows = self._reuse(
            ("diagnostics", tuple((r.run, r.baseline) for r in runs)),
            used,
            lambda: analysis.summarize_family([_run_curves(r, snapshot.data_loss(r), series) for r in runs]),
        )
        scalars = [
            {
                t: series[(r.splits.get(metadata.TRAIN), t)]
                for t in tags[r.run]
                if (r.splits.get(metadata.TRAIN), t) in series
            }
            for r in runs
        ]
        correlations = analysis.diagnostic_correlations(
            rows, [{t: s.by_step for t, s in got.items()} for got in scalars]
        )
        out = []
        for r, row, got in zip(runs, rows, scalars):
            layers = analysis.diagnostic_layers(got)
            out.append(
                {**r.header(), "best_epoch": row.summary.best_epoch, "gap": row.summary.gap, "diagnostics": layers}
            )
        return {
            "family": family,
            "runs": out,
            "correlations": [c.flat() for c in correlations],
            "min_runs": analysis.MIN_CORRELATION_RUNS,
        }

    def _summary_wanted(self, snapshot, runs, group: str | None = None) -> list:
        """The (TensorBoard run, tag) pairs `analysis.summarize_family` reads of `runs` (with `group`,
        every split of their seed runs too: a group's mean curves are computed from them)."""
        wanted = []
        for r in runs:
            train, val = r.splits.get(metadata.TRAIN), r.splits.get(metadata.VALIDATION)
            tag = snapshot.data_loss(r)
            wanted += [
                (val, tag),
                (train, tag),
                (train, metadata.LOSS_TAG),
                (train, metadata.PENALTY_TAG),
                (r.splits.get(metadata.TRAIN_EVAL), tag),
            ]
            wanted += [(s.get(metadata.VALIDATION), tag) for s in r.seed_runs.values()]
            if group:
                wanted += [(s.get(split), tag) for s in r.seed_runs.values() for split in metadata.SPLITS]
        return wanted

    @staticmethod
    def _summary_rows(snapshot, selection, series, group) -> list:
        runs = selection.runs
        if group:
            groups = selection.groups(group)
            index = {id(r): i for i, r in enumerate(runs)}
            curves = [_group_run_curves(members, snapshot, series) for _, members in groups]
            headers = [_group_header(label, members) for label, members in groups]
            hparams = [_common_hparams([selection.hparams[index[id(m)]] for m in members]) for _, members in groups]
            for h, hp in zip(headers, hparams):
                h["varies"] = [k for k in selection.keys if k not in hp]  # differs inside the group
        else:
            curves = [_run_curves(r, snapshot.data_loss(r), series) for r in runs]
            headers = [r.header() for r in runs]
            hparams = selection.hparams
        return [
            {**h, **row.flat(), "hparams": hp}
            for h, row, hp in zip(headers, analysis.summarize_family(curves), hparams)
        ]

    def regularization_impl(self, ctx, experiment, family, filter_text: str | None = None) -> dict:
        """Per run of the view (`family`: one or several, `filter_text`): its data loss, penalty and
        per-layer penalties (train split), and the weights histograms its runs logged."""
        snapshot = self._snapshot(ctx, experiment)
        runs = _view_runs(snapshot, family, filter_text)
        weights = self._pool.submit(self._weight_tags, ctx, experiment, runs)
        wanted = []
        for r in runs:
            train = r.splits.get(metadata.TRAIN)
            layer_tags = [
                t
                for t in snapshot.last.get(train, {})
                if t.startswith(metadata.LAYER_PENALTY_PREFIX) and not analysis.is_std_tag(t)
            ]
            wanted += [
                (train, t) for t in (snapshot.data_loss(r), metadata.LOSS_TAG, metadata.PENALTY_TAG, *layer_tags)
            ]
        series = self._scalars(ctx, experiment, snapshot, wanted)
        by_run = collections.defaultdict(dict)  # TensorBoard run -> {layer: its penalty Series}
        for (name, tag), s in sorted(series.items()):
            if tag.startswith(metadata.LAYER_PENALTY_PREFIX):
                by_run[name][tag[len(metadata.LAYER_PENALTY_PREFIX) :]] = s
        out = []
        for r in runs:
            train, data_loss = r.splits.get(metadata.TRAIN), snapshot.data_loss(r)
            penalty, source = self._penalty(series, train, data_loss)
            layers = by_run.get(train, {})
            out.append(
                {
                    **r.header(),
                    "data_loss": series.get((train, data_loss)),
                    "penalty": penalty,
                    "penalty_source": source,
                    "layers": layers,
                }
            )
        # long curves of many runs: the same point budget as /family (minimum and ends exact)
        n_series = sum(bool(r["data_loss"]) + bool(r["penalty"]) + len(r["layers"]) for r in out)
        points = max(MIN_POINTS, POINT_BUDGET // max(1, n_series))
        for r in out:
            for key in ("data_loss", "penalty"):
                if r[key]:
                    r[key] = r[key].downsampled(points)
            r["layers"] = {layer: s.downsampled(points) for layer, s in r["layers"].items()}
        return {"family": family, "runs": out, "weights": weights.result()}

    def _reuse(self, key, used: tuple, compute):
        """`compute()`, or its result for `key` from before while it read the same objects `used`
        (cached series and records: a changed one is a new object)."""
        with self._lock:
            hit = self._summaries.get(key)
        if hit and len(hit[0]) == len(used) and all(a is b for a, b in zip(hit[0], used)):
            return hit[1]
        got = compute()
        with self._lock:
            self._summaries.pop(key, None)
            self._summaries[key] = (used, got)
            while len(self._summaries) > 64:  # views: the warm-up keeps two per family
                self._summaries.pop(next(iter(self._summaries)))
        return got

    def _penalty(self, series: dict, train, data_loss: str) -> tuple:
        """`_penalty`, its computed curve kept while the loss and data-loss series are the same."""
        loss, data = series.get((train, metadata.LOSS_TAG)), series.get((train, data_loss))
        if (train, metadata.PENALTY_TAG) in series or not (loss and data):
            return _penalty(series, train, data_loss)
        with self._lock:
            hit = self._penalties.get((id(loss), id(data)))
        if hit and hit[0] is loss and hit[1] is data:
            return hit[2]
        got = _penalty(series, train, data_loss)
        with self._lock:
            self._penalties[(id(loss), id(data))] = (loss, data, got)
            while len(self._penalties) > 20_000:
                self._penalties.pop(next(iter(self._penalties)))
        return got

    def _weight_tags(self, ctx, experiment, runs) -> dict:
        """{tag: last epoch} of the weights histograms logged by `runs`."""
        split_runs = [n for r in runs for n in r.histogram_splits().values()]
        if not split_runs:
            return {}
        listing = self._provider.list_tensors(
            ctx,
            experiment_id=experiment,
            plugin_name=_HISTOGRAMS,
            run_tag_filter=provider.RunTagFilter(runs=split_runs),
        )
        tags = {}
        for by_tag in listing.values():
            for tag, meta in by_tag.items():
                if tag.startswith(metadata.WEIGHTS_PREFIX) and not analysis.is_std_tag(tag):
                    tags[tag] = max(tags.get(tag, 0), meta.max_step or 0)
        return dict(sorted(tags.items()))

    def _histograms(self, ctx, experiment, names: list, tag: str) -> dict:
        """{TensorBoard run: {tag: every datum}} of the weights histogram `tag` of the runs `names`
        ({} for a tag that is not a weights histogram, or no runs)."""
        if not (tag.startswith(metadata.WEIGHTS_PREFIX) and not analysis.is_std_tag(tag) and names):
            return {}
        return self._provider.read_tensors(
            ctx,
            experiment_id=experiment,
            plugin_name=_HISTOGRAMS,
            downsample=_ALL,
            run_tag_filter=provider.RunTagFilter(runs=names, tags=[tag]),
        )

    def weights_impl(self, ctx, experiment, family, tag: str, epoch: int, filter_text: str | None = None) -> dict:
        runs = _view_runs(self._snapshot(ctx, experiment), family, filter_text)
        owner = {name: r for r in runs for name in r.histogram_splits().values()}
        data = self._histograms(ctx, experiment, sorted(owner), tag)
        found = {}  # run dir -> histogram, preferring the train split
        for name in sorted(data, key=lambda n: _split_of(n)[1] != metadata.TRAIN):
            datums = data[name].get(tag)
            r = owner.get(name)
            if datums and r and r.run not in found:
                found[r.run] = _histogram_at(datums, epoch)
        if not found:
            raise errors.NotFoundError(f"no weights histogram {tag!r} in {_view_label(family, filter_text)}")
        out = [{**r.header(), "seed_run": r.seed_run, **found[r.run]} for r in runs if r.run in found]
        return {"family": family, "tag": tag, "epoch": epoch, "runs": out}

    def weight_history_impl(
        self, ctx, experiment, family, tag: str, run: str | None = None, filter_text: str | None = None
    ) -> dict:
        """Run `run`'s (default: the view's first) histograms of `tag` at every logged epoch,
        rebinned into HISTORY_BINS bins over the range of all of them: {epochs,
        centers, shares} with shares[i][j] the share of weights in bin j at epochs[i]."""
        runs = _view_runs(self._snapshot(ctx, experiment), family, filter_text)
        r = next((r for r in runs if r.run == run), None) if run else (runs[0] if runs else None)
        if r is None:
            raise errors.NotFoundError(f"no run {run!r} in {_view_label(family, filter_text)}")
        names = sorted(r.histogram_splits().values(), key=lambda n: _split_of(n)[1] != metadata.TRAIN)
        data = self._histograms(ctx, experiment, names, tag)
        datums = next((data[n][tag] for n in names if data.get(n, {}).get(tag)), None)
        if not datums:
            raise errors.NotFoundError(f"no weights histogram {tag!r} in run {r.run!r}")
        return {"family": family, "run": r.run, "tag": tag, "seed_run": r.seed_run, **_history(datums)}

    # ---------------------------------------------------------------------------------------
    # Routes: parse the request, call the implementation, respond

    @staticmethod
    def _request(request):
        return plugin_util.context(request.environ), plugin_util.experiment_id(request.environ)

    @wrappers.Request.application
    def families_route(self, request):
        return _json_response(request, self.families_impl(*self._request(request)))

    @wrappers.Request.application
    def family_route(self, request):
        families, metric = _families(request), _required(request, "metric")
        band = request.args.get("band", "ci")
        points = request.args.get("points")
        if points is not None and not re.fullmatch(r"[0-9]{1,9}", points):
            raise errors.InvalidArgumentError(
                f"points must be a non-negative integer (0 = every point), not {points!r}"
            )
        answer = self.family_impl(
            *self._request(request),
            families,
            metric,
            band,
            request.args.get("filter"),
            request.args.get("group") or None,
            None if points is None else int(points),
        )
        return _json_response(request, answer)

    @wrappers.Request.application
    def summary_route(self, request):
        args = request.args
        answer = self.summary_impl(
            *self._request(request), _families(request), args.get("filter"), args.get("group") or None
        )
        return _json_response(request, answer)

    @wrappers.Request.application
    def regularization_route(self, request):
        answer = self.regularization_impl(*self._request(request), _view(request), request.args.get("filter"))
        return _json_response(request, answer)

    @wrappers.Request.application
    def diagnostics_route(self, request):
        answer = self.diagnostics_impl(*self._request(request), _view(request), request.args.get("filter"))
        return _json_response(request, answer)

    @wrappers.Request.application
    def weights_route(self, request):
        tag, epoch = (_required(request, k) for k in ("tag", "epoch"))
        if not re.fullmatch(r"[0-9]{1,12}", epoch):
            raise errors.InvalidArgumentError(f"epoch must be a non-negative integer, not {epoch!r}")
        answer = self.weights_impl(*self._request(request), _view(request), tag, int(epoch), request.args.get("filter"))
        return _json_response(request, answer)

    @wrappers.Request.application
    def weight_history_route(self, request):
        tag = _required(request, "tag")
        answer = self.weight_history_impl(
            *self._request(request), _view(request), tag, request.args.get("run") or None, request.args.get("filter")
        )
        return _json_response(request, answer)

    @wrappers.Request.application
    def static_route(self, request):
        prefix = f"/data/plugin/{self.plugin_name}/static/"
        path = request.path  # percent-decoded, so `%2e%2e%2f` arrives here as `../`
        if not path.startswith(prefix):
            raise errors.NotFoundError("not a static file")
        filename = _static_file(path[len(prefix) :])
        with open(filename, "rb") as f:
            content = f.read()
        return http_util.Respond(request, content, _STATIC_TYPES[os.path.splitext(filename)[1]])

    @wrappers.Request.application
    def plotly_route(self, request):
        if self._plotly is None:
            try:
                from importlib import resources

                raw = resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
            except (ImportError, OSError):
                raise errors.NotFoundError("plotly.js not found: pip install plotly") from None
            self._plotly = gzip.compress(raw, compresslevel=6, mtime=0)
        return http_util.Respond(request, self._plotly, "text/javascript", content_encoding="gzip", expires=3600)


class OverfittingLoader(base_plugin.TBLoader):
    """What TensorBoard loads (the `tensorboard_plugins` entry point): the plugin, and its flag
    `--overfitting_warm_up` (default true: read and summarize every family once the tree is
    loaded, see `OverfittingPlugin._warm_up`; false: read only what a request asks for)."""

    def define_flags(self, parser):
        parser.add_argument(
            "--overfitting_warm_up",
            choices=("true", "false"),
            default="true",
            help="Overfitting tab: once the log tree is loaded, read and summarize every family in the "
            "background so that the tab opens at once (default true; false: read on request)",
        )

    def load(self, context):
        flags = context.flags
        return OverfittingPlugin(context, warm_up=getattr(flags, "overfitting_warm_up", "true") == "true")


def _families(request) -> list:
    """The `family` parameters (one or more: a comparison across families)."""
    families = request.args.getlist("family")
    if not families:
        raise errors.InvalidArgumentError("missing query parameter 'family'")
    return families


def _view(request):
    """The `family` parameter: one family's name, or the list of several (a comparison)."""
    families = _families(request)
    return families[0] if len(families) == 1 else families


def _view_runs(snapshot: Snapshot, family, filter_text: str | None = None) -> list:
    """The runs a section shows: those of `family` (a name, or several: runs named `<family>/<run>`)
    that pass `filter_text` — the runs of the curves and the table."""
    return snapshot.select([family] if isinstance(family, str) else list(family), filter_text).runs


def _view_label(family, filter_text: str | None) -> str:
    names = ", ".join(repr(f) for f in ([family] if isinstance(family, str) else family))
    return f"family {names}" + (f" (filter {filter_text!r})" if filter_text else "")


def _member_curves(runs, metric, std, band, series) -> list:
    """/family's entry per member: its series per split, and a seed group's band."""
    out = []
    for r in runs:
        splits = sorted(r.splits.items(), key=lambda kv: metadata.SPLITS.index(kv[0]))
        bands = {}
        for split, name in splits:
            curves = [
                series[(s[split], metric)].by_step
                for s in r.seed_runs.values()
                if split in s and (s[split], metric) in series
            ]
            if curves:
                bands[split] = dataclasses.asdict(analysis.seed_band(curves, band))
            elif (name, std) in series:  # no seed runs to compute from: the mean run's std (ddof=0)
                got = series[(name, std)]
                bands[split] = {
                    "kind": "std0",
                    "steps": got.steps,
                    "mean": None,
                    "half": got.values,
                    "n": None,
                    "drops": [],
                }
        out.append(
            {
                **r.header(),
                "series": {split: series[(name, metric)] for split, name in splits if (name, metric) in series},
                "band": bands,
            }
        )
    return out


def _group_curves(groups, metric, band, series) -> list:
    """/family's entry per group (group-by): per split the mean over its members' curves (a seed
    group's seed runs) with their band (`analysis.seed_band`)."""
    out = []
    for label, members in groups:
        lines, bands = {}, {}
        for split in metadata.SPLITS:
            curves = [
                series[(n, metric)].by_step for r in members for n in r.member_curves(split) if (n, metric) in series
            ]
            if not curves:
                continue
            got = analysis.seed_band(curves, band)
            lines[split] = Series(got.steps, [_finite(v) for v in got.mean])
            bands[split] = {**dataclasses.asdict(got), "half": [None if h is None else _finite(h) for h in got.half]}
        out.append({**_group_header(label, members), "series": lines, "band": bands})
    return out


def _group_header(label: str, members: list) -> dict:
    return {
        "run": GROUP_PREFIX + label,
        "name": label,
        "baseline": False,
        "seeds": sum(len(r.seed_runs) or 1 for r in members),  # member curves in the band
        "members": [r.run for r in members],
    }


def _common_hparams(hparams: list) -> dict:
    """The hyperparameters every member of a group shares (the others vary inside it)."""
    first = hparams[0] if hparams else {}
    return {k: v for k, v in first.items() if all(k in hp and hp[k] == v for hp in hparams[1:])}


def _group_run_curves(members: list, snapshot: Snapshot, series: dict) -> analysis.RunCurves:
    """What `analysis.summarize_family` reads of a group: its mean curves, and each member curve
    (a seed group's seed runs) as one of its "seeds", for the CI at its best epoch and the onsets."""
    tag = collections.Counter(snapshot.data_loss(r) for r in members).most_common(1)[0][0]

    def member_curves(split):
        return [series[(n, tag)].by_step for r in members for n in r.member_curves(split) if (n, tag) in series]

    def mean(split):
        curves = member_curves(split)
        if not curves:
            return {}
        got = analysis.seed_band(curves, "std")
        return dict(zip(got.steps, got.mean))

    return analysis.RunCurves(
        {"status": analysis.AGGREGATE_STATUS},
        tag,
        validation=mean(metadata.VALIDATION),
        train=mean(metadata.TRAIN),
        train_eval=mean(metadata.TRAIN_EVAL),
        seeds={i: {"validation": c} for i, c in enumerate(member_curves(metadata.VALIDATION))},
    )


def _downsample_entry(entry: dict, points: int, keep: list) -> None:
    """Downsamples a /family entry's series in place (`analysis.downsample`) and its band at the
    same steps (and where its n drops)."""
    for split, s in list(entry["series"].items()):
        small = s.downsampled(points, keep)
        if small is s:
            continue
        entry["series"][split] = small
        band = entry["band"].get(split)
        if band:
            steps = set(small.steps) | set(band["drops"])
            at = [i for i, step in enumerate(band["steps"]) if step in steps]
            entry["band"][split] = {
                k: [v[i] for i in at] if isinstance(v, list) and k != "drops" else v for k, v in band.items()
            }


def _static_file(relative: str) -> str:
    """The file of STATIC_DIR that `relative` names; NotFoundError for anything else."""
    parts = relative.split("/")
    if not all(_SAFE_PART.fullmatch(p) and ".." not in p for p in parts):
        raise errors.NotFoundError("no such static file")
    path = os.path.realpath(os.path.join(STATIC_DIR, *parts))
    root = os.path.realpath(STATIC_DIR)
    if (
        os.path.commonpath([path, root]) != root
        or os.path.splitext(path)[1] not in _STATIC_TYPES
        or not os.path.isfile(path)
    ):
        raise errors.NotFoundError("no such static file")
    return path


def _penalty(series: dict, train: str | None, data_tag: str) -> tuple:
    """The penalty series of a run's train split, and where it comes from.

    tbreg's callbacks log it (`epoch_regularization_loss`); without them it is Keras' loss minus
    the data loss, which both average the same training batches.
    """
    logged = series.get((train, metadata.PENALTY_TAG))
    if logged:
        return logged, metadata.PENALTY_TAG
    loss, data = series.get((train, metadata.LOSS_TAG)), series.get((train, data_tag))
    if not (loss and data) or data_tag == metadata.LOSS_TAG:
        return None, None
    curve = analysis.penalty_curve(loss.by_step, data.by_step)
    return Series(list(curve), list(curve.values())), f"{metadata.LOSS_TAG} - {data_tag}"


def _last_record(datums) -> dict | None:
    """The record of the highest step (the later one on ties), parsed; None if unreadable."""
    if not datums:
        return None
    last = max(enumerate(datums), key=lambda ix: (ix[1].step, ix[0]))[1]
    try:
        record = json.loads(last.numpy.item())
    except (ValueError, AttributeError, TypeError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def _criterion() -> dict:
    """The rule behind onsets and verdicts, for the tab to name."""
    return {
        "name": "GL",
        "threshold": analysis.GL_THRESHOLD,
        "window": analysis.SMOOTH_WINDOW,
        "confidence": analysis.CONFIDENCE,
    }


def _run_curves(r: Run, data_loss: str, series: dict) -> analysis.RunCurves:
    """What `analysis.summarize_family` reads of a member. A seed group's is its mean run's: the
    record of the mean (status `aggregate`) and its curves, and its seed runs' validation curves."""
    split = r.splits.get

    def curve(name, tag) -> dict:
        found = series.get((name, tag))
        return found.by_step if found else {}

    return analysis.RunCurves(
        r.record,
        data_loss,
        validation=curve(split(metadata.VALIDATION), data_loss),
        train=curve(split(metadata.TRAIN), data_loss),
        train_eval=curve(split(metadata.TRAIN_EVAL), data_loss),
        loss=curve(split(metadata.TRAIN), metadata.LOSS_TAG),
        penalty=curve(split(metadata.TRAIN), metadata.PENALTY_TAG),
        baseline=r.baseline,
        seeds={seed: {"validation": curve(s.get(metadata.VALIDATION), data_loss)} for seed, s in r.seed_runs.items()},
    )


def _histogram_at(datums, epoch: int) -> dict:
    """The histogram of the latest step at or before `epoch` (the first one if all are later)."""
    datums = sorted(datums, key=lambda d: d.step)
    i = max(0, bisect.bisect_right([d.step for d in datums], epoch) - 1)
    d = datums[i]
    buckets = d.numpy.reshape(-1, 3).tolist() if d.numpy.size else []
    return {"epoch": d.step, "buckets": [[_finite(a), _finite(b), _finite(c)] for a, b, c in buckets]}


def _history(datums) -> dict:
    """Histograms (TensorBoard's [left, right, count] buckets) at their steps, as shares of weights
    in HISTORY_BINS common bins (a bucket's count spread over the bins it overlaps)."""
    import numpy as np

    datums = sorted(datums, key=lambda d: d.step)
    arrays = [d.numpy.reshape(-1, 3).astype(np.float64) for d in datums]
    edges = np.concatenate([a[:, :2].ravel() for a in arrays if a.size]) if any(a.size for a in arrays) else np.zeros(0)
    edges = edges[np.isfinite(edges)]
    lo, hi = (float(edges.min()), float(edges.max())) if edges.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    width = (hi - lo) / HISTORY_BINS
    shares = []
    for a in arrays:
        counts = np.zeros(HISTORY_BINS)
        for left, right, count in a[np.isfinite(a).all(axis=1)] if a.size else ():
            first = min(HISTORY_BINS - 1, max(0, int((left - lo) / width)))
            last = min(HISTORY_BINS - 1, max(first, int((right - lo) / width)))
            if right <= left or first == last:
                counts[first] += count
                continue
            for j in range(first, last + 1):  # spread over the bins it overlaps, by overlap
                overlap = min(right, lo + (j + 1) * width) - max(left, lo + j * width)
                counts[j] += count * max(0.0, overlap) / (right - left)
        total = counts.sum()
        shares.append([round(float(v), 6) for v in (counts / total if total > 0 else counts)])
    centers = [lo + (j + 0.5) * width for j in range(HISTORY_BINS)]
    return {"epochs": [d.step for d in datums], "centers": centers, "shares": shares}
