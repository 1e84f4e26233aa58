"""What a finished job changes on its instance, and the drift rounds.

:func:`track_deployments` keeps each instance's deployment and drift status in its spec as jobs finish
(an apply's outputs, cost and footprint; a plan of a deployed instance's drift, what drifted and why),
tells the client (its event stream, its webhook) and records each job's end in the audit trail.
:class:`DriftMonitor` plans every deployed instance every interval, once across replicas.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .audit import JOB_OUTCOMES, AuditTrail
from .gate import blocking_reasons, passed
from .jobs import DRIFT, Conflict, Job, JobManager, now
from .monitor import ClientEvents, Metrics
from .store import Store

LOG = logging.getLogger("spawnit.drift")
# Drift rounds plan every deployed instance at most ``concurrency`` at a time and record ``compliant`` (no
# change), ``drifted`` (changes) or the failed check on the instance: a round takes about
# instances / concurrency x (the time of one plan).


def track_deployments(
    store: Store, events: ClientEvents, metrics: Metrics, jobs: JobManager, notify: Callable[[str, str, dict[str, Any]], Any] | None = None
) -> None:
    """Keep each instance's deployment and drift status in its spec as jobs finish, and tell the client
    (its event stream, and through ``notify`` its webhook: a failed job, a blocked gate, drift detected)."""
    notify = notify or (lambda client, event, data: None)

    def on_event(job: Job, event: dict[str, Any]) -> None:
        metrics.on_event(job, event)
        events.publish(job.client, event["event"], {"job": job.id, "instance": job.instance, "action": job.action, "data": event["data"]})

    trail = AuditTrail(store.objects)

    def on_finish(job: Job) -> None:
        metrics.on_finish(job)
        if job.requested_by != DRIFT:  # what a person asked for, and how it ended (a drift round's plans are not changes)
            try:
                trail.write(None, f"job.{job.action}.finished", JOB_OUTCOMES.get(job.status, "failed"), subject=job.requested_by or None,
                            client=job.client, instance=job.instance, job=job.id, plan_sha256=(job.plan or {}).get("sha256"))
            except Exception as error:  # noqa: BLE001 - the job ended either way; a lost record is logged loudly
                LOG.error("audit record of job %s not written: %s", job.id, error)
        about = {"instance": job.instance, "job": job.id, "action": job.action, "by": job.requested_by}
        if job.status in ("failed", "interrupted"):
            notify(job.client, "job.failed", {**about, "status": job.status, "error": job.error})
        if job.gate and not passed(job.gate):
            notify(job.client, "gate.blocked", {**about, "reasons": blocking_reasons(job.gate)})
        spec = store.get_spec(job.client, job.instance)
        if spec is None:
            return
        if job.action == "apply" and job.status == "succeeded":
            spec.update(deployed_at=now(), drift="compliant", drift_resources=[], drift_causes=[], drift_plan=None, outputs=job.outputs or {}, monthly_cost_usd=job.monthly_cost_usd, footprint=job.footprint)
        elif job.action == "destroy" and job.status == "succeeded":
            spec.update(deployed_at=None, drift="unknown", drift_resources=[], drift_causes=[], drift_plan=None, outputs={}, monthly_cost_usd=None, footprint=None)
        elif job.action == "plan" and spec.get("deployed_at") and not job.refresh_only:
            # Drift is a resource to change; a plan that changes only outputs (a restarted instance's new
            # public address, read by the refresh) is in sync, and its known outputs are the current ones.
            # A check that failed or was cancelled says so and leaves the drift status as it was.
            check = {"job": job.id, "status": job.status, "at": now(), "by": job.requested_by, **({"error": job.error} if job.error else {})}
            spec["drift_check"] = check
            if job.status != "succeeded" or job.changes is None:
                metrics.drift_checks.labels("error").inc()
                events.publish(job.client, "drift", {"instance": job.instance, "drift": spec.get("drift", "unknown"), "job": job.id, "check": job.status})
                store.put_spec(job.client, job.instance, spec)
                return
            previous = spec.get("drift")
            drift = "drifted" if job.changes and job.changed != [] else "compliant"  # changed None: not read back, drifted
            resources = sorted({change["address"] for change in job.changed or []}) if drift == "drifted" else []
            causes = (job.plan or {}).get("causes") or [] if drift == "drifted" else []
            spec.update(drift=drift, drift_checked_at=now(), drift_resources=resources, drift_causes=causes, drift_plan=job.id if drift == "drifted" else None)
            if drift == "compliant" and job.outputs:
                spec["outputs"] = {**spec.get("outputs", {}), **job.outputs}
            metrics.drift_checks.labels(drift).inc()
            events.publish(job.client, "drift", {"instance": job.instance, "drift": drift, "job": job.id, "resources": resources})
            if drift == "drifted" and previous != "drifted":  # news, not every round's repetition
                notify(job.client, "drift.detected", {"instance": job.instance, "job": job.id, "resources": resources, "causes": causes})
        else:
            return
        store.put_spec(job.client, job.instance, spec)

    jobs.event_listeners.append(on_event)
    jobs.finish_listeners.append(on_finish)


class DriftMonitor:
    """Plans every deployed instance every ``interval`` seconds, ``concurrency`` at a time."""

    def __init__(self, store: Store, jobs: JobManager, *, interval: float = 600.0, concurrency: int = 2, before_round: Callable[[], Any] | None = None) -> None:
        if interval <= 0 or concurrency < 1:
            raise ValueError(f"drift monitor: interval={interval}, concurrency={concurrency} are not allowed; allowed: interval > 0, concurrency >= 1")
        self.store, self.jobs = store, jobs
        self.interval, self.concurrency = interval, concurrency
        self.before_round = before_round  # e.g. the minor upgrade policy's sweep: its plans run beside the round's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deployed(self) -> list[tuple[str, str]]:
        return [(c, i) for c, i in self.store.list_instances() if (self.store.get_spec(c, i) or {}).get("deployed_at")]

    def check_all(self) -> dict[str, str]:
        """One round: plan every deployed instance, at most ``concurrency`` at once; returns instance -> drift."""
        if self.before_round is not None:
            try:
                self.before_round()
            except Exception as error:  # noqa: BLE001 - the round itself still runs
                LOG.warning("before the drift round: %s", error)
        slots = threading.Semaphore(self.concurrency)
        results: dict[str, str] = {}
        threads = []
        for client, instance in self.deployed():
            slots.acquire()
            if self._stop.is_set():
                slots.release()
                break
            try:
                job = self.jobs.submit(client, instance, "plan", by=DRIFT)
            except Conflict:
                slots.release()  # a job is running on it: its outcome will tell
                continue

            def wait(client=client, instance=instance, job_id=job.id) -> None:
                record = self.jobs.wait(job_id) or {}
                drift = (self.store.get_spec(client, instance) or {}).get("drift", "unknown")
                results[f"{client}/{instance}"] = drift if record.get("status") == "succeeded" and record.get("changes") is not None else "error"
                slots.release()

            thread = threading.Thread(target=wait, daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        return results

    def start_round(self) -> list[tuple[str, str]]:
        """A round now, in the background (an operator's "check drift now"): the deployed instances it covers."""
        deployed = self.deployed()
        threading.Thread(target=self.check_all, name="drift-round-now", daemon=True).start()
        return deployed

    def start(self) -> None:
        """Rounds every ``interval`` seconds. With several replicas, each looks every quarter interval
        (at most 5 s) and the one that takes the engine's ``drift-round`` for the interval runs the round:
        one round per interval for the whole cluster, its plans queued as ordinary jobs."""

        def loop() -> None:
            tick = min(self.interval / 4, 5.0)
            if self._stop.wait(self.interval):
                return
            while not self._stop.is_set():
                if self.jobs.engine.once_per("drift-round", self.interval):
                    try:
                        self.check_all()
                    except Exception as error:  # noqa: BLE001 - a store hiccup must not end the monitor
                        LOG.warning("drift round: %s", error)
                self._stop.wait(tick)

        self._thread = threading.Thread(target=loop, name="drift-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
