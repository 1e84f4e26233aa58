"""The orchestrator scaled out on Redis: a real redis-server (Debian package) and an S3 emulator (moto's
server) on 127.0.0.1, two API replicas without workers of their own and two `spawnit worker` processes,
each a real process as a user runs it. Jobs run a stand-in tofu (it records its calls)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import httpx
import psutil
import pytest
from cryptography.fernet import Fernet

from conftest import free_port, redis_server, wait_until
from emulator import Emulator
from processes import Cluster
from standin import stand_in_tofu

STALE_AFTER = 5  # seconds without a renewed lease before a job counts as abandoned
DRIFT_INTERVAL = 6
FINAL = ("succeeded", "failed", "cancelled", "interrupted")


@pytest.fixture(scope="module")
def s3_endpoint():
    """The tests' S3 (moto's server, with conditional PUTs made atomic: see tests/emulator.py)."""
    emulator = Emulator(free_port())
    emulator.client("s3", "us-east-1").create_bucket(Bucket="spawnit")
    yield emulator.endpoint
    emulator.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_url, s3_endpoint):
    root = tmp_path_factory.mktemp("cluster")
    tofu_environ, calls = stand_in_tofu(root)
    environ = {key: value for key, value in tofu_environ.items() if not key.startswith(("SPAWNIT_", "AWS_"))}
    environ |= {
        "SPAWNIT_REDIS_URL": redis_url,
        "SPAWNIT_S3_ENDPOINT": s3_endpoint,
        "SPAWNIT_S3_BUCKET": "spawnit",
        "SPAWNIT_SECRET_KEY": Fernet.generate_key().decode(),  # replicas and workers share the secrets' key
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "SPAWNIT_AUTH": "off",
        "SPAWNIT_JOB_STALE_AFTER": str(STALE_AFTER),
        "SPAWNIT_DRIFT_INTERVAL": str(DRIFT_INTERVAL),
        "TOFU_CONTROL": str(root / "tofu-control.json"),
        "TOFU_STAMP": "1",
    }
    cluster = Cluster(root, environ, calls)
    try:
        cluster.start_api("api-a")
        cluster.start_api("api-b")
        cluster.start_worker("worker-1")
        cluster.start_worker("worker-2")
        yield cluster
    finally:
        for process in cluster.processes.values():
            process.kill()
            process.wait()


@pytest.fixture
def a(cluster):
    return cluster.urls["api-a"]


@pytest.fixture
def b(cluster):
    return cluster.urls["api-b"]


def create(base: str, instance: str, **parameters) -> None:
    answer = httpx.post(f"{base}/api/clients/acme/instances", json={"service": "redis", "instance": instance, "parameters": parameters})
    assert answer.status_code == 201, answer.text


def job_record(base: str, job: str) -> dict:
    return httpx.get(f"{base}/api/jobs/{job}").json()


def ended(base: str, job: str, timeout: float = 120) -> dict:
    return wait_until(lambda: (record := job_record(base, job))["status"] in FINAL and record, timeout, f"job {job} ending")


def running(base: str, job: str) -> dict:
    return wait_until(lambda: (record := job_record(base, job))["status"] == "running" and record, 120, f"job {job} running")


def read_events(url: str, *, headers: dict | None = None, stop_after: int | None = None) -> list[dict]:
    """SSE events as dicts with the time each arrived; the stream's end, or ``stop_after`` events."""
    events, current = [], {}
    with httpx.stream("GET", url, headers=headers or {}, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                current[key] = value.strip()
            elif not line and current:
                events.append({"id": int(current["id"]), "event": current.get("event"), "data": current.get("data"), "arrived": time.time()})
                current = {}
                if stop_after is not None and len(events) >= stop_after:
                    break
    return events


def test_one_job_per_instance_across_replicas_and_the_spec_stays_put(cluster, a, b):
    create(a, "single")
    cluster.tofu(TOFU_SLOW_PLAN="100")
    first = httpx.post(f"{a}/api/clients/acme/instances/single/plan")
    assert first.status_code == 202
    job = first.json()["job"]
    for action in ("apply", "plan", "destroy"):
        other = httpx.post(f"{b}/api/clients/acme/instances/single/{action}")
        assert other.status_code == 409 and job in other.json()["error"], other.text
    patch = httpx.patch(f"{b}/api/clients/acme/instances/single", json={"parameters": {"port": 6390}})
    assert patch.status_code == 409 and job in patch.json()["error"]
    httpx.delete(f"{b}/api/jobs/{job}")
    assert ended(a, job)["status"] == "cancelled"
    cluster.tofu()
    again = httpx.post(f"{b}/api/clients/acme/instances/single/plan")  # free again
    assert again.status_code == 202 and ended(b, again.json()["job"])["status"] == "succeeded"


def test_cancel_through_the_replica_that_did_not_start_the_job_reaches_its_worker(cluster, a, b):
    create(a, "cancelled")
    cluster.tofu(TOFU_SLOW_PLAN="600")
    job = httpx.post(f"{a}/api/clients/acme/instances/cancelled/plan").json()["job"]
    running(a, job)
    wait_until(lambda: any(call.get("argv", [None])[0] == "plan" and job in call.get("cwd", "") for call in cluster.tofu_calls()), 60, "tofu plan started")
    assert httpx.delete(f"{b}/api/jobs/{job}").status_code == 202
    record = ended(b, job, timeout=60)
    assert record["status"] == "cancelled"
    assert {"signal": "SIGTERM"} in cluster.tofu_calls()
    assert [event["data"] for event in read_events(f"{a}/api/jobs/{job}/events")][-1] == "cancelled"


def test_a_follower_on_another_replica_gets_each_line_within_a_second(cluster, a, b):
    create(a, "followed")
    cluster.tofu(TOFU_SLOW_PLAN="40", TOFU_STAMP="1")
    job = httpx.post(f"{a}/api/clients/acme/instances/followed/plan").json()["job"]
    events = read_events(f"{b}/api/jobs/{job}/events")
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    assert events[-1]["data"] == "succeeded"
    lags = [event["arrived"] - float(event["data"].rsplit("@", 1)[1]) for event in events if event["data"].startswith("working")]
    assert len(lags) == 40
    assert statistics.median(lags) < 1.0, f"lag p50 {statistics.median(lags):.2f} s, max {max(lags):.2f} s"


def test_two_hundred_idle_streams_on_the_followers_replica_hold_back_no_event(cluster, a, b):
    """More idle followers than a Redis connection pool holds (100): they share the replica's one reader."""
    import asyncio

    count, opened, stop = 200, [], threading.Event()

    async def hold() -> None:
        async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)) as client:

            async def one(index: int) -> None:
                async with client.stream("GET", f"{b}/api/clients/idle-{index % 20:02d}/events") as response:
                    opened.append(response.status_code)
                    async for _ in response.aiter_lines():
                        if stop.is_set():
                            return

            tasks = [asyncio.create_task(one(index)) for index in range(count)]
            while not stop.is_set():
                await asyncio.sleep(0.1)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    holder = threading.Thread(target=lambda: asyncio.run(hold()), daemon=True)
    holder.start()
    try:
        wait_until(lambda: len(opened) == count, 60, f"{count} idle streams open")
        assert set(opened) == {200}
        create(a, "crowded")
        cluster.tofu(TOFU_SLOW_PLAN="20", TOFU_STAMP="1")
        job = httpx.post(f"{a}/api/clients/acme/instances/crowded/plan").json()["job"]
        events = read_events(f"{b}/api/jobs/{job}/events")
        assert [event["id"] for event in events] == list(range(1, len(events) + 1)) and events[-1]["data"] == "succeeded"
        assert len([event for event in events if event["data"].startswith("working")]) == 20
    finally:
        stop.set()
        holder.join(30)


