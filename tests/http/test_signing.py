"""Request signing over HTTP: every bad case of tests/signing_cases.py gets the one
fixed 401 from the middleware, a replayed nonce is refused, and the middleware signs
over the raw request target (R4 step 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from werkzeug.datastructures import Headers

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.http.responses import UNAUTHORIZED_BODY
from roomkeeper.client.signer import RequestSigner
from roomkeeper.ports import Deployment
from tests import signing_cases as cases

from .conftest import ApiClient, Reply


class CaseClient:
    """Replays SignedCase values byte for byte through an app whose public authority
    is the cases' one."""

    def __init__(self, api: ApiClient, room_id: str) -> None:
        self.api = api
        self.room_id = room_id

    def valid_case(self) -> cases.SignedCase:
        """A signed history read of a room the cases' key is a member of: 200 if intact."""
        return cases.make_valid_case(path=f"/rooms/{self.room_id}/history", query="limit=50")

    async def send(self, case: cases.SignedCase) -> Reply:
        return await self.api.raw(
            case.method, case.target, body=case.body, headers=Headers(case.headers),
            scope_base={"raw_path": case.path.encode("latin-1"),
                        "query_string": case.query.encode("latin-1")},
        )


@pytest.fixture
async def case_client(deployment: Deployment,
                      signers: dict[str, RequestSigner]) -> AsyncIterator[CaseClient]:
    app = create_app(deployment, public_authority=cases.AUTHORITY)
    async with app.test_app() as test_app:
        api = ApiClient(test_app.test_client(), deployment, signers)
        owner = RequestSigner(cases.SEED, authority=cases.AUTHORITY,
                              clock=deployment.clock, nonce=lambda: "room-owner-nonce-" + "0" * 8)
        created = await api.raw("POST", "/rooms", body=b'{"name":"cases"}',
                                headers=owner.sign("POST", cases.AUTHORITY, "/rooms", "",
                                                   b'{"name":"cases"}'))
        assert created.status == 201, created
        yield CaseClient(api, created.json()["id"])


def assert_fixed_401(reply: Reply) -> None:
    assert reply.status == 401
    assert reply.json() == UNAUTHORIZED_BODY
    assert reply.headers["WWW-Authenticate"] == "Signature"


async def test_the_valid_case_is_accepted(case_client: CaseClient) -> None:
    reply = await case_client.send(case_client.valid_case())

    assert reply.status == 200
    assert reply.json()["messages"] == []


@pytest.mark.parametrize(("name", "mutate"), cases.BAD_CASES, ids=[n for n, _ in cases.BAD_CASES])
async def test_bad_signing_input_is_the_fixed_401(
    case_client: CaseClient, name: str, mutate: Any,
) -> None:
    reply = await case_client.send(mutate(case_client.valid_case()))

    assert_fixed_401(reply)


@pytest.mark.parametrize(("name", "mutate"), cases.REPLAY_CASES,
                         ids=[n for n, _ in cases.REPLAY_CASES])
async def test_replayed_request_is_401(case_client: CaseClient, name: str, mutate: Any) -> None:
    case = mutate(case_client.valid_case())

    first = await case_client.send(case)
    second = await case_client.send(case)

    assert first.status == 200
    assert_fixed_401(second)


async def test_a_nonce_is_per_key(api: ApiClient) -> None:
    """Another key may use the same nonce: the replay cache is keyed by (keyid, nonce)."""
    nonce = "shared-nonce-0000000000"
    for seed in (b"\x01" * 32, b"\x02" * 32):
        signer = RequestSigner(seed, clock=api.deployment.clock, nonce=lambda: nonce)
        headers = signer.sign("GET", "roomkeeper.test", "/rooms", "", b"")
        assert (await api.raw("GET", "/rooms", headers=headers)).status == 200


async def test_unsigned_requests_are_401_for_every_endpoint(api: ApiClient) -> None:
    room = await api.create_room()
    targets = [("GET", "/rooms"), ("POST", "/rooms"), ("GET", f"/rooms/{room['id']}"),
               ("DELETE", f"/rooms/{room['id']}"), ("POST", f"/rooms/{room['id']}/members"),
               ("DELETE", f"/rooms/{room['id']}/members/{api.keyid('alice')}"),
               ("GET", f"/rooms/{room['id']}/history"),
               ("POST", f"/rooms/{room['id']}/messages"), ("GET", "/nowhere"),
               ("PUT", "/rooms")]

    for method, target in targets:
        assert_fixed_401(await api.raw(method, target, body=b"{}"))
    assert (await api.call("GET", f"/rooms/{room['id']}")).status == 200


async def test_middleware_verifies_the_raw_target_not_the_decoded_one(api: ApiClient) -> None:
    """Signed over '/rooms/abc%2Fdef' as sent, the request passes the middleware and is
    then routed by its decoded path, which names no endpoint: 404, not 401."""
    raw = "/rooms/abc%2Fdef"
    headers = api.signers["alice"].sign("GET", "roomkeeper.test", raw, "a=%20", b"")

    reply = await api.raw("GET", f"{raw}?a=%20", headers=headers,
                          scope_base={"raw_path": raw.encode()})
    decoded = api.signers["alice"].sign("GET", "roomkeeper.test", "/rooms/abc/def", "a=%20",
                                        b"")
    refused = await api.raw("GET", f"{raw}?a=%20", headers=decoded,
                            scope_base={"raw_path": raw.encode()})

    assert (reply.status, reply.error) == (404, "not_found")
    assert_fixed_401(refused)


async def test_without_public_authority_the_host_header_is_the_authority(
    deployment: Deployment, signers: dict[str, RequestSigner],
) -> None:
    app = create_app(deployment)
    async with app.test_app() as test_app:
        api = ApiClient(test_app.test_client(), deployment, signers)
        signer = signers["alice"]
        good = signer.sign("GET", "api.example:8443", "/rooms", "", b"")
        wrong = signer.sign("GET", "roomkeeper.test", "/rooms", "", b"")

        accepted = await api.raw("GET", "/rooms", headers={**good, "Host": "api.example:8443"})
        refused = await api.raw("GET", "/rooms", headers={**wrong, "Host": "api.example:8443"})

    assert accepted.status == 200
    assert_fixed_401(refused)
