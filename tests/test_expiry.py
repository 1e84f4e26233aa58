"""Instances that expire: limits per client and per service, warnings 2 days, 2 hours and 30 minutes before,
and the destroy at expiry, with the time injected (no sleeps), across two replicas sharing a real Redis."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from conftest import local_app
from spawnit.api.engine import RedisEngine
from spawnit.api.expiry import EXPIRY, ExpiryError, ExpiryMonitor, Limits, effective_limits, resolve, server_limits
from spawnit.api.jobs import JobManager, lease_key
from spawnit.api.store import LocalObjectStore, Store

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_default_applies_at_creation_and_a_maximum_bounds_every_expiry():
    limits = Limits(default_hours=24, max_hours=72)
    assert resolve(None, None, limits, NOW, creating=True) == "2026-12-08T12:00:00Z"
    assert resolve(None, 48, limits, NOW, creating=False) == "2026-12-09T12:00:00Z"
    with pytest.raises(ExpiryError, match=r"expires_in_hours: 100 is not allowed; allowed: at most 72 hours from now \(before 2026-12-10T12:00:00Z\)"):
        resolve(None, 100, limits, NOW, creating=False)
    with pytest.raises(ExpiryError, match=r"expires_at: an expiry is required here; allowed: a time before 2026-12-10T12:00:00Z"):
        resolve(None, None, limits, NOW, creating=False)  # clearing it while a maximum applies
    with pytest.raises(ExpiryError, match=r"expires_at: '2026-12-01T00:00:00Z' is not allowed; allowed: a time after now"):
        resolve("2026-12-01T00:00:00Z", None, limits, NOW, creating=True)
    assert resolve(None, None, Limits(), NOW, creating=True) is None  # no limit: no expiry unless asked


def test_limits_come_from_the_service_then_the_client_then_the_server():
    server = server_limits({"SPAWNIT_EXPIRY_DEFAULT_HOURS": "8", "SPAWNIT_EXPIRY_MAX_HOURS": "720"})
    policy = {"default_hours": 24.0, "max_hours": None, "services": {"minecraft": {"default_hours": 2.0, "max_hours": 12.0}}}
    assert effective_limits(server, policy, "minecraft") == Limits(2.0, 12.0)
    assert effective_limits(server, policy, "redis") == Limits(24.0, 720.0)
    assert effective_limits(server, {}, "redis") == Limits(8.0, 720.0)
    from spawnit.api.expiry import ExpirySettingsError

    with pytest.raises(ExpirySettingsError, match="SPAWNIT_EXPIRY_MAX_HOURS: 'forever' is not allowed"):
        server_limits({"SPAWNIT_EXPIRY_MAX_HOURS": "forever"})


@pytest.fixture
def api(tmp_path, synth_worker):
    with TestClient(local_app(tmp_path, synth_worker)) as client:
        yield client


def test_the_api_sets_policies_expiries_and_extensions_within_the_limits(api):
    policy = {"default_hours": 24, "max_hours": 72, "services": {"minecraft": {"default_hours": 2, "max_hours": 12}}}
    assert api.put("/api/clients/acme/expiry-policy", json=policy).status_code == 200
    bad = api.put("/api/clients/acme/expiry-policy", json={"services": {"oracle": {"max_hours": 1}}})
    assert bad.status_code == 422 and bad.json()["error"].startswith("services.oracle: not in the catalog")
    created = api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"}).json()["spec"]
    made = datetime.fromisoformat(created["created_at"].replace("Z", "+00:00"))
    assert abs(datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00")) - (made + timedelta(hours=24))) < timedelta(seconds=5)
    game = api.post("/api/clients/acme/instances", json={"service": "minecraft", "instance": "game", "expires_in_hours": 13, "parameters": {"accept_eula": True}})
    assert game.status_code == 422 and game.json()["fields"] == {"expires_in_hours": game.json()["error"]}
    assert "at most 12 hours from now" in game.json()["error"]
    extended = api.put("/api/clients/acme/instances/cache/expiry", json={"expires_in_hours": 70})
    assert extended.status_code == 200 and extended.json()["limits"] == {"default_hours": 24.0, "max_hours": 72.0}
    assert api.put("/api/clients/acme/instances/cache/expiry", json={"expires_in_hours": 80}).status_code == 422
    assert api.put("/api/clients/acme/instances/cache/expiry", json={}).json()["error"].startswith("expires_at: an expiry is required here")
    trail = [json.loads(api.app.state.store.objects.get(key)) for key in api.app.state.store.objects.list("audit/")]
    assert [(record["action"], record["outcome"]) for record in trail if record["action"].startswith("expiry.")] == [
        ("expiry.policy", "succeeded"), ("expiry.policy", "rejected"), ("expiry.set", "succeeded"), ("expiry.set", "rejected"), ("expiry.set", "rejected"),
    ]


def test_an_expired_instance_cannot_be_extended(api):
    api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "old", "expires_in_hours": 1})
    spec = api.app.state.store.get_spec("acme", "old")
    spec["expires_at"] = "2026-01-01T00:00:00Z"
    api.app.state.store.put_spec("acme", "old", spec)
    refused = api.put("/api/clients/acme/instances/old/expiry", json={"expires_in_hours": 5})
    assert refused.status_code == 409 and refused.json()["error"].startswith("instance acme/old expired at 2026-01-01T00:00:00Z")


# Two replicas, one Redis ------------------------------------------------------------------------------


@pytest.fixture
def replicas(tmp_path, synth_worker, redis_url):
    """Two replicas' expiry monitors over one store and one Redis (database 1: the queue is not the
    cluster tests'); what each notifies and records is collected."""
    store = Store(LocalObjectStore(tmp_path / "store"))
    url = redis_url.rsplit("/", 1)[0] + "/1"
    prefix = f"expiry-{tmp_path.name}"
    told: list[tuple[str, str, dict]] = []
    recorded: list[tuple[str, dict]] = []
    monitors, engines = [], []
    for name in ("a", "b"):
        engine = RedisEngine(url, prefix=prefix)
        engines.append(engine)
        jobs = JobManager(store, synth_worker, engine=engine, workdir=tmp_path / f"work-{name}")
        monitors.append(ExpiryMonitor(store, jobs, notify=lambda *event: told.append(event), record=lambda action, outcome, **fields: recorded.append((action, fields))))
    store.put_spec("acme", "demo", {"client": "acme", "instance": "demo", "service": "redis", "target": "docker", "parameters": {}, "expires_at": "2026-12-10T12:00:00Z"})
    yield store, monitors, told, recorded
    for engine in engines:
        engine.redis.flushdb()
        engine.close()


