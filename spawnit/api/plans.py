"""Saved plans: what a reviewer saw is exactly what gets applied.

A plan job saves the engine's binary plan (``plan -out``) and its JSON (``show -json``) in the store,
encrypted with the vault's key (both hold the instance's secrets in clear), under
``clients/<client>/<instance>/plans/<job id>/``, with a small unencrypted ``meta.json`` (its expiry).
The job record keeps what the plan was made against (:class:`PlanBasis`): the plan file's SHA-256, the
state's serial and lineage, the synthesized configuration's digest, the instance's inputs (service,
target, parameters, SpawnIt's version) and a digest of its secrets, who asked for it and when it expires.

An apply names a plan; before it starts, and again in the worker before the engine runs, the plan is
checked against the instance as it is now (:func:`stale_reasons`): every difference is named (the state
moved from serial 4 to 6, the parameter ``memory_mb`` changed from 512 to 1024, a secret was rotated,
the plan expired...). The worker also checks the plan file's hash and the configuration's digest, then
applies exactly that file (``apply PLANFILE``); the engine itself refuses a plan whose state has moved.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Mapping

from cryptography.fernet import InvalidToken, MultiFernet

from .. import __version__
from .settings import SettingError, duration
from .store import ObjectStore, Store

DEFAULT_TTL = 24 * 3600.0


class PlanError(ValueError):
    """A plan setting that cannot be used (the CLI answers with exit 2)."""


def ttl_from_environment(environ: Mapping[str, str]) -> float:
    """``SPAWNIT_PLAN_TTL``: how long a saved plan may be applied, e.g. ``24h`` (default), ``90m``, ``3600``."""
    try:
        return duration(environ, "SPAWNIT_PLAN_TTL", DEFAULT_TTL, minimum=60, maximum=30 * 86400)
    except SettingError as error:
        raise PlanError(str(error)) from None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def secrets_digest(secrets: Mapping[str, str]) -> str:
    """One digest of the values a job hands the engine: a rotation changes it, nothing of a value leaks."""
    return digest(json.dumps(dict(sorted(secrets.items()))).encode())


def inputs_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What the instance is synthesized from, besides its secrets."""
    return {"service": spec["service"], "service_version": spec.get("service_version"), "service_sha256": spec.get("service_sha256"),
            "target": spec["target"], "parameters": spec["parameters"], "spawnit": __version__}


def state_version(state: bytes | None) -> dict[str, Any] | None:
    """The state's serial and lineage (None: no state yet)."""
    if not state:
        return None
    try:
        document = json.loads(state)
    except ValueError:
        return None
    return {"serial": document.get("serial"), "lineage": document.get("lineage")}


@dataclass
class PlanBasis:
    """What a saved plan was made against, kept in the plan job's record (``plan``)."""

    sha256: str
    state: dict[str, Any] | None
    config_digest: str
    inputs: dict[str, Any]
    secrets_digest: str
    made_by: str
    made_at: str
    expires_at: str
    summary: str
    refresh_only: bool = False  # a plan that only accepts the cloud's values into the state
    causes: list[list[str]] | None = None  # (resource type, attribute) pairs it changes or found drifted

    def record(self) -> dict[str, Any]:
        return asdict(self)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def expiry(ttl: float, now: float | None = None) -> str:
    return _iso((time.time() if now is None else now) + ttl)


def _describe_state(state: dict[str, Any] | None) -> str:
    return "no state" if state is None else f"serial {state.get('serial')}"


def stale_reasons(
    basis: Mapping[str, Any],
    *,
    state: dict[str, Any] | None,
    spec: Mapping[str, Any],
    secrets: str,
    now: float | None = None,
) -> list[str]:
    """Everything that moved since the plan was made, each named; [] when it may be applied as it is."""
    reasons = []
    if _epoch(basis["expires_at"]) <= (time.time() if now is None else now):
        reasons.append(f"the plan expired at {basis['expires_at']} (SPAWNIT_PLAN_TTL)")
    planned = basis.get("state")
    if planned != state:
        if planned and state and planned.get("lineage") != state.get("lineage"):
            reasons.append(f"the state was replaced (lineage {planned.get('lineage')} -> {state.get('lineage')})")
        elif planned and state:
            reasons.append(f"the state moved (serial {planned.get('serial')} -> {state.get('serial')})")
        else:
            reasons.append(f"the state moved ({_describe_state(planned)} -> {_describe_state(state)})")
    before, now_inputs = basis["inputs"], inputs_of(spec)
    for field in ("service", "service_version", "service_sha256", "target", "spawnit"):
        if before.get(field) != now_inputs[field]:
            name = {"spawnit": "SpawnIt's version", "service_version": "the service's version", "service_sha256": "the service template's hash"}.get(field, field)
            reasons.append(f"{name} changed ({before.get(field)} -> {now_inputs[field]})")
    old, new = before.get("parameters", {}), now_inputs["parameters"]
    for name in sorted(set(old) | set(new)):
        if old.get(name) != new.get(name):
            reasons.append(f"parameter {name} changed ({json.dumps(old.get(name))} -> {json.dumps(new.get(name))})")
    if basis.get("secrets_digest") != secrets:
        reasons.append("a secret was rotated or changed")
    return reasons


class PlanFiles:
    """The saved plans' files in the store, encrypted with the vault's key."""

    def __init__(self, objects: ObjectStore, key: MultiFernet) -> None:
        self.objects, self.key = objects, key

    @staticmethod
    def prefix(client: str, instance: str, job_id: str | None = None) -> str:
        return Store.instance_prefix(client, instance) + "plans/" + (f"{job_id}/" if job_id else "")

    def save(self, client: str, instance: str, job_id: str, plan_file: bytes, plan_json: dict[str, Any], expires_at: str) -> None:
        prefix = self.prefix(client, instance, job_id)
        self.objects.put(prefix + "tfplan", self.key.encrypt(plan_file))
        self.objects.put(prefix + "plan.json", self.key.encrypt(json.dumps(plan_json).encode()))
        self.objects.put(prefix + "meta.json", json.dumps({"expires_at": expires_at}).encode(), "application/json")

    def _read(self, key: str) -> bytes | None:
        data = self.objects.get(key)
        if data is None:
            return None
        try:
            return self.key.decrypt(data)
        except InvalidToken:
            return None

    def plan_file(self, client: str, instance: str, job_id: str) -> bytes | None:
        return self._read(self.prefix(client, instance, job_id) + "tfplan")

    def plan_json(self, client: str, instance: str, job_id: str) -> dict[str, Any] | None:
        data = self._read(self.prefix(client, instance, job_id) + "plan.json")
        return json.loads(data) if data is not None else None

    def prune(self, client: str, instance: str, now: float | None = None) -> list[str]:
        """Remove the instance's expired plans; returns their job ids."""
        now = time.time() if now is None else now
        removed = []
        keys = self.objects.list(self.prefix(client, instance))
        for key in keys:
            if not key.endswith("/meta.json"):
                continue
            try:
                expires = _epoch(json.loads(self.objects.get(key) or b"{}")["expires_at"])
            except (ValueError, KeyError, TypeError):
                continue
            if expires <= now:
                job_prefix = key.removesuffix("meta.json")
                for other in keys:
                    if other.startswith(job_prefix):
                        self.objects.delete(other)
                removed.append(job_prefix.rstrip("/").rsplit("/", 1)[1])
        return removed
