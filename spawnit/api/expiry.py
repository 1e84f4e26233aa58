"""Instances that expire: a time to live, warnings before it ends, and a destroy when it does.

An instance may carry ``expires_at`` (set at creation or later). Limits come from the configuration:
the server's ``SPAWNIT_EXPIRY_DEFAULT_HOURS`` / ``SPAWNIT_EXPIRY_MAX_HOURS``, overridden per client and
per service by the client's policy (``settings/clients/<client>.json``, set by an admin). A default
applies when a creation names no expiry; a maximum bounds every expiry set (from the moment it is set)
and means an instance may not go without one.

Every replica sweeps every ``interval`` seconds; the engine's claims make each warning (2 days, 2 hours,
30 minutes before) and each expiry's destroy happen once across replicas. A destroy goes through the
normal queue and the instance's lease: an instance with a running job is left alone and retried at the
next sweep, never destroyed beneath it. An instance whose expiry destroy failed is not retried until
its expiry changes (the failure is an event, a record and a notification).
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .jobs import Conflict, NotQueued

LOG = logging.getLogger("spawnit.expiry")
EXPIRY = "expiry"  # requested_by of the destroy an expiry starts
WARNINGS = (("2d", timedelta(days=2)), ("2h", timedelta(hours=2)), ("30m", timedelta(minutes=30)))
MAX_HOURS = 24 * 365  # no limit may be set beyond a year


class ExpiryError(ValueError):
    """An expiry or a limit that is not allowed; the message names the field, the value and the bound."""


class ExpirySettingsError(ValueError):
    """A bad SPAWNIT_EXPIRY_* setting of the server, naming the variable."""


@dataclass(frozen=True)
class Limits:
    default_hours: float | None = None
    max_hours: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {"default_hours": self.default_hours, "max_hours": self.max_hours}


def server_limits(environ: Mapping[str, str] | None = None) -> Limits:
    environ = os.environ if environ is None else environ
    values = {}
    for name, field in (("SPAWNIT_EXPIRY_DEFAULT_HOURS", "default_hours"), ("SPAWNIT_EXPIRY_MAX_HOURS", "max_hours")):
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[field] = float(raw)
        except ValueError:
            raise ExpirySettingsError(f"{name}: {raw!r} is not allowed; allowed: a number of hours, more than 0, at most {MAX_HOURS}") from None
        if not 0 < values[field] <= MAX_HOURS:
            raise ExpirySettingsError(f"{name}: {raw!r} is not allowed; allowed: a number of hours, more than 0, at most {MAX_HOURS}")
    limits = Limits(**values)
    if limits.default_hours and limits.max_hours and limits.default_hours > limits.max_hours:
        raise ExpirySettingsError(f"SPAWNIT_EXPIRY_DEFAULT_HOURS: {limits.default_hours:g} is over SPAWNIT_EXPIRY_MAX_HOURS ({limits.max_hours:g}); allowed: at most the maximum")
    return limits


def check_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    """A client's expiry policy as an admin sets it: ``{default_hours, max_hours, services: {name: {...}}}``."""
    from ..services import all_services

    def limits(where: str, values: Mapping[str, Any]) -> dict[str, float | None]:
        unknown = sorted(set(values) - {"default_hours", "max_hours"})
        if unknown:
            raise ExpiryError(f"{where}{unknown[0]}: not a field of an expiry policy; allowed: default_hours, max_hours")
        checked = {}
        for field in ("default_hours", "max_hours"):
            value = values.get(field)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_HOURS):
                raise ExpiryError(f"{where}{field}: {value!r} is not allowed; allowed: a number of hours, more than 0, at most {MAX_HOURS}, or null")
            checked[field] = float(value) if value is not None else None
        if checked["default_hours"] and checked["max_hours"] and checked["default_hours"] > checked["max_hours"]:
            raise ExpiryError(f"{where}default_hours: {checked['default_hours']:g} is over max_hours ({checked['max_hours']:g}); allowed: at most the maximum")
        return checked

    services = policy.get("services") or {}
    known = all_services()
    for name in services:
        if name not in known:
            raise ExpiryError(f"services.{name}: not in the catalog; allowed: {', '.join(known)}")
    return {**limits("", {k: v for k, v in policy.items() if k != "services"}), "services": {name: limits(f"services.{name}.", values) for name, values in sorted(services.items())}}


