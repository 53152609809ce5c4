"""The room's stream config (R8) as nats-py wants it.

The spec comes from ``roomkeeper.core.stream_config_for_room``; this only translates it,
field by field, the way the NATS adapter does, and invents nothing of its own.
"""

from __future__ import annotations

from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from roomkeeper.core import StreamSpec, stream_config_for_room

from ._plan import Dataset

__all__ = ["dataset_spec", "stream_config", "translate_locally"]


def dataset_spec(dataset: Dataset) -> StreamSpec:
    return stream_config_for_room(dataset.room_id)


def stream_config(spec: StreamSpec) -> StreamConfig:
    """The config the harness creates streams with."""
    return translate_locally(spec)


def translate_locally(spec: StreamSpec) -> StreamConfig:
    limits = spec.limits
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        num_replicas=spec.replicas,
        storage=StorageType(spec.storage),
        retention=RetentionPolicy(spec.retention),
        discard=DiscardPolicy(spec.discard),
        allow_direct=spec.allow_direct,
        duplicate_window=spec.duplicate_window_seconds,
        # nats-py sends 0 for "no max age" and the server reads -1 as "no message limit".
        max_age=limits.max_age_seconds or 0,
        max_msgs=limits.max_msgs if limits.max_msgs is not None else -1,
    )
