"""The Proxmox VE cluster as the platform sees it, through ``proxmoxer``: what Terraform does not give.

Nodes with their free CPU, memory and storage (``GET /cluster/resources``), a guest's
live status and last task, and the pre-flight check that refuses a request no node
can hold. The platform reaches the cluster with an API token (never a password):

    SPAWNIT_PROXMOX_ENDPOINT      https://pve.example.com:8006/
    SPAWNIT_PROXMOX_TOKEN_ID      spawnit@pve!platform
    SPAWNIT_PROXMOX_TOKEN_SECRET  the token's secret (UUID)
    SPAWNIT_PROXMOX_CA_FILE       the cluster's CA certificate (PEM); default: the system's CAs

Every failure becomes a :class:`ProxmoxError` whose ``status`` is the HTTP status the
API answers with (422 for a request that cannot fit, 502 when the cluster refuses or
fails, 503 when it is not configured or unreachable) and whose message says what to do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

MIB = 1024**2
GIB = 1024**3
ENVIRONMENT = ("SPAWNIT_PROXMOX_ENDPOINT", "SPAWNIT_PROXMOX_TOKEN_ID", "SPAWNIT_PROXMOX_TOKEN_SECRET", "SPAWNIT_PROXMOX_CA_FILE")
_TOKEN_ID = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9._-]+![A-Za-z][A-Za-z0-9._-]*$")


class ProxmoxError(Exception):
    """A failure the API reports as ``status`` with ``message`` (no traceback, no secret)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class StorageCapacity:
    storage: str
    content: list[str]
    total_gb: float
    free_gb: float
    active: bool


@dataclass(frozen=True)
class NodeCapacity:
    """A node: online or not, its CPUs and what is used of them, memory and storages (free = total - used)."""

    node: str
    online: bool
    cores: int = 0
    cpu_usage: float = 0.0
    memory_mb: int = 0
    free_memory_mb: int = 0
    storages: list[StorageCapacity] = field(default_factory=list)
    guests: int = 0

    def storage(self, name: str) -> StorageCapacity | None:
        return next((storage for storage in self.storages if storage.storage == name), None)


@dataclass(frozen=True)
class GuestRequest:
    """What a proxmox instance asks of the cluster (from its parameters)."""

    node: str
    cores: int
    memory_mb: int
    disk_gb: int
    storage: str
    snippets_storage: str


