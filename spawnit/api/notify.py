"""Notifications: the events that matter to a team, sent to the client's webhook.

A client's webhook (``PUT /api/clients/{client}/webhook``, admin) is a URL, the events it wants and a
shared secret (kept sealed with the vault's key, never shown again). Each delivery is one JSON POST:

    {"id": "<delivery uuid>", "event": "job.failed", "client": "acme", "at": "...Z", "data": {...}}

signed as ``X-SpawnIt-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>``
(a receiver recomputes it, compares in constant time and refuses an old ``t``: :func:`verify`), with
``X-SpawnIt-Event`` and ``X-SpawnIt-Delivery``. A delivery that fails (no answer, or not 2xx) is
retried with exponential backoff (tenacity), up to ``attempts`` times; deliveries run on their own
threads, so a job, a sweep or a request never waits for a receiver. A delivery given up is logged and
recorded in the audit trail. Deliveries live in the process that saw the event: one that stops
mid-retry loses its pending retries.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
from tenacity import RetryError, Retrying, stop_after_attempt, wait_exponential

LOG = logging.getLogger("spawnit.notify")
EVENTS = ("job.failed", "gate.blocked", "drift.detected", "expiry.warning", "expiry.destroy")
SIGNATURE_HEADER = "X-SpawnIt-Signature"


class WebhookError(ValueError):
    """A webhook setting that is not allowed; the message names the field, the value and what is allowed."""


def sign(secret: str, body: bytes, at: int) -> str:
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def verify(secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: float = 300) -> bool:
    """What a receiver checks: the signature over its body, and a timestamp within ``tolerance`` seconds."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        at = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - at) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, at), f"t={at},v1={parts.get('v1', '')}")


def check_webhook(url: str, events: list[str], secret: str | None) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise WebhookError(f"url: {url[:80]!r} is not allowed; allowed: an https:// URL (http:// for a receiver on this host or network)")
    if parsed.scheme == "http" and not _private(parsed.hostname):
        raise WebhookError(f"url: {url[:80]!r} is not allowed; allowed: https:// for a receiver on the internet (http:// only to a private address)")
    if parsed.username or parsed.password:
        raise WebhookError("url: credentials in the URL are not allowed; allowed: the shared secret signs each delivery")
    unknown = [event for event in events if event not in EVENTS]
    if unknown or not events:
        raise WebhookError(f"events: {unknown[0] if unknown else '[]'!r} is not allowed; allowed: one or more of {', '.join(EVENTS)}")
    if secret is not None and len(secret) < 16:
        raise WebhookError("secret: too short; allowed: at least 16 characters (default: a generated one, returned once)")


def _private(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


class Webhooks:
    """Deliveries of the client's events to its webhook, signed, retried, never blocking the caller."""

    def __init__(
        self,
        settings: Callable[[str], dict[str, Any]],
        unseal: Callable[[str], str],
        *,
        record: Callable[..., None] | None = None,
        attempts: int = 6,
        backoff: float = 1.0,
        timeout: float = 10.0,
        workers: int = 4,
    ) -> None:
        self.settings, self.unseal, self.record = settings, unseal, record
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook")

    def notify(self, client: str, event: str, data: Mapping[str, Any]) -> str | None:
        """Queue the event for the client's webhook if it wants it; returns the delivery id (None: not sent)."""
        if event not in EVENTS:
            raise ValueError(f"event: {event!r} is not allowed; allowed: {', '.join(EVENTS)}")
        try:
            hook = (self.settings(client) or {}).get("webhook")
        except Exception as error:  # noqa: BLE001 - a store hiccup costs a notification, never the caller's work
            LOG.warning("webhook of %s not read: %s", client, error)
            return None
        if not hook or event not in hook.get("events", ()):
            return None
        delivery = str(uuid.uuid4())
        body = json.dumps({"id": delivery, "event": event, "client": client, "at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"), "data": dict(data)}, sort_keys=True).encode()
        self._pool.submit(self._deliver, client, event, delivery, hook, body)
        return delivery

    def _deliver(self, client: str, event: str, delivery: str, hook: Mapping[str, Any], body: bytes) -> None:
        secret = self.unseal(hook["secret"])
        attempt = 0
        try:
            for attempt_state in Retrying(stop=stop_after_attempt(self.attempts), wait=wait_exponential(multiplier=self.backoff, max=300), reraise=False):
                with attempt_state:
                    attempt = attempt_state.retry_state.attempt_number
                    headers = {
                        "Content-Type": "application/json",
                        "User-Agent": "SpawnIt-Webhook/1",
                        "X-SpawnIt-Event": event,
                        "X-SpawnIt-Delivery": delivery,
                        SIGNATURE_HEADER: sign(secret, body, int(time.time())),
                    }
                    response = httpx.post(hook["url"], content=body, headers=headers, timeout=self.timeout, follow_redirects=False)
                    if not 200 <= response.status_code < 300:
                        raise httpx.HTTPStatusError(f"answered {response.status_code}", request=response.request, response=response)
        except RetryError as error:
            reason = error.last_attempt.exception()
            LOG.error("webhook delivery %s of %s to client %s given up after %d attempts: %s", delivery, event, client, attempt, reason)
            if self.record:
                self.record("webhook.delivery", "failed", client=client, event=event, attempts=attempt)
            return
        LOG.info("webhook delivery %s of %s to client %s: delivered (attempt %d)", delivery, event, client, attempt)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def client_webhooks(store: Any, vault: Any, **options: Any) -> Webhooks:
    """The webhooks of the clients in ``store``, their secrets unsealed by ``vault``; a delivery given up is
    an audit record (written by the system, no subject)."""
    from .audit import AuditTrail

    trail = AuditTrail(store.objects)

    def record(action: str, outcome: str, **fields: Any) -> None:
        try:
            trail.write(None, action, outcome, **fields)
        except Exception as error:  # noqa: BLE001 - logged; the delivery's failure is already logged
            LOG.error("audit record of %s not written: %s", action, error)

    return Webhooks(store.get_client_settings, vault.unseal, record=record, **options)
