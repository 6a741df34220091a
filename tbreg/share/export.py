"""Export: every scalar of a tree as a tidy row, to CSV or JSON."""

import dataclasses
import itertools
import json
import math
import os

from tbreg.errors import UserError
from tbreg.reader import iter_runs
from tbreg.share.output import atomic_output, check_outside

EXPORT_COLUMNS = ("family", "run", "split", "tag", "step", "wall_time", "value")


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
    check_outside(out, logdir)
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