def test_kill_9_of_the_running_worker_ends_the_job_interrupted_and_a_resuming_client_misses_nothing(cluster, a, b, s3_endpoint):
    create(a, "crashed")
    cluster.tofu(TOFU_SLOW_APPLY="3000")
    job = httpx.post(f"{a}/api/clients/acme/instances/crashed/apply", json={"auto_approve": True}).json()["job"]
    record = running(a, job)
    seen = read_events(f"{a}/api/jobs/{job}/events", stop_after=8)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    lock = "clients/acme/crashed/terraform.tfstate.tflock"
    s3.put_object(Bucket="spawnit", Key=lock, Body=b'{"ID": "held by the apply"}')  # what tofu holds while it applies
    victim = cluster.worker_running(record)
    tofu_pid = wait_until(lambda: next((c["pid"] for c in cluster.tofu_calls() if c.get("argv", [None])[0] == "apply" and job in c.get("cwd", "")), None), 60, "tofu apply")
    cluster.stop(victim, signal.SIGKILL)

    record = ended(b, job, timeout=STALE_AFTER * 6)
    assert record["status"] == "interrupted" and "stopped" in record["error"]
    resumed = read_events(f"{b}/api/jobs/{job}/events", headers={"Last-Event-ID": str(seen[-1]["id"])})
    assert resumed[0]["id"] == seen[-1]["id"] + 1
    assert [event["id"] for event in resumed] == list(range(resumed[0]["id"], resumed[-1]["id"] + 1))
    assert (resumed[-1]["event"], resumed[-1]["data"]) == ("status", "interrupted")
    stored = [json.loads(line) for line in s3.get_object(Bucket="spawnit", Key=f"jobs/{job}.log")["Body"].read().splitlines()]
    assert [event["id"] for event in stored] == list(range(1, resumed[-1]["id"] + 1))  # the durable log has every event
    assert "Contents" not in s3.list_objects_v2(Bucket="spawnit", Prefix=lock)  # no state lock left behind
    wait_until(lambda: not psutil.pid_exists(tofu_pid) or psutil.Process(tofu_pid).status() == psutil.STATUS_ZOMBIE, 30, "tofu gone with its worker")

    work = cluster.root / victim / "work" / job
    assert work.is_dir()  # a process killed with -9 cleans nothing
    cluster.start_worker(victim)  # a worker starting on this host ends and removes what its predecessor left
    assert not work.exists()
    assert "1 left-over work folder(s) cleaned" in [line for line in cluster.log(victim).splitlines() if "taking jobs" in line][-1]