def effective_limits(server: Limits, policy: Mapping[str, Any], service: str) -> Limits:
    """The limits for one service of one client: the service's own, else the client's, else the server's."""
    own = (policy.get("services") or {}).get(service) or {}

    def pick(field: str) -> float | None:
        for source in (own, policy):
            if source.get(field) is not None:
                return source[field]
        return getattr(server, field)

    return Limits(pick("default_hours"), pick("max_hours"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ExpiryError(f"expires_at: {value[:40]!r} is not allowed; allowed: an ISO 8601 time such as 2026-12-24T18:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def resolve(expires_at: str | None, expires_in_hours: float | None, limits: Limits, now: datetime, *, creating: bool) -> str | None:
    """The expiry to store: the one asked (a time, or hours from now), else the default at creation;
    refused when past, beyond the maximum, or absent while a maximum applies."""
    if expires_at is not None and expires_in_hours is not None:
        raise ExpiryError("expires_at, expires_in_hours: give one; allowed: a time, or hours from now")
    if expires_in_hours is not None:
        if not 0 < expires_in_hours <= MAX_HOURS:
            raise ExpiryError(f"expires_in_hours: {expires_in_hours!r} is not allowed; allowed: more than 0, at most {MAX_HOURS}")
        moment: datetime | None = now + timedelta(hours=expires_in_hours)
    elif expires_at is not None:
        moment = parse(expires_at)
        if moment <= now:
            raise ExpiryError(f"expires_at: {expires_at!r} is not allowed; allowed: a time after now ({iso(now)})")
    elif creating and limits.default_hours:
        moment = now + timedelta(hours=limits.default_hours)
    else:
        moment = None
    if limits.max_hours is not None:
        latest = now + timedelta(hours=limits.max_hours)
        if moment is None:
            raise ExpiryError(f"expires_at: an expiry is required here; allowed: a time before {iso(latest)} (at most {limits.max_hours:g} hours from now)")
        if moment > latest + timedelta(seconds=1):
            field = "expires_in_hours" if expires_in_hours is not None else "expires_at"
            asked = f"{expires_in_hours:g}" if expires_in_hours is not None else repr(iso(moment))
            raise ExpiryError(f"{field}: {asked} is not allowed; allowed: at most {limits.max_hours:g} hours from now (before {iso(latest)})")
    return iso(moment) if moment else None


class ExpiryMonitor:
    """Sweeps the instances with an expiry: warnings, then the destroy. ``sweep(now)`` is the whole
    behaviour (tests call it with the time they choose); ``start()`` runs it every ``interval`` seconds."""

    def __init__(
        self,
        store: Any,
        jobs: Any,
        *,
        notify: Callable[[str, str, dict[str, Any]], None],
        record: Callable[..., None],
        interval: float = 60.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store, self.jobs, self.notify, self.record = store, jobs, notify, record
        self.interval, self.clock = interval, clock or (lambda: datetime.now(UTC))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self, now: datetime | None = None) -> dict[str, list[str]]:
        """One sweep: what this replica did, ``{"warned": ["acme/x 2h"], "destroying": ["acme/y"]}``."""
        now = now or self.clock()
        done: dict[str, list[str]] = {"warned": [], "destroying": []}
        for client, instance in self.store.list_instances():
            spec = self.store.get_spec(client, instance) or {}
            if not spec.get("expires_at") or spec.get("deleting"):
                continue
            expires = parse(spec["expires_at"])
            if now >= expires:
                if self._destroy(client, instance, spec, now):
                    done["destroying"].append(f"{client}/{instance}")
                continue
            crossed = [label for label, before in WARNINGS if now >= expires - before]
            if crossed and self._warn(client, instance, spec, crossed[-1], crossed):
                done["warned"].append(f"{client}/{instance} {crossed[-1]}")
        return done

    def _warn(self, client: str, instance: str, spec: dict[str, Any], label: str, crossed: list[str]) -> bool:
        """The nearest warning crossed, once across replicas; farther ones crossed at the same time are
        skipped (an instance created to live one hour gets the 30-minute warning only)."""
        sent = set(spec.get("expiry_warnings") or [])
        if label in sent:
            return False
        key = f"expiry-warning/{client}/{instance}/{spec['expires_at']}/{label}"
        if self.jobs.engine.claim(key, uuid.uuid4().hex, 3 * 24 * 3600) is not None:
            return False  # another replica (or an earlier sweep) sent it
        spec = self.store.get_spec(client, instance) or spec
        spec["expiry_warnings"] = sorted(sent | set(crossed))
        self.store.put_spec(client, instance, spec)
        data = {"instance": instance, "expires_at": spec["expires_at"], "in": label}
        self.notify(client, "expiry.warning", data)
        self.record("expiry.warning", "succeeded", client=client, instance=instance, expires_at=spec["expires_at"])
        return True

    def _destroy(self, client: str, instance: str, spec: dict[str, Any], now: datetime) -> bool:
        if spec.get("expiry_job"):
            return False  # this expiry's destroy ran and failed: an operator decides (a new expiry retries)
        key = f"expiry-destroy/{client}/{instance}/{spec['expires_at']}"
        holder = uuid.uuid4().hex  # claims are re-entrant for one holder: each attempt is its own
        if self.jobs.engine.claim(key, holder, 7 * 24 * 3600) is not None:
            return False  # another replica (or an earlier sweep) started it
        try:
            job = self.jobs.submit(client, instance, "destroy", remove_instance=True, by=EXPIRY)
        except Conflict:  # a job is running on it: never beneath it; the next sweep tries again
            self.jobs.engine.release(key, holder)
            return False
        except (NotQueued, LookupError) as error:
            self.jobs.engine.release(key, holder)
            LOG.warning("expiry of %s/%s: the destroy could not be queued: %s", client, instance, error)
            return False
        spec = self.store.get_spec(client, instance) or spec
        spec["expiry_job"] = job.id
        self.store.put_spec(client, instance, spec)
        data = {"instance": instance, "expires_at": spec["expires_at"], "job": job.id}
        self.notify(client, "expiry.destroy", data)
        self.record("expiry.destroy", "succeeded", client=client, instance=instance, job=job.id, expires_at=spec["expires_at"])
        return True

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.sweep()
                except Exception as error:  # noqa: BLE001 - the next sweep tries again
                    LOG.warning("expiry sweep failed: %s", error)

        self._thread = threading.Thread(target=loop, name="expiry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