class ProxmoxCluster:
    """One cluster reached with an API token. ``verify``: a CA bundle path, or True for the system's CAs."""

    def __init__(self, endpoint: str, token_id: str, token_secret: str, *, verify: bool | str = True, timeout: float = 10) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise ProxmoxError(503, f"SPAWNIT_PROXMOX_ENDPOINT: {endpoint!r} is not allowed; allowed: https://HOST[:PORT]/")
        if not _TOKEN_ID.match(token_id):
            raise ProxmoxError(503, f"SPAWNIT_PROXMOX_TOKEN_ID: {token_id!r} is not allowed; allowed: USER@REALM!TOKEN, e.g. spawnit@pve!platform")
        from proxmoxer import ProxmoxAPI

        user, _, token_name = token_id.partition("!")
        self.endpoint = endpoint
        self.api = ProxmoxAPI(
            parts.hostname,
            port=parts.port or 8006,
            user=user,
            token_name=token_name,
            token_value=token_secret,
            verify_ssl=verify,
            timeout=timeout,
            service="PVE",
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProxmoxCluster:
        environ = os.environ if environ is None else environ
        missing = [name for name in ENVIRONMENT[:3] if not environ.get(name)]
        if missing:
            raise ProxmoxError(503, f"the Proxmox target is not configured: set {', '.join(missing)} (see the README, Proxmox target)")
        verify: bool | str = environ.get("SPAWNIT_PROXMOX_CA_FILE") or True
        if isinstance(verify, str) and not os.path.isfile(verify):
            raise ProxmoxError(503, f"SPAWNIT_PROXMOX_CA_FILE: {verify!r} is not a file; allowed: the cluster's CA certificate (PEM)")
        return cls(environ["SPAWNIT_PROXMOX_ENDPOINT"], environ["SPAWNIT_PROXMOX_TOKEN_ID"], environ["SPAWNIT_PROXMOX_TOKEN_SECRET"], verify=verify)

    # Reading ---------------------------------------------------------------------------------

    def _get(self, path: str, **query: Any) -> Any:
        """GET ``path`` (under /api2/json), every failure turned into a :class:`ProxmoxError`."""
        import requests
        from proxmoxer.core import AuthenticationError, ResourceException

        try:
            return self.api(path).get(**query)
        except ResourceException as error:
            raise _explained(error.status_code, error.status_message, error.content, path) from None
        except AuthenticationError as error:
            raise ProxmoxError(502, f"Proxmox refused the platform's API token: {error}") from None
        except requests.exceptions.SSLError:
            raise ProxmoxError(503, f"Proxmox at {self.endpoint}: its certificate is not trusted; set SPAWNIT_PROXMOX_CA_FILE to the cluster's CA") from None
        except requests.exceptions.Timeout:
            raise ProxmoxError(503, f"Proxmox at {self.endpoint} did not answer in time") from None
        except requests.exceptions.ConnectionError:
            raise ProxmoxError(503, f"Proxmox at {self.endpoint} cannot be reached") from None

    def version(self) -> str:
        """The cluster's Proxmox VE version (``/version``)."""
        return str(self._get("/version").get("version", "?"))

    def nodes(self) -> list[NodeCapacity]:
        """Every node, its free CPU, memory and storages, from one ``/cluster/resources`` call."""
        resources = self._get("cluster/resources")
        storages: dict[str, list[StorageCapacity]] = {}
        guests: dict[str, int] = {}
        for item in resources:
            if item.get("type") == "storage":
                total, used = item.get("maxdisk", 0), item.get("disk", 0)
                storages.setdefault(item["node"], []).append(
                    StorageCapacity(
                        storage=item["storage"],
                        content=[part for part in str(item.get("content", "")).split(",") if part],
                        total_gb=round(total / GIB, 1),
                        free_gb=round(max(total - used, 0) / GIB, 1),
                        active=item.get("status") == "available",
                    )
                )
            elif item.get("type") in ("qemu", "lxc") and not item.get("template"):
                guests[item["node"]] = guests.get(item["node"], 0) + 1
        nodes = []
        for item in resources:
            if item.get("type") != "node":
                continue
            name, online = item["node"], item.get("status") == "online"
            nodes.append(
                NodeCapacity(
                    node=name,
                    online=online,
                    cores=int(item.get("maxcpu", 0)),
                    cpu_usage=round(float(item.get("cpu", 0.0)), 3),
                    memory_mb=int(item.get("maxmem", 0) // MIB),
                    free_memory_mb=int(max(item.get("maxmem", 0) - item.get("mem", 0), 0) // MIB),
                    storages=sorted(storages.get(name, []), key=lambda storage: storage.storage) if online else [],
                    guests=guests.get(name, 0),
                )
            )
        return sorted(nodes, key=lambda node: node.node)

    def guest(self, name: str) -> dict[str, Any] | None:
        """The live status of the guest named ``name`` (the instance's stack name) and its last task, or None."""
        found = next((item for item in self._get("cluster/resources", type="vm") if item.get("name") == name and not item.get("template")), None)
        if found is None:
            return None
        node, vmid, kind = found["node"], found["vmid"], found["type"]
        status = {
            "node": node,
            "vmid": vmid,
            "kind": "vm" if kind == "qemu" else "lxc",
            "status": found.get("status", "unknown"),
            "uptime_s": found.get("uptime", 0),
            "cpu_usage": round(float(found.get("cpu", 0.0)), 3),
            "memory_mb": int(found.get("mem", 0) // MIB),
            "last_task": None,
        }
        if status["status"] == "unknown":  # its node is offline: nothing more to ask
            status["message"] = f"node {node} is offline"
            return status
        tasks = self._get(f"nodes/{node}/tasks", vmid=vmid, limit=1)
        if tasks:
            task = tasks[0]
            outcome = task.get("status", "running")
            status["last_task"] = {"type": task.get("type"), "ok": outcome == "OK", "status": outcome, "started": task.get("starttime")}
        return status

    # Pre-flight ------------------------------------------------------------------------------

    def preflight(self, request: GuestRequest) -> None:
        """Refuse (422) a guest that its node cannot hold now, naming the resource, what is free and where."""
        nodes = {node.node: node for node in self.nodes()}
        node = nodes.get(request.node)
        if node is None:
            raise ProxmoxError(422, f"proxmox_node = {request.node!r} is not a node of the cluster; allowed: {', '.join(sorted(nodes)) or 'none'}")
        if not node.online:
            online = [name for name, other in sorted(nodes.items()) if other.online]
            raise ProxmoxError(422, f"proxmox_node = {request.node!r} is offline; allowed: an online node ({', '.join(online) or 'none'})")
        problems = []
        if request.cores > node.cores:
            problems.append(f"proxmox_cores = {request.cores} is more than node {node.node}'s {node.cores} CPUs")
        if request.memory_mb > node.free_memory_mb:
            problems.append(f"proxmox_memory_mb = {request.memory_mb} is more than node {node.node}'s {node.free_memory_mb} MB of free memory")
        storage = node.storage(request.storage)
        if storage is None:
            problems.append(f"proxmox_storage = {request.storage!r} is not on node {node.node}; allowed: {', '.join(s.storage for s in node.storages)}")
        elif request.disk_gb > storage.free_gb:
            problems.append(f"proxmox_disk_gb = {request.disk_gb} is more than the {storage.free_gb:g} GB free on {storage.storage} (node {node.node})")
        snippets = node.storage(request.snippets_storage)
        if snippets is None or "snippets" not in snippets.content:
            with_snippets = [s.storage for s in node.storages if "snippets" in s.content]
            problems.append(
                f"proxmox_snippets_storage = {request.snippets_storage!r} does not hold snippets on node {node.node}; "
                f"allowed: {', '.join(with_snippets) or 'none: enable the snippets content type on a datastore'}"
            )
        if problems:
            room = [
                other.node
                for other in nodes.values()
                if other.online and other.node != node.node and request.cores <= other.cores and request.memory_mb <= other.free_memory_mb
            ]
            hint = f"; nodes with room for it: {', '.join(sorted(room))}" if room else ""
            raise ProxmoxError(422, "; ".join(problems) + hint)


def as_documents(nodes: list[NodeCapacity]) -> list[dict[str, Any]]:
    return [asdict(node) for node in nodes]


def _explained(status: int, reason: str, content: str, path: str) -> ProxmoxError:
    detail = (content or reason or "").strip()
    if status == 401:
        return ProxmoxError(502, "Proxmox refused the platform's API token (401 authentication failure): check SPAWNIT_PROXMOX_TOKEN_ID and SPAWNIT_PROXMOX_TOKEN_SECRET")
    if status == 403:
        return ProxmoxError(502, f"Proxmox denied {path} to the platform's API token (403 {detail}): grant it PVEAuditor on / at least")
    if status == 595:
        return ProxmoxError(502, f"Proxmox could not reach the node for {path} (595 {detail}): the node is offline or unreachable")
    return ProxmoxError(502, f"Proxmox failed {path} ({status} {detail})")


def guest_request(parameters: Mapping[str, Any], memory_mb: int) -> GuestRequest:
    """What the instance's validated parameters ask of the cluster."""
    return GuestRequest(
        node=parameters["proxmox_node"],
        cores=parameters["proxmox_cores"],
        memory_mb=memory_mb,
        disk_gb=parameters["proxmox_disk_gb"],
        storage=parameters["proxmox_storage"],
        snippets_storage=parameters["proxmox_snippets_storage"],
    )
