"""What the targets look like now: whether this process can reach each one, and how a deployed
instance's containers are doing (the source document's "monitoring after deployment").

For the ``docker`` target both come from the Docker engine's API (the ``docker`` SDK): a ping and
the engine's version, then the containers labelled ``spawnit.instance=<client>-<instance>`` (the
labels every container of the target carries), each with its state (``running``, ``restarting``,
``exited``...) and, where the container has a health check, its health (``healthy``,
``unhealthy``, ``starting``). A container the service declares but the engine does not have is
``missing``. For ``aws`` and ``proxmox`` reachability says whether credentials and an endpoint are
configured, without calling anything; nothing here ever prints a credential.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
TIMEOUT_SECONDS = 5


def _docker(host: str):  # noqa: ANN202 - a docker.DockerClient
    import docker

    return docker.DockerClient(base_url=host, timeout=TIMEOUT_SECONDS)


def docker_reachability(host: str) -> dict[str, Any]:
    """{"reachable": bool, "detail": "<engine version>" or why not} for a Docker host."""
    from docker.errors import DockerException

    try:
        client = _docker(host)
        try:
            version = client.version()
        finally:
            client.close()
    except (DockerException, OSError, ImportError, ValueError) as error:  # ssh:// needs paramiko; a bad URL is a ValueError
        return {"reachable": False, "detail": f"{host}: {type(error).__name__}: {str(error)[:200]}"}
    return {"reachable": True, "detail": f"{host}: Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"}


def reachability(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Each target as this process can reach it with its own settings: one entry per target."""
    environ = os.environ if environ is None else environ
    result = {"docker": docker_reachability(environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST)}
    aws_credentials = bool(environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY")) or bool(environ.get("AWS_PROFILE"))
    aws_credentials = aws_credentials or bool(environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") or environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
    endpoint = environ.get("SPAWNIT_AWS_ENDPOINT")
    result["aws"] = {
        "reachable": aws_credentials,
        "detail": ("credentials from the environment" if aws_credentials else "no AWS credentials in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role)")
        + (f", endpoint {endpoint}" if endpoint else ""),
    }
    proxmox = environ.get("PROXMOX_VE_ENDPOINT")
    token = bool(environ.get("PROXMOX_VE_API_TOKEN") or (environ.get("PROXMOX_VE_USERNAME") and environ.get("PROXMOX_VE_PASSWORD")))
    result["proxmox"] = {
        "reachable": bool(proxmox and token),
        "detail": f"{proxmox}, {'credentials set' if token else 'no PROXMOX_VE_API_TOKEN'}" if proxmox else "PROXMOX_VE_ENDPOINT not set",
    }
    return result


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