def test_concurrent_creations_of_one_name_across_replicas_give_exactly_one_201(cluster, a, b):
    def attempt(index: int) -> tuple[int, int]:
        base = (a, b)[index % 2]
        answer = httpx.post(f"{base}/api/clients/acme/instances", json={"service": "redis", "instance": "raced", "parameters": {"port": 6400 + index}}, timeout=60)
        return answer.status_code, 6400 + index

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(attempt, range(10)))
    assert sorted(status for status, _ in results) == [201] + [409] * 9
    winner = next(port for status, port in results if status == 201)
    assert httpx.get(f"{b}/api/clients/acme/instances/raced").json()["parameters"]["port"] == winner


def client_event_ids(cluster, base: str, instance: str, other: str) -> list[int]:
    """Subscribe to acme's events on ``base``, run a plan of ``instance`` through ``other``, return the ids seen."""
    ids, subscribed = [], threading.Event()

    def follow() -> None:
        with httpx.stream("GET", f"{base}/api/clients/acme/events", timeout=120) as response:
            subscribed.set()
            for line in response.iter_lines():
                if line.startswith("id:"):
                    ids.append(int(line.partition(":")[2]))
                if line.startswith("data:") and '"succeeded"' in line and instance in line:
                    return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert subscribed.wait(30)
    job = httpx.post(f"{other}/api/clients/acme/instances/{instance}/plan").json()["job"]
    reader.join(120)
    assert ended(other, job)["status"] == "succeeded"
    return ids


