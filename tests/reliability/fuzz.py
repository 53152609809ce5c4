"""schemathesis against the served ``/openapi.json``: generated requests, each signed
like a real client's, every response checked against the schema.

schemathesis cannot run this app in process: its ASGI transport drives the app from an
asyncio portal, and Quart-Trio needs a Trio loop. So the app runs under Hypercorn on a
loopback socket (in the test's Trio run) and schemathesis, which is synchronous, runs in
a worker thread against it.

Cases are drawn from the whole schema, positive and negative (data that breaks the
schema must get a 4xx, never a 5xx). Half the time a room id or keyid in the path is
replaced by one that exists, so the cases reach past the 404 into membership, history
and publishing.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from roomkeeper.client.signer import RequestSigner

__all__ = ["FuzzReport", "Known", "SignRequests", "run_schemathesis"]


class SignRequests(requests.auth.AuthBase):
    """Signs the request exactly as requests will send it (the prepared path, query and
    body bytes), for the server's public authority."""

    def __init__(self, signer: RequestSigner, authority: str) -> None:
        self.signer = signer
        self.authority = authority

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path, _, query = (request.path_url or "/").partition("?")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        assert request.method is not None
        request.headers.update(
            self.signer.sign(request.method, self.authority, path, query, bytes(body)))
        return request


@dataclass
class Known:
    """Things that exist on the server, to aim some cases at. A room the fuzzer deletes
    is replaced by a new one, so later cases still find rooms. Rooms the fuzzer cannot
    see (another key's) are never deleted by it."""

    room_ids: list[str]
    keyids: tuple[str, ...]

    def replace(self, room_id: str, session: requests.Session, base_url: str) -> None:
        if room_id not in self.room_ids:
            return
        created = session.post(f"{base_url}/rooms", json={"name": "replacement"}, timeout=10)
        assert created.status_code == 201, created.text
        self.room_ids[self.room_ids.index(room_id)] = created.json()["id"]


@dataclass
class FuzzReport:
    cases: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    operations: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0


CHECKS = [status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]


#: Three cases in four that name a room (or keyid) name one that exists.
AIM = st.sampled_from([True, True, True, False])


def _aim(case: schemathesis.Case, known: Known, draw: Callable[..., object]) -> None:
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return  # the broken path is the point of this case
    params = case.path_parameters or {}
    if "room_id" in params and draw(AIM):
        params["room_id"] = draw(st.sampled_from(known.room_ids))
    if "keyid" in params and draw(AIM):
        params["keyid"] = draw(st.sampled_from(known.keyids))


def run_schemathesis(base_url: str, signer: RequestSigner, authority: str, known: Known,
                     cases: int) -> FuzzReport:
    """Blocking: generate and send ``cases`` cases; AssertionError (or schemathesis's
    FailureGroup) on the first response that breaks a check."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    # The signature headers are ours to set (SignRequests overwrites them), so cases
    # that leave them out or break them would be mislabelled as negative.
    # Unknown query parameters are ignored, as most HTTP APIs do (API.md does not forbid
    # them), so adding one does not make a request invalid.
    schema.config.generation.update(with_security_parameters=False,
                                    allow_extra_parameters=False)
    modes = st.one_of(schema.as_strategy(GenerationMode.POSITIVE),
                      schema.as_strategy(GenerationMode.NEGATIVE))
    report = FuzzReport()
    session = requests.Session()
    session.auth = SignRequests(signer, authority)

    @given(case=modes, data=st.data())
    @settings(max_examples=cases, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def one_case(case: schemathesis.Case, data: st.DataObject) -> None:
        _aim(case, known, data.draw)
        response = case.call(session=session, timeout=10)
        report.cases += 1
        report.statuses[response.status_code] += 1
        report.operations[case.operation.label] += 1
        assert response.status_code < 500, (case.operation.label, response.status_code,
                                            response.text)
        case.validate_response(response, checks=CHECKS)
        if case.operation.label == "DELETE /rooms/{room_id}" and response.status_code == 204:
            known.replace(str((case.path_parameters or {})["room_id"]), session, base_url)

    started = time.monotonic()
    try:
        one_case()
    finally:
        session.close()
        report.seconds = time.monotonic() - started
    return report
