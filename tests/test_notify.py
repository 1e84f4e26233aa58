"""Notifications to a client's webhook, against a local receiver on 127.0.0.1: signed deliveries of a failed
job, a blocked gate and detected drift; retried with backoff; given up and recorded; never holding a job."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from conftest import wait_job, wait_until
from plansamples import DRIFT_PLAN
from spawnit.api import create_app
from spawnit.api.auth import AuthSettings
from spawnit.api.jobs import JobManager
from spawnit.api.notify import SIGNATURE_HEADER, WebhookError, check_webhook, sign, verify
from spawnit.api.store import LocalObjectStore, Store
from standin import stand_in_tofu


class Receiver:
    """A webhook receiver: records every delivery (headers, body, when); answers ``statuses`` in turn
    (then 204), or holds each request until ``release`` is set."""

    def __init__(self) -> None:
        self.deliveries: list[dict] = []
        self.statuses: list[int] = []
        self.release = threading.Event()
        self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append({"headers": dict(self.headers), "body": body, "at": time.monotonic()})
                receiver.release.wait(60)
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/spawnit"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[str]:
        return [json.loads(delivery["body"])["event"] for delivery in self.deliveries]


@pytest.fixture
def receiver():
    started = Receiver()
    yield started
    started.release.set()
    started.server.shutdown()


@pytest.fixture
def platform(tmp_path, synth_worker):
    environ, _ = stand_in_tofu(tmp_path)
    store = Store(LocalObjectStore(tmp_path / "store"))
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ=environ)
    app = create_app(store=store, jobs=jobs, auth=AuthSettings("off"), webhook_options={"attempts": 3, "backoff": 0.2, "timeout": 5})
    with TestClient(app) as api:
        yield api, jobs


def hook(api, receiver, events=("job.failed", "gate.blocked", "drift.detected", "expiry.warning")) -> str:
    response = api.put("/api/clients/acme/webhook", json={"url": receiver.url, "events": list(events)})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    return response.json()["secret"]


def test_a_failed_job_is_delivered_signed_and_the_secret_is_shown_once_and_stored_sealed(platform, receiver, tmp_path):
    api, jobs = platform
    secret = hook(api, receiver)
    assert api.get("/api/clients/acme/webhook").json()["webhook"] == {"url": receiver.url, "events": ["drift.detected", "expiry.warning", "gate.blocked", "job.failed"]}
    assert all(secret.encode() not in path.read_bytes() for path in (tmp_path / "store").rglob("*") if path.is_file())
    api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
    jobs.environ["TOFU_EXIT_CODES"] = json.dumps({"apply": 1})
    failed = wait_job(api, api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"])
    assert failed["status"] == "failed"
    wait_until(lambda: receiver.deliveries, 30, "the failed job's delivery")
    (delivery,) = receiver.deliveries
    body = json.loads(delivery["body"])
    assert (body["event"], body["client"], body["data"]["instance"], body["data"]["job"]) == ("job.failed", "acme", "cache", failed["id"])
    assert delivery["headers"]["X-SpawnIt-Event"] == "job.failed" and delivery["headers"]["X-SpawnIt-Delivery"] == body["id"]
    assert verify(secret, delivery["headers"][SIGNATURE_HEADER], delivery["body"])  # what a receiver checks
    assert not verify("another-secret-of-16", delivery["headers"][SIGNATURE_HEADER], delivery["body"])
    assert not verify(secret, delivery["headers"][SIGNATURE_HEADER], delivery["body"] + b" ")
    assert not verify(secret, sign(secret, delivery["body"], int(time.time()) - 3600), delivery["body"])  # an old delivery replayed


def test_a_failing_receiver_is_retried_with_backoff_then_given_up_and_recorded(platform, receiver):
    api, jobs = platform
    hook(api, receiver)
    receiver.statuses = [500, 503]  # the third attempt succeeds
    api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
    jobs.environ["TOFU_EXIT_CODES"] = json.dumps({"apply": 1})
    wait_job(api, api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"])
    wait_until(lambda: len(receiver.deliveries) == 3, 60, "three attempts")
    first, second, third = (delivery["at"] for delivery in receiver.deliveries)
    assert second - first >= 0.2 and third - second >= 0.2  # exponential: each wait at least the backoff
    assert len({delivery["headers"]["X-SpawnIt-Delivery"] for delivery in receiver.deliveries}) == 1  # one delivery, three attempts

    receiver.deliveries.clear()
    receiver.statuses = [500, 500, 500]  # every attempt fails: given up after three, and recorded
    wait_job(api, api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"])

    def given_up():
        records = [json.loads(api.app.state.store.objects.get(key)) for key in api.app.state.store.objects.list("audit/")]
        return [record for record in records if record["action"] == "webhook.delivery"]

    wait_until(given_up, 60, "the given-up delivery's record")
    (record,) = given_up()
    assert (record["outcome"], record["client"], record["details"]) == ("failed", "acme", {"event": "job.failed", "attempts": 3})
    assert len(receiver.deliveries) == 3


def test_a_receiver_that_does_not_answer_never_holds_a_job(platform, receiver):
    api, jobs = platform
    hook(api, receiver)
    receiver.release.clear()  # the receiver holds every request
    api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
    jobs.environ["TOFU_EXIT_CODES"] = json.dumps({"apply": 1})
    first = wait_job(api, api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"])
    wait_until(lambda: receiver.deliveries, 30, "the delivery to reach the receiver")
    jobs.environ["TOFU_EXIT_CODES"] = "{}"
    second = wait_job(api, api.post("/api/clients/acme/instances/cache/plan").json()["job"])  # the next job runs meanwhile
    assert first["status"] == "failed" and second["status"] == "succeeded"
    assert len(receiver.deliveries) == 1  # still held: nothing waited for it


def test_a_blocked_gate_and_detected_drift_are_delivered_only_to_a_hook_that_wants_them(platform, receiver, risky_plan):
    api, jobs = platform
    hook(api, receiver, events=("gate.blocked", "drift.detected"))
    api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
    applied = wait_job(api, api.post("/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"])
    assert applied["status"] == "succeeded"
    jobs.environ |= {"TOFU_EXIT_CODES": json.dumps({"plan": 2}), "TOFU_SHOW_JSON": json.dumps(DRIFT_PLAN)}
    assert api.app.state.drift.check_all() == {"acme/cache": "drifted"}
    assert api.app.state.drift.check_all() == {"acme/cache": "drifted"}  # still drifted: not news again
    jobs.environ["TOFU_SHOW_JSON"] = json.dumps(risky_plan)
    blocked = wait_job(api, api.post("/api/clients/acme/instances/cache/plan").json()["job"])
    assert blocked["gate"]["passed"] is False
    wait_until(lambda: len(receiver.deliveries) >= 2, 30, "drift and gate deliveries")
    assert receiver.events() == ["drift.detected", "gate.blocked"]
    drift = json.loads(receiver.deliveries[0]["body"])["data"]
    assert drift["instance"] == "cache" and drift["resources"] == ["docker_container.redis"]
    gate = json.loads(receiver.deliveries[1]["body"])["data"]
    assert gate["job"] == blocked["id"] and any("CKV_AWS_24" in reason for reason in gate["reasons"])


@pytest.mark.parametrize(
    ("url", "events", "secret", "message"),
    [
        ("ftp://example.com/hook", ["job.failed"], None, "url: 'ftp://example.com/hook' is not allowed; allowed: an https:// URL"),
        ("http://hooks.example.com/x", ["job.failed"], None, "allowed: https:// for a receiver on the internet"),
        ("https://user:pw@example.com/x", ["job.failed"], None, "credentials in the URL are not allowed"),
        ("https://example.com/x", ["job.done"], None, "events: 'job.done' is not allowed; allowed: one or more of job.failed"),
        ("https://example.com/x", ["job.failed"], "short", "secret: too short; allowed: at least 16 characters"),
    ],
)
def test_bad_webhook_settings_are_refused_naming_the_field(url, events, secret, message):
    with pytest.raises(WebhookError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        check_webhook(url, events, secret)
