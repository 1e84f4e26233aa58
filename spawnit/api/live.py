"""What the targets look like now: whether this process can reach each one, and how a deployed
instance's containers are doing (the source document's "monitoring after deployment").

For the ``docker`` target both come from the Docker engine's API (the ``docker`` SDK): a ping and
the engine's version, then the containers labelled ``spawnit.instance=<client>-<instance>`` (the
labels every container of the target carries), each with its state (``running``, ``restarting``,
``exited``...) and, where the container has a health check, its health (``healthy``,
``unhealthy``, ``starting``). A container the service declares but the engine does not have is
``missing``. For ``aws`` reachability is STS's answer to GetCallerIdentity, for ``proxmox`` the
cluster's version, each asked with exactly the credentials a job on that target receives; nothing
here ever prints a credential.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .credentials import CredentialError, TargetAccess

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
TIMEOUT_SECONDS = 5


def _docker(host: str, settings: Mapping[str, str] | None = None):  # noqa: ANN202 - a docker.DockerClient
    import docker

    if settings and settings.get("DOCKER_CERT_PATH"):  # TLS client certificates, as a job's provider uses them
        return docker.from_env(environment={**settings, "DOCKER_HOST": host}, timeout=TIMEOUT_SECONDS)
    return docker.DockerClient(base_url=host, timeout=TIMEOUT_SECONDS)


def docker_reachability(host: str, settings: Mapping[str, str] | None = None) -> dict[str, Any]:
    """{"reachable": bool, "detail": "<engine version>" or why not} for a Docker host."""
    from docker.errors import DockerException

    try:
        client = _docker(host, settings)
        try:
            version = client.version()
        finally:
            client.close()
    except (DockerException, OSError, ImportError, ValueError) as error:  # ssh:// needs paramiko; a bad URL is a ValueError
        return {"reachable": False, "detail": f"{host}: {type(error).__name__}: {str(error)[:200]}"}
    return {"reachable": True, "detail": f"{host}: Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"}


def reachability(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Each target as a job of this process would reach it, with the credentials configured for that
    target (:class:`.credentials.TargetAccess`): one entry per target, with where the credentials come
    from and what the target answered, never a credential."""
    environ = os.environ if environ is None else environ
    try:
        access = TargetAccess.from_environment(environ)
    except CredentialError as error:
        return {target: {"reachable": False, "detail": str(error)} for target in ("docker", "aws", "proxmox")}
    docker = docker_reachability(access.docker.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST, access.docker)
    docker["detail"] = f"{access.sources['docker']}; {docker['detail']}"
    return {"docker": docker, "aws": aws_reachability(access, environ), "proxmox": proxmox_reachability(access, environ)}


