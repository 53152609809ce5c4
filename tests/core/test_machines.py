"""Ordered-effects tests: each machine must yield exactly these effects, in this order,
and answer or fail as listed (R1, R2, R4, R7, the compare-and-set retry)."""

from __future__ import annotations

import pytest

from roomkeeper.core import (
    BackendUnavailable,
    BadRequest,
    Conflict,
    CreateRoomRequest,
    DeleteRoom,
    DeleteStream,
    EnsureStream,
    FetchBatch,
    Forbidden,
    KeyId,
    ListRooms,
    LoadRoom,
    Mode,
    NotFound,
    Page,
    PageRequest,
    Publish,
    PutRoom,
    RevisionConflict,
    Room,
    RoomkeeperError,
    StoredMessage,
    StreamInfo,
    StreamLimits,
    StreamState,
    VersionedRoom,
    Wiring,
    add_member,
    create_room,
    delete_room,
    encode_keyid,
    get_room,
    list_rooms,
    publish,
    read_history,
    remove_member,
    stream_config_for_room,
)
from roomkeeper.core._usecases import MAX_CAS_ATTEMPTS, MAX_MEMBERS

from .perform import keyid, perform_sequence, room_id

ALICE, BOB, CAROL, DAVE = keyid(1), keyid(2), keyid(3), keyid(4)
RID = room_id(7)
STREAM = f"ROOM_{RID}"
LIMITS = StreamLimits(max_age_seconds=3600.0, max_msgs=10_000)
JS = Wiring(jetstream=True, replicas=3, limits=LIMITS)
NO_JS = Wiring(jetstream=False, replicas=3, limits=LIMITS)
ENSURE = EnsureStream(stream_config_for_room(RID, 3, LIMITS))
NOW = 1733300000.9
CREATED = "2024-12-04T08:13:20Z"
Raised = type[RoomkeeperError]


def make_room(mode: Mode = Mode.MATRIX, members: tuple[KeyId, ...] = (ALICE, BOB)) -> Room:
    return Room(id=RID, name="general", mode=mode, owner=ALICE, members=members,
                created_at=CREATED)


MATRIX = make_room()
EPHEMERAL = make_room(Mode.EPHEMERAL)


def stored(room: Room, revision: int = 5) -> VersionedRoom:
    return VersionedRoom(room=room, revision=revision)


# --- create_room ------------------------------------------------------------------------


def test_create_matrix_room_ensures_the_stream_before_writing_the_record() -> None:
    """R1, R8: EnsureStream with the one stream config, strictly before PutRoom."""
    req = CreateRoomRequest(name="general", members=(BOB, ALICE, BOB))
    room = perform_sequence(create_room(req, ALICE, RID, NOW, JS), [
        (ENSURE, None),
        (PutRoom(MATRIX, expected_revision=None), 1),
    ])
    assert room == MATRIX
    assert room.members == (ALICE, BOB)  # owner first, duplicates dropped


def test_no_put_room_after_a_failed_ensure() -> None:
    """R1: the ensure's error propagates and no PutRoom is ever yielded."""
    machine = create_room(CreateRoomRequest(name="general", members=(BOB,)), ALICE, RID, NOW, JS)
    with pytest.raises(BackendUnavailable):
        perform_sequence(machine, [(ENSURE, BackendUnavailable())])


def test_a_failed_record_write_after_the_ensure_fails_the_request() -> None:
    machine = create_room(CreateRoomRequest(name="general", members=(BOB,)), ALICE, RID, NOW, JS)
    with pytest.raises(BackendUnavailable):
        perform_sequence(machine, [
            (ENSURE, None),
            (PutRoom(MATRIX, expected_revision=None), BackendUnavailable()),
        ])


@pytest.mark.parametrize(("mode", "wiring"), [
    (Mode.EPHEMERAL, JS), (Mode.EPHEMERAL, NO_JS), (Mode.MATRIX, NO_JS),
])
def test_rooms_without_a_stream_skip_the_stream_step(mode: Mode, wiring: Wiring) -> None:
    """R2: ephemeral rooms and deployments without JetStream write only the record."""
    expected = make_room(mode, members=(ALICE,))
    machine = create_room(CreateRoomRequest(name="general", mode=mode), ALICE, RID, NOW, wiring)
    assert perform_sequence(machine, [(PutRoom(expected, expected_revision=None), 1)]) == expected


