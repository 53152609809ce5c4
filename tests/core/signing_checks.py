"""Run a signed case through the core's verifier: accepted, or refused with the one 401."""

from __future__ import annotations

import pytest

from roomkeeper.core import Unauthorized, VerifiedSignature, verify_request
from tests.signing_cases import NOW, SignedCase


def accepts(case: SignedCase, now: float = NOW) -> VerifiedSignature:
    return verify_request(case.to_signed_request(), now)


def refuses(case: SignedCase, now: float = NOW) -> str:
    """The log message; the error itself is always the same 401."""
    with pytest.raises(Unauthorized) as info:
        verify_request(case.to_signed_request(), now)
    assert info.value.code == "unauthorized" and info.value.status == 401
    return info.value.message
