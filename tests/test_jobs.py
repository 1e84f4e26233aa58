"""Jobs: a real synthesis worker, a stand-in tofu that records how it was called, and a local store."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from spawnit.api.jobs import Conflict, JobManager
from spawnit.api.store import LocalObjectStore, Store
from standin import stand_in_tofu


def events_of(jobs: JobManager, job_id: str, **options) -> list[dict]:
    """Every event of a job, as a subscriber receives them (until the job ends)."""

    async def collect() -> list[dict]:
        return [event async for event in jobs.stream(job_id, **options)]

    return asyncio.run(collect())

@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(LocalObjectStore(tmp_path / "store"))
    store.put_spec("acme", "cache", {"service": "redis", "target": "docker", "parameters": {"port": 6380}})
    return store


@pytest.fixture
def worker(synth_worker):
    return synth_worker


@pytest.fixture
def tofu(tmp_path):
    return stand_in_tofu(tmp_path)


def manager(store, worker, tofu, tmp_path, **options) -> JobManager:
    environ, _ = tofu
    environ = {**environ, **options.pop("env", {})}
    return JobManager(store, worker, workdir=tmp_path / "work", environ=environ, **options)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def finished(jobs: JobManager, job_id: str) -> dict:
    wait_for(lambda: jobs.get(job_id)["status"] in ("succeeded", "failed", "cancelled", "interrupted"))
    return jobs.get(job_id)


def test_plan_runs_init_then_plan_with_detailed_exit_code_in_a_synthesized_copy(store, worker, tofu, tmp_path):
    jobs = manager(store, worker, tofu, tmp_path, env={"TOFU_EXIT_CODES": json.dumps({"plan": 2})})
    job = jobs.submit("acme", "cache", "plan")
    record = finished(jobs, job.id)
    assert (record["status"], record["exit_code"], record["changes"]) == ("succeeded", 2, True)
    calls = [call for call in tofu[1]() if "argv" in call]
    assert [call["argv"] for call in calls] == [
        ["init", "-input=false", "-no-color"],
        ["plan", "-input=false", "-no-color", "-detailed-exitcode", "-out=tfplan"],
        ["show", "-json", "-no-color", "tfplan"],
    ]
    assert calls[0]["cwd"] == str(tmp_path / "work" / job.id / "run")
    assert calls[0]["backend"] == {"local": {"path": str(tmp_path / "work" / "state" / "clients/acme/cache/terraform.tfstate")}}
    assert not (tmp_path / "work" / job.id).exists()  # the isolated workdir is cleaned up


def test_every_line_and_status_is_an_event_with_increasing_ids_kept_in_the_store(store, worker, tofu, tmp_path):
    jobs = manager(store, worker, tofu, tmp_path)
    job = jobs.submit("acme", "cache", "apply", auto_approve=True)
    finished(jobs, job.id)
    events = events_of(jobs, job.id)
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    statuses = [event["data"] for event in events if event["event"] == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    lines = [event["data"] for event in events if event["event"] == "line"]
    assert "$ tofu apply -input=false -no-color tfplan" in lines and "tofu apply: done" in lines  # auto-approve applies its own saved plan
    assert store.get_log(job.id) == events
    assert store.get_job(job.id)["status"] == "succeeded"


def test_events_resume_after_a_given_id(store, worker, tofu, tmp_path):
    jobs = manager(store, worker, tofu, tmp_path)
    job = jobs.submit("acme", "cache", "plan")
    finished(jobs, job.id)
    assert [event["id"] for event in events_of(jobs, job.id, last_id=3)][0] == 4


def test_s3_state_gets_the_per_instance_key(store, worker, tofu, tmp_path):
    state = {"kind": "s3", "bucket": "spawnit", "region": "us-east-1", "endpoint": "http://minio:9000"}
    jobs = manager(store, worker, tofu, tmp_path, state=state)
    finished(jobs, jobs.submit("acme", "cache", "plan").id)
    backend = tofu[1]()[0]["backend"]["s3"]
    assert (backend["bucket"], backend["key"], backend["use_lockfile"]) == ("spawnit", "clients/acme/cache/terraform.tfstate", True)
    assert backend["endpoints"] == {"s3": "http://minio:9000"} and backend["use_path_style"] is True


def test_one_job_at_a_time_per_instance(store, worker, tofu, tmp_path):
    jobs = manager(store, worker, tofu, tmp_path, env={"TOFU_SLOW_APPLY": "30"})
    job = jobs.submit("acme", "cache", "apply", auto_approve=True)
    with pytest.raises(Conflict, match=f"already has job {job.id}"):
        jobs.submit("acme", "cache", "destroy")
    finished(jobs, job.id)
    finished(jobs, jobs.submit("acme", "cache", "destroy").id)


def test_cancel_mid_run_sends_sigterm_and_marks_the_job_cancelled(store, worker, tofu, tmp_path):
    jobs = manager(store, worker, tofu, tmp_path, env={"TOFU_SLOW_APPLY": "600"})
    job = jobs.submit("acme", "cache", "apply", auto_approve=True)
    wait_for(lambda: "working 3" in [event["data"] for event in jobs.snapshot(job.id)])
    lock = tmp_path / "work" / "state" / "clients" / "acme" / "cache" / ".terraform.tfstate.lock.info"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text('{"ID": "left by a killed tofu"}')
    jobs.cancel(job.id)
    record = finished(jobs, job.id)
    assert record["status"] == "cancelled"
    assert {"signal": "SIGTERM"} in tofu[1]()
    lines = [e["data"] for e in store.get_log(job.id)]
    assert "Interrupt received, stopping" in lines and "state lock released" in lines
    assert not lock.exists()


def test_cancel_kills_a_process_that_ignores_sigterm_after_the_grace_period(store, worker, tofu, tmp_path):
    jobs = manager(store, worker, tofu, tmp_path, grace_seconds=0.5, env={"TOFU_SLOW_APPLY": "600", "TOFU_IGNORE_TERM": "1"})
    job = jobs.submit("acme", "cache", "apply", auto_approve=True)
    wait_for(lambda: "working 2" in [event["data"] for event in jobs.snapshot(job.id)])
    started = time.monotonic()
    jobs.cancel(job.id)
    record = finished(jobs, job.id)
    assert record["status"] == "cancelled" and record["exit_code"] == -9
    assert time.monotonic() - started < 10


def test_a_restart_marks_running_jobs_interrupted(store, worker, tofu, tmp_path):
    job_id = str(uuid.uuid4())
    store.put_job({"id": job_id, "client": "acme", "instance": "cache", "action": "apply", "status": "running"})
    store.put_log(job_id, [{"id": 1, "event": "status", "data": "running"}])
    jobs = manager(store, worker, tofu, tmp_path)
    assert jobs.get(job_id)["status"] == "interrupted"
    assert [e["data"] for e in events_of(jobs, job_id)] == ["running", "interrupted"]


def test_bad_parameters_fail_the_job_with_the_reason(store, worker, tofu, tmp_path):
    store.put_spec("acme", "bad", {"service": "redis", "target": "docker", "parameters": {"port": 80}})
    jobs = manager(store, worker, tofu, tmp_path)
    record = finished(jobs, jobs.submit("acme", "bad", "apply", auto_approve=True).id)
    assert record["status"] == "failed" and "port = 80 is not allowed" in record["error"]
    assert tofu[1]() == []


def test_missing_instance_and_unknown_action_are_refused(store, worker, tofu, tmp_path):
    jobs = manager(store, worker, tofu, tmp_path)
    with pytest.raises(LookupError, match="instance acme/ghost does not exist"):
        jobs.submit("acme", "ghost", "plan")
    with pytest.raises(ValueError, match="action: 'import' is not allowed; allowed: plan, apply, destroy"):
        jobs.submit("acme", "cache", "import")


def test_a_second_replica_follows_a_running_job_through_the_store(store, worker, tofu, tmp_path):
    running = manager(store, worker, tofu, tmp_path, env={"TOFU_SLOW_APPLY": "20"})
    job = running.submit("acme", "cache", "apply", auto_approve=True)
    wait_for(lambda: "working 1" in [event["data"] for event in running.snapshot(job.id)])
    replica = JobManager(store, worker, workdir=tmp_path / "replica", environ=tofu[0])
    followed = events_of(replica, job.id, poll=0.1)
    assert followed[-1]["data"] == "succeeded"
    assert [event["id"] for event in followed] == list(range(1, len(followed) + 1))


def test_a_job_whose_lease_is_taken_from_it_stops_and_ends_interrupted(store, worker, tofu, tmp_path):
    from spawnit.api.jobs import lease_key

    jobs = manager(store, worker, tofu, tmp_path, heartbeat_seconds=0.2, env={"TOFU_SLOW_APPLY": "600"})
    job = jobs.submit("acme", "cache", "apply", auto_approve=True)
    wait_for(lambda: any(event["data"] == "working 1" for event in jobs.snapshot(job.id)))
    key = lease_key("acme", "cache")
    jobs.engine.release(key, job.id)  # as if the lease had expired while the process stalled ...
    assert jobs.engine.claim(key, "the-next-job", 60) is None  # ... and another job had taken the instance
    record = finished(jobs, job.id)
    assert record["status"] == "interrupted" and "lease expired" in record["error"]
    assert {"signal": "SIGTERM"} in tofu[1]()
    assert jobs.engine.holder(key) == "the-next-job"  # not released: it is not ours any more


def test_a_starting_manager_ends_the_process_groups_and_folders_a_dead_predecessor_left(store, worker, tofu, tmp_path):
    import json as json_module
    import os
    import subprocess

    import psutil

    from spawnit.api.jobs import _process_start

    work = tmp_path / "work"
    dead = subprocess.Popen(["true"])
    dead.wait()
    group = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300"], start_new_session=True)
    wait_for(lambda: len(psutil.Process(group.pid).children()) == 2)
    members = [group.pid] + [child.pid for child in psutil.Process(group.pid).children()]
    left = work / "0f1e2d3c-0000-4000-8000-000000000001"
    left.mkdir(parents=True)
    (left / "owner.json").write_text(json_module.dumps({"pid": dead.pid, "pid_start": "0", "group": group.pid, "group_start": _process_start(group.pid)}))
    alive = work / "0f1e2d3c-0000-4000-8000-000000000002"
    alive.mkdir()
    (alive / "owner.json").write_text(json_module.dumps({"pid": os.getpid(), "pid_start": _process_start(os.getpid())}))

    jobs = manager(store, worker, tofu, tmp_path)
    assert jobs.cleaned == [left.name]
    group.wait(10)
    wait_for(lambda: not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in members))
    assert not left.exists() and alive.is_dir()  # a live process's folder is not touched


def test_tofu_dies_with_the_worker_thread_that_started_it_even_when_it_prints_nothing(tmp_path):
    """PR_SET_PDEATHSIG: a worker killed with -9 does not leave a quiet tofu applying on its own."""
    import signal
    import subprocess
    import sys

    import psutil

    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "from spawnit.api.jobs import _PDEATHSIG\n"
        "child = subprocess.Popen(['sleep', '300'], start_new_session=True, preexec_fn=_PDEATHSIG)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    wait_for(lambda: pid_file.exists() and pid_file.read_text())
    child = int(pid_file.read_text())
    assert psutil.pid_exists(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_for(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE, timeout=30)
