"""The orchestrator on Redis when Redis fails: a real redis-server (Debian package, no persistence, so a
restart loses everything, the worst case) restarted under a served API whose jobs run in process on
the Redis engine (a stand-in engine records its calls). Each test is a fault the fault run found."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import httpx
import pytest
import redis

from conftest import free_port, serving, wait_for_redis, wait_until
from spawnit.api import create_app
from spawnit.api.auth import AuthSettings
from spawnit.api.engine import RedisEngine
from spawnit.api.jobs import JobManager
from spawnit.api.monitor import ClientEvents
from spawnit.api.store import LocalObjectStore, Store
from standin import stand_in_tofu

FINAL = ("succeeded", "failed", "cancelled", "interrupted")


class RedisServer:
    """A redis-server on one port that a test can stop and start again (empty after each start)."""

    def __init__(self, folder) -> None:  # noqa: ANN001
        self.folder, self.port, self.process = folder, free_port(), None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
        )
        wait_for_redis(redis.Redis(port=self.port), "redis-server answering")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def platform(tmp_path, synth_worker, server):
    """(base URL, job manager): the API served for real, its jobs run here from the Redis queue."""
    tofu = stand_in_tofu(tmp_path)
    engine = RedisEngine(server.url)
    store = Store(LocalObjectStore(tmp_path / "store"))
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ={**tofu[0], "TOFU_SLOW_PLAN": "0"}, engine=engine, grace_seconds=1)
    engine.serve(jobs.execute, concurrency=2)
    app = create_app(store=store, jobs=jobs, auth=AuthSettings("off"))
    with serving(app) as base:
        with httpx.Client(base_url=base, timeout=30) as api:
            assert api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"}).status_code == 201
        yield base, jobs
    engine.stop_serving()
    jobs.close()
    engine.close()


def ended(api: httpx.Client, job: str) -> dict:
    return wait_until(lambda: (record := api.get(f"/api/jobs/{job}").json())["status"] in FINAL and record, 120, f"job {job} ended")


def test_the_first_job_after_a_redis_restart_is_queued_and_runs(platform, server):
    base, _ = platform
    with httpx.Client(base_url=base, timeout=30) as api:
        assert ended(api, api.post("/api/clients/acme/instances/cache/plan").json()["job"])["status"] == "succeeded"
        server.restart()  # every pooled connection is now dead
        response = api.post("/api/clients/acme/instances/cache/plan")
        assert response.status_code == 202, response.text
        assert ended(api, response.json()["job"])["status"] == "succeeded"


def test_a_job_that_cannot_be_queued_ends_failed_at_once_and_leaves_the_instance_free(platform, monkeypatch):
    base, jobs = platform

    def unreachable(job_id: str, run) -> None:  # noqa: ANN001
        raise redis.ConnectionError("Connection closed by server.")

    with httpx.Client(base_url=base, timeout=30) as api:
        monkeypatch.setattr(jobs.engine, "dispatch", unreachable)
        refused = api.post("/api/clients/acme/instances/cache/plan")
        assert refused.status_code == 503 and "could not be queued" in refused.json()["error"]
        [record] = [json.loads(jobs.store.objects.get(key)) for key in jobs.store.objects.list("jobs/") if key.endswith(".json")]
        assert (record["status"], record["error"]) == ("failed", "not queued: Connection closed by server.")
        assert jobs.active_job("acme", "cache") is None and jobs.store.objects.list("jobs/active/") == []
        monkeypatch.undo()
        accepted = api.post("/api/clients/acme/instances/cache/plan")  # no 409 for the queue timeout
        assert accepted.status_code == 202 and ended(api, accepted.json()["job"])["status"] == "succeeded"


def test_with_redis_down_a_new_job_is_a_503_naming_the_queue_and_nothing_is_written(platform, server):
    base, jobs = platform
    server.stop()
    with httpx.Client(base_url=base, timeout=30) as api:
        response = api.post("/api/clients/acme/instances/cache/plan")
    assert response.status_code == 503 and "the job queue cannot be reached" in response.json()["error"]
    assert [key for key in jobs.store.objects.list("jobs/")] == []


def test_client_event_ids_keep_growing_across_a_redis_restart(server):
    engine = RedisEngine(server.url)
    events = ClientEvents(engine)
    for index in range(5):
        events.publish("acme", "line", {"n": index})
    before = engine.last_id(ClientEvents.stream("acme"))
    server.restart()
    events.publish("acme", "line", {"n": 5})
    after = engine.last_id(ClientEvents.stream("acme"))
    assert after > before, (before, after)
    engine.close()


def test_a_job_stream_ends_cleanly_when_redis_goes_away_and_a_resume_is_answered(platform, server, tmp_path):
    base, jobs = platform
    control = tmp_path / "control.json"
    control.write_text(json.dumps({"TOFU_SLOW_PLAN": "300"}))
    jobs.environ["TOFU_CONTROL"] = str(control)
    with httpx.Client(base_url=base, timeout=60) as api:
        job = api.post("/api/clients/acme/instances/cache/plan").json()["job"]
        seen: list[int] = []
        with api.stream("GET", f"/api/jobs/{job}/events") as response:
            assert response.status_code == 200
            for line in response.iter_lines():  # a 500 after the headers would raise here (incomplete chunked read)
                if line.startswith("id:"):
                    seen.append(int(line[3:]))
                    if len(seen) == 5:
                        server.stop()
        assert seen and seen == sorted(set(seen))
        server.start()
        with api.stream("GET", f"/api/jobs/{job}/events", headers={"Last-Event-ID": str(seen[-1])}) as resumed:
            assert resumed.status_code == 200
            again = [int(line[3:]) for line in resumed.iter_lines() if line.startswith("id:")]
        assert all(number > seen[-1] for number in again)


def test_three_hundred_followers_opening_at_once_all_get_their_stream(platform):
    base, jobs = platform
    ClientEvents(jobs.engine).publish("acme", "line", {"hello": "followers"})

    async def follow(client: httpx.AsyncClient) -> bool:
        async with client.stream("GET", "/api/clients/acme/events?last_event_id=0") as response:
            if response.status_code != 200:
                return False
            async for line in response.aiter_lines():
                if line.startswith("data:") and "followers" in line:
                    return True
        return False

    async def everyone() -> list[bool]:
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            return await asyncio.gather(*(follow(client) for _ in range(300)), return_exceptions=True)

    results = asyncio.run(everyone())
    assert results.count(True) == 300, [result for result in results if result is not True][:3]
