"""What a JetStream cluster answers while a node is down must be a 503, not a 500: the
error mapping the cluster test relies on, checked without a cluster."""

from __future__ import annotations

import nats.js.errors
import pytest

from roomkeeper.adapters.nats.errors import translate_errors
from roomkeeper.core import BackendUnavailable


def test_no_peers_for_placement_is_an_outage() -> None:
    # What nats-server 2.11+ answers to an R3 stream create with one of three nodes down.
    answer = nats.js.errors.BadRequestError(
        code=400, err_code=10005, description="no suitable peers for placement, peer offline")
    with pytest.raises(BackendUnavailable, match="no suitable peers") as caught, \
            translate_errors("ensure stream ROOM_x"):
        raise answer
    assert caught.value.status == 503
    assert caught.value.__cause__ is answer


def test_other_bad_requests_still_propagate() -> None:
    answer = nats.js.errors.BadRequestError(code=400, err_code=10052, description="bad config")
    with pytest.raises(nats.js.errors.BadRequestError), translate_errors("ensure stream ROOM_x"):
        raise answer
