"""SpawnIt's web API (FastAPI), started by ``spawnit serve``.

Catalog, instances (specs in the store), jobs (plan/apply/destroy with live
Server-Sent Events, resumable with ``Last-Event-ID``), health. Errors are JSON.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets as secrets_module
import shutil
import urllib.parse
import uuid
from datetime import UTC, datetime
from pathlib import Path
from collections.abc import Callable, Mapping
from typing import Any, Literal

from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.routing import APIRoute
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette.sse import EventSourceResponse

from .. import __version__
from ..proxmox import ProxmoxCluster, ProxmoxError, as_documents, guest_request
from ..services import TARGETS, ParameterError, catalog_document
from ..services.base import CatalogService
from ..services.catalog import Catalog, instance_version, plan_upgrade
from ..services.template import InvalidTemplate, synth_source
from ..services.base import instance_stack_name, shown
from ..shared import INSTANCE_NAME_PATTERN, INSTANCE_NAME_RULE
from .expiry import EXPIRY, ExpiryError, ExpiryMonitor, ExpirySettingsError, check_policy, effective_limits, resolve, server_limits
from .notify import EVENTS as NOTIFIED_EVENTS
from .notify import WebhookError, check_webhook, client_webhooks
from .audit import AuditMiddleware, AuditSettingsError, AuditQuery, AuditQueryError, AuditTrail, as_csv, parse_time, trusted_networks
from .auth import ROLES, STREAM_PATH, Authenticator, AuthSettings, Principal, StreamTickets, refusal
from .engine import EngineError, LocalEngine, RedisEngine, engine_from_environment
from .jobs import ACTIONS, Conflict, JobManager, NotQueued
from .gate import GateError, monthly_cost
from .plans import PlanError, ttl_from_environment
from .live import docker_instance_status, reachability
from .drift import DriftMonitor, track_deployments
from .monitor import ClientEvents, Metrics
from .settings import SettingError, duration, integer
from .store import JOB_ID, Store, store_from_environment
from .credentials import CredentialError
from .toolchain import Toolchain, ToolchainError
from .vault import SecretVault, VaultError, check_supplied, key_from_environment
from .synthesizer import SynthError, SynthWorker
from .upgrades import AutoUpgrades

LOG = logging.getLogger("spawnit.api")
MAX_BODY_BYTES = 256 * 1024  # a service's parameters fit in far less; nginx's index_html is at most 100,000 characters


class RequestBody(BaseModel):
    """A request body: a field it does not declare is refused (422 naming it and the allowed ones), never
    ignored; the OpenAPI document says ``additionalProperties: false``."""

    model_config = ConfigDict(extra="forbid")


class InstanceRequest(RequestBody):
    service: str = Field(description="A catalog service, e.g. postgresql.")
    target: str = Field("docker", description=f"Where the service runs: {', '.join(TARGETS)}.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The service's parameters (see GET /api/catalog/{service}).")
    instance: str | None = Field(None, pattern=INSTANCE_NAME_PATTERN, description=f"Instance name: {INSTANCE_NAME_RULE}; default: <service>-<random>.")
    expires_at: str | None = Field(None, description="When the instance is destroyed (ISO 8601); default: the client's or service's default expiry, if any.")
    expires_in_hours: float | None = Field(None, description="Or: hours from now.")
    secrets: dict[str, str] | None = Field(
        None, description="Values of the service's secrets (see the service's `secrets`); each one not given is generated, strong and per instance."
    )
    service_version: str | None = Field(None, description="The service's version (see GET /api/catalog); default: its newest not deprecated.")
    upgrade_policy: Literal["pinned", "minor"] = Field(
        "pinned", description="pinned: stays on its version until upgraded; minor: a newer minor version is planned and applied when its gate passes and it changes only the service's own resources."
    )


class UpgradeRequest(RequestBody):
    version: str = Field(description="The version to move to (GET /api/catalog lists them).")


class Deprecation(RequestBody):
    note: str | None = Field(description="Why not to use this version any more, and what instead (at least 10 characters); null clears it.")

    @field_validator("note")
    @classmethod
    def _said(cls, note: str | None) -> str | None:
        if note is not None and len(note.strip()) < 10:
            raise ValueError("is too short: say why and what instead, at least 10 characters")
        return note


class UpgradePolicy(RequestBody):
    policy: Literal["pinned", "minor"] = Field(description="pinned, or minor (newer minor versions applied automatically when safe).")


class SecretRotation(RequestBody):
    value: str | None = Field(None, description="The new value; default: a generated one.")


class ApiError(BaseModel):
    """Every error the API answers: one message naming what is wrong and what is allowed."""

    error: str = Field(description="What is wrong: the field, its value (cut) and the rule, or the state that forbids the request.")
    fields: dict[str, str] | None = Field(
        None, description="When the problem is in named fields of the request: each field's own message, for a form to show beside it."
    )


class FieldError(HTTPException):
    """A refusal whose problems belong to named fields of the request (answered in ``fields``)."""

    def __init__(self, status_code: int, detail: str, fields: Mapping[str, str]) -> None:
        super().__init__(status_code=status_code, detail=detail)
        self.fields = dict(fields)


def field_refusal(error: ValueError) -> FieldError:
    """A 422 for an error whose message starts with the field it is about (``expires_at: ...``, or
    ``expires_at, expires_in_hours: ...`` for a pair: the first), its message beside that field."""
    message = str(error)
    return FieldError(422, message, {message.split(":")[0].split(",")[0]: message})


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ApiError, "description": description}
    for status, description in {
        400: "Malformed request",
        401: "Missing or invalid bearer token",
        403: "The token may not reach this client, or its claims are malformed",
        404: "No such service, instance, job or action",
        409: "Conflict: the instance exists, or has a running job",
        413: "Request body over 256 KB",
        422: "Invalid parameters or names; a Proxmox request no node can hold",
        502: "The Proxmox cluster refused or failed",
        503: "The Proxmox cluster, or the job queue, cannot be reached",
    }.items()
}


class TicketRequest(RequestBody):
    path: str = Field(max_length=200, description="The event stream the ticket opens, e.g. /api/jobs/<job id>/events.")


class JobRequest(RequestBody):
    plan: str | None = Field(
        None, description="apply: the id of the reviewed plan job to apply, exactly as it was reviewed (409 naming what moved since when it cannot be)."
    )
    auto_approve: bool = Field(
        False, description="apply: plan and apply in one step, without review (automation); recorded on the job. Without plan or auto_approve, apply makes a plan for review."
    )
    refresh_only: bool = Field(
        False, description="plan: a refresh-only plan, which accepts the cloud's current values into the state once applied (drift's other remedy)."
    )


class EstimateRequest(RequestBody):
    target: str = Field("docker", description=f"Where the service would run: {', '.join(TARGETS)}.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="The service's parameters, as for a creation.")


class GateOverride(RequestBody):
    check: str = Field(description="The failing check to override: security or cost. Each check is overridden on its own.")
    reason: str = Field(max_length=500, description="Why, in words (at least 10 characters); recorded on the plan and in the audit trail.")


class ExpiryRequest(RequestBody):
    expires_at: str | None = Field(None, description="When the instance is destroyed (ISO 8601, UTC if no offset).")
    expires_in_hours: float | None = Field(None, description="Or: hours from now.")


class ExpiryPolicy(RequestBody):
    default_hours: float | None = Field(None, description="Expiry of an instance created without one, hours from its creation.")
    max_hours: float | None = Field(None, description="The longest an expiry may be from the moment it is set; with it, every instance expires.")
    services: dict[str, dict[str, float | None]] = Field(default_factory=dict, description="Per service: {default_hours, max_hours}, overriding the client's.")


class WebhookRequest(RequestBody):
    url: str = Field(description="Where the events are POSTed: https://, or http:// to a private address.", max_length=2000)
    events: list[str] = Field(description=f"Events to send: {', '.join(NOTIFIED_EVENTS)}.")
    secret: str | None = Field(None, description="The shared secret that signs each delivery (16+ characters); default: generated and returned once.", max_length=200)


class Budget(RequestBody):
    monthly_usd: float | None = Field(description="The client's monthly budget in USD (> 0), or null for none.", gt=0, le=10_000_000)


class InstanceUpdate(RequestBody):
    parameters: dict[str, Any] = Field(description="Parameters to change; the others keep their values.")


def _body_fields(request: Request) -> list[str]:
    """The fields of the route's request body, for an error naming what is allowed."""
    body = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(body, "field_info", None), "annotation", None)
    for candidate in (model, *getattr(model, "__args__", ())):  # SecretRotation | None: the model in the union
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return list(candidate.model_fields)
    return ["(see the OpenAPI document)"]