def sweep_both(monitors, now):
    """Both replicas sweep at the same instant, on their own threads."""
    results = [None, None]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, monitors[i].sweep(now))) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_each_warning_is_sent_once_across_replicas_at_2_days_2_hours_and_30_minutes(replicas):
    store, monitors, told, _ = replicas
    expires = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    for moment in (expires - timedelta(days=3), expires - timedelta(days=2, seconds=-1), expires - timedelta(days=1),
                   expires - timedelta(hours=2), expires - timedelta(hours=1), expires - timedelta(minutes=30), expires - timedelta(minutes=1)):
        sweep_both(monitors, moment)
        sweep_both(monitors, moment)  # a second sweep at the same time sends nothing new
    assert [(client, event, data["in"]) for client, event, data in told] == [("acme", "expiry.warning", "2d"), ("acme", "expiry.warning", "2h"), ("acme", "expiry.warning", "30m")]
    assert store.get_spec("acme", "demo")["expiry_warnings"] == ["2d", "2h", "30m"]


def test_a_short_expiry_gets_only_the_nearest_warning_it_has_crossed(replicas):
    store, monitors, told, _ = replicas
    spec = store.get_spec("acme", "demo")
    spec["expires_at"] = "2026-12-07T12:40:00Z"  # created to live 40 minutes: the 2d and 2h marks are already behind
    store.put_spec("acme", "demo", spec)
    sweep_both(monitors, NOW)
    sweep_both(monitors, NOW + timedelta(minutes=15))
    assert [data["in"] for _, _, data in told] == ["2h", "30m"]  # "less than 2 hours" at once, then the 30-minute mark


def test_at_expiry_exactly_one_destroy_runs_across_replicas_never_beneath_a_running_job(replicas):
    store, monitors, told, recorded = replicas
    expires = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    running = str(uuid.uuid4())  # a job that holds the instance (its lease) while the expiry comes
    assert monitors[0].jobs.engine.claim(lease_key("acme", "demo"), running, 600) is None
    assert sweep_both(monitors, expires + timedelta(seconds=1)) == [{"warned": [], "destroying": []}] * 2
    assert store.get_spec("acme", "demo").get("expiry_job") is None  # left alone, tried again next sweep
    monitors[0].jobs.engine.release(lease_key("acme", "demo"), running)

    results = sweep_both(monitors, expires + timedelta(minutes=1))
    assert sorted(len(result["destroying"]) for result in results) == [0, 1]  # one replica, once
    spec = store.get_spec("acme", "demo")
    job = store.get_job(spec["expiry_job"])
    assert (job["action"], job["requested_by"], job["remove_instance"]) == ("destroy", EXPIRY, True)
    assert spec["deleting"] == job["id"]
    for later in (2, 3):
        assert sweep_both(monitors, expires + timedelta(minutes=later)) == [{"warned": [], "destroying": []}] * 2
    assert [event for _, event, _ in told] == ["expiry.destroy"]
    assert [(action, fields["job"]) for action, fields in recorded] == [("expiry.destroy", job["id"])]
