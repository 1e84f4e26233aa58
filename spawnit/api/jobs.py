"""Jobs: plan, apply or destroy one instance with OpenTofu, streaming every line, cancellable.

A job synthesizes the instance in the long-lived worker, copies the stack into
its own working folder, runs ``tofu init`` (S3 backend, per-instance key), then
the action. Every output line and status change is an event with an increasing
id (for Server-Sent Events and ``Last-Event-ID``), kept in memory and written
to the store, so a restart or another replica loses nothing. One job at a time
per instance. Cancelling sends SIGTERM to the job's process group, SIGKILL
after a grace period, and removes the state lock a killed process leaves.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..tofu import find_tofu
from .store import ACTIVE_STATUSES, Store
from .worker import SynthError, SynthWorker

LOG = logging.getLogger("spawnit.jobs")
ACTIONS = ("plan", "apply", "destroy")
ACTIVE = ACTIVE_STATUSES
FINAL = ("succeeded", "failed", "cancelled", "interrupted")
FLUSH_SECONDS = 0.5


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Conflict(RuntimeError):
    """The instance already has a job running."""


@dataclass
class Job:
    id: str
    client: str
    instance: str
    action: str
    status: str = "queued"
    created_at: str = field(default_factory=now)
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    changes: bool | None = None  # plan: whether tofu found changes (drift)
    error: str | None = None
    owner: str = ""  # the API process running it
    heartbeat_at: float = 0.0  # epoch seconds; refreshed while it runs

    def record(self) -> dict[str, Any]:
        return asdict(self)


class JobLog:
    """A job's events: appended by the runner, waited on by subscribers, flushed to the store."""

    def __init__(self, events: list[dict[str, Any]] | None = None) -> None:
        self.events: list[dict[str, Any]] = list(events or [])
        self.condition = threading.Condition()
        self.closed = False

    def append(self, kind: str, data: Any) -> dict[str, Any]:
        with self.condition:
            event = {"id": len(self.events) + 1, "event": kind, "data": data, "time": now()}
            self.events.append(event)
            self.condition.notify_all()
            return event

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()

    def after(self, last_id: int, timeout: float) -> tuple[list[dict[str, Any]], bool]:
        """Events with an id above ``last_id`` (waiting up to ``timeout`` for one), and whether the log is closed."""
        with self.condition:
            if len(self.events) <= last_id and not self.closed:
                self.condition.wait(timeout)
            return self.events[last_id:], self.closed


