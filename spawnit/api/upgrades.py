"""The ``minor`` upgrade policy: an instance following its service's minor versions moves on its own,
through the same saved plan and gate a person would review, and only when that is safe.

Each sweep (every drift round) plans, for every deployed ``minor`` instance, the newest version of its
service with the same major version. When that plan ends: no change at all moves the instance at once;
a plan whose gate passes and whose changes are only containers and images
(:data:`~spawnit.services.base.AUTO_UPGRADE_RESOURCES`) is applied; anything else is held for a person,
with the reasons on the instance (``auto_upgrade``) and in its event stream. A version tried once is not
planned again by the sweep (a person may still upgrade through review).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from ..services.base import AUTO_UPGRADE_RESOURCES, ParameterError
from ..services.catalog import newest_minor, plan_upgrade
from .gate import blocking_reasons, passed
from .jobs import Conflict, Job, JobManager, now
from .store import Store

LOG = logging.getLogger(__name__)
UPGRADE_POLICY = "upgrade-policy"  # requested_by of the jobs the policy starts


def held_back(job: Job) -> list[str]:
    """Why an automatic upgrade's plan may not be applied without review ([]: it may)."""
    reasons = []
    if job.gate and not passed(job.gate):
        reasons += [f"the policy gate blocks it: {reason}" for reason in blocking_reasons(job.gate)]
    if job.changed is None:
        reasons.append("its changes could not be read back")
    for change in job.changed or []:
        kind = change["address"].split(".")[-2] if "." in change["address"] else change["address"]
        if kind not in AUTO_UPGRADE_RESOURCES:
            reasons.append(f"it would {'/'.join(change['actions'])} {change['address']}, which is not a container or an image")
    return reasons


class AutoUpgrades:
    """Starts the policy's upgrade plans (:meth:`sweep`) and applies them when safe (a job finish listener)."""

    def __init__(self, store: Store, jobs: JobManager, *, publish: Callable[[str, str, dict[str, Any]], Any] | None = None, retry_for: float = 60.0) -> None:
        self.store, self.jobs = store, jobs
        self.publish = publish or (lambda client, event, data: None)
        self.retry_for = retry_for
        jobs.finish_listeners.append(self._on_finish)

    def sweep(self) -> list[str]:
        """Plan the newest minor version for every deployed ``minor`` instance that has one not tried yet."""
        started = []
        for client, instance in self.store.list_instances():
            spec = self.store.get_spec(client, instance) or {}
            if spec.get("upgrade_policy") != "minor" or not spec.get("deployed_at"):
                continue
            try:
                version = newest_minor(self.jobs.catalog, spec)
                if version is None or (spec.get("auto_upgrade") or {}).get("version") == version:
                    continue
                upgrade = {**plan_upgrade(self.jobs.catalog, spec, version), "auto": True}
                job = self.jobs.submit(client, instance, "plan", by=UPGRADE_POLICY, upgrade=upgrade)
            except Conflict:
                continue  # a job runs on it: the next sweep tries again
            except (ParameterError, LookupError) as error:
                self._note(client, instance, {"version": version, "status": "refused", "reasons": [str(error)]})
                continue
            self._note(client, instance, {"version": version, "status": "planned", "job": job.id})
            started.append(f"{client}/{instance}")
        return started

    def _note(self, client: str, instance: str, news: dict[str, Any]) -> None:
        spec = self.store.get_spec(client, instance)
        if spec is None:
            return
        spec["auto_upgrade"] = {**news, "at": now()}
        self.store.put_spec(client, instance, spec)
        self.publish(client, "upgrade", {"instance": instance, **news})

    def _on_finish(self, job: Job) -> None:
        if not job.upgrade or not job.upgrade.get("auto"):
            return
        version = job.upgrade["version"]
        if job.action == "apply":
            self._note(job.client, job.instance, {"version": version, "status": "applied" if job.status == "succeeded" else job.status, "job": job.id})
            return
        if job.status != "succeeded":
            self._note(job.client, job.instance, {"version": version, "status": "held", "job": job.id, "reasons": [f"its plan {job.status}: {job.error}"]})
            return
        if not job.changes:
            self._note(job.client, job.instance, {"version": version, "status": "applied", "job": job.id, "reasons": ["nothing to change"]})
            return
        reasons = held_back(job)
        if reasons:
            self._note(job.client, job.instance, {"version": version, "status": "held", "job": job.id, "reasons": reasons})
            return
        # The plan job still holds the instance's lease until its record is final: apply once it is released.
        threading.Thread(target=self._apply, args=(job,), name=f"auto-upgrade-{job.id[:8]}", daemon=True).start()

    def _apply(self, plan: Job) -> None:
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                self.jobs.submit(plan.client, plan.instance, "apply", by=UPGRADE_POLICY, plan=plan.id)
                return
            except Conflict:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            except Exception as error:  # noqa: BLE001 - a stale plan, a store hiccup: held, said why
                self._note(plan.client, plan.instance, {"version": plan.upgrade["version"], "status": "held", "job": plan.id, "reasons": [str(error)]})
                return
        self._note(plan.client, plan.instance, {"version": plan.upgrade["version"], "status": "held", "job": plan.id, "reasons": ["another job kept the instance busy"]})
