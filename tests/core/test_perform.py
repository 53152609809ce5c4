"""perform_sequence must catch every way a machine can stray from the listed steps,
or the ordered-effects tests would prove nothing."""

from __future__ import annotations

import pytest

from roomkeeper.core import BackendUnavailable, DeleteRoom, DeleteStream, Machine

from .perform import Step, perform_sequence, room_id

RID = room_id(1)


def two_step() -> Machine[str]:
    first = yield DeleteRoom(RID)
    try:
        yield DeleteStream(f"S{first}")
    except BackendUnavailable:
        return "recovered"
    return "done"


def test_it_returns_the_answer_after_exactly_the_listed_steps() -> None:
    steps: list[Step] = [(DeleteRoom(RID), 1), (DeleteStream("S1"), None)]
    assert perform_sequence(two_step(), steps) == "done"


def test_it_throws_listed_exceptions_in() -> None:
    steps: list[Step] = [(DeleteRoom(RID), 1), (DeleteStream("S1"), BackendUnavailable())]
    assert perform_sequence(two_step(), steps) == "recovered"


def test_it_fails_on_a_different_effect() -> None:
    steps: list[Step] = [(DeleteRoom(RID), 2), (DeleteStream("S1"), None)]
    with pytest.raises(AssertionError, match="step 1"):
        perform_sequence(two_step(), steps)


def test_it_fails_on_an_unlisted_extra_effect() -> None:
    with pytest.raises(pytest.fail.Exception, match="unexpected effect"):
        perform_sequence(two_step(), [(DeleteRoom(RID), 1)])


def test_it_fails_when_the_machine_stops_early() -> None:
    steps: list[Step] = [(DeleteRoom(RID), 1), (DeleteStream("S1"), None), (DeleteRoom(RID), None)]
    with pytest.raises(pytest.fail.Exception, match="returned 'done' instead of step 2"):
        perform_sequence(two_step(), steps)


def test_it_fails_when_the_machine_raises_before_the_last_step() -> None:
    steps: list[Step] = [(DeleteRoom(RID), BackendUnavailable()), (DeleteStream("S1"), None)]
    with pytest.raises(pytest.fail.Exception, match="raised BackendUnavailable"):
        perform_sequence(two_step(), steps)
