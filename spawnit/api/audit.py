"""The audit trail: one record per action that changes something, and per refusal, never rewritten.

A record says who (subject, realm roles, grants), what (action, route, client, instance, job, plan hash
and the action's own details), when (UTC, microseconds), from where (the caller's address; behind a
trusted proxy, the nearest address of ``X-Forwarded-For`` that is not itself a trusted proxy) and the
outcome (``succeeded``, ``refused``: 401/403, ``rejected``: another 4xx, ``failed``: 5xx; a job's end,
recorded by the worker that ran it as ``job.<action>.finished``: also ``cancelled``). Records are
objects ``audit/<day>/<time>-<id>.json`` written once (``put_new``): their keys sort by time, so a
query walks the days it covers, newest first, and pages with a cursor (the last record's id).

What goes in a record is chosen field by field (:data:`DETAIL_FIELDS`): never a token, a ticket, a
parameter value or a secret.
"""

from __future__ import annotations

import asyncio
import csv
import io
import ipaddress
import json
import logging
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .auth import Principal

LOG = logging.getLogger("spawnit.audit")
PREFIX = "audit/"
OUTCOMES = ("succeeded", "refused", "rejected", "failed", "cancelled")
JOB_OUTCOMES = {"succeeded": "succeeded", "failed": "failed", "interrupted": "failed", "cancelled": "cancelled"}  # a job's end
# What an action may add to its record, beside who, what, when, where and the outcome.
DETAIL_FIELDS = (
    "secret", "check", "reason", "monthly_usd", "expires_at", "service", "version", "target", "plan", "auto_approve", "refresh_only",
    "event", "events", "url", "attempts", "policy", "from_version", "template_sha256",
)
RECORD_ID = re.compile(r"\d{4}-\d{2}-\d{2}/\d{6}\.\d{6}-[0-9a-f]{8}")
MAX_LIMIT = 500
CSV_COLUMNS = ("at", "outcome", "status", "action", "subject", "client", "instance", "job", "plan_sha256", "address", "route", "details")


class AuditSettingsError(ValueError):
    """A bad audit setting of the server (SPAWNIT_TRUSTED_PROXIES), naming the variable."""


class AuditQueryError(ValueError):
    """A query the trail cannot answer: the message names the field, the value and what is allowed."""


def outcome_of(status: int) -> str:
    if status < 400:
        return "succeeded"
    if status in (401, 403):
        return "refused"
    return "rejected" if status < 500 else "failed"


def trusted_networks(setting: str | None) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``SPAWNIT_TRUSTED_PROXIES``: comma-separated addresses or networks whose X-Forwarded-For is believed."""
    networks = []
    for item in filter(None, (part.strip() for part in (setting or "").split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise AuditSettingsError(f"SPAWNIT_TRUSTED_PROXIES: {item!r} is not allowed; allowed: IP addresses or networks (CIDR), comma-separated") from None
    return tuple(networks)


def caller_address(peer: str | None, forwarded_for: str | None, trusted: Iterable[Any]) -> str | None:
    """The caller's address: the peer, unless the peer is a trusted proxy; then, walking X-Forwarded-For
    from the right, the first address that is not a trusted proxy (what a client writes on the left is
    not believed)."""
    trusted = tuple(trusted)

    def is_trusted(address: str) -> bool:
        try:
            return any(ipaddress.ip_address(address) in network for network in trusted)
        except ValueError:
            return False

    if not peer or not is_trusted(peer) or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


@dataclass(frozen=True)
class AuditQuery:
    client: str | None = None
    instance: str | None = None
    subject: str | None = None
    action: str | None = None  # exact ("job.apply") or a family ("job.")
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    cursor: str | None = None  # the id of the last record of the previous page
    limit: int = 50

    def __post_init__(self) -> None:
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise AuditQueryError(f"outcome: {self.outcome!r} is not allowed; allowed: {', '.join(OUTCOMES)}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise AuditQueryError(f"limit: {self.limit} is not allowed; allowed: 1-{MAX_LIMIT}")
        if self.cursor is not None and not RECORD_ID.fullmatch(self.cursor):
            raise AuditQueryError(f"cursor: {self.cursor[:60]!r} is not allowed; allowed: the next_cursor of a previous page")
        if self.since and self.until and self.since > self.until:
            raise AuditQueryError(f"since: {self.since.isoformat()} is after until: {self.until.isoformat()}; allowed: since before until")

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.action and not (record.get("action") == self.action or (self.action.endswith(".") and str(record.get("action", "")).startswith(self.action))):
            return False
        return all(self_value is None or record.get(name) == self_value for name, self_value in (
            ("client", self.client), ("instance", self.instance), ("subject", self.subject), ("outcome", self.outcome)
        ))


def parse_time(field: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AuditQueryError(f"{field}: {value[:40]!r} is not allowed; allowed: an ISO 8601 time such as 2026-12-07T08:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class AuditTrail:
    """Append-only records in the object store."""

    def __init__(self, objects: Any, clock: Any = None) -> None:
        self.objects = objects
        self.clock = clock or (lambda: datetime.now(UTC))

    def write(self, principal: Principal | None, action: str, outcome: str, **fields: Any) -> dict[str, Any]:
        at = self.clock()
        record_id = f"{at:%Y-%m-%d}/{at:%H%M%S.%f}-{uuid.uuid4().hex[:8]}"
        who = principal.described() if principal is not None else {"subject": fields.pop("subject", None), "roles": [], "grants": {}}
        details = {name: fields.pop(name) for name in list(fields) if name in DETAIL_FIELDS}
        record = {
            "id": record_id,
            "at": at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "action": action,
            "outcome": outcome,
            "subject": who["subject"],
            "roles": who["roles"],
            "grants": who["grants"],
            **{name: fields.get(name) for name in ("status", "route", "client", "instance", "job", "plan_sha256", "address")},
            "details": {name: value for name, value in details.items() if value is not None},
        }
        if not self.objects.put_new(PREFIX + record_id + ".json", json.dumps(record, sort_keys=True).encode(), "application/json"):
            raise RuntimeError(f"audit record {record_id} exists already")  # a 32-bit id collision in one microsecond
        return record

    async def awrite(self, principal: Principal | None, action: str, outcome: str, **fields: Any) -> None:
        try:
            await asyncio.to_thread(self.write, principal, action, outcome, **fields)
        except Exception as error:  # noqa: BLE001 - the action happened; a lost record is logged loudly, never raised to the caller
            LOG.error("audit record of %s (%s) not written: %s", action, outcome, error)

    def _keys(self, query: AuditQuery) -> list[str]:
        """Record keys the query's time range covers, newest first."""
        if query.since and query.until and (query.until - query.since) <= timedelta(days=31):
            days, keys = {query.until.date() - timedelta(days=n) for n in range((query.until.date() - query.since.date()).days + 1)}, []
            for day in sorted(days):
                keys += self.objects.list(f"{PREFIX}{day:%Y-%m-%d}/")
        else:
            keys = self.objects.list(PREFIX)
        return sorted((key for key in keys if key.endswith(".json")), reverse=True)

    def records(self, query: AuditQuery, visible: Any = None) -> Iterator[dict[str, Any]]:
        """Every matching record the caller may see (``visible(record)``), newest first, from the cursor."""
        after = PREFIX + query.cursor + ".json" if query.cursor else None
        for key in self._keys(query):
            if after is not None and key >= after:
                continue
            raw = self.objects.get(key)
            if raw is None:
                continue
            record = json.loads(raw)
            at = parse_time("at", record["at"])
            if (query.since and at < query.since) or (query.until and at > query.until):
                continue
            if query.matches(record) and (visible is None or visible(record)):
                yield record

    def page(self, query: AuditQuery, visible: Any = None) -> dict[str, Any]:
        found: list[dict[str, Any]] = []
        more = False
        for record in self.records(query, visible):
            if len(found) == query.limit:
                more = True
                break
            found.append(record)
        return {"records": found, "next_cursor": found[-1]["id"] if more else None}


