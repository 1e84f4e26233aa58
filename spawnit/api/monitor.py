"""What the API watches: per-client event streams and Prometheus metrics (drift: :mod:`.drift`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from .engine import LocalEngine, RedisEngine
from .jobs import Job


class ClientEvents:
    """Every job event and drift change of each client, on one engine stream per client: numbered in
    one sequence whichever process publishes (for ``Last-Event-ID``), trimmed to about ``keep`` events."""

    def __init__(self, engine: LocalEngine | RedisEngine, keep: int = 5000) -> None:
        self.engine, self.keep = engine, keep

    @staticmethod
    def stream(client: str) -> str:
        return f"client/{client}"

    def publish(self, client: str, kind: str, data: dict[str, Any]) -> None:
        """A stream not in the engine yet (a new one, or one Redis lost in a restart, or this process's
        own after its restart) numbers from the clock in microseconds: ids keep growing across restarts
        as long as a client averages under a million events a second, with nothing stored."""
        self.engine.append(self.stream(client), kind, data, keep=self.keep, start_after=int(time.time() * 1_000_000))

    def tail(self, client: str) -> int:
        """The id of the client's newest event: a new subscriber starts after it."""
        return self.engine.last_id(self.stream(client))

    async def astream(self, client: str, last_id: int) -> AsyncIterator[dict[str, Any]]:
        """The client's events after ``last_id`` (those still kept), then live; an empty event every
        second or so lets the caller notice a closed connection. No thread is held while waiting."""
        async for event in self.engine.follow(self.stream(client), last_id):
            yield event or {}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter("spawnit_jobs_total", "Jobs finished, by action and status", ["action", "status"], registry=self.registry)
        self.running = Gauge("spawnit_jobs_running", "Jobs running now", registry=self.registry)
        self.duration = Histogram(
            "spawnit_job_duration_seconds", "Duration of finished jobs", ["action"], registry=self.registry, buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800)
        )
        self.drift_checks = Counter("spawnit_drift_checks_total", "Drift checks, by result", ["result"], registry=self.registry)
        self.targets = Gauge(
            "spawnit_target_reachable", "1 when this process reaches the target with the credentials configured for it", ["target"], registry=self.registry
        )
        self.target_details = Info("spawnit_target", "Why each target is reachable or not (no credential)", ["target"], registry=self.registry)
        self._started: dict[str, float] = {}

    def on_reachability(self, found: dict[str, dict[str, Any]]) -> None:
        for target, item in found.items():
            self.targets.labels(target).set(1 if item["reachable"] else 0)
            self.target_details.labels(target).info({"detail": str(item["detail"])})

    def on_event(self, job: Job, event: dict[str, Any]) -> None:
        if event["event"] == "status" and event["data"] == "running":
            self._started[job.id] = time.monotonic()
            self.running.inc()

    def on_finish(self, job: Job) -> None:
        started = self._started.pop(job.id, None)
        if started is not None:
            self.running.dec()
            self.duration.labels(job.action).observe(time.monotonic() - started)
        self.jobs.labels(job.action, job.status).inc()