def route_roles(app: FastAPI) -> list[dict[str, Any]]:
    """Every route of the API with the role it needs and the action it records, from the routes'
    own access checks; a route under /api/ without one is listed with role None (and a test fails)."""
    table = []
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        checks = [dependency.call for dependency in route.dependant.dependencies if hasattr(dependency.call, "role")]
        role = checks[0].role if checks else ("public" if route.path in PUBLIC_ROUTES else None)
        action = checks[0].action if checks else None
        for method in sorted(route.methods - {"HEAD"}):
            table.append({"method": method, "path": route.path, "role": role, "action": action if isinstance(action, str) or action is None else "job.<action>"})
    return table


PUBLIC_ROUTES = ("/healthz", "/", "/api/config", "/metrics")  # liveness, the UI, how to log in, Prometheus


def _job_action(params: Mapping[str, str]) -> str:
    """The audit action of POST .../{action}: job.plan, job.apply, job.destroy (an unknown one as given)."""
    return f"job.{params.get('action')}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _validated(service: type[CatalogService], target: str, parameters: dict[str, Any], cluster: Callable[[], ProxmoxCluster]) -> dict[str, Any]:
    """Parameters as the service's model keeps them, or a 422 naming every bad field; a proxmox
    instance must also fit on its node now (pre-flight against the cluster)."""
    try:
        model = service.checked({**parameters, "target": target})
    except ParameterError as error:
        raise FieldError(422, str(error), error.fields) from None
    values = model.model_dump(mode="json", exclude={"target"})
    if target == "proxmox":
        memory = model.proxmox_memory(service(model).containers(), service.hints(model).proxmox_min_memory_mb)
        try:
            cluster().preflight(guest_request(values, memory))
        except ProxmoxError as error:
            raise HTTPException(status_code=error.status, detail=error.message) from None
    return values


_TOKEN_IN_QUERY = re.compile(r"((?:access_token|ticket)=)[^&\s]+")


class RedactTokens(logging.Filter):
    """Keeps credentials out of the access log: event streams carry a short-lived ticket in the query
    string (``?ticket=``, EventSource cannot send headers), and a client may still put a token there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_TOKEN_IN_QUERY.sub(r"\1[redacted]", arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        return True


def redact_access_log() -> None:
    """Install :class:`RedactTokens` on uvicorn's access logger, once."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, RedactTokens) for existing in access.filters):
        access.addFilter(RedactTokens())


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is a 413, whether its Content-Length says so
    or its chunks add up to it; nothing past the limit is read."""

    def __init__(self, app: Any, *, limit: int) -> None:
        self.app, self.limit = app, limit

    def _refusal(self, size: str) -> HTTPException:
        return HTTPException(status_code=413, detail=f"request body: {size} is too large; allowed: at most {self.limit} bytes")

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            message = json.dumps({"error": self._refusal(f"{length.decode(errors='replace')} bytes").detail}).encode()
            await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": message})
            return
        received = 0

        async def limited() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise self._refusal(f"more than {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def _once(make: Callable[[], Any]) -> Callable[[], Any]:
    """``make()`` on first success, then the same object (a failure is retried next time)."""
    made: list[Any] = []

    def get() -> Any:
        if not made:
            made.append(make())
        return made[0]

    return get


def data_dir() -> Path:
    return Path(os.environ.get("SPAWNIT_DATA_DIR", "spawnit-data"))


def state_from_environment() -> dict[str, Any]:
    """Instances' state beside their specs: in the S3 bucket when the store is S3, else in the data folder."""
    if os.environ.get("SPAWNIT_S3_ENDPOINT") or os.environ.get("SPAWNIT_S3_BUCKET"):
        return {
            "kind": "s3",
            "bucket": os.environ.get("SPAWNIT_S3_BUCKET", "spawnit"),
            "region": os.environ.get("AWS_REGION", "us-east-1"),
            "endpoint": os.environ.get("SPAWNIT_S3_ENDPOINT"),
        }
    return {"kind": "local", "root": str(data_dir().resolve() / "state")}


# What a bad setting raises while the API or a worker starts: the CLI answers each with exit 2 and its message.
SETTINGS_ERRORS = (EngineError, ToolchainError, VaultError, CredentialError, PlanError, AuditSettingsError, ExpirySettingsError, SettingError)


