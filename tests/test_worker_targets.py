"""The self-hosted platform's workers deploy to every target with that target's credentials only.

A `spawnit worker` process is started with exactly the environment and mounts the platform stack gives
its worker containers, read from the synthesized JSON: the variables resolved with test values, the
containers' host names (minio, valkey) mapped to this test's servers, and the Docker socket bind-mounted
where the JSON says, in a mount namespace of its own over the session's real dockerd. The test adds only
what stands in for the world: the stand-in engine on PATH, the emulated AWS endpoint (moto) and the fake
Proxmox cluster's CA. Each job's engine call records its environment: a job gets its own target's
credentials and never the store's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import free_port, redis_server, wait_until
from spawnit.api.credentials import CredentialError, TargetAccess
from spawnit.api.toolchain import Toolchain
from standin import stand_in_tofu

STORE_KEY, STORE_SECRET = "store-key-id-minio", "store-secret-minio"
TARGET_KEY, TARGET_SECRET = "AKIATARGETACCOUNT01", "target-account-secret"
TOKEN_SECRET = "0b3c5e1a-token-secret"
PLATFORM_PROXMOX = "https://pve.example.com:8006/"


def _container(document: dict, role: str) -> dict:
    [container] = [body for body in document["resource"]["docker_container"].values() if any(
        label["label"] == "spawnit.platform" and label["value"] == role for label in body["labels"])][:1]
    return container


def _resolve(text: str, variables: dict[str, str], hosts: dict[str, str]) -> str:
    text = re.sub(r"\$\{urlencode\(var\.([a-z_]+)\)\}", lambda match: variables[match.group(1)], text)
    text = re.sub(r"\$\{var\.([a-z_]+)\}", lambda match: variables[match.group(1)], text)
    # the one conditional: root@pam only with its password (length(var.x) < 1 ? "" : "root@pam")
    text = re.sub(r'\$\{\(length\(var\.([a-z_]+)\) < 1\) \? "" : "([^"]*)"\}', lambda match: "" if variables[match.group(1)] == "" else match.group(2), text)
    for name, address in hosts.items():
        text = text.replace(name, address)
    assert "${" not in text, f"unresolved: {text}"
    return text


@pytest.fixture(scope="module")
def platform_worker(all_stacks, docker_engine, aws_endpoint, tmp_path_factory, fakepve_session, fakepve_cafile):
    """(API URL, stand-in calls, worker log, metrics URL) of one API replica and one worker run as the platform runs them."""
    import boto3

    root = tmp_path_factory.mktemp("platform-worker")
    document = all_stacks["platform-instances-targets"].document
    worker = _container(document, "worker")
    fake = fakepve_session
    fake.apitokens["spawnit@pve!deploy"] = TOKEN_SECRET
    fake.storages["local"]["content"] = "iso,vztmpl,backup,snippets"
    from cryptography.fernet import Fernet

    variables = {
        "minio_root_user": STORE_KEY, "minio_root_password": STORE_SECRET, "valkey_password": "", "secret_key": Fernet.generate_key().decode(),
        "target_aws_access_key_id": TARGET_KEY, "target_aws_secret_access_key": TARGET_SECRET,
        "proxmox_token_secret": TOKEN_SECRET, "proxmox_root_password": fake.password,
    }
    boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1", aws_access_key_id=STORE_KEY, aws_secret_access_key=STORE_SECRET).create_bucket(Bucket="spawnit")
    with redis_server(root) as redis_url:
        hosts = {"http://minio:9000": aws_endpoint, "valkey:6379": redis_url.removeprefix("redis://").removesuffix("/0"), PLATFORM_PROXMOX: fake.url + "/"}
        environ = dict(line.split("=", 1) for line in (_resolve(entry, variables, hosts) for entry in worker["env"]))
        tofu_env, calls = stand_in_tofu(root)
        world = {  # what stands in for the world, and nothing else
            "PATH": tofu_env["PATH"], "HOME": str(root), "TOFU_LOG": tofu_env["TOFU_LOG"], "TOFU_EXIT_CODES": json.dumps({"plan": 2}),
            "SPAWNIT_AWS_ENDPOINT": aws_endpoint, "SPAWNIT_PROXMOX_CA_FILE": fakepve_cafile,
        }
        # the socket the JSON mounts, bound over the session's dockerd socket in a mount namespace of the worker's own
        [mount] = worker["volumes"]
        socket = docker_engine[0].removeprefix("unix://")
        inside = os.path.realpath(os.path.dirname(mount["container_path"])) + "/" + os.path.basename(mount["container_path"])
        assert mount["host_path"] == "/var/run/docker.sock" and worker["group_add"]
        bind = f"mount -t tmpfs tmpfs {os.path.dirname(inside)} && touch {inside} && mount --bind {socket} {inside} && exec \"$@\""
        metrics = free_port()
        worker_log = root / "worker.log"
        worker_process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", bind, "sh", sys.executable, "-m", "spawnit", *worker["command"][1:], "--metrics-port", str(metrics)],
            env={**environ, **world, "SPAWNIT_DATA_DIR": str(root / "worker")}, stdout=open(worker_log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        api = _container(document, "api")
        api_env = dict(line.split("=", 1) for line in (_resolve(entry, variables, hosts) for entry in api["env"]))
        api_env = {key: value for key, value in api_env.items() if not key.startswith("SPAWNIT_OIDC_")}  # no Keycloak here: SPAWNIT_AUTH=off
        port = free_port()
        api_process = subprocess.Popen(
            [sys.executable, "-m", "spawnit", "serve", "--host", "127.0.0.1", "--port", str(port), "--worker-concurrency", "0"],
            env={**api_env, "PATH": os.environ["PATH"], "HOME": str(root), "SPAWNIT_AUTH": "off", "SPAWNIT_DATA_DIR": str(root / "api"),
                 "SPAWNIT_PROXMOX_CA_FILE": fakepve_cafile},
            stdout=open(root / "api.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: "taking jobs" in worker_log.read_text() or worker_process.poll() is not None, 240, "worker ready")
            assert worker_process.poll() is None, worker_log.read_text()

            def healthy() -> bool:
                try:
                    return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, 120, "API replica")
            yield url, calls, worker_log, f"http://127.0.0.1:{metrics}/metrics"
        finally:
            for process in (worker_process, api_process):
                process.send_signal(signal.SIGTERM)
                process.wait(60)


def _plan(url: str, instance: str, service: str, target: str, parameters: dict) -> dict:
    body = {"service": service, "instance": instance, "target": target, "parameters": parameters}
    created = httpx.post(f"{url}/api/clients/acme/instances", json=body, timeout=60)
    assert created.status_code == 201, created.text
    started = httpx.post(f"{url}/api/clients/acme/instances/{instance}/plan", timeout=30)
    assert started.status_code == 202, started.text
    job_id = started.json()["job"]
    deadline = time.monotonic() + 240
    while (job := httpx.get(f"{url}/api/jobs/{job_id}", timeout=10).json())["status"] not in ("succeeded", "failed", "cancelled", "interrupted"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job



def test_the_worker_says_at_start_and_in_its_metrics_which_targets_it_reaches(platform_worker):
    url, calls, log, metrics = platform_worker
    text = log.read_text()
    assert re.search(r"target docker: reachable \(no credentials \(the instance's docker_host as it is\); unix:///var/run/docker.sock: Docker \d", text), text
    assert re.search(r"target aws: reachable \(keys from SPAWNIT_AWS_ACCESS_KEY_ID, endpoint http://127.0.0.1:\d+; signed in as arn:aws:", text), text
    assert re.search(r"target proxmox: reachable \(endpoint https://127.0.0.1:\d+/, API token spawnit@pve!deploy, password of root@pam; Proxmox VE \d", text), text
    for secret in (STORE_SECRET, TARGET_SECRET, TOKEN_SECRET):
        assert secret not in text
    exposed = httpx.get(metrics, timeout=10).text
    for target in ("docker", "aws", "proxmox"):
        assert f'spawnit_target_reachable{{target="{target}"}} 1.0' in exposed
    assert TARGET_SECRET not in exposed and TOKEN_SECRET not in exposed


def test_each_target_job_gets_its_own_credentials_and_never_the_stores(platform_worker, docker_engine):
    url, calls, log, metrics = platform_worker
    jobs = {
        "box": ("nginx", "docker", {}),
        "cloud": ("nginx", "aws", {"allowed_cidrs": ["203.0.113.0/24"]}),
        "guest": ("nginx", "proxmox", {"proxmox_kind": "vm", "proxmox_node": "pve1"}),
        "lxc": ("nginx", "proxmox", {"proxmox_kind": "lxc", "proxmox_node": "pve1"}),
    }
    environments = {}
    for instance, (service, target, parameters) in jobs.items():
        job = _plan(url, instance, service, target, parameters)
        assert job["status"] == "succeeded", job
        plans = [call for call in calls() if call.get("argv", [""])[0] == "plan" and call["backend"]["s3"]["key"].startswith(f"clients/acme/{instance}/")]
        environments[instance] = plans[-1]["environ"]
    for environ in environments.values():
        assert not any(key.startswith("SPAWNIT_") for key in environ)
        assert STORE_KEY not in json.dumps(environ) and STORE_SECRET not in json.dumps(environ)
    docker, aws, vm, lxc = (environments[name] for name in jobs)
    assert not any(key.startswith(("AWS_ACCESS", "AWS_SECRET", "PROXMOX_VE_")) for key in docker)
    assert (aws["AWS_ACCESS_KEY_ID"], aws["AWS_SECRET_ACCESS_KEY"]) == (TARGET_KEY, TARGET_SECRET)
    assert not any(key.startswith("PROXMOX_VE_") for key in aws)
    assert vm["PROXMOX_VE_API_TOKEN"] == f"spawnit@pve!deploy={TOKEN_SECRET}" and vm["PROXMOX_VE_ENDPOINT"].startswith("https://127.0.0.1:")
    assert "PROXMOX_VE_PASSWORD" not in vm and "AWS_ACCESS_KEY_ID" not in vm
    # LXC: root@pam with its password, never the token (which the provider would prefer)
    assert lxc["PROXMOX_VE_USERNAME"] == "root@pam" and "PROXMOX_VE_API_TOKEN" not in lxc and lxc["PROXMOX_VE_PASSWORD"]


# Without the platform -----------------------------------------------------------------------------


def test_an_lxc_job_without_root_at_pam_is_refused_before_the_engine_runs(tmp_path, synth_worker):
    from spawnit.api.jobs import JobManager
    from spawnit.api.store import LocalObjectStore, Store

    tofu_env, calls = stand_in_tofu(tmp_path)
    store = Store(LocalObjectStore(tmp_path / "store"))
    store.put_spec("acme", "ct", {"service": "nginx", "target": "proxmox", "parameters": {"proxmox_kind": "lxc"}})
    environ = {**tofu_env, "SPAWNIT_PROXMOX_ENDPOINT": "https://pve.example.com:8006/", "SPAWNIT_PROXMOX_TOKEN_ID": "root@pam!deploy", "SPAWNIT_PROXMOX_TOKEN_SECRET": "x"}
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ=environ, toolchain=Toolchain.from_environment({}, tmp_path))
    job_id = jobs.submit("acme", "ct", "plan").id
    wait_until(lambda: jobs.get(job_id)["status"] in ("failed", "succeeded"), 60, "job ended")
    record = jobs.get(job_id)
    assert record["status"] == "failed"
    assert record["error"].startswith("proxmox_kind: 'lxc' needs SPAWNIT_PROXMOX_USERNAME=root@pam and SPAWNIT_PROXMOX_PASSWORD")
    assert calls() == []  # the engine never ran
    jobs.close()


def test_a_workstation_profile_reaches_aws_jobs_only(tmp_path):
    access = TargetAccess.from_environment({"AWS_PROFILE": "dev", "AWS_REGION": "eu-west-3", "DOCKER_CERT_PATH": "/certs", "PROXMOX_VE_API_TOKEN": "u@pam!t=s"})
    assert access.for_job("aws", {}, tmp_path) == {"AWS_PROFILE": "dev", "AWS_REGION": "eu-west-3"}
    assert access.for_job("docker", {}, tmp_path) == {"DOCKER_CERT_PATH": "/certs"}
    assert access.for_job("proxmox", {"proxmox_kind": "vm"}, tmp_path) == {"PROXMOX_VE_API_TOKEN": "u@pam!t=s"}
    toolchain = Toolchain.from_environment({}, tmp_path)
    server = {"PATH": "/bin", "AWS_PROFILE": "dev", "DOCKER_CERT_PATH": "/certs", "SSH_AUTH_SOCK": "/agent", "SPAWNIT_S3_BUCKET": "b"}
    environ = toolchain.environment(server, tmp_path / "cli.tfrc", {}, access.for_job("docker", {}, tmp_path))
    assert "AWS_PROFILE" not in environ and environ["DOCKER_CERT_PATH"] == "/certs" and "SPAWNIT_S3_BUCKET" not in environ


def test_a_role_is_assumed_from_the_configured_keys_through_the_jobs_own_config_file(tmp_path, aws_endpoint):
    """The file a job gets is read by the AWS SDK itself: boto3, with only the job's environment, assumes the role in moto."""
    role = "arn:aws:iam::123456789012:role/spawnit-deployer"
    access = TargetAccess.from_environment({"SPAWNIT_AWS_ACCESS_KEY_ID": TARGET_KEY, "SPAWNIT_AWS_SECRET_ACCESS_KEY": TARGET_SECRET, "SPAWNIT_AWS_ROLE_ARN": role})
    environ = access.for_job("aws", {}, tmp_path)
    assert environ["AWS_PROFILE"] == "spawnit-target" and Path(environ["AWS_CONFIG_FILE"]).read_text().count(role) == 1
    assert "AWS_ACCESS_KEY_ID" not in environ  # the SDKs would sign with environment keys before any profile
    assert oct(Path(environ["AWS_SHARED_CREDENTIALS_FILE"]).stat().st_mode & 0o777) == "0o600"
    program = f"import boto3; print(boto3.client('sts', region_name='us-east-1', endpoint_url='{aws_endpoint}').get_caller_identity()['Arn'])"
    emulated = {"AWS_ENDPOINT_URL_STS": aws_endpoint}  # the SDK's own AssumeRole call, to moto
    result = subprocess.run([sys.executable, "-c", program], env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **environ, **emulated}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("arn:aws:sts::123456789012:assumed-role/spawnit-deployer/spawnit-job")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"SPAWNIT_AWS_ACCESS_KEY_ID": "only"}, "SPAWNIT_AWS_SECRET_ACCESS_KEY: not set; allowed: both"),
        ({"SPAWNIT_AWS_ROLE_ARN": "deployer"}, "SPAWNIT_AWS_ROLE_ARN: 'deployer' is not allowed; allowed: a role ARN"),
        ({"SPAWNIT_PROXMOX_USERNAME": "root@pam"}, "SPAWNIT_PROXMOX_PASSWORD: not set; allowed: both"),
        ({"SPAWNIT_DOCKER_CERT_PATH": "/nowhere"}, "SPAWNIT_DOCKER_CERT_PATH: '/nowhere' is not allowed; allowed: a folder"),
    ],
)
def test_a_bad_target_setting_is_refused_naming_it(settings, message):
    with pytest.raises(CredentialError, match=re.escape(message)):
        TargetAccess.from_environment(settings)


def test_a_bad_target_setting_stops_the_worker_with_exit_2(tmp_path):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_")}
    environ |= {"SPAWNIT_DATA_DIR": str(tmp_path), "SPAWNIT_AUTH": "off", "SPAWNIT_AWS_ACCESS_KEY_ID": "only-the-id"}
    result = subprocess.run([sys.executable, "-m", "spawnit", "serve", "--port", "1"], capture_output=True, text=True, env=environ, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == (
        "spawnit: SPAWNIT_AWS_SECRET_ACCESS_KEY: not set; allowed: both SPAWNIT_AWS_ACCESS_KEY_ID and SPAWNIT_AWS_SECRET_ACCESS_KEY, or neither"
    )

