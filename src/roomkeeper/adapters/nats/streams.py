"""NatsStreamStore: the StreamStore port on JetStream.

Every port method is one bridge crossing: the whole operation, retries and batch reads
included, runs as one coroutine on the bridge loop. Per-stream state (how reads work on
that stream) therefore lives on the loop thread only.

Reads never create a consumer (R6): a batch direct get (``reads.py``), or, when the
stream or server cannot do that, pipelined get-by-sequence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from roomkeeper.core import Conflict, StoredMessage, StreamSpec, StreamState

from .bridge import NatsConnection
from .errors import (
    JS_STREAM_NAME_IN_USE,
    JS_SUBJECTS_OVERLAP,
    is_stream_not_found,
    translate_errors,
)
from .reads import BatchReader, ReadMode, fetch_by_sequence

__all__ = ["OWNED_FIELDS", "NatsStreamStore", "stream_config"]

#: The stream config fields roomkeeper decides. ensure() compares only these with the
#: server's config, so defaults the server fills in never count as a difference.
OWNED_FIELDS = (
    "name", "subjects", "storage", "retention", "discard", "allow_direct",
    "duplicate_window", "num_replicas", "max_age", "max_msgs",
)
#: JetStream err_codes that mean "that message is already gone": sequence not found,
#: and "stream store EOF" for a sequence past the last one.
_MESSAGE_GONE = frozenset({10043, 10057})
#: ensure() rounds: each handles one concurrent create, update or delete by another
#: instance before giving up on a stream that keeps changing under it.
_ENSURE_ROUNDS = 3
_API = "$JS.API"


def stream_config(spec: StreamSpec) -> StreamConfig:
    """The one translation of a StreamSpec into a JetStream stream config (R8: the spec
    itself comes from ``core.stream_config_for_room``)."""
    return StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        storage=StorageType(spec.storage),
        retention=RetentionPolicy(spec.retention),
        discard=DiscardPolicy(spec.discard),
        allow_direct=spec.allow_direct,
        # The core already cut the window to max_age, which the server insists on.
        duplicate_window=spec.duplicate_window_seconds,
        num_replicas=spec.replicas,
        # JetStream spells "unlimited" 0 for max_age and -1 for max_msgs.
        max_age=spec.limits.max_age_seconds or 0.0,
        max_msgs=spec.limits.max_msgs or -1,
    )


def owned(config_json: dict[str, Any]) -> dict[str, Any]:
    """The OWNED_FIELDS of a config as the server's JSON spells them, normalised so that
    an omitted field equals its default."""
    defaults: dict[str, Any] = {"allow_direct": False, "max_age": 0, "max_msgs": -1,
                                "num_replicas": 1, "duplicate_window": 0}
    picked = {key: config_json.get(key, defaults.get(key)) for key in OWNED_FIELDS}
    picked["subjects"] = sorted(picked["subjects"] or [])
    return picked


@dataclass
class NatsStreamStore:
    """``fetch_timeout`` bounds each batch round trip (default: the connection's
    request timeout); ``fallback_concurrency`` bounds the get-by-sequence requests in
    flight on the fallback path; ``fast_replies`` off reads batch replies through
    nats-py's own header parsing (the tests compare the two, see ``replies.py``)."""

    conn: NatsConnection
    fetch_timeout: float | None = None
    fallback_concurrency: int = 64
    fast_replies: bool = True

    def __post_init__(self) -> None:
        # Stream name -> how reads work on it, and its last sequence as the latest
        # info() said (reads.py, "Tail order": a hint, harmless when stale). Touched on
        # the bridge loop only.
        self._modes: dict[str, ReadMode] = {}
        self._tails: dict[str, int] = {}
        self._reader = BatchReader(self.conn.client, fast=self.fast_replies)
        if self.fetch_timeout is None:
            self.fetch_timeout = self.conn.request_timeout

    async def ensure(self, spec: StreamSpec) -> None:
        """Create-or-update; Conflict(code="stream_subjects_overlap") when another
        stream already captures one of the subjects."""
        with translate_errors(f"ensure stream {spec.name}"):
            try:
                await self.conn.call(self._ensure, spec)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != JS_SUBJECTS_OVERLAP:
                    raise
                raise Conflict(f"another stream captures subjects of {spec.name}",
                               code="stream_subjects_overlap") from exc

    async def info(self, name: str) -> StreamState | None:
        with translate_errors(f"info of stream {name}"):
            return await self.conn.call(self._info, name)

    async def fetch(self, name: str, start_seq: int, count: int) -> tuple[StoredMessage, ...]:
        with translate_errors(f"fetch from stream {name}"):
            return await self.conn.call(self._fetch, name, start_seq, count)

    async def fetch_fallback(
        self, name: str, start_seq: int, count: int
    ) -> tuple[StoredMessage, ...]:
        """fetch() by pipelined get-by-sequence, whatever the stream supports. fetch()
        uses it by itself when it has to; it is public so that tests can compare."""
        with translate_errors(f"fetch from stream {name}"):
            return await self.conn.call(
                fetch_by_sequence, self.conn.js, name, start_seq, count,
                self.fallback_concurrency,
            )

    async def publish(self, subject: str, data: bytes, msg_id: str | None = None) -> int:
        with translate_errors(f"publish to {subject}"):
            return await self.conn.call(_publish, self.conn.js, subject, data, msg_id)

    async def delete_message(self, name: str, seq: int) -> None:
        """A message (or stream) that is already gone is not an error: the outcome the
        caller wanted holds either way."""
        if seq < 1:
            return  # no such sequence can exist (and the server cannot parse it)
        with translate_errors(f"delete message {seq} of stream {name}"):
            await self.conn.call(_delete_message, self.conn.js, name, seq)

    async def delete(self, name: str) -> None:
        with translate_errors(f"delete stream {name}"):
            await self.conn.call(self._delete, name)

    # -- on the bridge loop --------------------------------------------------------

    async def _ensure(self, spec: StreamSpec) -> None:
        # Create first: for a new room that is the only round trip. The server accepts a
        # create that matches the existing stream exactly and answers 10058 otherwise,
        # which includes a stream whose config it has filled in with its own defaults.
        self._modes.pop(spec.name, None)  # allow_direct may change below
        wanted = stream_config(spec)
        for _ in range(_ENSURE_ROUNDS):
            try:
                await self.conn.js.add_stream(wanted)
                return
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != JS_STREAM_NAME_IN_USE:
                    raise
            if await _converge(self.conn, wanted.as_dict()):
                return
        raise nats.js.errors.ServiceUnavailableError(
            description=f"stream {spec.name} kept changing during ensure"
        )

    async def _fetch(self, name: str, start_seq: int, count: int) -> tuple[StoredMessage, ...]:
        mode = self._modes.get(name, ReadMode.BATCH)
        if mode is ReadMode.BATCH:
            messages, mode = await self._reader.fetch(
                name, start_seq, count, self.fetch_timeout or self.conn.request_timeout,
                self._tails.get(name),
            )
            if messages is not None:
                self._modes[name] = mode
                return messages
            mode = await self._why_no_batch(name, mode)
            if mode is ReadMode.MISSING:
                return ()
        return await fetch_by_sequence(
            self.conn.js, name, start_seq, count, self.fallback_concurrency
        )

    async def _info(self, name: str) -> StreamState | None:
        state = await _info(self.conn.js, name)
        if state is None:
            self._tails.pop(name, None)
        else:
            self._tails[name] = state.last_seq
        return state

    async def _why_no_batch(self, name: str, mode: ReadMode) -> ReadMode:
        """Batch direct get answered "no responders" (or an old server ignored
        ``batch``). Remember the answer when it is a property of the stream, not a
        moment: a missing stream gives (), allow_direct off means get-by-sequence."""
        if mode is ReadMode.BY_SEQUENCE:  # an old server: it will not learn batches
            self._modes[name] = mode
            return mode
        try:
            info = await self.conn.js.stream_info(name)
        except nats.js.errors.NotFoundError as exc:
            if is_stream_not_found(exc):
                return ReadMode.MISSING
            raise
        if not info.config.allow_direct:
            self._modes[name] = ReadMode.BY_SEQUENCE
        # allow_direct is on but nobody answered (e.g. a replica moving): this read
        # falls back without remembering it.
        return ReadMode.BY_SEQUENCE

    async def _delete(self, name: str) -> None:
        self._modes.pop(name, None)
        self._tails.pop(name, None)
        try:
            await self.conn.js.delete_stream(name)
        except nats.js.errors.NotFoundError as exc:
            if not is_stream_not_found(exc):
                raise


