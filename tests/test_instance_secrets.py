"""Each instance owns its secrets: generated or supplied at creation, encrypted in the store, handed to
the engine only in that job's environment, revealed on request (recorded), rotated through a plan.
The API in process over a local store, jobs run by a stand-in engine that records its environment."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from conftest import local_app, wait_job
from spawnit.api.store import LocalObjectStore
from spawnit.api.vault import SecretVault, VaultError, key_from_environment
from standin import stand_in_tofu

SUPPLIED = "Correct-Horse-Battery-Staple-42"


@pytest.fixture
def tofu(tmp_path):
    return stand_in_tofu(tmp_path)


@pytest.fixture
def app(tmp_path, synth_worker, tofu):
    environ = {**tofu[0], "SPAWNIT_S3_SECRET_ACCESS_KEY": "the-store-secret", "TF_VAR_password": "the-server-own-password"}
    return local_app(tmp_path, synth_worker, environ, grace_seconds=1)


@pytest.fixture
def api(app):
    with TestClient(app) as client:
        yield client


def run(api, path: str) -> dict:
    job = api.post(path, json={"auto_approve": True} if path.endswith("/apply") else None).json()["job"]
    return wait_job(api, job)


def create(api, instance: str = "db", **body):
    return api.post("/api/clients/acme/instances", json={"service": "postgresql", "instance": instance, **body})


def engine_environ(tofu, action: str) -> dict:
    return [call for call in tofu[1]() if call.get("argv", [""])[0] == action][-1]["environ"]


def test_each_declared_secret_is_generated_strong_and_per_instance(api):
    first, second = create(api, "db"), create(api, "db2")
    assert first.status_code == second.status_code == 201 and first.json()["secrets"] == {"generated": ["password"], "supplied": []}
    values = [api.post(f"/api/clients/acme/instances/{name}/secrets/password/reveal").json()["value"] for name in ("db", "db2")]
    assert values[0] != values[1] and all(len(value) >= 32 for value in values)


def test_a_supplied_secret_is_kept_and_a_bad_one_is_refused_without_echoing_it_and_without_an_instance(api):
    assert create(api, secrets={"password": SUPPLIED}).json()["secrets"] == {"generated": [], "supplied": ["password"]}
    assert api.post("/api/clients/acme/instances/db/secrets/password/reveal").json()["value"] == SUPPLIED
    short = create(api, "other", secrets={"password": "short pw"})
    assert short.status_code == 422 and "secrets.password" in short.json()["error"] and "short pw" not in short.json()["error"]
    unknown = create(api, "other", secrets={"passwd": SUPPLIED})
    assert unknown.status_code == 422 and "secrets.passwd" in unknown.json()["error"] and "allowed: password" in unknown.json()["error"]
    assert api.get("/api/clients/acme/instances/other").status_code == 404


def test_the_engine_gets_the_instance_secret_in_its_environment_and_nothing_of_the_server(api, tofu):
    create(api, secrets={"password": SUPPLIED})
    record = run(api, "/api/clients/acme/instances/db/apply")
    assert record["status"] == "succeeded", record.get("error")
    environ = engine_environ(tofu, "apply")
    assert environ["TF_VAR_password"] == SUPPLIED  # not the server's own TF_VAR_password
    assert not [key for key in environ if key.startswith("SPAWNIT_")]
    assert environ["TF_CLI_CONFIG_FILE"].endswith("cli.tfrc")


def test_no_secret_value_in_records_events_specs_or_the_store_in_clear(api, app, tmp_path):
    create(api, secrets={"password": SUPPLIED})
    job = run(api, "/api/clients/acme/instances/db/apply")
    with api.stream("GET", f"/api/jobs/{job['id']}/events") as response:
        events = "".join(response.iter_lines())
    assert SUPPLIED not in events and SUPPLIED not in json.dumps(job)
    assert SUPPLIED not in json.dumps(api.get("/api/clients/acme/instances/db").json())
    assert SUPPLIED not in json.dumps(api.get("/api/clients/acme/instances/db/secrets").json())
    for path in (tmp_path / "store").rglob("*"):
        if path.is_file():
            assert SUPPLIED.encode() not in path.read_bytes(), path


def test_a_reveal_is_recorded_with_who_and_what_but_no_value(api, app):
    create(api, secrets={"password": SUPPLIED})
    response = api.post("/api/clients/acme/instances/db/secrets/password/reveal")
    assert response.headers["cache-control"] == "no-store"
    trail = [json.loads(app.state.store.objects.get(key)) for key in app.state.store.objects.list("audit/")]
    [record] = [record for record in trail if record["action"] == "secret.reveal"]
    assert (record["outcome"], record["subject"], record["client"], record["instance"], record["details"]) == ("succeeded", "local", "acme", "db", {"secret": "password"})
    assert all(SUPPLIED not in json.dumps(record) for record in trail)  # the creation that supplied it is recorded without it
    assert api.post("/api/clients/acme/instances/db/secrets/nothing/reveal").status_code == 404


def test_a_rotation_is_planned_with_the_new_value_and_becomes_current_once_applied(api, tofu):
    create(api, secrets={"password": SUPPLIED})
    rotated = api.post("/api/clients/acme/instances/db/secrets/password/rotate", json={"value": "A-New-Password-For-2027"})
    assert rotated.status_code == 202 and rotated.json()["pending"] is True
    plan_deadline = time.monotonic() + 60
    while api.get(f"/api/jobs/{rotated.json()['job']}").json()["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < plan_deadline
        time.sleep(0.05)
    assert engine_environ(tofu, "plan")["TF_VAR_password"] == "A-New-Password-For-2027"
    revealed = api.post("/api/clients/acme/instances/db/secrets/password/reveal").json()
    assert (revealed["value"], revealed["pending"]) == (SUPPLIED, "A-New-Password-For-2027")  # deployed, then what the next apply deploys
    assert run(api, "/api/clients/acme/instances/db/apply")["status"] == "succeeded"
    revealed = api.post("/api/clients/acme/instances/db/secrets/password/reveal").json()
    assert (revealed["value"], revealed["pending"]) == ("A-New-Password-For-2027", None)
    [described] = api.get("/api/clients/acme/instances/db/secrets").json()["secrets"]
    assert described["pending"] is False and described["rotated_at"] and "value" not in described


def test_deleting_the_instance_deletes_its_secrets(api, app):
    create(api)
    assert run(api, "/api/clients/acme/instances/db/destroy")["status"] == "succeeded"
    api.delete("/api/clients/acme/instances/db")
    deadline = time.monotonic() + 60
    while app.state.store.get_spec("acme", "db") is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert app.state.store.objects.get("clients/acme/db/secrets") is None


def test_a_store_shared_by_replicas_needs_the_key_in_every_process_and_a_wrong_key_is_named(tmp_path):
    with pytest.raises(VaultError, match="SPAWNIT_SECRET_KEY: not set"):
        key_from_environment({}, tmp_path, shared=True)
    with pytest.raises(VaultError, match="SPAWNIT_SECRET_KEY: the key is not allowed"):
        key_from_environment({"SPAWNIT_SECRET_KEY": "not-a-key"}, tmp_path, shared=True)
    local = key_from_environment({}, tmp_path, shared=False)  # one host: a key file, owner-only
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    objects = LocalObjectStore(tmp_path / "store")
    SecretVault(objects, local).create("acme", "db", ("password",))
    stranger = SecretVault(objects, key_from_environment({"SPAWNIT_SECRET_KEY": Fernet.generate_key().decode()}, tmp_path, shared=True))
    with pytest.raises(VaultError, match="cannot be decrypted with the configured SPAWNIT_SECRET_KEY"):
        stranger.for_job("acme", "db")


def test_a_new_key_first_still_reads_what_the_old_key_wrote(tmp_path):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    objects = LocalObjectStore(tmp_path / "store")
    SecretVault(objects, key_from_environment({"SPAWNIT_SECRET_KEY": old}, tmp_path, shared=True)).create("acme", "db", ("password",), {"password": SUPPLIED})
    rotated = SecretVault(objects, key_from_environment({"SPAWNIT_SECRET_KEY": f"{new},{old}"}, tmp_path, shared=True))
    assert rotated.for_job("acme", "db") == {"password": SUPPLIED}
