"""What the writer side and the plugin agree on: the plugin's name, its summary payload, tag names.

A run's record (the content of its run.json) is written as a string tensor summary under
`RUN_TAG` into the run's root dir, tagged with this plugin's name; the plugin reads the record of
the highest step. Everything else the plugin shows comes from Keras' and tbreg's own tags.
"""

import json

from tensorboard.compat.proto import summary_pb2

from tbreg import analysis

PLUGIN_NAME = "overfitting"
PAYLOAD_VERSION = 1  # version of the plugin_data content; bump when the record's meaning changes
RUN_TAG = "overfitting/run"

# Splits: subdirectories of a run dir, each a TensorBoard run of its own, in the order they are drawn:
# Keras' train and validation, tbreg's train_eval (train data, inference mode) and validation_mc
# (validation data, Monte-Carlo dropout: tbreg.callbacks.MCDropout).
TRAIN, VALIDATION, TRAIN_EVAL, VALIDATION_MC = analysis.SPLITS
SPLITS = analysis.SPLITS

# Tags written by Keras' TensorBoard callback and tbreg's callbacks (train split unless said).
EPOCH_PREFIX = "epoch_"  # step = epoch; Keras' `evaluation_*_vs_iterations` tags count optimizer steps
LOSS_TAG, PENALTY_TAG, DATA_LOSS_TAGS = analysis.LOSS_TAG, analysis.PENALTY_TAG, analysis.DATA_LOSS_TAGS
LAYER_PENALTY_PREFIX = "regularization/"
WEIGHTS_PREFIX = "weights/"


def create_summary_metadata() -> summary_pb2.SummaryMetadata:
    """Metadata of the run-record summary: this plugin's name, payload version, tensor data class."""
    content = json.dumps({"version": PAYLOAD_VERSION}).encode()
    return summary_pb2.SummaryMetadata(
        summary_description="tbreg run record (run.json)",
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME, content=content),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


def parse_plugin_metadata(content: bytes) -> dict:
    """The plugin_data content as a dict; raises ValueError when it is not ours or too new."""
    try:
        parsed = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"not an {PLUGIN_NAME} payload: {e}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("version"), int):
        raise ValueError(f"not an {PLUGIN_NAME} payload: {content!r}")
    if parsed["version"] > PAYLOAD_VERSION:
        raise ValueError(f"{PLUGIN_NAME} payload version {parsed['version']} is newer than this plugin's")
    return parsed