def test_client_event_ids_are_one_sequence_across_replicas_and_restarts(cluster, a, b):
    create(a, "numbered")
    cluster.tofu()
    before = client_event_ids(cluster, b, "numbered", other=a)
    assert before == list(range(before[0], before[-1] + 1))
    for name in ("api-a", "api-b"):
        cluster.stop(name)
        cluster.start_api(name)
    a, b = cluster.urls["api-a"], cluster.urls["api-b"]
    after = client_event_ids(cluster, a, "numbered", other=b)
    assert after[0] > before[-1] and after == list(range(after[0], after[-1] + 1))
    resumed = []
    with httpx.stream("GET", f"{b}/api/clients/acme/events", headers={"Last-Event-ID": str(after[0])}, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("id:"):
                resumed.append(int(line.partition(":")[2]))
                if resumed[-1] == after[-1]:
                    break
    assert resumed == after[1:]


def test_two_replicas_plan_each_deployed_instance_once_per_drift_interval(cluster, a, b):
    cluster.tofu()
    for instance in ("drift-one", "drift-two"):
        create(a, instance)
        assert ended(a, httpx.post(f"{a}/api/clients/acme/instances/{instance}/apply", json={"auto_approve": True}).json()["job"])["status"] == "succeeded"
    started = time.time()  # the rounds run on their own: watch the plans they queue

    def plans(instance: str) -> list[float]:
        return sorted(
            call["started"]
            for call in cluster.tofu_calls()
            if call.get("argv", [None])[0] == "plan" and call["started"] > started and call.get("backend") and instance in json.dumps(call["backend"])
        )

    wait_until(lambda: len(plans("drift-one")) >= 3 and len(plans("drift-two")) >= 3, DRIFT_INTERVAL * 8, "three drift rounds")
    for instance in ("drift-one", "drift-two"):
        times = plans(instance)
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        assert min(gaps) > DRIFT_INTERVAL * 0.7, f"{instance} planned {len(times)} times, gaps {gaps}"
        spec = httpx.get(f"{b}/api/clients/acme/instances/{instance}").json()
        assert spec["drift"] == "compliant" and spec["drift_checked_at"]


def test_each_worker_serves_the_metrics_of_the_jobs_it_ran(cluster, a):
    create(a, "measured")
    cluster.tofu()
    job = httpx.post(f"{a}/api/clients/acme/instances/measured/plan").json()["job"]
    record = ended(a, job)
    worker = cluster.worker_running(record)
    text = httpx.get(f"http://127.0.0.1:{cluster.metrics[worker]}/metrics", timeout=10).text
    counted = [line for line in text.splitlines() if line.startswith('spawnit_jobs_total{action="plan",status="succeeded"}')]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 1
    assert "spawnit_job_duration_seconds_count" in text


def test_the_worker_refuses_to_start_without_redis():
    environ = {key: value for key, value in os.environ.items() if key != "SPAWNIT_REDIS_URL"}
    result = subprocess.run([sys.executable, "-m", "spawnit", "worker"], capture_output=True, text=True, env=environ, timeout=60)
    assert result.returncode == 2 and "SPAWNIT_REDIS_URL: not set" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_redis_is_named_without_its_password(tmp_path):
    environ = {**os.environ, "SPAWNIT_REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0", "SPAWNIT_DATA_DIR": str(tmp_path), "SPAWNIT_AUTH": "off"}
    result = subprocess.run([sys.executable, "-m", "spawnit", "serve", "--port", str(free_port())], capture_output=True, text=True, env=environ, timeout=60)
    assert result.returncode == 2 and "cannot be reached" in result.stderr and "hunter2" not in result.stderr and "***" in result.stderr