def aws_reachability(access: TargetAccess, environ: Mapping[str, str]) -> dict[str, Any]:
    """STS GetCallerIdentity with exactly a job's ``aws`` environment, in a process of its own."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    endpoint = environ.get("SPAWNIT_AWS_ENDPOINT")
    program = (
        "import sys, boto3\n"
        "try:\n"
        "    from botocore.config import Config\n"
        "    config = Config(connect_timeout=5, read_timeout=10, retries={'max_attempts': 1})\n"
        "    print(boto3.client('sts', region_name='us-east-1', endpoint_url=sys.argv[1] or None, config=config).get_caller_identity()['Arn'])\n"
        "except Exception as error:\n"
        "    print(f'{type(error).__name__}: {error}'[:200]); sys.exit(1)\n"
    )
    with tempfile.TemporaryDirectory(prefix="spawnit-aws-check-") as folder:
        job = access.for_job("aws", {}, Path(folder))
        base = {key: value for key, value in environ.items() if key in ("PATH", "HOME", "LANG")}
        try:
            result = subprocess.run(
                [sys.executable, "-c", program, endpoint or ""], env={**base, **job},
                capture_output=True, text=True, timeout=TIMEOUT_SECONDS * 6,
            )
            answer = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr.strip()[-200:]
            reachable = result.returncode == 0
        except subprocess.TimeoutExpired:
            answer, reachable = "STS did not answer in time", False
    where = f", endpoint {endpoint}" if endpoint else ""
    return {"reachable": reachable, "detail": f"{access.sources['aws']}{where}; " + (f"signed in as {answer}" if reachable else answer)}


def proxmox_reachability(access: TargetAccess, environ: Mapping[str, str]) -> dict[str, Any]:
    """The cluster's version, asked with a job's ``proxmox`` credentials (the token, else the password)."""
    endpoint = access.proxmox_common.get("PROXMOX_VE_ENDPOINT")
    if not endpoint:
        return {"reachable": False, "detail": f"{access.sources['proxmox']}; no endpoint (SPAWNIT_PROXMOX_ENDPOINT)"}
    token = access.proxmox_token.get("PROXMOX_VE_API_TOKEN")
    login = access.proxmox_password
    if not token and not login:
        return {"reachable": False, "detail": f"{access.sources['proxmox']}; no API token nor password (SPAWNIT_PROXMOX_TOKEN_ID/SECRET or USERNAME/PASSWORD)"}
    from ..proxmox import ProxmoxCluster, ProxmoxError

    verify: bool | str = environ.get("SPAWNIT_PROXMOX_CA_FILE") or access.proxmox_common.get("PROXMOX_VE_INSECURE") != "true"
    try:
        if token:  # the cluster as the API reads it: its errors name the setting to fix
            token_id, _, secret = token.partition("=")
            version = ProxmoxCluster(endpoint, token_id, secret, verify=verify, timeout=TIMEOUT_SECONDS).version()
        else:  # root@pam's password (LXC guests): ProxmoxCluster reads with a token only
            from urllib.parse import urlparse

            from proxmoxer import ProxmoxAPI

            address = urlparse(endpoint)
            api = ProxmoxAPI(address.hostname, port=address.port or 8006, user=login["PROXMOX_VE_USERNAME"], password=login["PROXMOX_VE_PASSWORD"],
                             verify_ssl=verify, timeout=TIMEOUT_SECONDS, service="PVE")
            version = api.version.get().get("version", "?")
    except ProxmoxError as error:
        return {"reachable": False, "detail": f"{access.sources['proxmox']}; {error.message}"}
    except Exception as error:  # noqa: BLE001 - every failure is a reason, one line
        return {"reachable": False, "detail": f"{access.sources['proxmox']}; {type(error).__name__}: {str(error)[:160]}"}
    return {"reachable": True, "detail": f"{access.sources['proxmox']}; Proxmox VE {version}"}


def describe_reachability(found: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per target, for a worker's start."""
    return [f"target {name}: {'reachable' if item['reachable'] else 'NOT reachable'} ({item['detail']})" for name, item in found.items()]


def _container_status(container: Any) -> dict[str, Any]:
    state = container.attrs.get("State", {})
    status = "restarting" if state.get("Restarting") else state.get("Status", "unknown")
    health = (state.get("Health") or {}).get("Status")
    return {"name": container.name, "state": status, "health": health, "restarts": container.attrs.get("RestartCount", 0)}


def docker_instance_status(host: str, prefix: str, expected: list[str]) -> dict[str, Any]:
    """The live status of a ``docker`` instance: each expected container (``<prefix>-<name>``) as the
    engine reports it, and one word for the whole: ``healthy`` (every container running, and healthy
    where it has a health check), ``starting``, ``degraded`` (one is unhealthy, restarting, stopped or
    missing), ``absent`` (none exists) or ``unavailable`` (the engine cannot be reached)."""
    from docker.errors import DockerException

    try:
        client = _docker(host)
        try:
            found = {container.name: _container_status(container) for container in client.containers.list(all=True, filters={"label": f"spawnit.instance={prefix}"})}
        finally:
            client.close()
    except (DockerException, OSError, ImportError, ValueError) as error:  # ssh:// needs paramiko; a bad URL is a ValueError
        return {"status": "unavailable", "message": f"{host}: {type(error).__name__}: {str(error)[:200]}", "containers": []}
    containers = [found.get(name) or {"name": name, "state": "missing", "health": None, "restarts": 0} for name in expected]
    if all(item["state"] == "missing" for item in containers):
        overall = "absent"
    elif all(item["state"] == "running" and item["health"] in (None, "healthy") for item in containers):
        overall = "healthy"
    elif all(item["state"] == "running" and item["health"] in (None, "healthy", "starting") for item in containers):
        overall = "starting"
    else:
        overall = "degraded"
    return {"status": overall, "containers": containers}
