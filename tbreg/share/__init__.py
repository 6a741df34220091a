"""Sharing a log tree: an offline HTML report, a tidy scalar export, a verified bundle, an upload.

Everything reads the tree through `tbreg.reader`; outputs are written beside their destination and
renamed into place, so a failure never leaves a half-written file behind. One module per output:
export, report, bundle, upload, and what they share (output); the names below are the API.
"""

from tbreg.share.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    MANIFEST,
    MAX_OPEN_MB,
    BundleResult,
    OpenResult,
    make_bundle,
    open_bundle,
)
from tbreg.share.export import EXPORT_COLUMNS, ExportResult, export_rows, export_scalars
from tbreg.share.output import atomic_output, check_outside, check_writable
from tbreg.share.report import (
    MAX_POINTS,
    MIN_POINTS,
    POINT_BUDGET,
    ReportResult,
    downsample,
    plotly_js,
    render_report,
    summary_row,
    summary_rows,
    write_report,
)
from tbreg.share.upload import SyncResult, check_destination, copy_verified, sync_once, upload

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "EXPORT_COLUMNS",
    "MANIFEST",
    "MAX_OPEN_MB",
    "MAX_POINTS",
    "MIN_POINTS",
    "POINT_BUDGET",
    "BundleResult",
    "ExportResult",
    "OpenResult",
    "ReportResult",
    "SyncResult",
    "atomic_output",
    "check_destination",
    "check_outside",
    "check_writable",
    "copy_verified",
    "downsample",
    "export_rows",
    "export_scalars",
    "make_bundle",
    "open_bundle",
    "plotly_js",
    "render_report",
    "summary_row",
    "summary_rows",
    "sync_once",
    "upload",
    "write_report",
]
