"""nats-py errors map to core errors in one place; anything else is a bug and propagates."""

from __future__ import annotations

import logging

import nats.errors
import nats.js.errors
import pytest

from roomkeeper.adapters.nats.errors import describe, is_stream_not_found, translate_errors
from roomkeeper.core import BackendUnavailable, NotFound, PayloadTooLarge

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


def _api_error(code: int, err_code: int | None, description: str) -> nats.js.errors.APIError:
    """What nats-py raises for a JetStream API error reply: the subclass for its status."""
    try:
        nats.js.errors.APIError.from_error(
            {"code": code, "err_code": err_code, "description": description})
    except nats.js.errors.APIError as exc:
        return exc
    raise AssertionError("from_error always raises")


LIMITS = [
    _api_error(400, 10027, "maximum number of streams reached"),
    _api_error(500, 10047, "insufficient storage resources available"),
    _api_error(503, 10023, "insufficient resources"),
    _api_error(400, 10002, "resource limits exceeded for account"),
    _api_error(503, 10077, "maximum bytes exceeded"),
]


@pytest.mark.parametrize("error", LIMITS, ids=lambda e: str(e.err_code))
def test_a_jetstream_limit_is_a_logged_503(
    error: nats.js.errors.APIError, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(BackendUnavailable) as caught, translate_errors("ensure stream ROOM_x"):
        raise error
    assert caught.value.code == "jetstream_limit"
    assert caught.value.__cause__ is error
    assert caught.value.message.startswith("ensure stream ROOM_x: ")
    [record] = [r for r in caplog.records if r.name == "roomkeeper.nats"]
    assert record.levelno == logging.ERROR
    assert f"err_code {error.err_code}" in record.getMessage()
    assert error.description in record.getMessage()


@pytest.mark.parametrize("error", [
    _api_error(400, 10058, "stream name already in use with a different configuration"),
    _api_error(500, 10052, "subjects that overlap with jetstream api require no-ack"),
    _api_error(404, 10037, "no message found"),
    nats.js.errors.APIError(code=408, description="Bad Request"),  # a direct get's status
], ids=lambda e: f"{e.code}-{e.err_code}")
def test_an_unclassified_jetstream_error_is_a_logged_503(
    error: nats.js.errors.APIError, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(BackendUnavailable) as caught, translate_errors("update stream"):
        raise error
    assert caught.value.code == "jetstream_error"
    assert caught.value.__cause__ is error
    [record] = [r for r in caplog.records if r.name == "roomkeeper.nats"]
    assert record.levelno == logging.ERROR
    assert f"status {error.code}, err_code {error.err_code}" in record.getMessage()


@pytest.mark.parametrize("error", [
    _api_error(400, 10005, "no suitable peers for placement"),  # a node is down
    _api_error(503, 10008, "JetStream system temporarily unavailable"),
], ids=lambda e: str(e.err_code))
def test_an_outage_jetstream_reports_is_a_503_without_an_error_log(
    error: nats.js.errors.APIError, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(BackendUnavailable) as caught, translate_errors("create stream"):
        raise error
    assert caught.value.code == "backend_unavailable"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_message_over_the_servers_max_payload_is_413() -> None:
    error = nats.errors.MaxPayloadError()
    with pytest.raises(PayloadTooLarge) as caught, translate_errors("publish to rooms.x"):
        raise error
    assert (caught.value.status, caught.value.code) == (413, "payload_too_large")
    assert "NATS server's max_payload is smaller" in caught.value.message
    assert caught.value.__cause__ is error


def test_a_message_over_the_streams_maximum_size_is_413() -> None:
    error = _api_error(400, 10054, "message size exceeds maximum allowed")
    with pytest.raises(PayloadTooLarge) as caught, translate_errors("publish to rooms.x"):
        raise error
    assert caught.value.code == "payload_too_large"
    assert "maximum message size" in caught.value.message


@pytest.mark.parametrize("error", [
    nats.errors.BadSubjectError(),
    KeyError("Nats-Sequence"),
    ValueError("bad config"),
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


def test_a_caller_that_reports_refusals_itself_can_leave_them_unlogged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = _api_error(500, 10074, "replicas > 1 not supported in non-clustered mode")
    with pytest.raises(BackendUnavailable) as caught, \
            translate_errors("ensure KV bucket b", log_refusals=False):
        raise error
    assert caught.value.code == "jetstream_error"
    assert not caplog.records