def job_settings(store: Store, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The job manager's settings from the environment, for the API and ``spawnit worker`` alike: the
    engine's toolchain (:mod:`.toolchain`) and the secret vault's key (:mod:`.vault`) included."""
    environ = dict(os.environ if environ is None else environ)
    shared = state_from_environment()["kind"] == "s3"
    stale_after = duration(environ, "SPAWNIT_JOB_STALE_AFTER", 30, minimum=2, maximum=3600)
    return {
        "toolchain": Toolchain.from_environment(environ, data_dir()),
        "vault": SecretVault(store.objects, key_from_environment(environ, data_dir(), shared=shared)),
        "workdir": data_dir() / "work",
        "state": state_from_environment(),
        "stale_after": stale_after,
        "heartbeat_seconds": min(5.0, stale_after / 4),
        "queue_timeout": duration(environ, "SPAWNIT_QUEUE_TIMEOUT", 900, minimum=10, maximum=7 * 86400),
        "plan_ttl": ttl_from_environment(environ),
    }


def create_app(
    *,
    store: Store | None = None,
    jobs: JobManager | None = None,
    auth: AuthSettings | None = None,
    workdir: str | Path | None = None,
    drift_interval: float | None = None,
    drift_concurrency: int | None = None,
    proxmox: Callable[[], ProxmoxCluster] | None = None,
    engine: LocalEngine | RedisEngine | None = None,
    worker_concurrency: int | None = None,
    webhook_options: dict[str, Any] | None = None,
) -> FastAPI:
    """The API. Without arguments, everything comes from the environment: SPAWNIT_S3_* or SPAWNIT_DATA_DIR (store),
    SPAWNIT_REDIS_URL (the engine: replicas and workers on Redis; none: this process alone), SPAWNIT_AUTH /
    SPAWNIT_OIDC_* (auth), SPAWNIT_DRIFT_INTERVAL (seconds, default 600) and SPAWNIT_DRIFT_CONCURRENCY (default 2),
    SPAWNIT_PROXMOX_* (the Proxmox cluster, read when first needed), SPAWNIT_EXPIRY_* (instances' expiry:
    default and maximum hours, the sweep's interval in seconds, default 60), SPAWNIT_TRUSTED_PROXIES.

    ``worker_concurrency``: on Redis, how many queued jobs this process runs at once (0: none, an API-only
    replica; default 2). Without Redis every job runs here."""
    redact_access_log()
    cluster = proxmox or _once(ProxmoxCluster.from_environment)
    auth = auth or AuthSettings.from_environment()
    store = store or store_from_environment()
    owns_jobs = jobs is None
    if jobs is None:
        engine = engine or engine_from_environment(dict(os.environ))
        settings = job_settings(store)
        if workdir is not None:
            settings["workdir"] = workdir
        jobs = JobManager(store, SynthWorker(), engine=engine, **settings)
    engine = jobs.engine
    tickets = StreamTickets(engine)
    authenticate = Authenticator(auth, tickets)
    concurrency = 2 if worker_concurrency is None else worker_concurrency
    runs_jobs = not engine.shared or concurrency > 0
    events, metrics = ClientEvents(engine), Metrics()
    webhooks = client_webhooks(store, jobs.vault, **(webhook_options or {}))
    track_deployments(store, events, metrics, jobs, notify=webhooks.notify)
    limits = server_limits()
    trail = AuditTrail(store.objects)
    catalog: Catalog = jobs.catalog

    def service_or_404(name: str, version: str | None = None) -> type[CatalogService]:
        try:
            return catalog.get(name, version)
        except ParameterError as error:
            raise FieldError(404 if version is None else 422, str(error), error.fields) from None

    def instance_service(spec: Mapping[str, Any]) -> type[CatalogService]:
        try:
            return jobs.service_of(spec)
        except (ParameterError, SynthError) as error:
            raise HTTPException(status_code=409, detail=f"instance {spec['client']}/{spec['instance']}: {error}") from None

    def expiry_news(client: str, event: str, data: dict[str, Any]) -> None:
        events.publish(client, "expiry", {**data, "event": event})
        webhooks.notify(client, event, data)

    def system_record(action: str, outcome: str, **fields: Any) -> None:
        trail.write(None, action, outcome, subject=EXPIRY, **fields)

    expiry = ExpiryMonitor(store, jobs, notify=expiry_news, record=system_record, interval=duration(os.environ, "SPAWNIT_EXPIRY_INTERVAL", 60, minimum=1, maximum=86400))
    upgrades = AutoUpgrades(store, jobs, publish=events.publish)
    drift = DriftMonitor(
        store,
        jobs,
        before_round=upgrades.sweep,
        interval=drift_interval or duration(os.environ, "SPAWNIT_DRIFT_INTERVAL", 600, minimum=1, maximum=7 * 86400),
        concurrency=drift_concurrency or integer(os.environ, "SPAWNIT_DRIFT_CONCURRENCY", 2, minimum=1, maximum=16),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Warm the synthesis worker in the background: the first job then starts in well under a second.
        warming = asyncio.get_running_loop().run_in_executor(None, jobs.worker.start) if runs_jobs else None
        if engine.shared and runs_jobs and owns_jobs:
            engine.serve(jobs.execute, concurrency=concurrency)
        drift.start()
        expiry.start()
        yield
        drift.stop()
        expiry.stop()
        webhooks.close()
        if warming is not None:
            warming.cancel()
        if owns_jobs:
            engine.stop_serving()
            jobs.close()
            jobs.worker.close()

    app = FastAPI(
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
        title="SpawnIt",
        version=__version__,
        description="Deploy catalog services on Docker, AWS or Proxmox VE without touching infrastructure code.",
    )
    app.state.store, app.state.jobs, app.state.events, app.state.drift = store, jobs, events, drift
    app.state.expiry, app.state.webhooks, app.state.upgrades = expiry, webhooks, upgrades
    vault = jobs.vault

    @app.exception_handler(StarletteHTTPException)  # FastAPI's HTTPException and the framework's own (a body it cannot read)
    async def json_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = error.detail
        if error.status_code == 400 and detail == "There was an error parsing the body":
            detail = "request body: cannot be read (not UTF-8 text); allowed: a JSON object encoded in UTF-8"
        fields = {"fields": error.fields} if isinstance(error, FieldError) and error.fields else {}
        return JSONResponse({"error": detail, **fields}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        """The same shape as every other error: one message naming each bad field, its value (cut) and the rule."""
        lines, fields = ["invalid request:"], {}
        for problem in error.errors():
            if problem["type"] == "json_invalid":
                position = problem["loc"][-1] if problem["loc"] and isinstance(problem["loc"][-1], int) else "?"
                lines.append(f"  request body: not valid JSON (at character {position}: {problem.get('ctx', {}).get('error', 'decode error')}); allowed: a JSON object")
                continue
            location = ".".join(str(part) for part in problem["loc"] if part != "body") or "(body)"
            value = "" if problem["type"] == "missing" else f" = {shown(problem.get('input'))}"
            if problem["type"] == "extra_forbidden" and len(problem["loc"]) == 2:  # a top-level field the body does not declare:
                # its value is not echoed (it may be a secret under a misspelled name)
                lines.append(f"  {location}: not a field of this request; allowed: {', '.join(_body_fields(request))}")
                continue
            lines.append(f"  {location}{value}: {problem['msg'][0].lower()}{problem['msg'][1:]}")
            top = [part for part in problem["loc"] if part != "body"]
            if len(top) == 1 and isinstance(top[0], str):  # a field of the body: its message goes beside it
                fields[top[0]] = lines[-1].strip()
        return JSONResponse({"error": "\n".join(lines), **({"fields": fields} if fields else {})}, status_code=422)

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.state.audit = trail
    app.add_middleware(AuditMiddleware, trail=trail, trusted=trusted_networks(os.environ.get("SPAWNIT_TRUSTED_PROXIES")))

    def allow(role: str, action: str | Callable[[Mapping[str, str]], str] | None = None) -> Callable[..., Principal]:
        """The route's access rule, checked before its handler: ``role`` ("authenticated", or viewer,
        operator, admin on the client the path names, directly or through its job), and the ``action`` its
        audit record carries (None: a route that changes nothing). A refusal is a 403 naming the role
        needed and the roles held; the audit middleware records it."""
        if role not in ("authenticated", *ROLES):
            raise ValueError(f"role: {role!r} is not allowed; allowed: authenticated, {', '.join(ROLES)}")

        def check(request: Request, principal: Principal = Depends(authenticate)) -> Principal:
            params = request.path_params
            named = action(params) if callable(action) else action
            context = request.state.audit = {"action": named, "principal": principal, "details": {}}
            context |= {"client": params.get("client"), "instance": params.get("instance"), "job": params.get("job_id"), "secret": params.get("name")}
            if context["client"] is None and params.get("job_id"):
                record = job_or_404(params["job_id"], principal)  # a job the caller cannot see is a 404
                context |= {"client": record["client"], "instance": record["instance"]}
            if role == "authenticated" or principal.may(role, None if role == "admin" else context["client"]):
                return principal
            raise HTTPException(status_code=403, detail=refusal(principal, role, context["client"] if role != "admin" else None))

        check.role, check.action = role, action  # read by the route x role table (GET /api/access)
        return check

    def audit_note(request: Request) -> dict[str, Any]:
        """The details a handler adds to its audit record (a plan's hash, an override's reason...)."""
        return request.state.audit["details"]

    def taken(client: str, instance: str) -> FieldError:
        return FieldError(409, f"instance {client}/{instance} already exists", {"instance": f"{instance!r} is taken: choose another name"})

    def spec_or_404(client: str, instance: str) -> dict[str, Any]:
        try:
            spec = store.get_spec(client, instance)
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        if spec is None:
            raise HTTPException(status_code=404, detail=f"instance {client}/{instance} does not exist")
        return spec

    def start(
        client: str, instance: str, action: str, *, by: str, then_remove: bool = False, plan: str | None = None, auto_approve: bool = False, refresh_only: bool = False,
        upgrade: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        spec_or_404(client, instance)
        try:
            job = jobs.submit(client, instance, action, remove_instance=then_remove, by=by, plan=plan, auto_approve=auto_approve, refresh_only=refresh_only, upgrade=upgrade)
        except Conflict as error:
            raise HTTPException(status_code=409, detail=str(error)) from None
        except LookupError as error:
            raise HTTPException(status_code=404, detail=str(error)) from None
        except NotQueued as error:
            raise HTTPException(status_code=503, detail=str(error)) from None
        return {"job": job.id, "status": job.status, "action": action}

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    ui = Path(__file__).parent / "ui"
    app.mount("/ui", StaticFiles(directory=ui), name="ui")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(ui / "index.html")

    @app.get("/api/config", tags=["operations"], summary="How the web UI logs in (OIDC endpoints and client), or that auth is off")
    def config() -> dict[str, Any]:
        return {**auth.browser_config(), "instance_name": {"pattern": INSTANCE_NAME_PATTERN, "rule": INSTANCE_NAME_RULE}}

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics: jobs by status, job duration, drift checks")
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/catalog", tags=["catalog"], summary="Every service with its category, description and parameter schema")
    def catalog_listing(principal: Principal = Depends(allow("authenticated"))) -> dict[str, Any]:
        return catalog_document(catalog)

    @app.get("/api/catalog/{service}", tags=["catalog"], summary="One service's parameter JSON Schema (?version=: that version's)")
    def catalog_service(service: str, version: str | None = None, principal: Principal = Depends(allow("authenticated"))) -> dict[str, Any]:
        return service_or_404(service, version).schema()

    @app.put(
        "/api/catalog/{service}", status_code=201, tags=["catalog"],
        summary="Publish a version of a service: its template (YAML or JSON) as the body; checked, refused whole if broken, never replacing a published version",
        openapi_extra={"requestBody": {"required": True, "content": {"application/yaml": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object"}}}}},
    )
    async def publish_template(
        service: str, request: Request, principal: Principal = Depends(allow("admin", "catalog.publish")), note: dict[str, Any] = Depends(audit_note)
    ) -> dict[str, Any]:
        data = await request.body()
        kind = "json" if "json" in request.headers.get("content-type", "") else "yaml"
        note.update(service=service)
        try:
            published = await asyncio.to_thread(catalog.publish, data, f"{service}.{kind}", by=principal.subject or "admin", name=service)
        except (InvalidTemplate, ParameterError) as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        note.update(version=published.version, template_sha256=published.sha256)
        return {"service": published.name, "version": published.version, "sha256": published.sha256, "source": published.source}

    @app.post("/api/catalog/{service}/estimate", tags=["catalog"], summary="What an instance would cost a month, before it exists (offline prices)")
    def estimate(service: str, request: EstimateRequest, principal: Principal = Depends(allow("authenticated"))) -> dict[str, Any]:
        found = service_or_404(service)
        parameters = _validated(found, request.target, request.parameters, cluster)
        folder = Path(jobs.workdir) / "estimates" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            stack_dir = jobs.worker.synth(
                **synth_source(found), parameters={**parameters, "target": request.target}, client="estimate", instance="estimate",
                outdir=str(folder), state={"kind": "local", "path": str(folder / "state.tfstate")}, **jobs.toolchain.synth_options(),
            )
            monthly = monthly_cost(json.loads((stack_dir / "cdk.tf.json").read_text()), stack_dir.name)
        except SynthError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return {"service": service, "target": request.target, "monthly_usd": monthly, "priced": monthly is not None}

    @app.post("/api/clients/{client}/instances", status_code=201, tags=["instances"], summary="Create an instance (validated, stored, not yet deployed)")
    def create_instance(
        client: str, request: InstanceRequest, principal: Principal = Depends(allow("operator", "instance.create")), note: dict[str, Any] = Depends(audit_note)
    ) -> dict[str, Any]:
        note.update(service=request.service, target=request.target, instance=request.instance)
        service = service_or_404(request.service, request.service_version)
        parameters = _validated(service, request.target, request.parameters, cluster)
        instance = request.instance or f"{request.service}-{uuid.uuid4().hex[:6]}"
        try:
            if store.get_spec(client, instance) is not None:
                raise taken(client, instance)
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        try:
            instance_limits = effective_limits(limits, store.get_client_settings(client).get("expiry") or {}, request.service)
            expires_at = resolve(request.expires_at, request.expires_in_hours, instance_limits, datetime.now(UTC), creating=True)
        except ExpiryError as error:
            raise field_refusal(error) from None
        note["expires_at"] = expires_at
        spec = {
            "client": client,
            "instance": instance,
            "service": request.service,
            "service_version": service.version,
            "service_sha256": service.sha256,
            "upgrade_policy": request.upgrade_policy,
            "target": request.target,
            "parameters": parameters,
            "created_at": _now(),
            "updated_at": _now(),
            "last_job": None,
            "drift": "unknown",
            "expires_at": expires_at,
        }
        declared = service.secrets
        try:
            check_supplied(declared, request.secrets, f"service {request.service!r}")
        except VaultError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        if not store.create_spec(client, instance, spec):  # atomic: of concurrent creations of one name, one wins
            raise taken(client, instance)
        try:
            generated = vault.create(client, instance, declared, request.secrets)
        except Exception:
            store.delete_instance(client, instance)  # nothing half-made: no instance without its secrets
            raise
        return {"instance": instance, "spec": spec, "secrets": {"generated": generated, "supplied": sorted(request.secrets or {})}}

    @app.get("/api/clients/{client}/instances", tags=["instances"], summary="The client's instances")
    def list_instances(client: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        try:
            pairs = store.list_instances(client)
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        described = [describe(c, i) for c, i in pairs]
        for item in described:
            if item["target"] == "docker":
                item["live"] = docker_live(item)
        return {"instances": described}

    def describe(client: str, instance: str) -> dict[str, Any]:
        spec = spec_or_404(client, instance)
        last = jobs.get(spec["last_job"]) if spec.get("last_job") else None
        try:
            upgrades = catalog.upgrades(spec["service"], instance_version(spec))
            deprecated = catalog.deprecation(catalog.get(spec["service"], instance_version(spec)))
        except ParameterError:
            upgrades, deprecated = [], None  # the service left the catalog: nothing to move to
        return {**spec, "last_job": last, "upgrades": upgrades, "service_deprecated": deprecated}

    @app.get("/api/clients/{client}/instances/{instance}", tags=["instances"], summary="Spec, last job and drift status")
    def get_instance(client: str, instance: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        described = describe(client, instance)
        if described["target"] == "proxmox":  # the guest as the cluster sees it now; the view still answers if it cannot
            try:
                described["live"] = cluster().guest(f"{client}-{instance}") or {"status": "absent"}
            except ProxmoxError as error:
                described["live"] = {"status": "unavailable", "message": error.message}
        elif described["target"] == "docker":
            described["live"] = docker_live(described)
        return described

    def docker_live(described: dict[str, Any]) -> dict[str, Any]:
        """A docker instance's containers as the Docker engine reports them now."""
        service = instance_service(described)
        model = service.checked({**described["parameters"], "target": "docker"})
        prefix = instance_stack_name(described["client"], described["instance"])
        expected = [f"{prefix}-{container.name}" for container in service(model).containers()]
        return docker_instance_status(model.docker_host, prefix, expected)

    @app.post("/api/drift-checks", status_code=202, tags=["jobs"], summary="Start a drift round now (admin): a plan of every deployed instance, as the interval's rounds do")
    def drift_check(principal: Principal = Depends(allow("admin", "drift.check"))) -> dict[str, Any]:
        deployed = drift.start_round()
        return {"instances": [f"{client}/{instance}" for client, instance in deployed]}

    @app.get("/api/targets", tags=["targets"], summary="Whether this process reaches each target (Docker engine, AWS credentials, Proxmox endpoint)")
    def targets(principal: Principal = Depends(allow("authenticated"))) -> dict[str, Any]:
        return {"targets": reachability()}

    @app.get("/api/clients/{client}/instances/{instance}/secrets", tags=["instances"], summary="The instance's secrets: names, dates, pending rotations (no values)")
    def list_secrets(client: str, instance: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        spec_or_404(client, instance)
        return {"secrets": vault.describe(client, instance)}

    @app.post("/api/clients/{client}/instances/{instance}/secrets/{name}/reveal", tags=["instances"], summary="Reveal one secret's deployed value (recorded)")
    def reveal_secret(client: str, instance: str, name: str, principal: Principal = Depends(allow("operator", "secret.reveal"))) -> Response:
        spec_or_404(client, instance)
        try:
            revealed = vault.reveal(client, instance, name)
        except LookupError as error:
            raise HTTPException(status_code=404, detail=str(error)) from None
        events.publish(client, "secret", {"instance": instance, "secret": name, "action": "revealed", "by": principal.subject})
        return JSONResponse(revealed, headers={"Cache-Control": "no-store"})

    @app.post("/api/clients/{client}/instances/{instance}/secrets/{name}/rotate", status_code=202, tags=["instances"], summary="Rotate one secret: a new value, pending until an apply deploys it; starts a plan")
    def rotate_secret(client: str, instance: str, name: str, rotation: SecretRotation | None = None, principal: Principal = Depends(allow("operator", "secret.rotate"))) -> dict[str, Any]:
        spec_or_404(client, instance)
        running = jobs.active_job(client, instance)
        if running is not None:
            raise HTTPException(status_code=409, detail=f"instance {client}/{instance} has job {running['id']} {running['status']}; rotate when that job ends")
        try:
            vault.rotate(client, instance, name, rotation.value if rotation else None)
        except LookupError as error:
            raise HTTPException(status_code=404, detail=str(error)) from None
        except VaultError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        return {"secret": name, "pending": True, **start(client, instance, "plan", by=principal.subject)}

    @app.get("/api/targets/proxmox/resources", tags=["targets"], summary="The Proxmox cluster's nodes with free CPU, memory and storage")
    def proxmox_resources(principal: Principal = Depends(allow("authenticated"))) -> dict[str, Any]:
        try:
            reached = cluster()
            return {"endpoint": reached.endpoint, "nodes": as_documents(reached.nodes())}
        except ProxmoxError as error:
            raise HTTPException(status_code=error.status, detail=error.message) from None

    @app.patch("/api/clients/{client}/instances/{instance}", tags=["instances"], summary="Change parameters (apply to deploy them)")
    def update_instance(client: str, instance: str, update: InstanceUpdate, principal: Principal = Depends(allow("operator", "instance.update"))) -> dict[str, Any]:
        spec = spec_or_404(client, instance)
        running = jobs.active_job(client, instance)
        if running is not None:  # the spec never changes under a running job, wherever it runs
            raise HTTPException(status_code=409, detail=f"instance {client}/{instance} has job {running['id']} {running['status']}; change it when that job ends")
        spec["parameters"] = _validated(instance_service(spec), spec["target"], {**spec["parameters"], **update.parameters}, cluster)
        spec["updated_at"] = _now()
        store.put_spec(client, instance, spec)
        return spec

    @app.put("/api/catalog/{service}/versions/{version}/deprecation", tags=["catalog"], summary="Mark a published version not to use any more, with a note (admin); null clears it")
    def deprecate_version(
        service: str, version: str, request: Deprecation, principal: Principal = Depends(allow("admin", "catalog.deprecate")), note: dict[str, Any] = Depends(audit_note)
    ) -> dict[str, Any]:
        note.update(service=service, version=version)
        service_or_404(service, version)
        return catalog.deprecate(service, version, request.note, by=principal.subject or "admin")

    @app.post(
        "/api/clients/{client}/instances/{instance}/upgrade", status_code=202, tags=["instances"],
        summary="Plan the instance's move to another version of its service, for review: applying that plan upgrades it",
    )
    def upgrade_instance(
        client: str, instance: str, request: UpgradeRequest, principal: Principal = Depends(allow("operator", "instance.upgrade")), note: dict[str, Any] = Depends(audit_note)
    ) -> dict[str, Any]:
        spec = spec_or_404(client, instance)
        note.update(version=request.version, from_version=instance_version(spec))
        try:
            upgrade = plan_upgrade(catalog, spec, request.version)
        except ParameterError as error:
            raise FieldError(422, str(error), error.fields) from None
        return {**start(client, instance, "plan", by=principal.subject, upgrade=upgrade), "version": upgrade["version"], "from": upgrade["from"]["version"]}

    @app.put("/api/clients/{client}/instances/{instance}/upgrade-policy", tags=["instances"], summary="pinned (default) or minor: newer minor versions planned and applied when safe")
    def set_upgrade_policy(
        client: str, instance: str, request: UpgradePolicy, principal: Principal = Depends(allow("operator", "instance.upgrade_policy")), note: dict[str, Any] = Depends(audit_note)
    ) -> dict[str, Any]:
        spec = spec_or_404(client, instance)
        note.update(policy=request.policy)
        spec.update(upgrade_policy=request.policy, updated_at=_now())
        spec.pop("auto_upgrade", None)  # a new policy may try again what the old one held back
        store.put_spec(client, instance, spec)
        return {"instance": instance, "upgrade_policy": request.policy}

    @app.delete("/api/clients/{client}/instances/{instance}", status_code=202, tags=["instances"], summary="Destroy, then remove the instance")
    def delete_instance(client: str, instance: str, principal: Principal = Depends(allow("operator", "instance.destroy"))) -> dict[str, Any]:
        return start(client, instance, "destroy", then_remove=True, by=principal.subject)

    @app.post(
        "/api/clients/{client}/instances/{instance}/{action}",
        status_code=202,
        tags=["jobs"],
        summary="Start a plan, apply or destroy job; apply applies a reviewed plan, or makes one for review",
    )
    def run_action(
        client: str,
        instance: str,
        action: str,
        request: JobRequest | None = None,
        principal: Principal = Depends(allow("operator", _job_action)),
        note: dict[str, Any] = Depends(audit_note),
    ) -> dict[str, Any]:
        if action not in ACTIONS:
            raise HTTPException(status_code=404, detail=f"action: {action!r} is not allowed; allowed: {', '.join(ACTIONS)}")
        request = request or JobRequest()
        if action != "apply" and (request.plan is not None or request.auto_approve):
            raise HTTPException(status_code=422, detail=f"plan, auto_approve: allowed for apply only, not for {action}")
        if action != "plan" and request.refresh_only:
            raise HTTPException(status_code=422, detail=f"refresh_only: allowed for plan only, not for {action}")
        if request.plan is not None and request.auto_approve:
            raise HTTPException(status_code=422, detail="plan, auto_approve: give one; allowed: a reviewed plan's id, or auto_approve: true")
        if request.plan is not None and not JOB_ID.fullmatch(request.plan):
            raise HTTPException(status_code=422, detail=f"plan: {request.plan[:60]!r} is not allowed; allowed: a plan job's id (a UUID)")
        note.update(plan=request.plan, auto_approve=request.auto_approve or None, refresh_only=request.refresh_only or None)
        if request.plan is not None:  # the reviewed plan's hash, as the record of who applied what
            reviewed = jobs.get(request.plan)
            note["plan_sha256"] = ((reviewed or {}).get("plan") or {}).get("sha256") if reviewed and reviewed.get("client") == client else None
        if action == "apply" and request.plan is None and not request.auto_approve:
            return {**start(client, instance, "plan", by=principal.subject), "review": True}  # Deploy: a plan, then review
        return start(client, instance, action, by=principal.subject, plan=request.plan, auto_approve=request.auto_approve, refresh_only=request.refresh_only)

    @app.get("/api/clients/{client}/instances/{instance}/jobs", tags=["jobs"], summary="The instance's jobs, newest first (its last 100)")
    def instance_jobs(client: str, instance: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        spec = spec_or_404(client, instance)
        records = [jobs.get(job_id) for job_id in reversed(spec.get("jobs") or [])]
        return {"jobs": [record for record in records if record is not None]}

    @app.get("/api/clients/{client}/jobs", tags=["jobs"], summary="The client's jobs across its instances, newest first")
    def client_jobs(client: str, principal: Principal = Depends(allow("viewer")), limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        ids = [job_id for _, instance in store.list_instances(client) for job_id in (store.get_spec(client, instance) or {}).get("jobs") or []]
        records = [record for record in map(jobs.get, ids) if record is not None]
        records.sort(key=lambda record: record["created_at"], reverse=True)
        return {"jobs": records[:limit]}

    @app.get("/api/clients/{client}/instances/{instance}/drift", tags=["instances"], summary="The instance's drift: status, last check, and what drifted (resources and attributes)")
    def instance_drift(client: str, instance: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        spec = spec_or_404(client, instance)
        plan = jobs.plan_diff(spec["drift_plan"]) if spec.get("drift_plan") else None
        return {
            "drift": spec.get("drift", "unknown"),
            "checked_at": spec.get("drift_checked_at"),
            "check": spec.get("drift_check"),
            "resources": spec.get("drift_resources", []),
            "causes": spec.get("drift_causes", []),
            "plan": spec.get("drift_plan"),  # apply it (after review) to restore the declared state
            "diff": plan["diff"] if plan else None,
        }

    @app.get("/api/drift", tags=["instances"], summary="Drifted instances grouped by cause (the same resource type and attribute)")
    def drift_groups(principal: Principal = Depends(allow("authenticated"))) -> dict[str, Any]:
        groups: dict[tuple[str, str], list[str]] = {}
        for client, instance in store.list_instances():
            if not principal.may_reach(client):
                continue
            spec = store.get_spec(client, instance) or {}
            if spec.get("drift") != "drifted":
                continue
            for resource_type, attribute in spec.get("drift_causes") or [["(unknown)", "(not read back)"]]:
                groups.setdefault((resource_type, attribute), []).append(f"{client}/{instance}")
        ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
        return {"groups": [{"resource_type": key[0], "attribute": key[1], "instances": sorted(names)} for key, names in ordered]}

    def job_or_404(job_id: str, principal: Principal) -> dict[str, Any]:
        try:
            record = jobs.get(job_id)
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        if record is None or not principal.may_reach(record["client"]):
            raise HTTPException(status_code=404, detail=f"job {job_id} does not exist")
        return record

    @app.get("/api/jobs/{job_id}", tags=["jobs"], summary="A job's record")
    def get_job(job_id: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        return job_or_404(job_id, principal)

    @app.get("/api/jobs/{job_id}/plan", tags=["jobs"], summary="A plan job's saved plan as a reviewer reads it: summary, resources by action, attributes before and after")
    def get_plan(job_id: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        record = job_or_404(job_id, principal)
        diff = jobs.plan_diff(job_id)
        if diff is None:
            reason = "it is not a plan" if record["action"] != "plan" else ("it found no changes" if record["status"] == "succeeded" and not record.get("plan") else f"it is {record['status']}" if record["status"] != "succeeded" else "its plan expired")
            raise HTTPException(status_code=404, detail=f"job {job_id} has no saved plan: {reason}")
        return diff

    @app.post("/api/jobs/{job_id}/gate/overrides", tags=["jobs"], summary="Override one failing check of a plan's policy gate, with a written reason (admin; recorded)")
    def override_gate(
        job_id: str, request: GateOverride, principal: Principal = Depends(allow("admin", "gate.override")), note: dict[str, Any] = Depends(audit_note)
    ) -> dict[str, Any]:
        record = job_or_404(job_id, principal)
        note.update(plan_sha256=(record.get("plan") or {}).get("sha256"), check=request.check, reason=request.reason.strip())
        try:
            gate = jobs.override_gate(job_id, request.check, request.reason, principal.subject)
        except LookupError as error:
            raise HTTPException(status_code=404, detail=str(error)) from None
        except GateError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        return gate

    @app.get("/api/clients/{client}/budget", tags=["instances"], summary="The client's monthly budget and what its instances cost")
    def get_budget(client: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        costs = {instance: (store.get_spec(client, instance) or {}).get("monthly_cost_usd") for _, instance in store.list_instances(client)}
        return {"client": client, "monthly_usd": jobs.budget(client), "instances": costs, "total_usd": round(sum(cost or 0 for cost in costs.values()), 2)}

    @app.put("/api/clients/{client}/budget", tags=["instances"], summary="Set the client's monthly budget, which the policy gate holds plans to (admin)")
    def put_budget(client: str, request: Budget, principal: Principal = Depends(allow("admin", "budget.set")), note: dict[str, Any] = Depends(audit_note)) -> dict[str, Any]:
        note["monthly_usd"] = request.monthly_usd
        try:
            settings = store.get_client_settings(client)
        except ValueError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        if request.monthly_usd is None:
            settings.pop("monthly_budget_usd", None)
        else:
            settings["monthly_budget_usd"] = request.monthly_usd
        store.put_client_settings(client, settings)
        return get_budget(client, principal)

    @app.put("/api/clients/{client}/instances/{instance}/expiry", tags=["instances"], summary="Set, extend or clear an instance's expiry, within its limits, before it expires")
    def set_expiry(
        client: str, instance: str, request: ExpiryRequest, principal: Principal = Depends(allow("operator", "expiry.set")), note: dict[str, Any] = Depends(audit_note)
    ) -> dict[str, Any]:
        spec = spec_or_404(client, instance)
        now = datetime.now(UTC)
        if spec.get("expires_at") and parse_time("expires_at", spec["expires_at"]) <= now:
            raise HTTPException(status_code=409, detail=f"instance {client}/{instance} expired at {spec['expires_at']}; its destroy is under way or failed ({spec.get('expiry_job') or 'not started yet'}); allowed: before it expires")
        instance_limits = effective_limits(limits, store.get_client_settings(client).get("expiry") or {}, spec["service"])
        try:
            spec["expires_at"] = resolve(request.expires_at, request.expires_in_hours, instance_limits, now, creating=False)
        except ExpiryError as error:
            raise field_refusal(error) from None
        note["expires_at"] = spec["expires_at"]
        spec.pop("expiry_warnings", None)  # a new expiry: its warnings are still to come, its destroy too
        spec.pop("expiry_job", None)
        spec["updated_at"] = _now()
        store.put_spec(client, instance, spec)
        events.publish(client, "expiry", {"instance": instance, "expires_at": spec["expires_at"], "event": "expiry.set", "by": principal.subject})
        return {"instance": instance, "expires_at": spec["expires_at"], "limits": instance_limits.as_dict()}

    @app.get("/api/clients/{client}/expiry-policy", tags=["instances"], summary="The client's expiry limits (default and maximum hours, per service), and the server's")
    def get_expiry_policy(client: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        return {"client": client, "server": limits.as_dict(), "policy": store.get_client_settings(client).get("expiry") or {}}

    @app.put("/api/clients/{client}/expiry-policy", tags=["instances"], summary="Set the client's expiry limits (admin)")
    def put_expiry_policy(
        client: str, request: ExpiryPolicy, principal: Principal = Depends(allow("admin", "expiry.policy")), note: dict[str, Any] = Depends(audit_note)
    ) -> dict[str, Any]:
        try:
            policy = check_policy(request.model_dump())
        except ExpiryError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        note["policy"] = policy
        settings = store.get_client_settings(client)
        settings["expiry"] = policy
        store.put_client_settings(client, settings)
        return get_expiry_policy(client, principal)

    @app.get("/api/clients/{client}/webhook", tags=["notifications"], summary="The client's webhook: its URL and events (never its secret)")
    def get_webhook(client: str, principal: Principal = Depends(allow("viewer"))) -> dict[str, Any]:
        hook = store.get_client_settings(client).get("webhook")
        return {"client": client, "webhook": {"url": hook["url"], "events": hook["events"]} if hook else None, "events": list(NOTIFIED_EVENTS)}

    @app.put("/api/clients/{client}/webhook", tags=["notifications"], summary="Set the client's webhook (admin); a generated secret is returned once")
    def put_webhook(
        client: str, request: WebhookRequest, principal: Principal = Depends(allow("admin", "webhook.set")), note: dict[str, Any] = Depends(audit_note)
    ) -> JSONResponse:
        try:
            check_webhook(request.url, request.events, request.secret)
        except WebhookError as error:
            raise field_refusal(error) from None
        secret = request.secret or secrets_module.token_urlsafe(32)
        note.update(url=urllib.parse.urlsplit(request.url).hostname, events=sorted(set(request.events)))  # a URL's path may itself be a secret
        settings = store.get_client_settings(client)
        settings["webhook"] = {"url": request.url, "events": sorted(set(request.events)), "secret": vault.seal(secret)}
        store.put_client_settings(client, settings)
        shown_once = {"secret": secret} if request.secret is None else {}
        return JSONResponse({"client": client, "webhook": {"url": request.url, "events": sorted(set(request.events))}, **shown_once}, headers={"Cache-Control": "no-store"})

    @app.delete("/api/clients/{client}/webhook", tags=["notifications"], summary="Remove the client's webhook (admin)")
    def delete_webhook(client: str, principal: Principal = Depends(allow("admin", "webhook.delete"))) -> dict[str, Any]:
        settings = store.get_client_settings(client)
        settings.pop("webhook", None)
        store.put_client_settings(client, settings)
        return {"client": client, "webhook": None}

    @app.delete("/api/jobs/{job_id}", status_code=202, tags=["jobs"], summary="Cancel a job (SIGTERM, then SIGKILL after a grace period)")
    def cancel_job(job_id: str, principal: Principal = Depends(allow("operator", "job.cancel"))) -> dict[str, Any]:
        job_or_404(job_id, principal)
        try:
            return jobs.cancel(job_id)
        except Conflict as error:
            raise HTTPException(status_code=409, detail=str(error)) from None

    @app.post("/api/stream-tickets", status_code=201, tags=["jobs"], summary="A ticket opening one event stream for 60 s (EventSource cannot send a token)")
    def stream_ticket(request: TicketRequest, principal: Principal = Depends(allow("authenticated"))) -> dict[str, Any]:
        if not STREAM_PATH.fullmatch(request.path):
            raise HTTPException(status_code=422, detail=f"path: {shown(request.path)} is not allowed; allowed: /api/jobs/<job id>/events or /api/clients/<client>/events")
        kind, name = request.path.split("/")[2:4]
        if kind == "jobs":
            job_or_404(name, principal)
        elif not principal.may("viewer", name):
            raise HTTPException(status_code=403, detail=refusal(principal, "viewer", name))
        return {"ticket": tickets.issue(principal, request.path), "expires_in": int(tickets.ttl)}

    @app.get("/api/me", tags=["access"], summary="Who the caller is: subject, realm roles and each client's role")
    def me(principal: Principal = Depends(allow("authenticated"))) -> dict[str, Any]:
        return principal.described()

    @app.get("/api/access", tags=["access"], summary="Every route and the role it needs (the route x role table), and what each role may do")
    def access(principal: Principal = Depends(allow("authenticated"))) -> dict[str, Any]:
        return {"roles": list(ROLES), "routes": route_roles(app)}

    @app.get(
        "/api/audit",
        tags=["access"],
        summary="The audit trail, newest first: filters, cursor paging, CSV with format=csv",
        responses={200: {"content": {"text/csv": {}}, "description": "The records (JSON), or every matching record as CSV"}},
    )
    def audit_records(
        principal: Principal = Depends(allow("authenticated")),
        client: str | None = Query(None, description="Only this client's records."),
        instance: str | None = Query(None),
        subject: str | None = Query(None, description="Only what this subject did."),
        action: str | None = Query(None, description="An action (job.apply) or a family ending in a dot (job.)."),
        outcome: str | None = Query(None, description="succeeded, refused, rejected or failed."),
        since: str | None = Query(None, description="ISO 8601 time, inclusive."),
        until: str | None = Query(None, description="ISO 8601 time, inclusive."),
        cursor: str | None = Query(None, description="next_cursor of the previous page."),
        limit: int = Query(50, ge=1, le=500),
        format_: str = Query("json", alias="format", pattern="^(json|csv)$", description="json (a page) or csv (every matching record, up to 10,000)."),
    ) -> Any:
        try:
            query = AuditQuery(client, instance, subject, action, outcome, parse_time("since", since), parse_time("until", until), cursor, limit)
        except AuditQueryError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None

        def visible(record: dict[str, Any]) -> bool:  # a viewer reads its clients' records and its own
            return principal.admin or record.get("subject") == principal.subject or (record.get("client") is not None and principal.may("viewer", record["client"]))

        if format_ == "csv":
            records = [record for _, record in zip(range(10_000), trail.records(query, visible))]
            return Response(as_csv(records), media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="spawnit-audit.csv"'})
        return trail.page(query, visible)

    def resume_after(header: str | None, query: str | None) -> int | None:
        """Last-Event-ID, from the header (EventSource's reconnects) or the query (a new EventSource)."""
        for value in (header, query):
            if value and re.fullmatch(r"\d{1,18}", value):
                return int(value)
        return None

    @app.get("/api/jobs/{job_id}/events", tags=["jobs"], summary="Server-Sent Events: every output line and status change")
    async def job_events(
        job_id: str, last_event_id: str | None = Header(None), last_event: str | None = Query(None, alias="last_event_id"), principal: Principal = Depends(allow("viewer"))
    ) -> EventSourceResponse:
        job_or_404(job_id, principal)
        after = resume_after(last_event_id, last_event) or 0

        async def stream():
            try:
                async for event in jobs.stream(job_id, after):
                    yield {"id": str(event["id"]), "event": event["event"], "data": event["data"]}
            except Exception as error:  # noqa: BLE001 - Redis or the store went away: end cleanly, EventSource resumes with Last-Event-ID
                LOG.warning("job %s event stream ended: %s", job_id, error)

        return EventSourceResponse(stream(), ping=15)

    @app.get("/api/clients/{client}/events", tags=["jobs"], summary="Server-Sent Events: every job event and drift change of the client")
    async def client_events(
        client: str,
        request: Request,
        last_event_id: str | None = Header(None),
        last_event: str | None = Query(None, alias="last_event_id"),
        principal: Principal = Depends(allow("viewer")),
    ) -> EventSourceResponse:
        # Resume after Last-Event-ID; a new subscriber starts at the newest event (no replay of history).
        after = resume_after(last_event_id, last_event)
        if after is None:
            after = await asyncio.to_thread(events.tail, client)

        async def stream():
            try:
                async for event in events.astream(client, after):
                    if await request.is_disconnected():
                        return
                    if event:
                        yield {"id": str(event["id"]), "event": event["event"], "data": json.dumps(event["data"])}
            except Exception as error:  # noqa: BLE001 - Redis went away: end cleanly, EventSource resumes with Last-Event-ID
                LOG.warning("client %s event stream ended: %s", client, error)

        return EventSourceResponse(stream(), ping=15)

    return app


__all__ = ["create_app"]
