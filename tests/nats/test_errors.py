"""nats-py errors map to core errors in one place; anything else is a bug and propagates."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from roomkeeper.adapters.nats.errors import describe, is_stream_not_found, translate_errors
from roomkeeper.core import BackendUnavailable, NotFound

UNREACHABLE = [
    nats.errors.ConnectionClosedError(),
    nats.errors.ConnectionReconnectingError(),
    nats.errors.NoServersError(),
    nats.errors.TimeoutError(),
    nats.errors.NoRespondersError(),
    nats.js.errors.ServiceUnavailableError(),
    TimeoutError(),
    ConnectionResetError(),
]


@pytest.mark.parametrize("error", UNREACHABLE, ids=lambda e: type(e).__name__)
def test_an_unreachable_backend_is_backend_unavailable(error: Exception) -> None:
    with pytest.raises(BackendUnavailable) as caught, translate_errors("read ROOM_x"):
        raise error
    assert caught.value.__cause__ is error
    assert caught.value.message.startswith("read ROOM_x: ")


def test_a_publish_nothing_captures_is_stream_not_found() -> None:
    with pytest.raises(NotFound) as caught, translate_errors("publish"):
        raise nats.js.errors.NoStreamResponseError
    assert caught.value.code == "stream_not_found"


@pytest.mark.parametrize("error", [
    nats.js.errors.BadRequestError(code=400, err_code=10058, description="in use"),
    nats.errors.BadSubjectError(),
    KeyError("Nats-Sequence"),
], ids=lambda e: type(e).__name__)
def test_anything_else_propagates_unchanged(error: Exception) -> None:
    with pytest.raises(type(error)) as caught, translate_errors("ensure"):
        raise error
    assert caught.value is error


def test_stream_not_found_is_recognised_by_its_err_code() -> None:
    assert is_stream_not_found(nats.js.errors.NotFoundError(code=404, err_code=10059))
    assert not is_stream_not_found(nats.js.errors.NotFoundError(code=404, err_code=10037))
    assert not is_stream_not_found(KeyError())


def test_descriptions_keep_the_type_when_the_message_is_empty() -> None:
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ValueError("bad")) == "ValueError: bad"