class JobManager:
    """Runs jobs in threads; the store is the source of truth for records and logs."""

    def __init__(
        self,
        store: Store,
        worker: SynthWorker,
        *,
        workdir: str | Path,
        state: dict[str, Any] | None = None,
        grace_seconds: float = 10.0,
        environ: dict[str, str] | None = None,
        heartbeat_seconds: float = 5.0,
        stale_after: float = 30.0,
    ) -> None:
        self.store = store
        self.worker = worker
        self.workdir = Path(workdir)
        self.state = state or {"kind": "local"}
        self.grace_seconds = grace_seconds
        self.owner = uuid.uuid4().hex
        self.heartbeat_seconds, self.stale_after = heartbeat_seconds, stale_after
        self._stop = threading.Event()
        self.environ = dict(os.environ if environ is None else environ)
        self._lock = threading.Lock()
        self._active: dict[tuple[str, str], Job] = {}
        self._logs: dict[str, JobLog] = {}
        self._processes: dict[str, subprocess.Popen[str]] = {}
        self._cancelled: set[str] = set()
        self._callbacks: dict[str, list[Callable[[dict[str, Any]], object]]] = {}
        self.event_listeners: list[Callable[[Job, dict[str, Any]], object]] = []  # every event of every job
        self.finish_listeners: list[Callable[[Job], object]] = []  # every job, once over
        self.recover()
        threading.Thread(target=self._keep_alive, name="jobs-heartbeat", daemon=True).start()

    # Lifecycle ------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Jobs whose API process is gone (no heartbeat for ``stale_after`` seconds) are marked interrupted.

        Runs at start and then regularly: a replica never takes over the jobs another replica is running.
        """
        interrupted = []
        deadline = time.time() - self.stale_after
        for record in self.store.active_jobs():
            if record["status"] in ACTIVE and record.get("owner") != self.owner and record.get("heartbeat_at", 0) < deadline:
                record.update(status="interrupted", finished_at=now(), error="the API stopped while the job ran")
                self.store.put_job(record)
                events = self.store.get_log(record["id"])
                events.append({"id": len(events) + 1, "event": "status", "data": "interrupted", "time": now()})
                self.store.put_log(record["id"], events)
                interrupted.append(record["id"])
        return interrupted

    def _keep_alive(self) -> None:
        """Refresh the heartbeat of this process's running jobs; look for jobs other processes abandoned."""
        next_recovery = time.monotonic() + self.stale_after / 2
        while not self._stop.wait(self.heartbeat_seconds):
            try:
                with self._lock:
                    running = list(self._active.values())
                for job in running:
                    job.heartbeat_at = time.time()
                    self._save(job)
                if time.monotonic() >= next_recovery:
                    self.recover()
                    next_recovery = time.monotonic() + self.stale_after / 2
            except Exception as error:  # noqa: BLE001 - a store hiccup must not stop the heartbeats
                LOG.warning("job heartbeat: %s", error)

    def close(self) -> None:
        self._stop.set()

    def submit(self, client: str, instance: str, action: str) -> Job:
        if action not in ACTIONS:
            raise ValueError(f"action: {action!r} is not allowed; allowed: {', '.join(ACTIONS)}")
        spec = self.store.get_spec(client, instance)
        if spec is None:
            raise LookupError(f"instance {client}/{instance} does not exist")
        with self._lock:
            running = self._active.get((client, instance))
            if running is not None:
                raise Conflict(f"instance {client}/{instance} already has job {running.id} ({running.action}, {running.status})")
            job = Job(id=str(uuid.uuid4()), client=client, instance=instance, action=action, owner=self.owner, heartbeat_at=time.time())
            self._active[(client, instance)] = job
            self._logs[job.id] = JobLog()
        self._save(job)
        self._event(job, "status", "queued")
        threading.Thread(target=self._run, args=(job, spec), name=f"job-{job.id}", daemon=True).start()
        return job

    def on_finish(self, job_id: str, callback: Callable[[dict[str, Any]], object]) -> None:
        """Call ``callback(record)`` once the job is over (at once if it already is)."""
        with self._lock:
            if any(job.id == job_id for job in self._active.values()):
                self._callbacks.setdefault(job_id, []).append(callback)
                return
        record = self.get(job_id)
        if record is not None:
            callback(record)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            for job in self._active.values():
                if job.id == job_id:
                    return job.record()
        return self.store.get_job(job_id)

    def active_job(self, client: str, instance: str) -> Job | None:
        with self._lock:
            return self._active.get((client, instance))

    def cancel(self, job_id: str) -> dict[str, Any]:
        record = self.get(job_id)
        if record is None:
            raise LookupError(f"job {job_id} does not exist")
        if record["status"] in FINAL:
            raise Conflict(f"job {job_id} is already {record['status']}")
        with self._lock:
            self._cancelled.add(job_id)
            process = self._processes.get(job_id)
        if process is not None:
            self._terminate(process)
        return self.get(job_id) or record

    def snapshot(self, job_id: str) -> list[dict[str, Any]]:
        """The events so far, without waiting."""
        log = self._logs.get(job_id)
        return list(log.events) if log is not None else self.store.get_log(job_id)

    async def stream(self, job_id: str, last_id: int = 0, *, poll: float = 0.2) -> AsyncIterator[dict[str, Any]]:
        """Every event after ``last_id``, live while the job runs, from the store once it is over (or when
        another replica runs it). On the event loop: no thread is held while nothing happens, so an idle
        subscriber costs a timer."""
        log = self._logs.get(job_id)
        if log is None:  # another replica's job: its log in the store, read briefly in a thread
            while True:
                for event in await asyncio.to_thread(self.store.get_log, job_id):
                    if event["id"] > last_id:
                        last_id = event["id"]
                        yield event
                record = await asyncio.to_thread(self.store.get_job, job_id)
                if record is None or record["status"] in FINAL:
                    return
                await asyncio.sleep(max(poll, 0.5))
        while True:
            fresh, closed = log.after(last_id, 0)
            for event in fresh:
                last_id = event["id"]
                yield event
            if closed and not fresh:
                return
            if not fresh:
                await asyncio.sleep(poll)

    # Running --------------------------------------------------------------------------------
    def _run(self, job: Job, spec: dict[str, Any]) -> None:
        folder = self.workdir / job.id
        code: int | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            job.status, job.started_at = "running", now()
            self._save(job)
            self._event(job, "status", "running")
            stack_dir = self.worker.synth(
                service=spec["service"],
                parameters={**spec["parameters"], "target": spec["target"]},
                client=job.client,
                instance=job.instance,
                outdir=str(folder / "synth"),
                state=self._state_for(job),
            )
            self._event(job, "line", f"synthesized {stack_dir.name}")
            run_dir = folder / "run"
            shutil.copytree(stack_dir, run_dir)
            code = self._tofu(job, run_dir, ["init", "-input=false", "-no-color"])
            if code == 0 and job.id not in self._cancelled:
                code = self._tofu(job, run_dir, self._arguments(job.action))
        except SynthError as error:
            job.error = str(error)
        except Exception as error:  # noqa: BLE001 - a job never takes the API down
            job.error = f"{type(error).__name__}: {error}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # before the job is seen finished
        self._finish(job, code)

    @staticmethod
    def _arguments(action: str) -> list[str]:
        if action == "plan":
            return ["plan", "-input=false", "-no-color", "-detailed-exitcode"]
        return [action, "-input=false", "-no-color", "-auto-approve"]

    def _state_for(self, job: Job) -> dict[str, Any]:
        key = Store.state_key(job.client, job.instance)
        if self.state.get("kind") == "s3":
            return {**self.state, "key": key}
        return {"kind": "local", "path": str(Path(self.state.get("root", self.workdir / "state")) / key)}

    def _tofu(self, job: Job, cwd: Path, arguments: list[str]) -> int:
        binary = find_tofu(self.environ)
        self._event(job, "line", f"$ tofu {' '.join(arguments)}")
        process = subprocess.Popen(
            [binary, *arguments],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**self.environ, "TF_IN_AUTOMATION": "1"},
            start_new_session=True,  # its own process group: cancelling reaches tofu's providers too
        )
        with self._lock:
            self._processes[job.id] = process
        if job.id in self._cancelled:
            self._terminate(process)
        for line in process.stdout:
            self._event(job, "line", line.rstrip("\n"))
        code = process.wait()
        with self._lock:
            self._processes.pop(job.id, None)
        return code

    def _terminate(self, process: subprocess.Popen[str]) -> None:
        """SIGTERM to the process group, SIGKILL after the grace period (in the background)."""

        def stop() -> None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=self.grace_seconds)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        threading.Thread(target=stop, daemon=True).start()

    def _finish(self, job: Job, code: int | None) -> None:
        cancelled = job.id in self._cancelled
        if cancelled:
            self._release_lock(job)
        with self._lock:  # the final status and the instance's release are seen together
            job.exit_code = code
            job.finished_at = now()
            if cancelled:
                job.status = "cancelled"
            elif code == 0 or (job.action == "plan" and code == 2):
                job.status = "succeeded"
                if job.action == "plan":
                    job.changes = code == 2
            else:
                job.status = "failed"
                job.error = job.error or f"tofu exited with {code}"
            self._active.pop((job.client, job.instance), None)
            self._cancelled.discard(job.id)
        self._save(job)
        self._event(job, "status", job.status)
        log = self._logs[job.id]
        self.store.put_log(job.id, log.events)
        log.close()
        with self._lock:
            callbacks = self._callbacks.pop(job.id, [])
        for listener in self.finish_listeners:
            listener(job)
        for callback in callbacks:
            callback(job.record())

    def _release_lock(self, job: Job) -> None:
        """A killed tofu leaves its lock beside the state: remove it. S3 (``use_lockfile``): ``<key>.tflock``
        in the bucket the store uses; local state: ``.<state file>.lock.info`` in the state's folder."""
        if self.state.get("kind") == "s3":
            self.store.objects.delete(Store.state_key(job.client, job.instance) + ".tflock")
        else:
            state = Path(self._state_for(job)["path"])
            state.with_name(f".{state.name}.lock.info").unlink(missing_ok=True)
        self._event(job, "line", "state lock released")

    # Records --------------------------------------------------------------------------------
    def _save(self, job: Job) -> None:
        self.store.put_job(job.record())

    def _event(self, job: Job, kind: str, data: Any) -> None:
        log = self._logs[job.id]
        event = log.append(kind, data)
        for listener in self.event_listeners:
            listener(job, event)
        last = getattr(log, "flushed_at", 0.0)
        if kind == "status" or time.monotonic() - last > FLUSH_SECONDS:
            self.store.put_log(job.id, log.events)
            log.flushed_at = time.monotonic()
