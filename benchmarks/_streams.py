"""The room's stream config (R8), as the NATS adapter creates it.

The spec comes from ``roomkeeper.core.stream_config_for_room`` and the translation into a
nats-py ``StreamConfig`` is the adapter's own ``stream_config``: the benchmark's streams
are configured exactly like the ones roomkeeper ensures, with no second copy of either.
"""

from __future__ import annotations

from nats.js.api import StreamConfig

from roomkeeper.adapters.nats.streams import stream_config as adapter_stream_config
from roomkeeper.core import StreamSpec, stream_config_for_room

from ._plan import Dataset

__all__ = ["dataset_spec", "stream_config"]


def dataset_spec(dataset: Dataset) -> StreamSpec:
    return stream_config_for_room(dataset.room_id)


def stream_config(spec: StreamSpec) -> StreamConfig:
    return adapter_stream_config(spec)
