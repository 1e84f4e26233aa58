"""Teams and roles: the route x role table, cell by cell against a real server with signed tokens (each
role granted the ways Keycloak writes them: realm roles and groups), a team of two sharing a client, and
the audit trail of what they did and were refused."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest

from conftest import ALICE, AUDIENCE, ISSUER, audit_offenders, serving, token, wait_job, wait_until
from spawnit.api import create_app, route_roles
from spawnit.api.auth import AuthSettings, Principal
from spawnit.api.jobs import JobManager
from spawnit.api.store import LocalObjectStore, Store
from standin import stand_in_tofu

ROOT = Path(__file__).resolve().parent.parent

# The table the README publishes, written out here: what each route needs, and the action it records.
EXPECTED = {
    ("GET", "/healthz"): ("public", None),
    ("GET", "/"): ("public", None),
    ("GET", "/api/config"): ("public", None),
    ("GET", "/metrics"): ("public", None),
    ("GET", "/api/me"): ("authenticated", None),
    ("GET", "/api/access"): ("authenticated", None),
    ("GET", "/api/audit"): ("authenticated", None),
    ("GET", "/api/catalog"): ("authenticated", None),
    ("GET", "/api/catalog/{service}"): ("authenticated", None),
    ("POST", "/api/catalog/{service}/estimate"): ("authenticated", None),
    ("PUT", "/api/catalog/{service}"): ("admin", "catalog.publish"),
    ("PUT", "/api/catalog/{service}/versions/{version}/deprecation"): ("admin", "catalog.deprecate"),
    ("POST", "/api/clients/{client}/instances/{instance}/upgrade"): ("operator", "instance.upgrade"),
    ("PUT", "/api/clients/{client}/instances/{instance}/upgrade-policy"): ("operator", "instance.upgrade_policy"),
    ("GET", "/api/targets"): ("authenticated", None),
    ("GET", "/api/targets/proxmox/resources"): ("authenticated", None),
    ("GET", "/api/drift"): ("authenticated", None),
    ("POST", "/api/stream-tickets"): ("authenticated", None),
    ("GET", "/api/clients/{client}/instances"): ("viewer", None),
    ("GET", "/api/clients/{client}/instances/{instance}"): ("viewer", None),
    ("GET", "/api/clients/{client}/instances/{instance}/secrets"): ("viewer", None),
    ("GET", "/api/clients/{client}/instances/{instance}/jobs"): ("viewer", None),
    ("GET", "/api/clients/{client}/instances/{instance}/drift"): ("viewer", None),
    ("GET", "/api/clients/{client}/jobs"): ("viewer", None),
    ("GET", "/api/clients/{client}/budget"): ("viewer", None),
    ("GET", "/api/clients/{client}/events"): ("viewer", None),
    ("GET", "/api/jobs/{job_id}"): ("viewer", None),
    ("GET", "/api/jobs/{job_id}/plan"): ("viewer", None),
    ("GET", "/api/jobs/{job_id}/events"): ("viewer", None),
    ("POST", "/api/clients/{client}/instances"): ("operator", "instance.create"),
    ("PATCH", "/api/clients/{client}/instances/{instance}"): ("operator", "instance.update"),
    ("DELETE", "/api/clients/{client}/instances/{instance}"): ("operator", "instance.destroy"),
    ("POST", "/api/clients/{client}/instances/{instance}/{action}"): ("operator", "job.<action>"),
    ("POST", "/api/clients/{client}/instances/{instance}/secrets/{name}/reveal"): ("operator", "secret.reveal"),
    ("POST", "/api/clients/{client}/instances/{instance}/secrets/{name}/rotate"): ("operator", "secret.rotate"),
    ("DELETE", "/api/jobs/{job_id}"): ("operator", "job.cancel"),
    ("POST", "/api/jobs/{job_id}/gate/overrides"): ("admin", "gate.override"),
    ("PUT", "/api/clients/{client}/budget"): ("admin", "budget.set"),
    ("POST", "/api/drift-checks"): ("admin", "drift.check"),
    ("PUT", "/api/clients/{client}/instances/{instance}/expiry"): ("operator", "expiry.set"),
    ("GET", "/api/clients/{client}/expiry-policy"): ("viewer", None),
    ("PUT", "/api/clients/{client}/expiry-policy"): ("admin", "expiry.policy"),
    ("GET", "/api/clients/{client}/webhook"): ("viewer", None),
    ("PUT", "/api/clients/{client}/webhook"): ("admin", "webhook.set"),
    ("DELETE", "/api/clients/{client}/webhook"): ("admin", "webhook.delete"),
}

# Who calls, and the strongest role each holds on client "acme" (None: no token at all).
CALLERS = {
    "viewer": dict(subject="dave", roles=("acme:viewer",)),  # a realm role <client>:<role>
    "operator": dict(subject="carol", roles=(), groups=("/clients/acme/operator",)),  # a group /clients/<client>/<role>
    "admin": dict(subject="root", roles=("admin",)),
    "outsider": dict(subject="bob", roles=("bob:operator",)),  # an operator, of another client
}
HOLDS = {"viewer": "viewer", "operator": "operator", "admin": "admin", "outsider": None, "anonymous": None}
RANK = {None: 0, "viewer": 1, "operator": 2, "admin": 3}

# A body per route that passes the access check and is then refused for what it says (or touches nothing
# that exists), so an allowed call changes nothing: the cell's answer is then 4xx but never 401/403.
BODIES = {
    ("POST", "/api/catalog/{service}/estimate"): {"target": "nowhere"},
    ("POST", "/api/stream-tickets"): {"path": "/api/clients/acme/events"},
    ("POST", "/api/clients/{client}/instances"): {"service": "redis", "parameters": {"port": 1}},
    ("PATCH", "/api/clients/{client}/instances/{instance}"): {"parameters": {}},
    ("POST", "/api/jobs/{job_id}/gate/overrides"): {"check": "security", "reason": "x"},
    ("PUT", "/api/clients/{client}/budget"): {"monthly_usd": -1},
    ("PUT", "/api/clients/{client}/instances/{instance}/expiry"): {"expires_in_hours": 1},
    ("PUT", "/api/clients/{client}/expiry-policy"): {"default_hours": -1},
    ("PUT", "/api/clients/{client}/webhook"): {"url": "ftp://example.com", "events": ["job.failed"]},
    ("PUT", "/api/catalog/{service}"): {"name": "redis"},  # not a template: 422, the catalog unchanged
    ("PUT", "/api/catalog/{service}/versions/{version}/deprecation"): {"note": "short"},
    ("POST", "/api/clients/{client}/instances/{instance}/upgrade"): {"version": "9.9.9"},
    ("PUT", "/api/clients/{client}/instances/{instance}/upgrade-policy"): {"policy": "sometimes"},
}


def allowed(role: str, caller: str) -> bool:
    if role == "public":
        return True
    if role == "authenticated":
        return caller != "anonymous"
    return RANK[HOLDS[caller]] >= RANK[role]


@pytest.fixture(scope="module")
def team(tmp_path_factory, jwks_url, synth_worker, signing_key):
    """A server with OIDC on, one instance of acme with one finished plan job."""
    folder = tmp_path_factory.mktemp("access")
    environ, _ = stand_in_tofu(folder)
    store = Store(LocalObjectStore(folder / "store"))
    jobs = JobManager(store, synth_worker, workdir=folder / "work", environ=environ)
    app = create_app(store=store, jobs=jobs, auth=AuthSettings("oidc", issuer=ISSUER, audience=AUDIENCE, jwks_url=jwks_url))
    with serving(app, proxy_headers=False) as url:  # as `spawnit serve` runs it: the peer address is the trail's to judge
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bearer(signing_key, 'admin')}"}, timeout=60)
        assert admin.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"}).status_code == 201
        job = admin.post("/api/clients/acme/instances/cache/plan").json()["job"]
        assert wait_job(admin, job)["status"] == "succeeded"
        yield url, app, job


def bearer(key, caller: str, **extra) -> str:
    return token(key, **{**CALLERS[caller], **extra})


def call(url: str, method: str, path: str, headers: dict, body: dict | None) -> int:
    """The status of one call; an event stream is read only up to its headers."""
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        with client.stream(method, path, json=body) as response:
            return response.status_code


def test_every_route_declares_its_role_as_the_readme_table_says(team):
    _, app, _ = team
    declared = {(row["method"], row["path"]): (row["role"], row["action"]) for row in route_roles(app)}
    assert declared == EXPECTED  # a new route without an access rule would be listed with role None
    table = re.search(r"<!-- route-roles -->\n(.*?)\n<!-- /route-roles -->", (ROOT / "README.md").read_text(), re.S).group(1)
    rows = [[cell.strip().strip("`") for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    readme = {(method, path): (role, None if action == "-" else action) for method, path, role, action in rows}
    assert readme == EXPECTED


@pytest.mark.parametrize("caller", [*CALLERS, "anonymous"])
def test_the_route_x_role_table_cell_by_cell(team, signing_key, caller):
    url, app, job = team
    headers = {"Authorization": f"Bearer {bearer(signing_key, caller)}"} if caller != "anonymous" else {}
    values = {"client": "acme", "instance": "absent", "job_id": job, "name": "password", "service": "redis", "action": "plan", "version": "1.0.0"}
    own = CALLERS.get(caller, {}).get("subject", "nobody")
    bodies = {**BODIES, ("POST", "/api/stream-tickets"): {"path": f"/api/clients/{own}/events"}}  # a stream of one's own client
    wrong = []
    for (method, template), (role, _) in EXPECTED.items():
        path = template.format(**values)
        status = call(url, method, path, headers, bodies.get((method, template), {} if method in ("POST", "PUT", "PATCH") else None))
        # a job the caller may not read does not exist for it: 404, its existence not given away
        refused = status in (401, 403) or ("{job_id}" in template and status == 404 and RANK[HOLDS[caller]] < RANK["viewer"])
        if refused == allowed(role, caller):
            wrong.append(f"{method} {template} ({role}): {status}")
    assert wrong == [], f"{caller}: " + "; ".join(wrong)


def records(app, **where) -> list[dict]:
    found = [json.loads(app.state.store.objects.get(key)) for key in app.state.store.objects.list("audit/")]
    return [record for record in found if all(record.get(name) == value for name, value in where.items())]


def test_a_refusal_names_the_role_needed_and_the_roles_held_and_is_recorded(team, signing_key):
    url, app, _ = team
    dave = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bearer(signing_key, 'viewer')}"}, timeout=30)
    response = dave.post("/api/clients/acme/instances/cache/plan")
    assert response.status_code == 403
    assert response.json()["error"] == "dave may not do this: the operator role is required on client 'acme'; held: viewer on acme, operator on dave"
    refused = records(app, subject="dave", action="job.plan", outcome="refused")
    assert refused and refused[-1]["route"] == "POST /api/clients/{client}/instances/{instance}/{action}" and refused[-1]["status"] == 403
    assert refused[-1]["client"] == "acme" and refused[-1]["instance"] == "cache" and refused[-1]["grants"] == {"acme": "viewer", "dave": "operator"}


def test_a_team_of_two_subjects_shares_a_client(team, signing_key):
    url, app, _ = team
    alice = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token(signing_key, subject=ALICE, roles=(), groups=('/clients/acme/operator',))}"}, timeout=60)
    carol = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bearer(signing_key, 'operator')}"}, timeout=60)
    assert alice.get("/api/me").json()["grants"] == {"acme": "operator", ALICE: "operator"}
    assert alice.post("/api/clients/acme/instances", json={"service": "nginx", "instance": "site"}).status_code == 201
    planned = carol.post("/api/clients/acme/instances/site/plan").json()["job"]  # carol plans what alice made
    assert wait_job(carol, planned)["requested_by"] == "carol"
    seen = {(record["instance"], record["requested_by"]) for record in alice.get("/api/clients/acme/jobs").json()["jobs"]}
    assert ("site", "carol") in seen  # alice sees carol's job on their client
    trail = alice.get("/api/audit", params={"client": "acme", "instance": "site"}).json()["records"]
    assert [(record["action"], record["subject"]) for record in reversed(trail)] == [
        ("instance.create", ALICE),
        ("job.plan", "carol"),
        ("job.plan.finished", "carol"),
    ]


def test_the_strongest_grant_wins_and_malformed_grants_grant_nothing():
    principal = Principal("erin", frozenset({"acme:viewer", "acme:admin", "Acme:operator", "x:operator:y"}), frozenset({"/clients/acme/operator", "/clients/beta/owner", "/teams/acme/operator"}))
    assert principal.grants == {"acme": "operator", "erin": "operator"}  # admin is the realm role alone, never per client
    assert principal.may("operator", "acme") and not principal.may("viewer", "beta") and not principal.may("admin")


# The audit trail's own behaviour: paging, filters, time ranges, CSV, the caller's address, the CLI -------------

from datetime import UTC, datetime, timedelta  # noqa: E402

from spawnit.api.audit import AuditQuery, AuditQueryError, AuditTrail, caller_address, trusted_networks  # noqa: E402
from spawnit.cli import main  # noqa: E402


@pytest.fixture
def trail(tmp_path):
    """Thirty records over three days, time injected: a subject per parity, two clients, three outcomes."""
    moments = iter(datetime(2026, 12, 5, 9, 0, tzinfo=UTC) + timedelta(hours=2 * n) for n in range(30))
    written = AuditTrail(LocalObjectStore(tmp_path / "store"), clock=lambda: next(moments))
    for n in range(30):
        principal = Principal("alice" if n % 2 == 0 else "bob")
        written.write(principal, "job.apply" if n % 3 == 0 else "instance.create", ("succeeded", "refused", "failed")[n % 3],
                      client="acme" if n < 20 else "beta", instance=f"i{n}", status=202)
    return written


def test_pages_walk_every_record_newest_first_exactly_once(trail):
    seen, cursor = [], None
    while True:
        page = trail.page(AuditQuery(cursor=cursor, limit=7))
        seen += [record["instance"] for record in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"i{n}" for n in reversed(range(30))]


def test_filters_combine_and_a_time_range_reads_only_its_days(trail, tmp_path):
    query = AuditQuery(client="acme", subject="alice", action="job.", outcome="succeeded", limit=500)
    assert [record["instance"] for record in trail.page(query)["records"]] == ["i18", "i12", "i6", "i0"]
    since, until = datetime(2026, 12, 6, 0, 0, tzinfo=UTC), datetime(2026, 12, 6, 23, 59, tzinfo=UTC)
    day = trail.page(AuditQuery(since=since, until=until, limit=500))["records"]
    assert [record["at"][:10] for record in day] == ["2026-12-06"] * 12
    read = []
    objects = trail.objects
    trail.objects = type("Counting", (), {"list": lambda self, prefix: read.append(prefix) or objects.list(prefix), "get": lambda self, key: objects.get(key)})()
    trail.page(AuditQuery(since=since, until=until))
    assert read == ["audit/2026-12-06/"]  # the range's day, not the whole trail
    with pytest.raises(AuditQueryError, match="outcome: 'won' is not allowed; allowed: succeeded, refused, rejected, failed, cancelled"):
        AuditQuery(outcome="won")
    with pytest.raises(AuditQueryError, match="cursor: '../secrets' is not allowed"):
        AuditQuery(cursor="../secrets")


def test_the_caller_address_believes_forwarded_for_only_from_trusted_proxies():
    proxies = trusted_networks("10.0.0.0/8, 192.0.2.7")
    assert caller_address("203.0.113.9", "198.51.100.1", proxies) == "203.0.113.9"  # not a proxy: its header is not believed
    assert caller_address("10.1.2.3", "198.51.100.1", proxies) == "198.51.100.1"
    # a client writes what it likes on the left; the nearest hop that is not a proxy is the caller
    assert caller_address("10.1.2.3", "1.1.1.1, 198.51.100.1, 192.0.2.7", proxies) == "198.51.100.1"
    with pytest.raises(ValueError, match="SPAWNIT_TRUSTED_PROXIES: 'proxy.local' is not allowed"):
        trusted_networks("proxy.local")


def test_the_api_pages_filters_and_exports_csv_and_a_viewer_reads_only_its_clients(team, signing_key):
    url, app, _ = team
    headers = {"Authorization": f"Bearer {bearer(signing_key, 'admin')}", "X-Forwarded-For": "198.51.100.1"}
    admin = httpx.Client(base_url=url, headers=headers, timeout=30)
    for budget in (12, 13, 14):
        assert admin.put("/api/clients/beta/budget", json={"monthly_usd": budget}).status_code == 200
    first = admin.get("/api/audit", params={"limit": 2, "client": "beta"}).json()
    assert [(record["action"], record["details"]) for record in first["records"]] == [("budget.set", {"monthly_usd": 14.0}), ("budget.set", {"monthly_usd": 13.0})]
    assert first["records"][0]["address"] == "127.0.0.1"  # no trusted proxy configured: the peer, not what the header says
    second = admin.get("/api/audit", params={"limit": 2, "client": "beta", "cursor": first["next_cursor"]}).json()
    assert [record["details"] for record in second["records"]] == [{"monthly_usd": 12.0}] and second["next_cursor"] is None
    csv_text = admin.get("/api/audit", params={"format": "csv", "action": "budget.set"}).text
    assert csv_text.splitlines()[0].startswith("at,outcome,status,action,subject,client") and ",budget.set,root,beta," in csv_text
    assert admin.get("/api/audit", params={"since": "yesterday"}).json()["error"].startswith("since: 'yesterday' is not allowed")
    viewer = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {bearer(signing_key, 'viewer')}"}, timeout=30)
    clients = {record["client"] for record in viewer.get("/api/audit", params={"limit": 500}).json()["records"]}
    assert "beta" not in clients and "acme" in clients


def test_spawnit_audit_prints_the_trail_from_the_store(trail, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPAWNIT_DATA_DIR", str(tmp_path / "store"))
    assert main(["audit", "--client", "beta", "--outcome", "refused", "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["instance"], line["subject"]) for line in lines] == [("i28", "alice"), ("i25", "bob"), ("i22", "alice")]
    assert main(["audit", "--subject", "bob", "--limit", "2"]) == 0
    table = capsys.readouterr().out
    assert "acme/i29" not in table and "beta/i29" in table and "beta/i27" in table and "i25" not in table
    assert main(["audit", "--since", "last week"]) == 2
    assert "--since: 'last week' is not allowed" in capsys.readouterr().err
    assert main(["audit", "--limit", "0"]) == 2
    assert "--limit: 0 is not allowed; allowed: 1-500" in capsys.readouterr().err


def test_the_suites_audit_check_finds_a_record_holding_a_token_or_an_unnamed_field(tmp_path, signing_key):
    """The check conftest runs over every record the suite wrote, tried on planted records."""
    trail = AuditTrail(LocalObjectStore(tmp_path / "store"))
    trail.write(Principal("alice"), "budget.set", "succeeded", client="acme", monthly_usd=5)
    assert audit_offenders(tmp_path) == []
    trail.write(Principal("alice"), "instance.create", "succeeded", client="acme", reason=f"pasted {token(signing_key)}")
    (day,) = {path.parent for path in (tmp_path / "store" / "audit").rglob("*.json")}  # the trail's folder for today (UTC)
    planted = day / "000000.000000-deadbeef.json"
    try:
        planted.write_text(json.dumps({"id": "x", "action": "instance.create", "parameters": {"password": "x"}}))
        found = audit_offenders(tmp_path)
    finally:
        shutil.rmtree(tmp_path / "store")  # planted on purpose: not for the session's own check
    assert len(found) == 2 and any("pasted eyJ" in line for line in found) and any('"parameters"' in line for line in found)


def test_every_action_that_changes_something_is_one_record_with_its_outcome(tmp_path, synth_worker):
    """create, update, plan, apply, cancel, destroy, expiry change, budget: each request one record, and
    each job's end one more (written by the worker, with how it ended)."""
    from conftest import local_app
    from fastapi.testclient import TestClient

    environ, _ = stand_in_tofu(tmp_path)
    environ["TOFU_SLOW_APPLY"] = "600"  # an apply long enough to cancel
    with TestClient(local_app(tmp_path, synth_worker, environ=environ)) as api:
        assert api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"}).status_code == 201
        assert api.patch("/api/clients/acme/instances/cache", json={"parameters": {"port": 6390}}).status_code == 200
        wait_job(api, api.post("/api/clients/acme/instances/cache/plan").json()["job"])
        applying = api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"]
        assert api.delete(f"/api/jobs/{applying}").status_code == 202
        assert wait_job(api, applying)["status"] == "cancelled"
        assert api.put("/api/clients/acme/instances/cache/expiry", json={"expires_in_hours": 3}).status_code == 200
        assert api.patch("/api/clients/acme/instances/cache", json={"parameters": {"port": 80}}).status_code == 422
        destroying = api.delete("/api/clients/acme/instances/cache").json()["job"]
        wait_job(api, destroying)
        wait_until(lambda: len(records(api.app, action="job.destroy.finished")) == 1, 30, "the destroy's end recorded")
        trail = sorted(records(api.app), key=lambda record: record["id"])
    assert [(record["action"], record["outcome"]) for record in trail] == [
        ("instance.create", "succeeded"),
        ("instance.update", "succeeded"),
        ("job.plan", "succeeded"),
        ("job.plan.finished", "succeeded"),
        ("job.apply", "succeeded"),
        ("job.cancel", "succeeded"),
        ("job.apply.finished", "cancelled"),
        ("expiry.set", "succeeded"),
        ("instance.update", "rejected"),
        ("instance.destroy", "succeeded"),
        ("job.destroy.finished", "succeeded"),
    ]
    assert [record["job"] for record in trail if record["action"].startswith(("job.apply", "job.cancel"))] == [applying] * 3
    assert [(record["action"], record["subject"], record["client"], record["instance"]) for record in trail if (record["subject"], record["client"], record["instance"]) != ("local", "acme", "cache")] == []
