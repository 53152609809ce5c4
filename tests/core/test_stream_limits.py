"""Stream limits are normalised once, in the core (R8), so adapters only copy them."""

from __future__ import annotations

import pytest

from roomkeeper.core import (
    DUPLICATE_WINDOW_SECONDS,
    RoomId,
    StreamLimits,
    StreamSpec,
    stream_config_for_room,
)

RID = RoomId("a" * 26)


def test_zero_limits_mean_unlimited_as_nats_server_reads_them() -> None:
    assert StreamLimits(max_age_seconds=0, max_msgs=0) == StreamLimits()


@pytest.mark.parametrize("limits", [{"max_age_seconds": -1.0}, {"max_msgs": -5}])
def test_negative_limits_are_refused(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        StreamLimits(**limits)  # type: ignore[arg-type]


def test_the_duplicate_window_never_outlives_max_age() -> None:
    short = stream_config_for_room(RID, limits=StreamLimits(max_age_seconds=30.0))
    assert short.duplicate_window_seconds == 30.0
    long = stream_config_for_room(RID, limits=StreamLimits(max_age_seconds=3600.0))
    assert long.duplicate_window_seconds == DUPLICATE_WINDOW_SECONDS
    assert stream_config_for_room(RID).duplicate_window_seconds == DUPLICATE_WINDOW_SECONDS


def test_a_spec_built_by_hand_is_normalised_too() -> None:
    spec = StreamSpec(name="S", subjects=("s",), duplicate_window_seconds=600.0,
                      limits=StreamLimits(max_age_seconds=10.0))
    assert spec.duplicate_window_seconds == 10.0
