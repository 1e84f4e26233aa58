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
    process = subprocess.Popen(
        [sys.executable, "-m", "spawnit", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_S3")} | {"SPAWNIT_DATA_DIR": str(data), "SPAWNIT_AUTH": "off"},
        cwd=data,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"spawnit serve did not start: {process.stdout.read().decode()[-2000:]}")
    yield base
    process.terminate()
    process.wait(timeout=10)


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
