"""Jobs: plan, apply or destroy one instance with OpenTofu, streaming every line, cancellable.

A job synthesizes the instance in the long-lived synthesis worker, copies the
stack into its own working folder with the instance's provider lock file, runs
``tofu init`` (S3 backend, per-instance key, the shared plugin cache and mirror of
:mod:`.toolchain`), keeps the lock file init wrote beside the state, then the
action: a plan saves its plan and reads which resources change from it
(``show -json``), an apply reads the outputs back (``output -json``). The
instance's secrets reach the engine only in the job's environment
(:mod:`.vault`). Every output line and status change is an event on the
job's stream (:mod:`.engine`): numbered in one sequence whichever process
appends, resumable with ``Last-Event-ID``, and written to the store, the
durable copy. One job per instance: submitting takes the instance's lease, the
process running the job renews it, and a job whose lease is gone (its worker
died) is marked ``interrupted`` with a final event by whichever process sees it
first. Cancelling reaches the process running the job: SIGTERM to tofu's
process group, SIGKILL after a grace period, and the state lock a killed
process leaves is removed.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

from ..footprint import stack_footprint
from ..plandiff import drift_causes, readable
from ..services.base import CatalogService
from ..services.catalog import Catalog, instance_version
from ..services.template import synth_source
from ..tofu import find_engine, find_tofu
from .credentials import CredentialError, TargetAccess, write_private
from .engine import LocalEngine, RedisEngine
from .gate import blocking_reasons, cost_check, monthly_cost, override, passed, security_check
from .settings import amount
from .plans import DEFAULT_TTL, PlanBasis, PlanFiles, digest, expiry, inputs_of, secrets_digest, stale_reasons, state_version
from .store import ACTIVE_STATUSES, Store
from .toolchain import Toolchain
from .vault import SecretVault, key_from_environment
from .synthesizer import SynthError, SynthWorker

LOG = logging.getLogger("spawnit.jobs")
ACTIONS = ("plan", "apply", "destroy")
ACTIVE = ACTIVE_STATUSES
FINAL = ("succeeded", "failed", "cancelled", "interrupted")
FLUSH_SECONDS = 0.5
HISTORY = 100  # job ids an instance's spec keeps, newest last
KEEP_EVENTS = 10_000  # a job's live stream is trimmed to about this many events; the store keeps them all
CANCEL_POLL_SECONDS = 0.25
OWNER_FILE = "owner.json"
LOCK_FILE = ".terraform.lock.hcl"
PLAN_FILE = "tfplan"
CAPTURE_TIMEOUT = 300  # seconds a `show -json` or `output -json` may take
DRIFT = "drift"  # who asks for a drift round's plans (requested_by)


def plan_changes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """What a plan (``show -json``) would change: each resource's address and actions, ``outside`` when
    the refresh found it changed outside the engine (``resource_drift``). A change outside that needs no
    action (a restarted instance's new address) is no change: the engine leaves it as it is."""
    outside = {item["address"] for item in plan.get("resource_drift", [])}
    return [
        {"address": item["address"], "actions": item["change"]["actions"], **({"outside": True} if item["address"] in outside else {})}
        for item in plan.get("resource_changes", [])
        if item.get("change", {}).get("actions") not in (["no-op"], ["read"])
    ]


def planned_outputs(plan: dict[str, Any]) -> dict[str, Any]:
    """The outputs a plan knows the values of (``output_changes``), sensitive ones masked: after a
    refresh they are the current ones (a restarted instance's new public address)."""
    outputs = {}
    for name, change in plan.get("output_changes", {}).items():
        if change.get("after_unknown") is True or "after" not in change:
            continue
        outputs[name] = "(sensitive)" if change.get("after_sensitive") is True else change["after"]
    return outputs


def public_outputs(outputs: dict[str, Any]) -> dict[str, Any]:
    """``output -json`` with every sensitive value masked."""
    return {name: "(sensitive)" if item.get("sensitive") else item.get("value") for name, item in outputs.items()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Conflict(RuntimeError):
    """The instance already has a job running."""


class StalePlan(Conflict):
    """The plan an apply names cannot be applied as it is: what moved since is in the message."""


class GateBlocked(Conflict):
    """The plan an apply names fails its policy gate, and no admin has overridden the failing checks."""


class NotQueued(RuntimeError):
    """The job could not be handed to a worker (the queue cannot be reached): it ended ``failed`` at
    once and the instance is free again."""


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
    owner: str = ""  # the process running it
    heartbeat_at: float = 0.0  # epoch seconds; refreshed while it runs (the data-folder mode's liveness)
    remove_instance: bool = False  # a destroy that removes the instance once it succeeds
    changed: list[dict[str, Any]] | None = None  # plan with changes: each resource's address and actions ([]: outputs only)
    outputs: dict[str, Any] | None = None  # apply: the stack's outputs; plan: those it knows; sensitive ones masked
    engine: str | None = None  # the engine that ran it, e.g. "Terraform 1.11.4"
    requested_by: str = ""  # who asked for it (the token's subject; "drift" for a drift round)
    plan: dict[str, Any] | None = None  # plan with changes: the saved plan's basis (plans.PlanBasis)
    applies_plan: str | None = None  # apply: the reviewed plan job it applies
    auto_approved: bool = False  # apply: planned and applied in one step, as the caller explicitly asked
    gate: dict[str, Any] | None = None  # plan with changes: the policy gate's checks and overrides (gate.py)
    monthly_cost_usd: float | None = None  # apply: what the applied configuration costs a month (offline prices)
    footprint: dict[str, Any] | None = None  # apply: its monthly greenhouse-gas footprint (footprint.stack_footprint)
    refresh_only: bool = False  # plan: -refresh-only, to accept the cloud's values into the state (drift's second remedy)
    upgrade: dict[str, Any] | None = None  # plan (and the apply of it): the instance moved to another service version (upgrade_of)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


def upgraded(spec: Mapping[str, Any], upgrade: Mapping[str, Any] | None) -> dict[str, Any]:
    """The spec as it is once ``upgrade`` (a job's) is applied: its service version, hash and parameters."""
    if not upgrade:
        return dict(spec)
    return {**spec, "service_version": upgrade["version"], "service_sha256": upgrade["sha256"], "parameters": upgrade["parameters"]}


def moved_since_upgrade_planned(spec: Mapping[str, Any], upgrade: Mapping[str, Any]) -> list[str]:
    """What changed on the instance since its upgrade was planned (the plan was made from that)."""
    before = upgrade["from"]
    reasons = []
    if instance_version(spec) != before["version"]:
        reasons.append(f"the instance's version changed since the upgrade was planned ({before['version']} -> {instance_version(spec)})")
    if spec["parameters"] != before["parameters"]:
        changed = sorted(name for name in set(spec["parameters"]) | set(before["parameters"]) if spec["parameters"].get(name) != before["parameters"].get(name))
        reasons.append(f"parameters changed since the upgrade was planned ({', '.join(changed)})")
    return reasons


def lease_key(client: str, instance: str) -> str:
    return f"instance/{client}/{instance}"


def job_stream(job_id: str) -> str:
    return f"job/{job_id}"


def _process_start(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid,
    it names one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGKILL the child when the thread that started it dies
    (prctl PR_SET_PDEATHSIG): a worker killed with -9 does not leave tofu applying on its own."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL, 0, 0, 0)


_PDEATHSIG = _die_with_parent()


def sweep_leftovers(workdir: Path) -> list[str]:
    """End what a dead predecessor left on this host: for each job folder whose owning process is
    gone, SIGKILL the tofu process group it recorded (if that group's leader is still the same
    process) and remove the folder. Returns the job ids cleaned."""
    cleaned = []
    if not workdir.is_dir():
        return cleaned
    for folder in workdir.iterdir():
        owner_file = folder / OWNER_FILE
        if not owner_file.is_file():
            continue
        try:
            owner = json.loads(owner_file.read_text())
        except (OSError, ValueError):
            owner = {}
        if owner.get("pid") and _process_start(owner["pid"]) == owner.get("pid_start"):
            continue  # its process is alive: another worker on this host
        group = owner.get("group")
        if group and _process_start(group) == owner.get("group_start"):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(folder, ignore_errors=True)
        cleaned.append(folder.name)
    return cleaned


class JobManager:
    """Submits jobs, runs them (when this process is a worker), follows and cancels them.

    ``engine`` says how processes coordinate: :class:`LocalEngine` (default) runs every job on a
    thread here; :class:`RedisEngine` queues them for whichever worker (``execute``) takes them.
    The store is the source of truth for records and logs."""

    def __init__(
        self,
        store: Store,
        worker: SynthWorker | None,
        *,
        workdir: str | Path,
        state: dict[str, Any] | None = None,
        grace_seconds: float = 10.0,
        environ: dict[str, str] | None = None,
        heartbeat_seconds: float = 5.0,
        stale_after: float = 30.0,
        queue_timeout: float = 900.0,
        engine: LocalEngine | RedisEngine | None = None,
        toolchain: Toolchain | None = None,
        vault: SecretVault | None = None,
        plan_ttl: float = DEFAULT_TTL,
        catalog: Catalog | None = None,
    ) -> None:
        self.store = store
        self.worker = worker
        self.workdir = Path(workdir)
        self.state = state or {"kind": "local"}
        self.grace_seconds = grace_seconds
        self.owner = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"  # host/pid/instance: who runs a job
        self.heartbeat_seconds, self.stale_after, self.queue_timeout = heartbeat_seconds, stale_after, queue_timeout
        self.engine = engine or LocalEngine()
        self._stop = threading.Event()
        self.environ = dict(os.environ if environ is None else environ)
        self.toolchain = toolchain or Toolchain(plugin_cache=(self.workdir.parent / "plugin-cache").resolve())
        self.toolchain.prepare()
        self.access = TargetAccess.from_environment(self.environ)
        self.vault = vault or SecretVault(store.objects, key_from_environment(self.environ, self.workdir.parent, shared=False))
        self.plan_ttl = plan_ttl
        self.plans = PlanFiles(store.objects, self.vault.key)
        self.catalog = catalog or Catalog(store.objects)
        self._lock = threading.Lock()
        self._running: dict[str, Job] = {}  # the jobs this process runs, by id
        self._logs: dict[str, list[dict[str, Any]]] = {}  # their events, flushed to the store
        self._flushed: dict[str, float] = {}
        self._processes: dict[str, subprocess.Popen[str]] = {}
        self._cancelled: set[str] = set()
        self._lost: set[str] = set()  # jobs whose lease expired under them: stopped, never reported twice
        self.event_listeners: list[Callable[[Job, dict[str, Any]], object]] = []  # every event of every job
        self.finish_listeners: list[Callable[[Job], object]] = []  # every job, once over
        self.cleaned = sweep_leftovers(self.workdir)
        self.recover()
        threading.Thread(target=self._keep_alive, name="jobs-keep-alive", daemon=True).start()

    # Lifecycle ------------------------------------------------------------------------------
    def _alive(self, record: dict[str, Any]) -> bool:
        if record["id"] in self._running:
            return True
        if self.engine.shared:  # the lease is the heartbeat
            return self.engine.holder(lease_key(record["client"], record["instance"])) == record["id"]
        return record.get("owner") == self.owner or record.get("heartbeat_at", 0) >= time.time() - self.stale_after

    def recover(self) -> list[str]:
        """Queued or running jobs nobody runs any more (their lease expired, or in the data-folder mode
        no heartbeat for ``stale_after`` seconds) end ``interrupted``, with a final event after every
        event their clients saw, and the state lock their tofu may have left is removed.

        Runs at start and then regularly, in every process: a process never takes over a live job."""
        interrupted = []
        for record in self.store.active_jobs():
            if self._alive(record):
                continue
            if self.engine.shared and not self.engine.once_per(f"recover/{record['id']}", 60):
                continue  # another process is recovering it
            fresh = self.store.get_job(record["id"])  # read again: it may have ended since
            if fresh is None or fresh["status"] not in ACTIVE or self._alive(fresh):
                continue
            self._interrupt(Job.from_record(fresh))
            interrupted.append(fresh["id"])
        return interrupted

    def _interrupt(self, job: Job) -> None:
        stream = job_stream(job.id)
        events = {event["id"]: event for event in self.store.get_log(job.id)}
        events.update({event["id"]: event for event in self.engine.read(stream) or []})
        started = job.status == "running"
        job.status, job.finished_at = "interrupted", now()
        job.error = "the process running the job stopped" if started else f"no worker took the job within {self.queue_timeout:g} s"
        final = self.engine.append(stream, "status", "interrupted", keep=KEEP_EVENTS, start_after=max(events, default=0))
        events[final["id"]] = final
        self.store.put_job(job.record())
        self.store.put_log(job.id, [events[number] for number in sorted(events)])
        if started:
            self._release_lock(job, announce=False)
        self.engine.retire(stream)
        for listener in self.event_listeners:
            listener(job, final)
        for listener in self.finish_listeners:
            listener(job)

    def _keep_alive(self) -> None:
        """While jobs run here: act on cancel requests (from any process), renew their leases (and, in the
        data-folder mode, their records' heartbeats); now and then look for jobs nobody runs any more."""
        next_beat = next_recovery = time.monotonic()
        while not self._stop.wait(CANCEL_POLL_SECONDS):
            try:
                with self._lock:
                    running = list(self._running.values())
                for job in running:
                    if job.id not in self._cancelled and self.engine.cancel_requested(job.id):
                        self._cancel_here(job.id)
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat_seconds
                    for job in running:
                        job.heartbeat_at = time.time()
                        if job.id not in self._lost and not self.engine.renew(lease_key(job.client, job.instance), job.id, self.stale_after):
                            # Stalled past stale_after: another process may have ended the job and started
                            # the next one on the instance. Stop ours now.
                            LOG.warning("job %s: its lease on %s/%s expired; stopping it", job.id, job.client, job.instance)
                            with self._lock:
                                self._lost.add(job.id)
                            self._cancel_here(job.id)
                        if not self.engine.shared:
                            self._save(job)
                if time.monotonic() >= next_recovery:
                    next_recovery = time.monotonic() + self.stale_after / 2
                    self.recover()
            except Exception as error:  # noqa: BLE001 - a store or Redis hiccup must not stop the loop
                LOG.warning("job keep-alive: %s", error)

    def busy(self) -> int:
        """How many jobs this process runs now."""
        return len(self.running_ids())

    def running_ids(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def close(self) -> None:
        self._stop.set()

    def submit(
        self,
        client: str,
        instance: str,
        action: str,
        *,
        remove_instance: bool = False,
        by: str = "",
        plan: str | None = None,
        auto_approve: bool = False,
        refresh_only: bool = False,
        upgrade: dict[str, Any] | None = None,
    ) -> Job:
        """Queue a job: the instance's lease is taken (a :class:`Conflict` if another job holds it), the
        record and a first ``queued`` event are stored, the spec names its last job, then a worker gets it.

        An apply applies a reviewed plan (``plan``: the plan job's id, checked now and again before the
        engine runs: a :class:`StalePlan` names what moved) or, only when ``auto_approve`` asks for it,
        plans and applies in one step (recorded as such)."""
        if action not in ACTIONS:
            raise ValueError(f"action: {action!r} is not allowed; allowed: {', '.join(ACTIONS)}")
        if action == "apply" and (plan is None) == (not auto_approve):
            raise ValueError("apply: name the reviewed plan (plan: its job id) or ask for plan-and-apply in one step (auto_approve: true), not both")
        if action != "apply" and (plan is not None or auto_approve):
            raise ValueError(f"{action}: plan and auto_approve are allowed for apply only")
        if refresh_only and action != "plan":
            raise ValueError(f"{action}: refresh_only is allowed for plan only")
        if upgrade is not None and (action != "plan" or refresh_only):
            raise ValueError(f"{action}: an upgrade is planned first (a plan job), then its reviewed plan applied")
        spec = self.store.get_spec(client, instance)
        if spec is None:
            raise LookupError(f"instance {client}/{instance} does not exist")
        if plan is not None:
            upgrade = self.check_plan(client, instance, plan).get("upgrade")  # applying an upgrade's plan applies the upgrade
        job = Job(
            id=str(uuid.uuid4()), client=client, instance=instance, action=action, owner=self.owner, heartbeat_at=time.time(),
            remove_instance=remove_instance, requested_by=by, applies_plan=plan, auto_approved=auto_approve, refresh_only=refresh_only,
            upgrade=upgrade,
        )
        try:
            holder = self.engine.claim(lease_key(client, instance), job.id, self.queue_timeout)
        except Exception as error:  # nothing written yet: the caller may try again
            raise NotQueued(f"the job queue cannot be reached: {type(error).__name__}: {error}") from None
        if holder is not None:
            running = self.get(holder) or {"action": "?", "status": "starting"}
            raise Conflict(f"instance {client}/{instance} already has job {holder} ({running['action']}, {running['status']})")
        self._save(job)
        self._event(job, "status", "queued")
        with self._lock:
            self._logs.pop(job.id, None)
            self._flushed.pop(job.id, None)
        spec["jobs"] = (spec.get("jobs") or [])[-(HISTORY - 1):] + [job.id]  # the instance's history
        if by == DRIFT:  # a drift check never takes the place of the user's last job
            spec.update(drift_job=job.id)
        else:
            spec.update(last_job=job.id, updated_at=now())
        if remove_instance:
            spec["deleting"] = job.id
        self.store.put_spec(client, instance, spec)
        try:
            self.engine.dispatch(job.id, self.execute)
        except Exception as error:
            self._not_queued(job, error)
            raise NotQueued(f"job {job.id} could not be queued: {error}") from None
        return job

    def state_version(self, client: str, instance: str) -> dict[str, Any] | None:
        """The instance's state serial and lineage now (None: no state yet)."""
        if self.state.get("kind") == "s3":
            return state_version(self.store.objects.get(Store.state_key(client, instance)))
        path = Path(self._state_path(client, instance))
        return state_version(path.read_bytes() if path.is_file() else None)

    def check_plan(self, client: str, instance: str, plan_id: str) -> dict[str, Any]:
        """The plan job's record if its plan may be applied to the instance now; LookupError if there is no
        such plan for it, :class:`StalePlan` naming everything that moved since it was made."""
        record = self.get(plan_id)
        if record is None or record["client"] != client or record["instance"] != instance or record["action"] != "plan":
            raise LookupError(f"plan: {plan_id!r} is not a plan of {client}/{instance}; allowed: the id of a plan job of this instance")
        if record["status"] != "succeeded":
            raise StalePlan(f"plan {plan_id} is {record['status']}; allowed: a plan that succeeded")
        if not record.get("plan"):
            raise StalePlan(f"plan {plan_id} has no changes to apply")
        if record["plan"].get("applied_by"):
            raise StalePlan(f"plan {plan_id} cannot be applied: it was applied already (job {record['plan']['applied_by']}); make a new plan and review it")
        spec = self.store.get_spec(client, instance)
        if spec is None:
            raise LookupError(f"instance {client}/{instance} does not exist")
        reasons = stale_reasons(
            record["plan"], state=self.state_version(client, instance), spec=upgraded(spec, record.get("upgrade")), secrets=secrets_digest(self.vault.for_job(client, instance))
        )
        if record.get("upgrade"):
            reasons += moved_since_upgrade_planned(spec, record["upgrade"])
        if reasons:
            raise StalePlan(f"plan {plan_id} cannot be applied: {'; '.join(reasons)}; make a new plan and review it")
        if record.get("gate") and not passed(record["gate"]):
            raise GateBlocked(
                f"plan {plan_id} is blocked by its policy gate: {'; '.join(blocking_reasons(record['gate']))}; "
                "an admin may override a failing check with a written reason"
            )
        return record

    def override_gate(self, plan_id: str, check: str, reason: str, by: str) -> dict[str, Any]:
        """An admin's override of one failing check of a plan's gate, kept on the plan's record."""
        record = self.get(plan_id)
        if record is None or record["action"] != "plan" or not record.get("gate"):
            raise LookupError(f"job {plan_id} has no policy gate: it is not a plan with changes")
        record["gate"] = override(record["gate"], check, reason, by, now())
        self.store.put_job(record)
        return record["gate"]

    def budget(self, client: str) -> float | None:
        """The client's monthly budget in USD: set by an admin, else SPAWNIT_CLIENT_BUDGET_USD, else none."""
        settings = self.store.get_client_settings(client)
        if "monthly_budget_usd" in settings:
            return settings["monthly_budget_usd"]
        return amount(self.environ, "SPAWNIT_CLIENT_BUDGET_USD")

    def _others_cost(self, client: str, instance: str) -> float:
        total = 0.0
        for _, other in self.store.list_instances(client):
            spec = self.store.get_spec(client, other) if other != instance else None
            total += (spec or {}).get("monthly_cost_usd") or 0.0
        return total

    def plan_diff(self, job_id: str) -> dict[str, Any] | None:
        """A plan job's saved plan as a reviewer reads it (:func:`spawnit.plandiff.readable`), with its basis;
        None when the job saved no plan or its plan has expired and was removed."""
        record = self.get(job_id)
        if record is None or record["action"] != "plan" or not record.get("plan"):
            return None
        plan = self.plans.plan_json(record["client"], record["instance"], job_id)
        if plan is None:
            return None
        basis = {key: value for key, value in record["plan"].items() if key != "inputs"}
        return {"job": job_id, "client": record["client"], "instance": record["instance"], **basis, "gate": record.get("gate"), "diff": readable(plan)}

    def _not_queued(self, job: Job, error: Exception) -> None:
        """Never a lease without a dispatched job: the job ends failed and the instance is released."""
        job.status, job.finished_at, job.error = "failed", now(), f"not queued: {error}"
        self._save(job)
        spec = self.store.get_spec(job.client, job.instance)
        if spec is not None and spec.get("deleting") == job.id:  # a removal that never started
            del spec["deleting"]
            self.store.put_spec(job.client, job.instance, spec)
        try:
            self._event(job, "status", "failed")
        except Exception:  # noqa: BLE001 - the engine may be what failed; the record says it all
            pass
        try:
            self.engine.release(lease_key(job.client, job.instance), job.id)
        except Exception as release_error:  # noqa: BLE001 - the lease then expires with its queue timeout
            LOG.warning("job %s: lease not released: %s", job.id, release_error)

    def execute(self, job_id: str) -> None:
        """Run a queued job here (a worker's part). A job that is no longer queued, or whose lease has
        expired while it waited, is left alone: it ended already, or it is being marked interrupted."""
        record = self.store.get_job(job_id)
        if record is None or record["status"] != "queued":
            return
        job = Job.from_record(record)
        if not self.engine.renew(lease_key(job.client, job.instance), job.id, self.stale_after):
            return
        job.owner, job.heartbeat_at = self.owner, time.time()
        with self._lock:
            self._running[job.id] = job
            self._logs[job.id] = self.engine.read(job_stream(job.id)) or self.store.get_log(job.id)
            if self.engine.cancel_requested(job.id):
                self._cancelled.add(job.id)
        self._run(job)

    def wait(self, job_id: str, timeout: float | None = None) -> dict[str, Any] | None:
        """The job's record once it is over (None if it does not end within ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.get(job_id)
            if record is None or record["status"] in FINAL:
                return record
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.1 if job_id in self._running else 0.5)

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            job = self._running.get(job_id)
            if job is not None:
                return job.record()
        return self.store.get_job(job_id)

    def active_job(self, client: str, instance: str) -> dict[str, Any] | None:
        """The record of the job holding the instance, wherever it runs."""
        holder = self.engine.holder(lease_key(client, instance))
        record = self.get(holder) if holder else None
        return record if record is not None and record["status"] in ACTIVE else None

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask for the job to stop, wherever it runs; the process running it acts within a moment."""
        record = self.get(job_id)
        if record is None:
            raise LookupError(f"job {job_id} does not exist")
        if record["status"] in FINAL:
            raise Conflict(f"job {job_id} is already {record['status']}")
        self.engine.request_cancel(job_id)
        if job_id in self._running:
            self._cancel_here(job_id)
        return self.get(job_id) or record

    def _cancel_here(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)
            process = self._processes.get(job_id)
        if process is not None:
            self._terminate(process)

    def snapshot(self, job_id: str) -> list[dict[str, Any]]:
        """The events so far, without waiting."""
        with self._lock:
            log = self._logs.get(job_id)
            if log is not None:
                return list(log)
        live = self.engine.read(job_stream(job_id))
        return live if live else self.store.get_log(job_id)

    async def stream(self, job_id: str, last_id: int = 0, *, poll: float = 0.5) -> AsyncIterator[dict[str, Any]]:
        """Every event after ``last_id`` until the job's final status: from the store for what the live
        stream no longer holds, then live from the engine. On the event loop: an idle subscriber holds
        no thread."""
        stream = job_stream(job_id)
        live = await asyncio.to_thread(self.engine.read, stream, last_id)
        if live is None:  # no live stream here: the job ended long ago, or (data-folder mode) runs elsewhere
            async for event in self._from_store(job_id, last_id, poll):
                yield event
            return
        if live and live[0]["id"] > last_id + 1:  # trimmed from the live stream: the store has them
            for event in await asyncio.to_thread(self.store.get_log, job_id):
                if last_id < event["id"] < live[0]["id"]:
                    last_id = event["id"]
                    yield event
        async for event in self.engine.follow(stream, last_id):
            if event is None:
                if await asyncio.to_thread(self.engine.read, stream, last_id) is None:  # retired meanwhile
                    async for rest in self._from_store(job_id, last_id, poll):
                        yield rest
                    return
                continue
            last_id = event["id"]
            yield event
            if event["event"] == "status" and event["data"] in FINAL:
                return

    async def _from_store(self, job_id: str, last_id: int, poll: float) -> AsyncIterator[dict[str, Any]]:
        """The stored log, read again every ``poll`` seconds until its final status event (the record
        says the job ended a moment before its last event is written: a few more reads are allowed)."""
        reads_after_end = 0
        while True:
            for event in await asyncio.to_thread(self.store.get_log, job_id):
                if event["id"] > last_id:
                    last_id = event["id"]
                    yield event
                    if event["event"] == "status" and event["data"] in FINAL:
                        return
            record = await asyncio.to_thread(self.store.get_job, job_id)
            if record is None:
                return
            if record["status"] in FINAL:
                reads_after_end += 1
                if reads_after_end > 10:
                    return
            await asyncio.sleep(poll)

    # Running --------------------------------------------------------------------------------
    def _run(self, job: Job) -> None:
        folder = self.workdir / job.id
        code: int | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._write_owner(folder)
            spec = self.store.get_spec(job.client, job.instance)
            if spec is None:
                raise LookupError(f"instance {job.client}/{job.instance} was removed")
            spec = upgraded(spec, job.upgrade)
            job.status, job.started_at = "running", now()
            job.engine = self._engine_name()
            self._save(job)
            self._event(job, "status", "running")
            if job.id not in self._cancelled:
                target_environ = self.access.for_job(spec["target"], spec["parameters"], folder)  # refused before anything runs
                target_environ |= self.toolchain.target_environment(spec["target"])
                stack_dir = self.worker.synth(
                    **synth_source(self.service_of(spec)),
                    parameters={**spec["parameters"], "target": spec["target"]},
                    client=job.client,
                    instance=job.instance,
                    outdir=str(folder / "synth"),
                    state=self._state_for(job),
                    **self.toolchain.synth_options(),
                )
                self._event(job, "line", f"synthesized {stack_dir.name}")
                run_dir = folder / "run"
                shutil.copytree(stack_dir, run_dir)
                code = self._engine_steps(job, folder, run_dir, target_environ)
        except (SynthError, CredentialError, StalePlan, GateBlocked) as error:
            job.error = str(error)
        except Exception as error:  # noqa: BLE001 - a job never takes the process down
            job.error = f"{type(error).__name__}: {error}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # before the job is seen finished
        self._finish(job, code)

    def _engine_name(self) -> str | None:
        try:
            engine = find_engine(self.environ)
        except Exception:  # noqa: BLE001 - the job itself reports a missing engine
            return None
        return f"{engine.name} {engine.version}"

    def _engine_steps(self, job: Job, folder: Path, run_dir: Path, target_environ: dict[str, str]) -> int:
        """init (with the instance's lock file, kept again after), then the action and what it reads back."""
        lock_key = Store.instance_prefix(job.client, job.instance) + LOCK_FILE
        kept_lock = self.store.objects.get(lock_key)
        if kept_lock is not None:
            (run_dir / LOCK_FILE).write_bytes(kept_lock)
        cli_config = folder / "cli.tfrc"
        cli_config.write_text(self.toolchain.cli_config())
        environ = self.toolchain.environment(self.environ, cli_config, self.vault.for_job(job.client, job.instance), target_environ)
        init = ["init", "-input=false", "-no-color"]
        backend_config = self.toolchain.backend_config()
        if backend_config is not None and self.state.get("kind") == "s3":
            init.append(f"-backend-config={write_private(folder / 'backend.hcl', backend_config)}")
        code = self._tofu(job, run_dir, init, environ)
        if code != 0 or job.id in self._cancelled:
            return code
        lock = run_dir / LOCK_FILE
        written = lock.read_bytes() if lock.is_file() else None
        if written is not None and written != kept_lock:
            self.store.objects.put(lock_key, written, "text/plain")
            self._event(job, "line", f"provider lock file {'updated' if kept_lock else 'kept'} beside the state")
        if job.applies_plan:
            self._reviewed_plan(job, run_dir)
        elif job.auto_approved:  # plan and apply in one step: the gate still judges the plan
            code = self._tofu(job, run_dir, self._arguments(replace(job, action="plan")), environ)
            if code not in (0, 2) or job.id in self._cancelled:
                return code if code != 0 else 1
            if code == 2:
                plan = self._capture(run_dir, ["show", "-json", "-no-color", PLAN_FILE], environ)
                if plan is None:
                    raise StalePlan("the plan could not be read back (show -json failed); nothing was applied")
                self._save_plan(job, run_dir, plan, folder)
                if not passed(job.gate):
                    raise GateBlocked(f"blocked by the policy gate: {'; '.join(blocking_reasons(job.gate))}; nothing was applied")
        document = json.loads((run_dir / "cdk.tf.json").read_text()) if job.action == "apply" else None
        if document is not None:
            job.monthly_cost_usd = monthly_cost(document, run_dir.name)
        code = self._tofu(job, run_dir, self._arguments(job), environ)
        if job.id in self._cancelled:
            return code
        if job.action == "plan" and code == 2:
            plan = self._capture(run_dir, ["show", "-json", "-no-color", PLAN_FILE], environ)
            if plan is not None:
                job.changed, job.outputs = plan_changes(plan), planned_outputs(plan)
                self._save_plan(job, run_dir, plan, folder)
        elif job.action == "apply" and code == 0:
            job.outputs = public_outputs(self._capture(run_dir, ["output", "-json", "-no-color"], environ) or {})
            job.footprint = stack_footprint(document, run_dir.name)
        return code

    def _save_plan(self, job: Job, run_dir: Path, plan: dict[str, Any], folder: Path) -> None:
        """Keep the plan for review and apply: its files in the store, its basis in the job's record;
        then judge it (the policy gate, :mod:`.gate`)."""
        plan_file = (run_dir / PLAN_FILE).read_bytes()
        spec = upgraded(self.store.get_spec(job.client, job.instance) or {}, job.upgrade)
        diff = readable(plan)
        basis = PlanBasis(
            sha256=digest(plan_file),
            state=self.state_version(job.client, job.instance),
            config_digest=digest((run_dir / "cdk.tf.json").read_bytes()),
            inputs=inputs_of(spec),
            secrets_digest=secrets_digest(self.vault.for_job(job.client, job.instance)),
            made_by=job.requested_by,
            made_at=now(),
            expires_at=expiry(self.plan_ttl),
            summary=diff["summary"],
            refresh_only=job.refresh_only,
            causes=[list(cause) for cause in drift_causes(diff)],
        )
        self.plans.prune(job.client, job.instance)
        self.plans.save(job.client, job.instance, job.id, plan_file, plan, basis.expires_at)
        job.plan = basis.record()
        self._event(job, "line", f"plan saved for review: {basis.summary} (sha256 {basis.sha256[:12]}, expires {basis.expires_at})")
        plan_path = write_private(folder / "plan.json", json.dumps(plan))  # holds secrets in clear: the job's folder only
        security = security_check(Path(plan_path), self.environ)
        after = monthly_cost(json.loads((run_dir / "cdk.tf.json").read_text()), run_dir.name)
        cost = cost_check(after, spec.get("monthly_cost_usd") or 0.0, self._others_cost(job.client, job.instance), self.budget(job.client))
        job.gate = {"checks": [security, cost], "overrides": []}
        job.gate["passed"] = passed(job.gate)
        verdict = "passed" if job.gate["passed"] else "blocked: " + "; ".join(blocking_reasons(job.gate))
        self._event(job, "line", f"policy gate {verdict}")

    def _reviewed_plan(self, job: Job, run_dir: Path) -> None:
        """Put the reviewed plan file in ``run_dir`` after checking, here where the engine runs, that nothing
        moved since and that the file and the configuration are the ones reviewed."""
        record = self.check_plan(job.client, job.instance, job.applies_plan)
        basis = record["plan"]
        configuration = digest((run_dir / "cdk.tf.json").read_bytes())
        if configuration != basis["config_digest"]:
            raise StalePlan(f"plan {job.applies_plan} cannot be applied: the synthesized configuration changed (digest {basis['config_digest'][:12]} -> {configuration[:12]}); make a new plan and review it")
        plan_file = self.plans.plan_file(job.client, job.instance, job.applies_plan)
        if plan_file is None:
            raise StalePlan(f"plan {job.applies_plan} cannot be applied: its plan file is no longer in the store")
        if digest(plan_file) != basis["sha256"]:
            raise StalePlan(f"plan {job.applies_plan} cannot be applied: its plan file is not the one reviewed (sha256 {basis['sha256'][:12]} -> {digest(plan_file)[:12]})")
        (run_dir / PLAN_FILE).write_bytes(plan_file)
        if record.get("gate", {}).get("overrides"):
            self._event(job, "line", "policy gate overridden: " + "; ".join(f"{item['check']} by {item['by']}: {item['reason']}" for item in record["gate"]["overrides"]))
        self._event(job, "line", f"applying reviewed plan {job.applies_plan} (sha256 {basis['sha256'][:12]}): {basis['summary']}")

    def _capture(self, cwd: Path, arguments: list[str], environ: dict[str, str]) -> Any:
        """The JSON an engine command prints (``show -json``, ``output -json``), never streamed as events:
        a plan's JSON holds sensitive values in clear. None if it fails or prints no JSON."""
        try:
            result = subprocess.run([find_tofu(self.environ), *arguments], cwd=cwd, env=environ, capture_output=True, text=True, timeout=CAPTURE_TIMEOUT)
            return json.loads(result.stdout) if result.returncode == 0 else None
        except (OSError, ValueError, subprocess.TimeoutExpired) as error:
            LOG.warning("%s: %s", " ".join(arguments[:2]), type(error).__name__)
            return None

    def _write_owner(self, folder: Path, group: int | None = None) -> None:
        """Who owns this work folder (this process, and tofu's process group once started), for
        :func:`sweep_leftovers` after a crash."""
        owner = {"pid": os.getpid(), "pid_start": _process_start(os.getpid())}
        if group is not None:
            owner |= {"group": group, "group_start": _process_start(group)}
        (folder / OWNER_FILE).write_text(json.dumps(owner))

    @staticmethod
    def _arguments(job: Job) -> list[str]:
        if job.action == "plan":
            return ["plan", "-input=false", "-no-color", "-detailed-exitcode", *(["-refresh-only"] if job.refresh_only else []), f"-out={PLAN_FILE}"]
        if job.applies_plan or job.auto_approved:  # exactly the saved plan: the engine takes no other input
            return ["apply", "-input=false", "-no-color", PLAN_FILE]
        return [job.action, "-input=false", "-no-color", "-auto-approve"]

    def _state_path(self, client: str, instance: str) -> str:
        return str(Path(self.state.get("root", self.workdir / "state")) / Store.state_key(client, instance))

    def _state_for(self, job: Job) -> dict[str, Any]:
        key = Store.state_key(job.client, job.instance)
        if self.state.get("kind") == "s3":
            return {**self.state, "key": key}
        return {"kind": "local", "path": self._state_path(job.client, job.instance)}

    def _tofu(self, job: Job, cwd: Path, arguments: list[str], environ: dict[str, str]) -> int:
        binary = find_tofu(self.environ)
        self._event(job, "line", f"$ {Path(binary).name} {' '.join(arguments)}")
        process = subprocess.Popen(
            [binary, *arguments],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=environ,
            start_new_session=True,  # its own process group: cancelling reaches tofu's providers too
            preexec_fn=_PDEATHSIG,
        )
        self._write_owner(cwd.parent, group=process.pid)
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
        """SIGTERM to the engine, SIGKILL to its whole process group (providers too) after the grace
        period (in the background). Only the engine gets SIGTERM: it stops gracefully, asking its
        providers to stop, writes the state and releases the lock; a provider signalled directly
        would die under it mid-call."""

        def stop() -> None:
            try:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=self.grace_seconds)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        threading.Thread(target=stop, daemon=True).start()

    def _finish(self, job: Job, code: int | None) -> None:
        """Settle the job: its outcome, the listeners (drift and deployment status on the spec), the
        instance's removal after a destroy that asked for it; then the final record and the lease's
        release, seen together; then the final event. A job whose lease expired under it ends
        ``interrupted`` unless another process has already said so (then nothing more is written; its
        state lock is left to whoever holds the instance now)."""
        if job.id in self._lost:
            stored = self.store.get_job(job.id)
            if stored is not None and stored["status"] in FINAL:
                with self._lock:
                    del self._running[job.id]
                    self._logs.pop(job.id, None)
                    self._flushed.pop(job.id, None)
                    self._cancelled.discard(job.id)
                    self._lost.discard(job.id)
                return
            self._cancelled.discard(job.id)
            job.error = f"its lease expired (no renewal for {self.stale_after:g} s): stopped"
        cancelled = job.id in self._cancelled
        if cancelled:
            self._release_lock(job)
        # The outcome is settled on a copy: until the final record is saved, readers of this process
        # (get, wait) still see the job running, so none sees it ended before its listeners have run.
        outcome = replace(job, exit_code=code, finished_at=now())
        if job.id in self._lost:
            outcome.status = "interrupted"
        elif cancelled:
            outcome.status = "cancelled"
        elif code == 0 or (job.action == "plan" and code == 2):
            outcome.status = "succeeded"
            if job.action == "plan":
                outcome.changes = code == 2
        else:
            outcome.status = "failed"
            outcome.error = job.error or f"tofu exited with {code}"
        if job.upgrade and outcome.status == "succeeded" and (job.action == "apply" or (job.action == "plan" and not outcome.changes)):
            self._upgraded(job)  # applied, or nothing to apply: the instance is on its new version now
        if job.action == "apply" and outcome.status == "succeeded":
            self.vault.deployed(job.client, job.instance)  # rotated secrets are now the deployed ones
            reviewed = self.store.get_job(job.applies_plan) if job.applies_plan else None
            if reviewed is not None and reviewed.get("plan"):  # a plan is applied once
                reviewed["plan"]["applied_by"] = job.id
                self.store.put_job(reviewed)
        for listener in self.finish_listeners:
            try:
                listener(outcome)
            except Exception as error:  # noqa: BLE001 - a listener's failure must not leave the job running
                LOG.warning("job %s: finish listener: %s", job.id, error)
        if outcome.remove_instance and outcome.status == "succeeded":
            self.store.delete_instance(job.client, job.instance)
        with self._lock:
            self._save(outcome)
            self.engine.release(lease_key(job.client, job.instance), job.id)
            del self._running[job.id]
            self._cancelled.discard(job.id)
            self._lost.discard(job.id)
        self._event(outcome, "status", outcome.status)
        with self._lock:
            events = self._logs.pop(job.id, [])
            self._flushed.pop(job.id, None)
        self.store.put_log(job.id, events)
        self.engine.retire(job_stream(job.id))

    def service_of(self, spec: Mapping[str, Any]) -> type[CatalogService]:
        """The service class an instance is synthesized from: its own version's template, checked against
        the hash recorded when it was created (a template changed since is refused, never used)."""
        service = self.catalog.get(spec["service"], instance_version(spec))
        if spec.get("service_sha256") and service.sha256 != spec["service_sha256"]:
            raise SynthError(
                f"service {spec['service']} {instance_version(spec)}: its template's hash is {service.sha256} now, not {spec['service_sha256']} "
                "as when the instance was made; a published version never changes: publish the change as a new version and upgrade"
            )
        return service

    def _upgraded(self, job: Job) -> None:
        spec = self.store.get_spec(job.client, job.instance)
        if spec is None or job.upgrade is None:
            return
        spec.update(upgraded(spec, job.upgrade), updated_at=now())
        spec.pop("upgrade_planned", None)
        self.store.put_spec(job.client, job.instance, spec)
        self._event(job, "line", f"instance moved to {spec['service']} {spec['service_version']} (from {job.upgrade['from']['version']})")

    def _release_lock(self, job: Job, *, announce: bool = True) -> None:
        """A killed tofu leaves its lock beside the state: remove it. S3 (``use_lockfile``): ``<key>.tflock``
        in the bucket the store uses; local state: ``.<state file>.lock.info`` in the state's folder."""
        if self.state.get("kind") == "s3":
            self.store.objects.delete(Store.state_key(job.client, job.instance) + ".tflock")
        else:
            state = Path(self._state_for(job)["path"])
            state.with_name(f".{state.name}.lock.info").unlink(missing_ok=True)
        if announce:
            self._event(job, "line", "state lock released")

    # Records --------------------------------------------------------------------------------
    def _save(self, job: Job) -> None:
        self.store.put_job(job.record())

    def _event(self, job: Job, kind: str, data: Any) -> None:
        """Append to the job's stream (one sequence for every process), tell the listeners, and write the
        log to the store on each status change and at most every ``FLUSH_SECONDS`` otherwise."""
        with self._lock:
            log = self._logs.setdefault(job.id, [])
        event = self.engine.append(job_stream(job.id), kind, data, keep=KEEP_EVENTS, start_after=log[-1]["id"] if log else 0)
        with self._lock:
            log.append(event)
        for listener in self.event_listeners:
            listener(job, event)
        if kind == "status" or time.monotonic() - self._flushed.get(job.id, 0.0) > FLUSH_SECONDS:
            self.store.put_log(job.id, list(log))
            self._flushed[job.id] = time.monotonic()
