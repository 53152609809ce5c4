"""The memory deployment behind the switchable fault plan and a call log, shared by the
adapter tests."""

from __future__ import annotations

import pytest

from roomkeeper.ports import Deployment
from tests.fakes import CallLog, Faults, ManualClock, memory_deployment, wrap_deployment


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def log() -> CallLog:
    return CallLog()


@pytest.fixture
def deployment(faults: Faults, log: CallLog) -> Deployment:
    return wrap_deployment(memory_deployment(clock=ManualClock()), faults, log)
