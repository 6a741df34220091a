"""Pure rules about a log tree's runs, shared by the plugin, the report and `tbreg plot`.

No TensorFlow and no file access here: these functions take names, records and plain series and
return plain data, so every reader shows a run the same way.

Seed groups: a model trained with several seeds is written as `<family>/<model>/seed_<k>` (one
run per seed) plus `<family>/<model>/mean`, whose tags are the seeds' mean and whose `<tag>/std`
tags are their standard deviation. Readers show such a group as one member of `<family>`, named
`<model>`: the mean's line with a ±std band; the seed runs are not separate lines, and `/std` tags
are never metrics of their own.
"""

import collections
import dataclasses
import posixpath
import re
import urllib.parse

MEAN = "mean"  # the aggregate run of a seed group
STD_SUFFIX = "/std"  # `<tag>/std`: the seeds' standard deviation of `<tag>`, in the mean run
AGGREGATE_STATUS = "aggregate"  # the mean run's run.json status
SEED_RUN = re.compile(r"seed_(-?\d+)")


def seed_dir(seed: int) -> str:
    return f"seed_{seed}"


@dataclasses.dataclass(frozen=True)
class RunName:
    """Where a run dir sits: `family` (a folder path, "" at the tree's root), the `name` shown for it
    (the model, or the seed group), and `member` ("mean", "seed_<k>", or None for a plain run)."""

    family: str
    name: str
    member: str | None = None

    @property
    def group(self) -> str:
        """The path of the run, or of the seed group it belongs to, below the tree's root."""
        return f"{self.family}/{self.name}" if self.family else self.name

    @property
    def is_mean(self) -> bool:
        return self.member == MEAN

    @property
    def is_seed(self) -> bool:
        return self.member is not None and self.member != MEAN


def run_name(rel: str, record: dict | None = None) -> RunName:
    """How the run dir `rel` (a '/'-separated path below the tree's root, "." for the root) is shown.

    `<f>/<m>/seed_<k>` is seed `k` of group `<m>` in family `<f>`; `<f>/<m>/mean` is that group's
    mean when its record (if given) says so or the dir's name is `mean` next to seeds; anything
    else is a run `<name>` of family `<dirname>`.
    """
    rel = rel.strip("/")
    if rel in ("", "."):
        return RunName("", ".")
    head, _, tail = rel.rpartition("/")
    is_member = bool(SEED_RUN.fullmatch(tail)) or (
        tail == MEAN and (record is None or record.get("status") == AGGREGATE_STATUS)
    )
    if is_member:
        family, _, group = head.rpartition("/")
        return RunName(family, group or ".", tail)
    return RunName(head, tail)


def is_aggregate(record) -> bool:
    """A seed group's mean run, by its record (run.json)."""
    return isinstance(record, dict) and record.get("status") == AGGREGATE_STATUS


def is_std_tag(tag: str) -> bool:
    """A seed group's `<tag>/std`: drawn as the band around `<tag>`, never a metric or a layer."""
    return tag.endswith(STD_SUFFIX)


def std_tag(tag: str) -> str:
    return tag + STD_SUFFIX


# TensorBoard's Scalars, Distributions and Histograms tabs (its older dashboards) select every run
# only when at most this many match the run filter; above it they open with no run selected. Its
# Time Series tab selects up to 500. A link's `regexInput` sets the filter, so a family fits.
TENSORBOARD_RUN_LIMIT = 40
SPLITS = ("train", "validation", "train_eval", "validation_mc")


def tensorboard_runs(files: list[str]) -> list[str]:
    """The split dirs (TensorBoard runs with scalars) among a tree's files, given relative to it."""
    dirs = {posixpath.dirname(f) for f in files if ".tfevents." in posixpath.basename(f)}
    return sorted(d for d in dirs if posixpath.basename(d) in SPLITS)


def tensorboard_note(runs: list[str], url: str = "http://localhost:6006/") -> str | None:
    """What to open when TensorBoard's Scalars/Histograms tabs would start empty (more than 40
    split runs), with a link per family that fits; None when they don't."""
    if len(runs) <= TENSORBOARD_RUN_LIMIT:
        return None
    families = collections.Counter(run_name(posixpath.dirname(r)).family for r in runs)
    links = [
        f"{url}#scalars&regexInput={urllib.parse.quote('^' + re.escape(f) + '/', safe='')}"
        for f, n in sorted(families.items())
        if f and n <= TENSORBOARD_RUN_LIMIT
    ]
    where = f"; one family each: {' '.join(links)}" if links else ""
    return (
        f"{len(runs)} TensorBoard runs: its Scalars and Histograms tabs select none above "
        f"{TENSORBOARD_RUN_LIMIT} (tick them, or filter runs); Time Series and Overfitting show all{where}"
    )
