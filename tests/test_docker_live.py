"""The docker target seen live: a real Docker engine (Debian's dockerd, started by the session) answers the
API's live status of a deployed instance and the reachability check.

The Docker provider plugin (kreuzwerker/docker) cannot be had on this machine, so the stack cannot be
applied for real: the tests create the containers the way the synthesized stack describes them (its
``docker_container`` names, labels and health-check timings) with the engine's API, from a busybox
image made here (no registry is reachable). Only each health check's command is the test's own
(busybox has no curl nor mariadb): ``true`` for a healthy container, ``false`` for an unhealthy one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import docker
import pytest
from fastapi.testclient import TestClient

from conftest import free_port, local_app, wait_until
from spawnit.api.live import describe_reachability, docker_reachability, reachability


@pytest.fixture(scope="module")
def described(synth_worker, tmp_path_factory, docker_engine) -> list[dict]:
    """The docker_container resources of a WordPress instance (acme/blog) on the test's engine, as synthesized."""
    host, _ = docker_engine
    stack_dir = synth_worker.synth(
        service="wordpress", parameters={"target": "docker", "docker_host": host}, client="acme", instance="blog", outdir=str(tmp_path_factory.mktemp("out")), state=None
    )
    document = json.loads((Path(stack_dir) / "cdk.tf.json").read_text())
    assert document["provider"]["docker"] == [{"host": host}]  # the stack talks to this engine
    return list(document["resource"]["docker_container"].values())


def seconds(duration: str) -> int:
    return int(re.fullmatch(r"(\d+)s", duration).group(1))


def start_as_described(client: docker.DockerClient, image: str, resource: dict, *, healthy: bool = True, exits: bool = False) -> None:
    """A container with the resource's name, labels and restart policy, and a health check with its
    retries (its command and period the test's, see the module docstring)."""
    check = resource["healthcheck"]
    client.containers.run(
        image,
        ["false"] if exits else ["sleep", "600"],
        name=resource["name"],
        labels={label["label"]: label["value"] for label in resource["labels"]},
        restart_policy={"Name": "always"} if exits else {"Name": resource["restart"]},
        healthcheck={"test": ["CMD", "true" if healthy else "false"], "interval": 500_000_000, "timeout": seconds(check["timeout"]) * 10**9, "retries": 1},
        detach=True,
    )


@pytest.fixture
def engine(docker_engine):
    host, image = docker_engine
    client = docker.DockerClient(base_url=host, timeout=30)
    yield client, image
    for container in client.containers.list(all=True, filters={"label": "spawnit.instance=acme-blog"}):
        container.remove(force=True)
    client.close()


@pytest.fixture
def api(tmp_path, synth_worker, docker_engine):
    with TestClient(local_app(tmp_path, synth_worker)) as client:
        response = client.post("/api/clients/acme/instances", json={"service": "wordpress", "instance": "blog", "parameters": {"docker_host": docker_engine[0]}})
        assert response.status_code == 201, response.text
        yield client


def live(api: TestClient) -> dict:
    return api.get("/api/clients/acme/instances/blog").json()["live"]


def by_name(status: dict) -> dict:
    return {item["name"]: item for item in status["containers"]}


def test_an_instance_whose_containers_all_run_healthy_is_healthy_in_the_api_and_its_list(api, engine, described):
    client, image = engine
    assert live(api)["status"] == "absent"
    for resource in described:
        start_as_described(client, image, resource)
    status = wait_until(lambda: (found := live(api))["status"] == "healthy" and found, 60, "both containers healthy")
    assert {name: (item["state"], item["health"]) for name, item in by_name(status).items()} == {
        "acme-blog-db": ("running", "healthy"),
        "acme-blog-wordpress": ("running", "healthy"),
    }
    [listed] = api.get("/api/clients/acme/instances").json()["instances"]
    assert listed["live"]["status"] == "healthy"


def test_an_unhealthy_container_makes_the_instance_degraded_and_names_it(api, engine, described):
    client, image = engine
    database, site = described
    start_as_described(client, image, database)
    start_as_described(client, image, site, healthy=False)
    status = wait_until(lambda: (found := live(api))["status"] == "degraded" and found, 60, "degraded")
    assert by_name(status)[site["name"]]["health"] == "unhealthy" and by_name(status)[database["name"]]["health"] in ("healthy", "starting")


def test_a_crashing_container_is_seen_restarting_or_exited_with_its_restarts(api, engine, described):
    client, image = engine
    database, site = described
    start_as_described(client, image, database)
    start_as_described(client, image, site, exits=True)
    status = wait_until(lambda: (found := live(api))["status"] == "degraded" and by_name(found)[site["name"]]["restarts"] >= 1 and found, 60, "restarts seen")
    assert by_name(status)[site["name"]]["state"] in ("restarting", "exited", "running")


def test_a_removed_container_is_missing_and_all_removed_is_absent(api, engine, described):
    client, image = engine
    for resource in described:
        start_as_described(client, image, resource)
    wait_until(lambda: live(api)["status"] == "healthy", 60, "healthy")
    client.containers.get(described[1]["name"]).remove(force=True)
    status = live(api)
    assert status["status"] == "degraded" and by_name(status)[described[1]["name"]]["state"] == "missing"
    client.containers.get(described[0]["name"]).remove(force=True)
    assert live(api)["status"] == "absent"


def test_an_engine_that_cannot_be_reached_is_unavailable_not_an_error(api, tmp_path):
    api.patch("/api/clients/acme/instances/blog", json={"parameters": {"docker_host": f"unix://{tmp_path}/nothing.sock"}})
    response = api.get("/api/clients/acme/instances/blog")
    assert response.status_code == 200 and response.json()["live"]["status"] == "unavailable"
    assert "nothing.sock" in response.json()["live"]["message"]


def test_the_reachability_check_talks_to_the_engine_and_to_sts(docker_engine, tmp_path, aws_endpoint):
    host, _ = docker_engine
    found = docker_reachability(host)
    assert found["reachable"] is True and re.search(r"Docker 20\.10\.\d+", found["detail"])
    dead = reachability({"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock"})
    assert dead["docker"]["reachable"] is False and "nothing.sock" in dead["docker"]["detail"]
    environ = {"DOCKER_HOST": host, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "very-secret-value", "SPAWNIT_AWS_ENDPOINT": aws_endpoint}
    lines = describe_reachability(reachability(environ))
    assert lines[0].startswith("target docker: reachable") and lines[2].startswith("target proxmox: NOT reachable (no credentials configured; no endpoint")
    assert lines[1].startswith("target aws: reachable (the host's AWS settings, endpoint http://127.0.0.1:") and "signed in as arn:aws:" in lines[1]
    # no answer from STS (no network to AWS here): not reachable, with the SDK's reason
    unreachable = describe_reachability(reachability({"DOCKER_HOST": host, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "very-secret-value",
                                                       "SPAWNIT_AWS_ENDPOINT": f"http://127.0.0.1:{free_port()}"}))[1]
    assert unreachable.startswith("target aws: NOT reachable") and "EndpointConnectionError" in unreachable
    assert "very-secret-value" not in "\n".join(lines) and "AKIAEXAMPLE" not in "\n".join(lines)


def test_the_api_reports_what_this_process_reaches(api, docker_engine, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", docker_engine[0])
    targets = api.get("/api/targets").json()["targets"]
    assert targets["docker"]["reachable"] is True and set(targets) == {"docker", "aws", "proxmox"}
