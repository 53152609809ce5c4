"""What a JetStream cluster answers while a node is down must be a 503, not a 500: the
error mapping the cluster test relies on, checked without a cluster."""

from __future__ import annotations

import nats.js.errors
import pytest

from roomkeeper.adapters.nats.errors import translate_errors, translate_kv_errors
from roomkeeper.core import BackendUnavailable, NotFound


def test_no_peers_for_placement_is_an_outage() -> None:
    # What nats-server 2.11+ answers to an R3 stream create with one of three nodes down.
    answer = nats.js.errors.BadRequestError(
        code=400, err_code=10005, description="no suitable peers for placement, peer offline")
    with pytest.raises(BackendUnavailable, match="no suitable peers") as caught, \
            translate_errors("ensure stream ROOM_x"):
        raise answer
    assert caught.value.status == 503
    assert caught.value.__cause__ is answer


def test_other_bad_requests_are_a_503_set_apart_from_an_outage_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answer = nats.js.errors.BadRequestError(code=400, err_code=10052, description="bad config")
    with pytest.raises(BackendUnavailable) as caught, translate_errors("ensure stream ROOM_x"):
        raise answer
    assert caught.value.code == "jetstream_error"
    assert any(r.levelname == "ERROR" and "err_code 10052" in r.getMessage()
               for r in caplog.records)


def test_a_kv_write_nobody_answers_is_an_outage_not_a_missing_stream() -> None:
    # A KV create or update is a JetStream publish; while the bucket's stream elects a
    # leader nobody answers it, and nats-py calls that NoStreamResponseError.
    with pytest.raises(BackendUnavailable, match="remember a nonce"), \
            translate_kv_errors("remember a nonce"):
        raise nats.js.errors.NoStreamResponseError


def test_a_room_publish_nobody_answers_is_still_a_missing_stream() -> None:
    with pytest.raises(NotFound) as caught, translate_errors("publish to rooms.x"):
        raise nats.js.errors.NoStreamResponseError
    assert caught.value.code == "stream_not_found"