def test_create_room_times_are_rfc3339_utc() -> None:
    machine = create_room(CreateRoomRequest(name="g", mode=Mode.EPHEMERAL), ALICE, RID, 0, JS)
    room = next(machine)
    assert isinstance(room, PutRoom)
    assert room.room.created_at == "1970-01-01T00:00:00Z"


# --- get_room and the R4 order ----------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["", "nope", RID.upper(), RID + "a", RID[:-1] + "!", "../x"])
def test_an_impossible_room_id_is_404_without_any_effect(bad_id: str) -> None:
    with pytest.raises(NotFound) as info:
        perform_sequence(get_room(bad_id, ALICE), [])
    assert info.value.code == "room_not_found"


def test_a_missing_room_is_404_even_for_a_stranger() -> None:
    """R4: 404 before 403."""
    with pytest.raises(NotFound) as info:
        perform_sequence(get_room(RID, CAROL), [(LoadRoom(RID), None)])
    assert info.value.code == "room_not_found"


def test_a_stranger_gets_403() -> None:
    with pytest.raises(Forbidden) as info:
        perform_sequence(get_room(RID, CAROL), [(LoadRoom(RID), stored(MATRIX))])
    assert info.value.code == "not_a_member"


@pytest.mark.parametrize("caller", [ALICE, BOB])
def test_members_get_the_room(caller: KeyId) -> None:
    assert perform_sequence(get_room(RID, caller), [(LoadRoom(RID), stored(MATRIX))]) == MATRIX


def test_a_load_error_propagates() -> None:
    with pytest.raises(BackendUnavailable):
        perform_sequence(get_room(RID, ALICE), [(LoadRoom(RID), BackendUnavailable())])


# --- list_rooms -------------------------------------------------------------------------


def test_list_rooms_sorts_by_creation_then_id_and_keeps_only_the_callers() -> None:
    def room(n: int, created_at: str, members: tuple[KeyId, ...] = (ALICE,)) -> Room:
        return Room(id=room_id(n), name=f"r{n}", mode=Mode.MATRIX, owner=ALICE,
                    members=members, created_at=created_at)

    late, early_b, early_a = room(1, "2026-01-02T00:00:00Z"), room(9, "2026-01-01T00:00:00Z"), \
        room(3, "2026-01-01T00:00:00Z")
    foreign = room(4, "2025-01-01T00:00:00Z", members=(BOB,))
    assert early_a.id < early_b.id
    rooms = perform_sequence(list_rooms(ALICE), [
        (ListRooms(ALICE), (late, early_b, foreign, early_a)),
    ])
    assert rooms == (early_a, early_b, late)


def test_list_rooms_with_none_is_empty() -> None:
    assert perform_sequence(list_rooms(CAROL), [(ListRooms(CAROL), ())]) == ()


# --- add_member -------------------------------------------------------------------------


def test_add_member_writes_with_the_loaded_revision() -> None:
    added = make_room(members=(ALICE, BOB, CAROL))
    result = perform_sequence(add_member(RID, ALICE, CAROL), [
        (LoadRoom(RID), stored(MATRIX, 5)),
        (PutRoom(added, expected_revision=5), 6),
    ])
    assert result == added


def many_keyids(count: int) -> list[KeyId]:
    return [encode_keyid((10_000 + i).to_bytes(32, "big")) for i in range(count)]


def test_create_refuses_more_members_than_a_room_holds() -> None:
    others = tuple(many_keyids(MAX_MEMBERS))
    machine = create_room(CreateRoomRequest(name="general", members=others), ALICE, RID, NOW, JS)
    with pytest.raises(BadRequest) as raised:
        perform_sequence(machine, [])
    assert raised.value.code == "too_many_members"


def test_add_member_to_a_full_room_is_refused_without_a_write() -> None:
    full = make_room(members=(ALICE, *many_keyids(MAX_MEMBERS - 1)))
    assert len(full.members) == MAX_MEMBERS
    with pytest.raises(Conflict) as raised:
        perform_sequence(add_member(RID, ALICE, CAROL), [(LoadRoom(RID), stored(full))])
    assert raised.value.code == "room_full"


def test_add_member_is_idempotent_without_a_write() -> None:
    steps = [(LoadRoom(RID), stored(MATRIX))]
    assert perform_sequence(add_member(RID, ALICE, BOB), steps) == MATRIX