async def _converge(conn: NatsConnection, wanted: dict[str, Any]) -> bool:
    """The stream exists with another config: update the fields we own, keeping
    everything else the server (or an operator) set. False when the stream vanished
    meanwhile, so the caller creates it again."""
    name = wanted["name"]
    try:
        current = (await _api(conn, f"STREAM.INFO.{name}", b""))["config"]
    except nats.js.errors.NotFoundError as exc:
        if is_stream_not_found(exc):
            return False
        raise
    if owned(current) == owned(wanted):
        return True  # equal already, e.g. another instance won the race
    patched = {**current, **{key: wanted[key] for key in OWNED_FIELDS}}
    await _api(conn, f"STREAM.UPDATE.{name}", json.dumps(patched).encode())
    return True


async def _api(conn: NatsConnection, subject: str, payload: bytes) -> dict[str, Any]:
    """A JetStream API request on the raw JSON, so that a config round-trips with fields
    this nats-py version does not model."""
    try:
        reply = await conn.client.request(
            f"{_API}.{subject}", payload, timeout=conn.request_timeout)
    except nats.errors.NoRespondersError as exc:
        raise nats.js.errors.ServiceUnavailableError from exc
    body: dict[str, Any] = json.loads(reply.data)
    if "error" in body:
        nats.js.errors.APIError.from_error(body["error"])  # raises the typed error
    return body


