"""Sharing a log tree: an offline HTML report, a tidy scalar export, a verified bundle, an upload.

Everything reads event files through `tbreg.reader`; outputs are written beside their destination
and renamed into place, so a failure never leaves a half-written file behind. One module per
concern: tree (reading), output, export, report, bundle, upload; the names below are the API.
"""

from tbreg.share.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    MANIFEST,
    MAX_OPEN_MB,
    BundleResult,
    OpenResult,
    _safe_rel,
    make_bundle,
    open_bundle,
)
from tbreg.share.export import EXPORT_COLUMNS, ExportResult, export_rows, export_scalars
from tbreg.share.output import atomic_output, check_outside, check_writable
from tbreg.share.report import (
    MAX_POINTS,
    MIN_POINTS,
    POINT_BUDGET,
    REGULARIZATION_PREFIXES,
    REGULARIZATION_TAG,
    ReportResult,
    _chart,
    _data_loss_tag,
    _is_regularization,
    downsample,
    longest_curve,
    plotly_js,
    render_report,
    shown_runs,
    summary_row,
    write_report,
)
from tbreg.share.tree import Run, check_run_files, check_source, iter_runs, load_runs, tree_files
from tbreg.share.upload import SyncResult, check_destination, copy_verified, sync_once, upload