@pytest.mark.parametrize(("caller", "load", "error", "code"), [
    (ALICE, None, NotFound, "room_not_found"),
    (CAROL, None, NotFound, "room_not_found"),
    (CAROL, stored(MATRIX), Forbidden, "not_a_member"),
    (BOB, stored(MATRIX), Forbidden, "not_owner"),
])
def test_add_member_checks_in_order(caller: KeyId, load: object, error: Raised, code: str) -> None:
    with pytest.raises(error) as info:
        perform_sequence(add_member(RID, caller, DAVE), [(LoadRoom(RID), load)])
    assert info.value.code == code


def test_add_member_reloads_and_retries_after_a_lost_race() -> None:
    """Compare-and-set: the retry decides again on the newest room."""
    raced = make_room(members=(ALICE, BOB, DAVE))
    added = make_room(members=(ALICE, BOB, DAVE, CAROL))
    result = perform_sequence(add_member(RID, ALICE, CAROL), [
        (LoadRoom(RID), stored(MATRIX, 5)),
        (PutRoom(make_room(members=(ALICE, BOB, CAROL)), 5), RevisionConflict("x")),
        (LoadRoom(RID), stored(raced, 6)),
        (PutRoom(added, expected_revision=6), 7),
    ])
    assert result == added


def test_add_member_retry_can_find_the_work_done() -> None:
    added = make_room(members=(ALICE, BOB, CAROL))
    result = perform_sequence(add_member(RID, ALICE, CAROL), [
        (LoadRoom(RID), stored(MATRIX, 5)),
        (PutRoom(added, expected_revision=5), RevisionConflict("x")),
        (LoadRoom(RID), stored(added, 6)),
    ])
    assert result == added


def test_add_member_retry_rechecks_that_the_room_exists() -> None:
    with pytest.raises(NotFound):
        perform_sequence(add_member(RID, ALICE, CAROL), [
            (LoadRoom(RID), stored(MATRIX, 5)),
            (PutRoom(make_room(members=(ALICE, BOB, CAROL)), 5), RevisionConflict("x")),
            (LoadRoom(RID), None),
        ])


def test_add_member_gives_up_after_bounded_retries() -> None:
    added = make_room(members=(ALICE, BOB, CAROL))
    steps = [
        step
        for revision in range(MAX_CAS_ATTEMPTS)
        for step in ((LoadRoom(RID), stored(MATRIX, revision)),
                     (PutRoom(added, revision), RevisionConflict("x")))
    ]
    with pytest.raises(Conflict) as info:
        perform_sequence(add_member(RID, ALICE, CAROL), steps)
    assert info.value.code == "revision_conflict"
    assert info.value.status == 409


# --- remove_member ----------------------------------------------------------------------


@pytest.mark.parametrize(("caller", "member", "load", "error", "code"), [
    (ALICE, BOB, None, NotFound, "room_not_found"),
    (CAROL, "garbage", None, NotFound, "room_not_found"),
    # A stranger cannot remove anyone, itself included: it would otherwise see the room.
    (CAROL, CAROL, stored(MATRIX), Forbidden, "not_a_member"),
    (CAROL, BOB, stored(MATRIX), Forbidden, "not_a_member"),
    (BOB, DAVE, stored(make_room(members=(ALICE, BOB, DAVE))), Forbidden, "not_owner"),
    (BOB, ALICE, stored(MATRIX), Forbidden, "not_owner"),
    # 403 before 400: a caller that may not remove learns nothing about the keyid.
    (BOB, "garbage", stored(MATRIX), Forbidden, "not_owner"),
    (ALICE, "garbage", stored(MATRIX), BadRequest, "invalid_keyid"),
    (ALICE, ALICE, stored(MATRIX), Conflict, "owner_cannot_be_removed"),
])
def test_remove_member_checks_in_order(
    caller: KeyId, member: str, load: object, error: Raised, code: str
) -> None:
    with pytest.raises(error) as info:
        perform_sequence(remove_member(RID, caller, member), [(LoadRoom(RID), load)])
    assert info.value.code == code


def test_remove_member_with_an_impossible_room_id_is_404_without_effects() -> None:
    with pytest.raises(NotFound):
        perform_sequence(remove_member("x", ALICE, BOB), [])


@pytest.mark.parametrize("caller", [ALICE, BOB])
def test_the_owner_or_the_member_removes_a_member(caller: KeyId) -> None:
    removed = make_room(members=(ALICE,))
    result = perform_sequence(remove_member(RID, caller, BOB), [
        (LoadRoom(RID), stored(MATRIX, 9)),
        (PutRoom(removed, expected_revision=9), 10),
    ])
    assert result == removed


