"""The instance and job routes, in process, over a local store with a stand-in tofu; SSE on a real server."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from conftest import local_app, serving, wait_job
from spawnit.api import create_app
from spawnit.api.auth import AuthSettings
from spawnit.api.jobs import JobManager
from spawnit.api.store import Store
from standin import stand_in_tofu


@pytest.fixture
def tofu(tmp_path):
    return stand_in_tofu(tmp_path)


@pytest.fixture
def app(tmp_path, synth_worker, tofu):
    return local_app(tmp_path, synth_worker, tofu[0], grace_seconds=1)


@pytest.fixture
def api(app):
    with TestClient(app) as client:
        yield client


def create(api, **body):
    return api.post("/api/clients/acme/instances", json={"service": "redis", "parameters": {"port": 6380}, "instance": "cache", **body})


def test_create_stores_a_validated_spec_and_returns_201(api, app):
    response = create(api)
    assert response.status_code == 201 and response.json()["instance"] == "cache"
    spec = app.state.store.get_spec("acme", "cache")
    assert (spec["service"], spec["target"], spec["parameters"]["port"], spec["parameters"]["version"]) == ("redis", "docker", 6380, "7.4")
    assert spec["created_at"].endswith("Z")


def test_bad_parameters_are_a_422_naming_the_fields_and_nothing_is_stored(api, app):
    response = create(api, parameters={"port": 80, "maxmemory_mb": "lots"})
    assert response.status_code == 422
    assert "port = 80 is not allowed" in response.json()["error"] and "maxmemory_mb = 'lots'" in response.json()["error"]
    fields = response.json()["fields"]  # each problem under its field's name, for a form to show it beside the field
    assert sorted(fields) == ["maxmemory_mb", "port"] and fields["port"].startswith("port = 80 is not allowed")
    assert app.state.store.list_instances("acme") == []


def test_unknown_service_and_bad_names_are_422(api):
    assert "is not in the catalog" in create(api, service="oracle").json()["error"]
    assert create(api, instance="Bad Name").status_code == 422
    assert api.post("/api/clients/ACME/instances", json={"service": "redis"}).status_code == 422
    assert api.post("/api/clients/-acme/instances", json={"service": "redis"}).status_code == 422


def test_a_second_instance_of_the_same_name_is_a_409_on_the_name_field(api):
    create(api)
    second = create(api)
    assert second.status_code == 409 and second.json() == {
        "error": "instance acme/cache already exists",
        "fields": {"instance": "'cache' is taken: choose another name"},
    }


def test_list_get_and_patch(api):
    create(api)
    assert [item["instance"] for item in api.get("/api/clients/acme/instances").json()["instances"]] == ["cache"]
    assert api.get("/api/clients/acme/instances/cache").json()["drift"] == "unknown"
    patched = api.patch("/api/clients/acme/instances/cache", json={"parameters": {"maxmemory_mb": 512}})
    assert patched.status_code == 200 and patched.json()["parameters"] == {**patched.json()["parameters"], "maxmemory_mb": 512, "port": 6380}
    assert api.patch("/api/clients/acme/instances/cache", json={"parameters": {"maxmemory_mb": 1}}).status_code == 422
    assert api.get("/api/clients/acme/instances/nothing").status_code == 404


def test_plan_apply_destroy_are_202_jobs_with_uuid_ids(api, tofu):
    create(api)
    for action, body in (("plan", None), ("apply", {"auto_approve": True}), ("destroy", None)):
        response = api.post(f"/api/clients/acme/instances/cache/{action}", json=body)
        assert response.status_code == 202
        record = wait_job(api, response.json()["job"])
        assert (record["action"], record["status"]) == (action, "succeeded")
    assert [call["argv"][0] for call in tofu[1]() if "argv" in call] == ["init", "plan", "init", "plan", "apply", "output", "init", "destroy"]  # auto-approve: a plan, then that plan applied
    assert api.get("/api/clients/acme/instances/cache").json()["last_job"]["action"] == "destroy"


def test_one_job_at_a_time_is_a_409(api, tofu, monkeypatch):
    create(api)
    api.app.state.jobs.environ["TOFU_SLOW_APPLY"] = "50"
    first = api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"]
    second = api.post("/api/clients/acme/instances/cache/plan")
    assert second.status_code == 409 and first in second.json()["error"]
    wait_job(api, first)


def test_cancel_mid_run(api):
    create(api)
    api.app.state.jobs.environ["TOFU_SLOW_APPLY"] = "600"
    job = api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"]
    deadline = time.monotonic() + 60
    while "working 2" not in [e["data"] for e in api.app.state.jobs.snapshot(job)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.delete(f"/api/jobs/{job}").status_code == 202
    assert wait_job(api, job)["status"] == "cancelled"
    assert api.delete(f"/api/jobs/{job}").status_code == 409


def test_delete_destroys_then_removes_the_instance(api, app):
    create(api)
    response = api.delete("/api/clients/acme/instances/cache")
    assert response.status_code == 202
    wait_job(api, response.json()["job"])
    deadline = time.monotonic() + 10
    while app.state.store.get_spec("acme", "cache") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.store.get_spec("acme", "cache") is None


def test_unknown_jobs_and_actions(api):
    create(api)
    assert api.get("/api/jobs/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.get("/api/jobs/not-a-uuid").status_code == 422
    assert api.post("/api/clients/acme/instances/cache/import").status_code == 404


@pytest.fixture
def live(app):
    """The same app on a real server on 127.0.0.1, for Server-Sent Events."""
    with serving(app) as url:
        yield url


def read_events(url: str, headers: dict | None = None) -> list[tuple[str, str, str]]:
    events, current = [], {}
    with httpx.stream("GET", url, headers=headers or {}, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(":")
                current[key] = value.strip()
            elif not line and current:
                events.append((current.get("id"), current.get("event"), current.get("data")))
                current = {}
    return events


def test_job_events_stream_every_line_and_resume_with_last_event_id(live):
    httpx.post(f"{live}/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
    job = httpx.post(f"{live}/api/clients/acme/instances/cache/plan").json()["job"]
    events = read_events(f"{live}/api/jobs/{job}/events")
    assert [event[0] for event in events] == [str(i) for i in range(1, len(events) + 1)]
    assert ("status", "succeeded") == events[-1][1:]
    assert any(event[1] == "line" and event[2].startswith("$ tofu plan") for event in events)
    resumed = read_events(f"{live}/api/jobs/{job}/events", headers={"Last-Event-ID": "3"})
    assert resumed == events[3:]


def metric(api, line_start: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_jobs_by_status_and_time_them(api):
    create(api)
    wait_job(api, api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"])
    # the metrics follow the job's final record (they are counted when its watchers are told)
    deadline = time.monotonic() + 30
    while metric(api, 'spawnit_jobs_total{action="apply",status="succeeded"}') != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(api, 'spawnit_jobs_total{action="apply",status="succeeded"}') == 1
    assert metric(api, 'spawnit_job_duration_seconds_count{action="apply"}') == 1
    assert metric(api, "spawnit_jobs_running") == 0


def test_drift_status_follows_the_plans_of_deployed_instances(api, app):
    create(api)
    wait_job(api, api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"])
    assert api.get("/api/clients/acme/instances/cache").json()["drift"] == "compliant"
    jobs = app.state.jobs
    jobs.environ["TOFU_EXIT_CODES"] = '{"plan": 2}'
    jobs.environ["TOFU_SHOW_JSON"] = json.dumps({"resource_changes": [{"address": "docker_container.redis", "change": {"actions": ["update"]}}]})
    assert app.state.drift.check_all() == {"acme/cache": "drifted"}
    assert api.get("/api/clients/acme/instances/cache").json()["drift_resources"] == ["docker_container.redis"]
    jobs.environ["TOFU_SHOW_JSON"] = json.dumps({"resource_changes": [], "output_changes": {"port": {"actions": ["update"], "after": "6380"}}})
    assert app.state.drift.check_all() == {"acme/cache": "compliant"}  # only an output changes: in sync, its new value shown
    assert api.get("/api/clients/acme/instances/cache").json()["outputs"]["port"] == "6380"
    jobs.environ["TOFU_SHOW_JSON"] = json.dumps({"resource_changes": [{"address": "docker_container.redis", "change": {"actions": ["update"]}}]})
    assert app.state.drift.check_all() == {"acme/cache": "drifted"}
    jobs.environ["TOFU_EXIT_CODES"] = '{"plan": 1}'
    assert app.state.drift.check_all() == {"acme/cache": "error"}
    failed = api.get("/api/clients/acme/instances/cache").json()
    assert failed["drift"] == "drifted" and failed["drift_check"]["status"] == "failed"  # a failed check changes no status
    jobs.environ["TOFU_EXIT_CODES"] = '{}'
    assert app.state.drift.check_all() == {"acme/cache": "compliant"}
    assert metric(api, 'spawnit_drift_checks_total{result="drifted"}') == 2
    assert api.get("/api/clients/acme/instances/cache").json()["drift_checked_at"].endswith("Z")


def test_drift_checks_only_deployed_instances_and_at_most_two_at_once(api, app, tofu):
    for index in range(5):
        create(api, instance=f"cache-{index}")
        wait_job(api, api.post(f"/api/clients/acme/instances/cache-{index}/apply", json={"auto_approve": True}).json()["job"])
    create(api, instance="never-deployed")
    app.state.jobs.environ["TOFU_SLOW_PLAN"] = "5"
    before = len(tofu[1]())  # the applies' own plans are not the round's
    results = app.state.drift.check_all()
    assert sorted(results) == [f"acme/cache-{index}" for index in range(5)]
    calls = tofu[1]()[before:]
    starts = [(call["started"], call["cwd"]) for call in calls if call.get("argv", [None])[0] == "plan"]
    ends = {call["cwd"]: call["at"] for call in calls if call.get("finished") == "plan"}
    overlap = max(sum(1 for other, cwd in starts if other <= start < ends[cwd]) for start, _ in starts)
    assert len(starts) == 5 and overlap <= 2


def follow_client_events(url: str, until: str) -> tuple[threading.Event, list[dict], threading.Thread]:
    """Subscribe to a client's events in a thread: (set once subscribed, events seen, the thread), until
    an event whose data is ``until``."""
    subscribed, seen = threading.Event(), []

    def read() -> None:
        with httpx.stream("GET", url, timeout=60) as response:
            subscribed.set()
            for line in response.iter_lines():
                if line.startswith("data:"):
                    seen.append(json.loads(line.partition(":")[2]))
                    if seen[-1].get("data") == until:
                        return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert subscribed.wait(30)
    return subscribed, seen, thread


def test_client_events_stream_job_events_and_drift(live):
    httpx.post(f"{live}/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
    _, seen, reader = follow_client_events(f"{live}/api/clients/acme/events", until="succeeded")
    job = httpx.post(f"{live}/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"]
    reader.join(60)
    assert {event["job"] for event in seen} == {job}
    assert [event["data"] for event in seen if event["data"] in ("queued", "running", "succeeded")] == ["queued", "running", "succeeded"]


def planned(live: str) -> str:
    """Create acme/cache, plan it and wait for the plan to succeed; its job id."""
    httpx.post(f"{live}/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
    job = httpx.post(f"{live}/api/clients/acme/instances/cache/plan").json()["job"]
    deadline = time.monotonic() + 60
    while httpx.get(f"{live}/api/jobs/{job}").json()["status"] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.05)
    return job


def test_a_new_client_subscriber_starts_at_the_newest_event_without_replaying_history(live):
    planned(live)
    _, seen, reader = follow_client_events(f"{live}/api/clients/acme/events", until="succeeded")
    second = httpx.post(f"{live}/api/clients/acme/instances/cache/plan").json()["job"]
    reader.join(60)
    assert seen and {event["job"] for event in seen} == {second}


def client_event_ids(url: str, count: int, **headers: str) -> list[int]:
    ids = []
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        for line in response.iter_lines():
            if line.startswith("id:"):
                ids.append(int(line.partition(":")[2]))
                if len(ids) == count:
                    return ids
    return ids


def test_client_events_resume_with_last_event_id(live):
    planned(live)
    first = client_event_ids(f"{live}/api/clients/acme/events?last_event_id=0", 5)
    assert first == list(range(first[0], first[0] + 5))  # one sequence, starting from the clock (it survives restarts)
    assert client_event_ids(f"{live}/api/clients/acme/events", 3, **{"Last-Event-ID": str(first[1])}) == first[2:5]


def test_config_tells_the_ui_how_to_log_in(api):
    from spawnit.shared import INSTANCE_NAME_PATTERN, INSTANCE_NAME_RULE

    assert api.get("/api/config").json() == {"auth": "off", "local_client": "local", "instance_name": {"pattern": INSTANCE_NAME_PATTERN, "rule": INSTANCE_NAME_RULE}}
    from spawnit.api.auth import AuthSettings

    oidc = AuthSettings("oidc", issuer="http://localhost:8080/realms/spawnit", audience="spawnit-api", jwks_url="http://x/certs").browser_config()
    assert oidc["authorization_endpoint"] == "http://localhost:8080/realms/spawnit/protocol/openid-connect/auth"
    assert (oidc["client_id"], oidc["token_endpoint"].rsplit("/", 1)[1]) == ("spawnit-web", "token")


def test_the_ui_is_served(api):
    page = api.get("/")
    assert page.status_code == 200 and '<script src="/ui/app.js">' in page.text
    assert api.get("/ui/app.js").status_code == 200 and "code_challenge_method" in api.get("/ui/app.js").text


def test_with_an_s3_store_specs_jobs_and_logs_land_in_the_bucket(aws_account, tmp_path, synth_worker, tofu):
    import boto3

    from spawnit.api.store import S3ObjectStore

    s3 = boto3.client("s3", endpoint_url=aws_account, region_name="us-east-1")
    s3.create_bucket(Bucket="spawnit")
    store = Store(S3ObjectStore("spawnit", endpoint_url=aws_account))
    state = {"kind": "s3", "bucket": "spawnit", "region": "us-east-1", "endpoint": aws_account}
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ=tofu[0], state=state)
    with TestClient(create_app(store=store, jobs=jobs, auth=AuthSettings("off"))) as client:
        client.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
        job = client.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"]
        assert wait_job(client, job)["status"] == "succeeded"
    jobs.close()  # its heartbeats stop before the emulator does
    keys = {item["Key"] for item in s3.list_objects_v2(Bucket="spawnit")["Contents"]}
    assert {"clients/acme/cache/spec.json", f"jobs/{job}.json", f"jobs/{job}.log"} <= keys
    backend = next(call for call in tofu[1]() if "argv" in call)["backend"]["s3"]
    assert (backend["key"], backend["endpoints"]["s3"]) == ("clients/acme/cache/terraform.tfstate", aws_account)


def test_a_name_with_a_trailing_newline_is_refused_and_nothing_is_written(api, app, tmp_path):
    response = api.post("/api/clients/abc%0A/instances", json={"service": "redis", "instance": "cache"})
    assert response.status_code == 422 and "client: 'abc\\n' is not allowed" in response.json()["error"]
    assert not any("\n" in path.name for path in (tmp_path / "store").rglob("*"))


def test_validation_errors_have_the_one_error_shape_naming_the_field(api):
    response = api.post("/api/clients/acme/instances", json={"instance": "cache"})
    assert response.status_code == 422 and set(response.json()) == {"error", "fields"}
    assert "service: field required" in response.json()["error"] and response.json()["fields"] == {"service": "service: field required"}
    malformed = api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "Bad Name"})
    assert list(malformed.json()["fields"]) == ["instance"] and "Bad Name" in malformed.json()["fields"]["instance"]


def test_a_huge_value_is_not_echoed_back_whole(api, app):
    response = create(api, parameters={"port": "9" * 100_000})
    assert response.status_code == 422 and len(response.text) < 2_000
    assert "(100002 characters)" in response.json()["error"]


def test_a_body_over_the_limit_is_a_413_and_nothing_is_stored(api, app):
    from spawnit.api import MAX_BODY_BYTES

    big = {"service": "nginx", "instance": "site", "parameters": {"index_html": "x" * (MAX_BODY_BYTES + 1)}}
    response = api.post("/api/clients/acme/instances", json=big)
    assert response.status_code == 413 and f"at most {MAX_BODY_BYTES} bytes" in response.json()["error"]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"service": "nginx", "instance": "site", "parameters": {"index_html": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b"x" * 1024
        yield b'"}}'

    response = api.post("/api/clients/acme/instances", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and app.state.store.list_instances("acme") == []


def test_parameters_cannot_change_under_a_running_job(api, app):
    create(api)
    app.state.jobs.environ["TOFU_SLOW_APPLY"] = "50"
    job = api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"]
    response = api.patch("/api/clients/acme/instances/cache", json={"parameters": {"port": 6390}})
    assert response.status_code == 409 and job in response.json()["error"]
    assert app.state.store.get_spec("acme", "cache")["parameters"]["port"] == 6380
    wait_job(api, job)
    assert api.patch("/api/clients/acme/instances/cache", json={"parameters": {"port": 6390}}).status_code == 200


def test_tokens_and_stream_tickets_never_reach_the_access_log(app, capfd):
    token, ticket = "eyJhbGciOiJSUzI1NiJ9.secret-part.signature", "Tk3y-stream-ticket-value"
    with serving(app, log_level="info", access_log=True) as url:  # as `spawnit serve` logs
        with httpx.Client(timeout=10) as client:
            client.get(f"{url}/api/jobs/00000000-0000-0000-0000-000000000000/events?access_token={token}&x=1")
            client.get(f"{url}/api/jobs/00000000-0000-0000-0000-000000000000/events?ticket={ticket}&y=2")
    logged = capfd.readouterr()
    assert "access_token=[redacted]&x=1" in logged.out + logged.err and "ticket=[redacted]&y=2" in logged.out + logged.err  # logged...
    assert token not in logged.out + logged.err and ticket not in logged.out + logged.err  # ...without the credentials


def test_the_openapi_document_describes_every_error_status_with_the_error_shape(api):
    document = api.get("/openapi.json").json()
    assert document["components"]["schemas"]["ApiError"]["required"] == ["error"]
    responses = document["paths"]["/api/clients/{client}/instances"]["post"]["responses"]
    for status in ("400", "401", "403", "404", "409", "413", "422"):
        assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiError"}, status


def test_an_unknown_field_in_a_body_is_refused_naming_it_and_the_allowed_ones_and_nothing_is_stored(api):
    """Before: {"name": ...} instead of "instance" was ignored and the instance got a random name with 201."""
    refused = api.post("/api/clients/acme/instances", json={"service": "redis", "name": "cache"})
    assert refused.status_code == 422
    assert refused.json()["error"] == "invalid request:\n  name: not a field of this request; allowed: service, target, parameters, instance, expires_at, expires_in_hours, secrets, service_version, upgrade_policy"
    assert api.get("/api/clients/acme/instances").json()["instances"] == []
    assert api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"}).status_code == 201
    patch = api.patch("/api/clients/acme/instances/cache", json={"parameters": {"port": 6390}, "force": True})
    assert patch.status_code == 422 and "force: not a field of this request; allowed: parameters" in patch.json()["error"]
    rotation = api.post("/api/clients/acme/instances/cache/secrets/password/rotate", json={"valeu": "x" * 40})
    assert rotation.status_code == 422 and "valeu" in rotation.json()["error"] and "allowed: value" in rotation.json()["error"]
    assert "x" * 40 not in rotation.json()["error"]  # an unknown field's value is never echoed: it may be a secret


def test_the_openapi_document_says_every_request_body_admits_no_other_field(api):
    document = api.get("/openapi.json").json()
    import re

    bodies = {
        name for path in document["paths"].values() for operation in path.values() if "requestBody" in operation
        for name in re.findall(r'"#/components/schemas/(\w+)"', json.dumps(operation["requestBody"]))
    }
    assert bodies == {
        "Budget", "Deprecation", "EstimateRequest", "ExpiryPolicy", "ExpiryRequest", "GateOverride", "InstanceRequest", "InstanceUpdate", "JobRequest", "SecretRotation", "UpgradePolicy", "UpgradeRequest",
        "TicketRequest", "WebhookRequest",
    }
    assert all(document["components"]["schemas"][name]["additionalProperties"] is False for name in bodies)


def test_a_hundred_idle_streams_do_not_hold_back_a_jobs_events(live, app):
    """A hundred client streams open and idle while a job runs: its events all arrive, promptly (the
    streams wait on the event loop, holding no thread)."""

    idle, stop = [], threading.Event()

    def hold_open() -> None:
        with httpx.stream("GET", f"{live}/api/clients/acme/events", timeout=60) as response:
            idle.append(response.status_code)
            try:
                for _ in response.iter_lines():
                    if stop.is_set():
                        return
            except httpx.RemoteProtocolError:  # the server stopped at the test's end and cut the idle stream
                return

    threads = [threading.Thread(target=hold_open, daemon=True) for _ in range(100)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(idle) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(idle) == 100
    try:
        httpx.post(f"{live}/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
        app.state.jobs.environ["TOFU_SLOW_PLAN"] = "20"  # 20 lines, 0.1 s apart
        job = httpx.post(f"{live}/api/clients/acme/instances/cache/plan").json()["job"]
        started = time.monotonic()
        events = read_events(f"{live}/api/jobs/{job}/events")
        elapsed = time.monotonic() - started
        assert events[-1][1:] == ("status", "succeeded") and sum(1 for event in events if event[2].startswith("working")) == 20
        assert elapsed < 45, f"the job's events took {elapsed:.0f} s behind 100 idle streams"  # generous: the job itself takes ~3 s
    finally:
        stop.set()


def test_concurrent_creations_of_one_name_give_exactly_one_201(live, app):
    from concurrent.futures import ThreadPoolExecutor

    def create_with(port: int) -> tuple[int, int]:
        response = httpx.post(f"{live}/api/clients/acme/instances", json={"service": "redis", "instance": "cache", "parameters": {"port": port}}, timeout=30)
        return response.status_code, port

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(create_with, range(6380, 6390)))
    assert sorted(status for status, _ in results) == [201] + [409] * 9
    (winner,) = [port for status, port in results if status == 201]
    assert app.state.store.get_spec("acme", "cache")["parameters"]["port"] == winner


def test_a_body_that_is_not_utf8_or_not_json_gets_the_documented_error_shape(api):
    unreadable = api.post("/api/clients/acme/instances", content=b'{"service": "redis\xff\xfe"}', headers={"content-type": "application/json"})
    assert unreadable.status_code == 400
    assert unreadable.json() == {"error": "request body: cannot be read (not UTF-8 text); allowed: a JSON object encoded in UTF-8"}
    truncated = api.post("/api/clients/acme/instances", content=b'{"service": ', headers={"content-type": "application/json"})
    assert truncated.status_code == 422 and truncated.json()["error"].startswith("invalid request:\n  request body: not valid JSON (at character 12")
    assert api.get("/api/nothing-here").json() == {"error": "Not Found"}