def as_csv(records: Iterable[Mapping[str, Any]]) -> str:
    """Records as CSV for a spreadsheet: one row each, the details as JSON."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for record in records:
        row = [record.get(column) for column in CSV_COLUMNS[:-1]] + [json.dumps(record.get("details") or {}, sort_keys=True)]
        writer.writerow(["" if value is None else _cell(value) for value in row])
    return out.getvalue()


def _cell(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ is quoted with a leading apostrophe."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


MUTATING = ("POST", "PUT", "PATCH", "DELETE")


class AuditMiddleware:
    """Writes the record of every request that changes something (its route declares an action), and of
    every refusal (401/403 on a change, 403 on a read), after the response: who and what from the route's
    access check (``request.state.audit``), the job or instance the response names, the outcome from the
    status. A route that declares no action (a stream ticket, an estimate) changes nothing and is not
    recorded unless refused. Pure ASGI: event streams pass through untouched."""

    def __init__(self, app: Any, trail: AuditTrail, trusted: tuple[Any, ...] = ()) -> None:
        self.app, self.trail, self.trusted = app, trail, trusted

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        status, body, recorded = [500], bytearray(), [False]
        mutating = scope["method"] in MUTATING

        async def record() -> None:
            context = scope["state"].get("audit") or {}
            refused = status[0] == 403 or (mutating and status[0] == 401)
            if not recorded[0] and ((mutating and context.get("action")) or refused):
                recorded[0] = True
                await self._record(scope, context, status[0], bytes(body))

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                if mutating and len(body) < 65536:
                    body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    await record()  # the record is written before the caller has the answer
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            await record()  # a request that ended without a complete answer

    async def _record(self, scope: dict[str, Any], context: dict[str, Any], status: int, body: bytes) -> None:
        answer: dict[str, Any] = {}
        if body[:1] == b"{":
            try:
                answer = json.loads(body)
            except ValueError:
                answer = {}
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope.get("headers", [])}
        route = scope.get("route")
        template = getattr(route, "path", None) or scope["path"]
        details = dict(context.get("details") or {})
        if context.get("secret"):
            details["secret"] = context["secret"]
        await self.trail.awrite(
            context.get("principal"),
            context.get("action") or f"{scope['method']} {template}",
            outcome_of(status),
            status=status,
            route=f"{scope['method']} {template}",
            client=context.get("client"),
            instance=context.get("instance") or details.pop("instance", None) or (answer.get("instance") if isinstance(answer.get("instance"), str) else None),
            job=context.get("job") or (answer.get("job") if isinstance(answer.get("job"), str) else None),
            plan_sha256=details.pop("plan_sha256", None),
            address=caller_address((scope.get("client") or (None,))[0], headers.get("x-forwarded-for"), self.trusted),
            **details,
        )
