"""`spawnit serve`: a real server on 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from conftest import free_port
from spawnit.services import catalog_document, get_service


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    data = tmp_path_factory.mktemp("spawnit-data")
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_S3")} | {"SPAWNIT_DATA_DIR": str(data), "SPAWNIT_AUTH": "off"}
    process = start_server(port, data, environ)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_healthz(server):
    assert httpx.get(f"{server}/healthz").json()["status"] == "ok"


def test_catalog_is_served_from_the_classes(server):
    assert httpx.get(f"{server}/api/catalog").json() == catalog_document()


def test_one_service_schema(server):
    assert httpx.get(f"{server}/api/catalog/redis").json() == get_service("redis").schema()


def test_unknown_service_is_a_json_404(server):
    response = httpx.get(f"{server}/api/catalog/oracle")
    assert response.status_code == 404
    assert "service: 'oracle' is not in the catalog" in response.json()["error"]


def test_openapi_documents_the_routes(server):
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert {"/healthz", "/api/catalog", "/api/catalog/{service}"} <= set(paths)


def test_serve_rejects_a_bad_port():
    result = subprocess.run([sys.executable, "-m", "spawnit", "serve", "--port", "70000"], capture_output=True, text=True)
    assert result.returncode == 2 and "--port: 70000 is not allowed" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SPAWNIT_DRIFT_INTERVAL", "often", "SPAWNIT_DRIFT_INTERVAL: 'often' is not allowed; allowed: a duration from 1 s to 7 days, e.g. 600, 90s, 10m, 24h, 7d"),
        ("SPAWNIT_DRIFT_CONCURRENCY", "0", "SPAWNIT_DRIFT_CONCURRENCY: '0' is not allowed; allowed: a whole number from 1 to 16"),
        ("SPAWNIT_JOB_STALE_AFTER", "1", "SPAWNIT_JOB_STALE_AFTER: '1' is not allowed; allowed: a duration from 2 s to 1 h"),
        ("SPAWNIT_EXPIRY_INTERVAL", "-5", "SPAWNIT_EXPIRY_INTERVAL: '-5' is not allowed"),
        ("SPAWNIT_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local", "SPAWNIT_TRUSTED_PROXIES: 'proxy.local' is not allowed"),
    ],
)
def test_serve_checks_its_settings_naming_the_variable(tmp_path, variable, value, message):
    environ = {**os.environ, "SPAWNIT_AUTH": "off", "SPAWNIT_DATA_DIR": str(tmp_path), variable: value}
    result = subprocess.run([sys.executable, "-m", "spawnit", "serve", "--port", "1"], capture_output=True, text=True, env=environ, timeout=120)
    assert result.returncode == 2 and result.stderr.startswith(f"spawnit: {message}") and "Traceback" not in result.stderr


def test_durations_read_as_people_write_them():
    from spawnit.api.settings import amount, duration

    assert [duration({"X": text}, "X", 5) for text in ("", "600", "90s", "10m", "1.5h", "2d")] == [5, 600, 90, 600, 5400, 172800]
    assert amount({"B": "250"}, "B") == 250.0 and amount({}, "B") is None


def start_server(port, data, environ):
    return subprocess.Popen(
        [sys.executable, "-m", "spawnit", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environ,
        cwd=data,
    )


def wait_healthy(base, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("server did not start")


def test_a_restart_mid_job_keeps_the_record_and_marks_it_interrupted(tmp_path):
    from standin import stand_in_tofu

    tofu_environ, _ = stand_in_tofu(tmp_path)
    environ = {key: value for key, value in tofu_environ.items() if not key.startswith("SPAWNIT_S3")}
    environ |= {"SPAWNIT_DATA_DIR": str(tmp_path / "data"), "SPAWNIT_AUTH": "off", "TOFU_SLOW_APPLY": "600", "SPAWNIT_JOB_STALE_AFTER": "2"}
    (tmp_path / "data").mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, tmp_path / "data", environ)
    try:
        wait_healthy(base)
        httpx.post(f"{base}/api/clients/acme/instances", json={"service": "redis", "instance": "cache"})
        job = httpx.post(f"{base}/api/clients/acme/instances/cache/apply", json={"auto_approve": True}).json()["job"]
        deadline = time.monotonic() + 60
        while httpx.get(f"{base}/api/jobs/{job}").json()["status"] != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.kill()  # the API dies mid-job
        server.wait()
    time.sleep(2.5)  # the dead process's last heartbeat grows stale
    server = start_server(port, tmp_path / "data", environ)
    try:
        wait_healthy(base)
        record = httpx.get(f"{base}/api/jobs/{job}").json()
        assert record["status"] == "interrupted" and record["action"] == "apply"
        assert httpx.get(f"{base}/api/clients/acme/instances/cache").json()["last_job"]["status"] == "interrupted"
    finally:
        server.terminate()
        server.wait(timeout=30)