def test_removing_a_non_member_is_idempotent_without_a_write() -> None:
    result = perform_sequence(remove_member(RID, ALICE, CAROL), [(LoadRoom(RID), stored(MATRIX))])
    assert result == MATRIX


def test_remove_member_retries_and_rechecks_membership() -> None:
    """After a lost race the caller may itself be gone: the reload's 403 wins."""
    with pytest.raises(Forbidden) as info:
        perform_sequence(remove_member(RID, BOB, BOB), [
            (LoadRoom(RID), stored(MATRIX, 9)),
            (PutRoom(make_room(members=(ALICE,)), 9), RevisionConflict("x")),
            (LoadRoom(RID), stored(make_room(members=(ALICE,)), 10)),
        ])
    assert info.value.code == "not_a_member"


# --- delete_room ------------------------------------------------------------------------


def test_delete_matrix_room_deletes_the_record_then_the_stream() -> None:
    assert perform_sequence(delete_room(RID, ALICE, JS), [
        (LoadRoom(RID), stored(MATRIX)),
        (DeleteRoom(RID), None),
        (DeleteStream(STREAM), None),
    ]) is None


@pytest.mark.parametrize(("room", "wiring"), [(EPHEMERAL, JS), (EPHEMERAL, NO_JS), (MATRIX, NO_JS)])
def test_delete_without_a_stream_deletes_only_the_record(room: Room, wiring: Wiring) -> None:
    perform_sequence(delete_room(RID, ALICE, wiring), [
        (LoadRoom(RID), stored(room)),
        (DeleteRoom(RID), None),
    ])


def test_a_failed_record_delete_leaves_the_stream_alone() -> None:
    with pytest.raises(BackendUnavailable):
        perform_sequence(delete_room(RID, ALICE, JS), [
            (LoadRoom(RID), stored(MATRIX)),
            (DeleteRoom(RID), BackendUnavailable()),
        ])


@pytest.mark.parametrize(("caller", "load", "error", "code"), [
    (CAROL, None, NotFound, "room_not_found"),
    (CAROL, stored(MATRIX), Forbidden, "not_a_member"),
    (BOB, stored(MATRIX), Forbidden, "not_owner"),
])
def test_delete_room_checks_in_order(caller: KeyId, load: object, error: Raised, code: str) -> None:
    with pytest.raises(error) as info:
        perform_sequence(delete_room(RID, caller, JS), [(LoadRoom(RID), load)])
    assert info.value.code == code


# --- read_history -----------------------------------------------------------------------


def messages(*seqs: int) -> tuple[StoredMessage, ...]:
    return tuple(StoredMessage(seq, f"frame {seq}".encode()) for seq in seqs)


@pytest.mark.parametrize(("caller", "load", "error"), [
    (CAROL, None, NotFound), (ALICE, None, NotFound), (CAROL, stored(MATRIX), Forbidden),
])
def test_history_checks_in_order(caller: KeyId, load: object, error: Raised) -> None:
    """R4: 404 before 403, and neither touches the stream."""
    with pytest.raises(error):
        perform_sequence(read_history(RID, caller, PageRequest(), JS), [(LoadRoom(RID), load)])


@pytest.mark.parametrize(("room", "wiring"), [(EPHEMERAL, JS), (EPHEMERAL, NO_JS), (MATRIX, NO_JS)])
def test_history_without_a_stream_is_the_empty_page(room: Room, wiring: Wiring) -> None:
    """R2, R5: no stream effects, and an empty page (never None)."""
    page = perform_sequence(read_history(RID, BOB, PageRequest(), wiring),
                            [(LoadRoom(RID), stored(room))])
    assert page == Page(messages=(), has_more=False)


def test_history_of_a_room_whose_stream_is_missing_ensures_it() -> None:
    """R7: lazy backfill, then the (necessarily empty) page."""
    page = perform_sequence(read_history(RID, BOB, PageRequest(), JS), [
        (LoadRoom(RID), stored(MATRIX)),
        (StreamInfo(STREAM), None),
        (ENSURE, None),
    ])
    assert page == Page(messages=(), has_more=False)


