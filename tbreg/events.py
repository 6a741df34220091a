"""Event files written from Python: summaries as protobuf records, without a TensorFlow op per value.

An eager `tf.summary.scalar` costs ~1 ms (several TensorFlow ops); `EventWriter` builds the same
`Event` protobuf in Python and appends it with TensorFlow's record writer (`tf.io.TFRecordWriter`,
so every `tf.io.gfile` scheme works: local, gs://, ram://). The records hold the same bytes as
`tf.summary.scalar` / `tf.summary.write` would write — same tag, step, summary metadata and
tensor — only the wall time differs (tests/test_events.py holds them equal). Readers see no
difference: TensorBoard, tbreg.reader and anything that reads event files read them the same.

    writer = EventWriter("logs/run1/train")
    writer.scalars({"epoch_loss": 0.69}, step=3)
    writer.close()
"""

import itertools
import os
import socket
import time

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata

FILE_SUFFIX = ".tbreg.v2"  # beside TensorFlow's own `<time>.<host>.<pid>.<n>.v2` files, never the same name
_counter = itertools.count()


def _metadata(plugin_metadata) -> summary_pb2.SummaryMetadata:
    """TensorBoard's plugin metadata as this module's protobuf class (TensorFlow's or TensorBoard's)."""
    return summary_pb2.SummaryMetadata.FromString(plugin_metadata.SerializeToString())


_SCALAR = _metadata(scalar_metadata.create_summary_metadata(display_name=None, description=None))
_HISTOGRAM = _metadata(histogram_metadata.create_summary_metadata(display_name=None, description=None))


def scalar_tensor(value) -> tensor_pb2.TensorProto:
    """`value` as `tf.summary.scalar` stores it: a float32 scalar (rounded like `tf.cast`)."""
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=np.float32(value).tobytes())
    proto.tensor_shape.SetInParent()  # a scalar: shape {} present, no dims
    return proto


def array_tensor(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A float array as TensorFlow's summary writer stores a tensor (`AsProtoTensorContent`)."""
    array = np.ascontiguousarray(array)
    dtype = {np.dtype(np.float64): types_pb2.DT_DOUBLE, np.dtype(np.float32): types_pb2.DT_FLOAT}[array.dtype]
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_content=array.tobytes())
    proto.tensor_shape.SetInParent()
    for n in array.shape:
        proto.tensor_shape.dim.add(size=n)
    return proto


class EventWriter:
    """One event file in `logdir` (created at once, like `tf.summary.create_file_writer`), one
    event per value: `scalars`, `histograms`, `write`. `flush` and `close` as TensorFlow's writers."""

    def __init__(self, logdir: str):
        tf.io.gfile.makedirs(logdir)
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_counter)}"
        self.path = os.path.join(logdir, name + FILE_SUFFIX)
        self._writer = tf.io.TFRecordWriter(self.path)
        self._write_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def _write_event(self, event: event_pb2.Event) -> None:
        self._writer.write(event.SerializeToString())

    def write(self, tag: str, tensor: tensor_pb2.TensorProto, metadata: summary_pb2.SummaryMetadata, step: int) -> None:
        event = event_pb2.Event(wall_time=time.time(), step=int(step))
        event.summary.value.add(tag=tag, tensor=tensor, metadata=metadata)
        self._write_event(event)

    def scalars(self, values: dict, step: int, flush: bool = True) -> None:
        """{tag: number} as `tf.summary.scalar(tag, number, step)` each; then handed to the file
        system (one write per call: what an epoch logged is on disk even if a later write fails),
        unless `flush` is false (a later call's flush writes them)."""
        for tag, value in values.items():
            self.write(tag, scalar_tensor(value), _SCALAR, step)
        if flush:
            self.flush()

    def histogram(self, tag: str, buckets: np.ndarray, step: int) -> None:
        """Histogram buckets (k × 3: left, right, count) as `tf.summary.write` with histogram metadata."""
        self.write(tag, array_tensor(buckets), _HISTOGRAM, step)
        self.flush()

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
