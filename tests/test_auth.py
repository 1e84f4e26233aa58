"""OIDC bearer tokens: signed with a key the test generates, checked against its JWKS served on 127.0.0.1."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from spawnit.api import create_app
from spawnit.api.auth import AuthSettings
from spawnit.api.jobs import JobManager
from spawnit.api.store import LocalObjectStore, Store

from conftest import ALICE, AUDIENCE, ISSUER, new_key, token  # the realm's key and JWKS are conftest's fixtures


@pytest.fixture
def api(tmp_path, jwks_url, synth_worker):
    store = Store(LocalObjectStore(tmp_path / "store"))
    store.put_spec(ALICE, "cache", {"client": ALICE, "instance": "cache", "service": "redis", "target": "docker", "parameters": {}})
    store.put_spec("bob", "site", {"client": "bob", "instance": "site", "service": "nginx", "target": "docker", "parameters": {}})
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work")
    app = create_app(store=store, jobs=jobs, auth=AuthSettings("oidc", issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_url))
    with TestClient(app) as client:
        yield client


def get(api, path, bearer=None):
    return api.get(path, headers={"Authorization": f"Bearer {bearer}"} if bearer else {})


def test_a_valid_token_reaches_its_own_instances(api, signing_key):
    response = get(api, f"/api/clients/{ALICE}/instances", token(signing_key))
    assert response.status_code == 200 and [i["instance"] for i in response.json()["instances"]] == ["cache"]


def test_another_clients_instances_are_forbidden(api, signing_key):
    response = get(api, "/api/clients/bob/instances", token(signing_key))
    assert response.status_code == 403
    assert response.json()["error"] == f"{ALICE} may not do this: the viewer role is required on client 'bob'; held: operator on {ALICE}"


def test_admin_reaches_every_client(api, signing_key):
    assert get(api, "/api/clients/bob/instances", token(signing_key, roles=("admin",))).status_code == 200


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda key: token(key, expires_in=-60), "Signature has expired"),
        (lambda key: token(key, audience="someone-else"), "Audience doesn't match"),
        (lambda key: token(key, issuer="http://evil.example/realms/spawnit"), "Invalid issuer"),
        (lambda key: token(new_key()), "Signature verification failed"),
        (lambda key: token(key, kid="unknown-key"), "Unable to find a signing key"),
        (lambda key: "not-a-jwt", "invalid token"),
    ],
)
def test_bad_tokens_are_401(api, signing_key, make, reason):
    response = get(api, f"/api/clients/{ALICE}/instances", make(signing_key))
    assert response.status_code == 401 and reason in response.json()["error"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_no_token_is_401(api):
    response = get(api, f"/api/clients/{ALICE}/instances")
    assert response.status_code == 401 and response.json()["error"] == "missing bearer token"


def test_health_and_the_login_config_need_no_token_the_catalog_does(api, signing_key):
    assert get(api, "/healthz").status_code == 200 and get(api, "/api/config").status_code == 200
    assert get(api, "/api/catalog").status_code == 401 and get(api, "/api/catalog", token(signing_key)).status_code == 200


def test_auth_is_off_only_when_said_explicitly(monkeypatch):
    assert AuthSettings.from_environment({"SPAWNIT_AUTH": "off"}).mode == "off"
    with pytest.raises(ValueError, match="SPAWNIT_OIDC_ISSUER: missing"):
        AuthSettings.from_environment({})
    with pytest.raises(ValueError, match="SPAWNIT_AUTH: 'none' is not allowed; allowed: oidc, off"):
        AuthSettings.from_environment({"SPAWNIT_AUTH": "none"})
    settings = AuthSettings.from_environment({"SPAWNIT_OIDC_ISSUER": ISSUER})
    assert (settings.audience, settings.jwks_url) == (AUDIENCE, ISSUER + "/protocol/openid-connect/certs")


@pytest.mark.parametrize("realm_access", [["admin"], {"roles": "admin"}, {"roles": [1, 2]}, "admin"])
def test_a_signed_token_with_malformed_role_claims_is_403_not_500(api, signing_key, realm_access):
    now = int(time.time())
    claims = {"sub": ALICE, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "realm_access": realm_access}
    bearer = jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": "test-key"})
    response = get(api, f"/api/clients/{ALICE}/instances", bearer)
    assert response.status_code == 403 and "realm_access.roles" in response.json()["error"]


# Event streams open with short-lived tickets, never with a token in the URL -------------------


def finished_job(api, client: str) -> str:
    import uuid

    store = api.app.state.store
    job = str(uuid.uuid4())
    store.put_job({"id": job, "client": client, "instance": "cache", "action": "plan", "status": "succeeded"})
    store.put_log(job, [{"id": 1, "event": "status", "data": "running"}, {"id": 2, "event": "status", "data": "succeeded"}])
    return job


def ticket_for(api, bearer, path):
    return api.post("/api/stream-tickets", json={"path": path}, headers={"Authorization": f"Bearer {bearer}"})


def test_a_stream_ticket_opens_its_own_stream_and_nothing_else(api, signing_key):
    job, other = finished_job(api, ALICE), finished_job(api, ALICE)
    issued = ticket_for(api, token(signing_key), f"/api/jobs/{job}/events")
    assert issued.status_code == 201 and issued.json()["expires_in"] == 60
    ticket = issued.json()["ticket"]
    for _ in range(2):  # an EventSource reconnecting reuses it while it lasts
        opened = api.get(f"/api/jobs/{job}/events?ticket={ticket}")
        assert opened.status_code == 200 and "data: succeeded" in opened.text
    assert api.get(f"/api/jobs/{other}/events?ticket={ticket}").status_code == 401
    assert api.get(f"/api/clients/{ALICE}/instances?ticket={ticket}").status_code == 401
    assert api.get(f"/api/jobs/{job}/events?ticket=forged").status_code == 401


def test_tickets_are_only_issued_for_streams_the_caller_may_read(api, signing_key):
    bobs = finished_job(api, "bob")
    alice = token(signing_key)
    assert ticket_for(api, alice, f"/api/jobs/{bobs}/events").status_code == 404
    assert ticket_for(api, alice, "/api/clients/bob/events").status_code == 403
    assert ticket_for(api, alice, f"/api/clients/{ALICE}/events").status_code == 201
    wrong = ticket_for(api, alice, "/api/clients/bob/instances")
    assert wrong.status_code == 422 and "path:" in wrong.json()["error"]
    assert api.post("/api/stream-tickets", json={"path": f"/api/clients/{ALICE}/events"}).status_code == 401


def test_a_bearer_token_in_the_query_string_does_not_open_a_stream(api, signing_key):
    job = finished_job(api, ALICE)
    assert api.get(f"/api/jobs/{job}/events?access_token={token(signing_key)}").status_code == 401


def test_a_ticket_expires(signing_key):
    from spawnit.api.auth import Principal, StreamTickets
    from spawnit.api.engine import LocalEngine

    tickets = StreamTickets(LocalEngine(), ttl=0.3)
    path = f"/api/clients/{ALICE}/events"
    ticket = tickets.issue(Principal(ALICE, frozenset({"user"})), path)
    assert tickets.redeem(ticket, path) == Principal(ALICE, frozenset({"user"}))
    deadline = time.monotonic() + 30
    while tickets.redeem(ticket, path) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tickets.redeem(ticket, path) is None


def test_only_an_admin_starts_a_drift_round_and_a_client_reveals_only_its_own_secrets(api, signing_key):
    user, admin = token(signing_key), token(signing_key, roles=("admin",))
    refused = api.post("/api/drift-checks", headers={"Authorization": f"Bearer {user}"})
    assert refused.status_code == 403 and "admin role is required" in refused.json()["error"]
    assert api.post("/api/drift-checks", headers={"Authorization": f"Bearer {admin}"}).json() == {"instances": []}
    created = api.post("/api/clients/bob/instances", json={"service": "postgresql", "instance": "db"}, headers={"Authorization": f"Bearer {admin}"})
    assert created.status_code == 201
    stranger = api.post("/api/clients/bob/instances/db/secrets/password/reveal", headers={"Authorization": f"Bearer {user}"})
    assert stranger.status_code == 403 and "value" not in stranger.json()