def test_history_reads_the_newest_page_in_one_fetch() -> None:
    page = perform_sequence(read_history(RID, BOB, PageRequest(limit=2), JS), [
        (LoadRoom(RID), stored(MATRIX)),
        (StreamInfo(STREAM), StreamState(first_seq=1, last_seq=3, messages=3)),
        (FetchBatch(STREAM, 2, 2), messages(2, 3)),
    ])
    assert page == Page(messages=messages(2, 3), has_more=True)


def test_history_fetches_again_when_deletions_leave_the_page_short() -> None:
    """R10: seqs 8 and 9 were deleted after the info; the page still holds 3 frames."""
    page = perform_sequence(read_history(RID, BOB, PageRequest(limit=3), JS), [
        (LoadRoom(RID), stored(MATRIX)),
        (StreamInfo(STREAM), StreamState(first_seq=1, last_seq=10, messages=10)),
        (FetchBatch(STREAM, 8, 3), messages(10)),
        (FetchBatch(STREAM, 3, 5), messages(3, 4, 5, 6, 7)),
    ])
    assert page == Page(messages=messages(6, 7, 10), has_more=True)


def test_history_of_an_empty_stream_needs_no_fetch() -> None:
    page = perform_sequence(read_history(RID, BOB, PageRequest(), JS), [
        (LoadRoom(RID), stored(MATRIX)),
        (StreamInfo(STREAM), StreamState(first_seq=41, last_seq=40, messages=0)),
    ])
    assert page == Page(messages=(), has_more=False)


def test_a_fetch_error_propagates() -> None:
    with pytest.raises(BackendUnavailable):
        perform_sequence(read_history(RID, BOB, PageRequest(limit=2), JS), [
            (LoadRoom(RID), stored(MATRIX)),
            (StreamInfo(STREAM), StreamState(first_seq=1, last_seq=3, messages=3)),
            (FetchBatch(STREAM, 2, 2), BackendUnavailable()),
        ])


# --- publish ----------------------------------------------------------------------------

SUBJECT = f"rooms.{RID}"


def test_publish_to_a_persisted_room_returns_the_sequence() -> None:
    assert perform_sequence(publish(RID, BOB, b"\x00frame", JS), [
        (LoadRoom(RID), stored(MATRIX)),
        (Publish(SUBJECT, b"\x00frame", persisted=True), 42),
    ]) == 42


@pytest.mark.parametrize(("room", "wiring"), [(EPHEMERAL, JS), (EPHEMERAL, NO_JS), (MATRIX, NO_JS)])
def test_publish_without_a_stream_is_a_core_publish(room: Room, wiring: Wiring) -> None:
    assert perform_sequence(publish(RID, BOB, b"f", wiring), [
        (LoadRoom(RID), stored(room)),
        (Publish(SUBJECT, b"f", persisted=False), None),
    ]) is None


def test_publish_ensures_a_missing_stream_and_publishes_once_more() -> None:
    """R7: no stream captured the subject; ensure it and try again, once."""
    assert perform_sequence(publish(RID, BOB, b"f", JS), [
        (LoadRoom(RID), stored(MATRIX)),
        (Publish(SUBJECT, b"f", persisted=True), NotFound("no stream", code="stream_not_found")),
        (ENSURE, None),
        (Publish(SUBJECT, b"f", persisted=True), 1),
    ]) == 1


def test_publish_gives_up_when_the_stream_is_still_missing() -> None:
    with pytest.raises(NotFound):
        perform_sequence(publish(RID, BOB, b"f", JS), [
            (LoadRoom(RID), stored(MATRIX)),
            (Publish(SUBJECT, b"f", persisted=True), NotFound("x", code="stream_not_found")),
            (ENSURE, None),
            (Publish(SUBJECT, b"f", persisted=True), NotFound("x", code="stream_not_found")),
        ])


def test_publish_lets_other_not_found_errors_out() -> None:
    with pytest.raises(NotFound) as info:
        perform_sequence(publish(RID, BOB, b"f", JS), [
            (LoadRoom(RID), stored(MATRIX)),
            (Publish(SUBJECT, b"f", persisted=True), NotFound("x", code="something_else")),
        ])
    assert info.value.code == "something_else"


@pytest.mark.parametrize(("caller", "load", "error"), [
    (CAROL, None, NotFound), (CAROL, stored(MATRIX), Forbidden),
])
def test_publish_checks_in_order(caller: KeyId, load: object, error: Raised) -> None:
    with pytest.raises(error):
        perform_sequence(publish(RID, caller, b"f", JS), [(LoadRoom(RID), load)])