async def _info(js: JetStreamContext, name: str) -> StreamState | None:
    try:
        state = (await js.stream_info(name)).state
    except nats.js.errors.NotFoundError as exc:
        if is_stream_not_found(exc):
            return None
        raise
    # A stream that never held a message reports first_seq 0; the port's convention
    # for "empty" is first_seq == last_seq + 1.
    first = state.first_seq if state.messages else state.last_seq + 1
    return StreamState(first, state.last_seq, state.messages, state.num_deleted or 0)


async def _publish(js: JetStreamContext, subject: str, data: bytes, msg_id: str | None) -> int:
    headers = {"Nats-Msg-Id": msg_id} if msg_id is not None else None
    try:
        ack = await js.publish(subject, data, headers=headers)
    except nats.js.errors.NoStreamResponseError as exc:
        # Nobody answered: no stream captures the subject (the caller's NotFound, R7), or
        # the one that does has no leader right now, as while a cluster elects one.
        if await _captured(js, subject):
            raise nats.js.errors.ServiceUnavailableError(
                description=f"the stream capturing {subject} did not answer") from exc
        raise
    # A duplicate within the window acks with the original's sequence.
    seq: int = ack.seq
    return seq


async def _captured(js: JetStreamContext, subject: str) -> bool:
    """Whether a stream captures ``subject`` (asked of the meta leader, not the stream)."""
    try:
        await js.find_stream_name_by_subject(subject)
    except nats.js.errors.NotFoundError:
        return False
    return True


async def _delete_message(js: JetStreamContext, name: str, seq: int) -> None:
    try:
        await js.delete_msg(name, seq)
    except nats.js.errors.APIError as exc:
        if exc.err_code not in _MESSAGE_GONE and not is_stream_not_found(exc):
            raise
